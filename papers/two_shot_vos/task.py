"""Two-shot VOS (Yan et al., CVPR 2023) for the shared runner, as declared stages (`recipe.mode`):
- two_shot: `phase1` (labeled-frame triplets, then semi triplets with EMA-teacher pseudo labels), `bank` (the
  phase-1 model's four-pass pseudo labels of every training frame, palette PNGs in the stage directory) and
  `phase2` (from the same initialization, on the bank, with 0.99 in-batch relabeling: the run's model);
- phase1: `phase1` alone; naive: `naive` (triplets of the two labeled frames only); full: `full` (every frame
  labeled).
Evaluation propagates the first frame's masks through each validation video (J, F, J&F per object).
`scorer=oracle|trivial_copy_first_frame` scores the validation videos without training (no_learning.py);
mode=predict segments a folder in DAVIS or YouTube-VOS layout with a finished run's model (prediction.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from torch import nn

from common.checkpoint import trained_weights
from common.config import bounded, typed_config
from common.errors import ConfigError
from common.metrics.segmentation import jaccard
from common.stages import Stage, StageContext, StageOutcome
from common.task import PaperTask
from common.trainer import TrainerConfig
from common.units import UnitContributions
from papers.two_shot_vos.data import Video, read_davis, read_index_mask, read_labeled_frames, read_youtube_vos
from papers.two_shot_vos.inference import InferenceConfig, build_bank
from papers.two_shot_vos.no_learning import SCORERS, no_learning_segmenter
from papers.two_shot_vos.outputs import export_youtube_submission, write_overlays
from papers.two_shot_vos.prediction import predict_videos
from papers.two_shot_vos.sampling import SamplingConfig, VideoSource
from papers.two_shot_vos.scoring import score_batch, video_units
from papers.two_shot_vos.stcn import STCNConfig
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, ensure_dataset
from papers.two_shot_vos.trainee import PhaseSettings, TwoShotTrainee
from papers.two_shot_vos.training import RecipeConfig

DATASETS = ("synthetic_vos", "davis", "youtube_vos")
STAGES = {  # recipe.mode -> its stages; each but the bank trains STCN with the sampler of SAMPLERS
    "two_shot": ("phase1", "bank", "phase2"),
    "phase1": ("phase1",),
    "naive": ("naive",),
    "full": ("full",),
}
SAMPLERS = {"phase1": "phase1", "phase2": "bank", "naive": "naive", "full": "full"}
DESCRIPTIONS = {
    "phase1": "STCN on the labeled frames, then semi triplets pseudo-labeled by its EMA teacher",
    "bank": "the four-pass pseudo labels of every training frame from the phase-1 model",
    "phase2": "STCN from the same initialization on the labeled and pseudo-labeled frames",
    "naive": "STCN on triplets of the two labeled frames only",
    "full": "STCN on every frame of every training video (full supervision)",
}


@dataclass
class VOSDataConfig:
    name: str = bounded("synthetic_vos", choices=DATASETS)
    root: str | None = None  # DAVIS 2017 or YouTube-VOS 2019 root; never downloaded
    cache_dir: str = ".cache/reprozoo"
    two_shot_split: str | None = None  # JSON {video: [frame.jpg, frame.jpg]}; default <root>/two_shot_frames.json
    train_split: str = "train"
    val_split: str = "val"  # DAVIS: val; YouTube-VOS: valid (no public ground truth: exported only)
    size: list[int] | None = bounded(None, minimum=1)  # [H, W] frames and masks are resized to on load
    data_card: str = "data_cards/synthetic_vos.md"
    generator: SyntheticVOSConfig = field(default_factory=SyntheticVOSConfig)


class TwoShotVOSTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(STCNConfig, cfg.model.stcn, "model.stcn")
        self.data_config = typed_config(VOSDataConfig, cfg.data, "data")
        self.recipe = typed_config(RecipeConfig, cfg.recipe, "recipe")
        self.sampling = typed_config(SamplingConfig, cfg.sampling, "sampling")
        self.inference = typed_config(InferenceConfig, cfg.inference, "inference")
        self.trainer_settings = typed_config(TrainerConfig, cfg.trainer, "trainer")
        if not self.trainer_settings.max_steps:
            raise ConfigError("trainer.max_steps must be set for two_shot_vos: the recipe's schedules are in steps.")
        generator = self.data_config.generator
        if generator.max_frames < generator.min_frames:
            raise ConfigError(
                f"Bad config value data.generator.max_frames={generator.max_frames}: it must be at least "
                f"data.generator.min_frames ({generator.min_frames})."
            )
        if self.data_config.size is not None and len(self.data_config.size) != 2:
            raise ConfigError(f"Bad config value data.size={self.data_config.size!r}: it must be [height, width].")
        self.seed = int(cfg.seed)
        self.trainees = {name: self.phase(name) for name in STAGES[self.recipe.mode] if name != "bank"}
        self.trainee = list(self.trainees.values())[-1]  # the run's model
        self.extra_metrics: dict[str, float] = {}
        self.cached_videos: dict[str, list[Video]] = {}
        self.phase1_model: nn.Module | None = None
        self.banked_videos: list[Video] = []

    @property
    def model_name(self) -> str:
        return f"stcn_{self.recipe.mode}"

    def phase(self, name: str) -> TwoShotTrainee:
        """The trainee of training stage `name`; phase 1 runs recipe.phase1_steps steps when set."""
        steps = self.trainer_settings.max_steps
        if name == "phase1" and self.recipe.phase1_steps:
            steps = self.recipe.phase1_steps
        settings = PhaseSettings(self.model_config, self.recipe, self.sampling, self.inference)
        return TwoShotTrainee(self.context, name, SAMPLERS[name], steps, self.seed, settings)

    # data

    def _root(self) -> Path:
        return self.generated_or_given_root("synthetic_vos", ensure_dataset)

    def prepare_data(self) -> None:
        self._root()

    def read_split(self, split: str, labeled: dict | None, native: bool = False) -> list[Video]:
        """The videos of `split`, resized to data.size unless `native` (videos to segment: a DAVIS folder
        without ImageSets is read whole)."""
        config, root = self.data_config, self._root()
        size = tuple(config.size) if config.size and not native else None
        if config.name == "youtube_vos":
            return read_youtube_vos(root, split, config.data_card, labeled, size)
        return read_davis(root, split, config.data_card, labeled, size, listed_only=not native)

    def two_shot_split(self) -> dict[str, list[str]]:
        path = Path(self.data_config.two_shot_split or self._root() / "two_shot_frames.json")
        return read_labeled_frames(path, self.data_config.data_card)

    def training_videos(self, labeled: bool) -> list[Video]:
        """The training videos with the two-shot split's masks (`labeled`) or every mask (full supervision)."""
        key = "two_shot" if labeled else "every_mask"
        if key not in self.cached_videos:
            split = self.two_shot_split() if labeled else None
            self.cached_videos[key] = self.read_split(self.data_config.train_split, split)
        return self.cached_videos[key]

    @property
    def val_videos(self) -> list[Video]:
        if "val" not in self.cached_videos:
            self.cached_videos["val"] = self.read_split(self.data_config.val_split, None)
        return self.cached_videos["val"]

    def load_data(self):
        """The first stage's training triplets and the validation videos (the no-learning rows read the last)."""
        first = self.trainees[STAGES[self.recipe.mode][0]]
        train = first.triplets(self.training_videos(labeled=first.sampler != "full"))
        return train, VideoSource(self.val_videos), VideoSource(self.val_videos)

    # stages

    def stages(self) -> list[Stage]:
        return [self.stage(name) for name in STAGES[self.recipe.mode]]

    def stage(self, name: str) -> Stage:
        if name == "bank":
            return Stage(name, DESCRIPTIONS[name], self.run_bank, self.restore_bank, lambda: asdict(self.inference))
        training = partial(self.run_training, name)
        return Stage(name, DESCRIPTIONS[name], training, config=partial(self.phase_config, name))

    def phase_config(self, name: str) -> dict:
        trainee = self.trainees[name]
        return {"sampler": trainee.sampler, "steps": trainee.steps, "recipe": asdict(self.recipe)}

    def run_training(self, name: str, context: StageContext) -> StageOutcome:
        """Train stage `name`'s STCN through the shared Trainer in its directory; phase 2 reads the bank."""
        trainee = self.trainees[name]
        videos = self.banked_videos if name == "phase2" else self.training_videos(trainee.sampler != "full")
        validation = VideoSource(self.val_videos)
        settings = replace(context.settings, max_steps=trainee.steps)
        result = context.fit(trainee, (trainee.triplets(videos), validation, validation), settings)
        if name == "phase1" and self.recipe.mode == "two_shot":
            self.phase1_model = result.model.student
            self.extra_metrics.update({f"phase1_{metric}": value for metric, value in result.metrics.items()})
        return StageOutcome(result.metrics, result)

    def run_bank(self, context: StageContext) -> StageOutcome:
        """Pseudo labels of every frame of every training video from the phase-1 model, written as palette PNGs
        in DAVIS layout (<bank>/<video>/<frame>.png)."""
        if self.context.is_main:
            videos, device = self.training_videos(True), self.context.device
            build_bank(self.phase1_model, videos, context.directory, self.inference, device)
        self.context.barrier()
        return self.restore_bank(context)

    def restore_bank(self, context: StageContext) -> StageOutcome:
        """The training videos with every frame labeled by the bank in the stage's directory."""
        self.banked_videos = [bank_video(video, context.directory) for video in self.training_videos(True)]
        metrics = {"frames": float(sum(len(video.frames) for video in self.banked_videos))}
        if self.data_config.name == "synthetic_vos":
            metrics["bank_jaccard"] = self.bank_quality(self.banked_videos)
            self.extra_metrics["bank_jaccard"] = metrics["bank_jaccard"]
        return StageOutcome(metrics)

    def bank_quality(self, banked: list[Video]) -> float:
        """Mean J of the bank's pseudo labels on the unlabeled frames, per object (the embedded data has their
        ground truth; it is read for this measure only, never for training)."""
        truth = {video.name: video for video in self.training_videos(labeled=False)}
        labeled = self.two_shot_split()
        scores = []
        for video in banked:
            given = {Path(frame).stem for frame in labeled[video.name]}
            for t, name in enumerate(video.frame_names):
                if name in given:
                    continue
                for obj in truth[video.name].objects:
                    scores.append(jaccard(truth[video.name].masks[t] == obj, video.masks[t] == obj))
        return float(np.mean(scores))

    # the run's model (the last stage's trainee)

    def build_model(self) -> nn.Module:
        return self.trainee.build_model()

    def loss(self, model, batch):
        return self.trainee.loss(model, batch)

    def on_train_step(self, model, step: int) -> None:
        self.trainee.on_train_step(model, step)

    def predict(self, model, batch):
        return self.trainee.predict(model, batch)

    def metrics(self, outputs):
        return self.trainee.metrics(outputs)

    # evaluation

    def test_units(self, outputs) -> UnitContributions | None:
        """Per-video contributions of J, F and J&F (the video is the protocol's test unit)."""
        return video_units(outputs, [video.name for video in self.val_videos])

    def no_learning_scorers(self) -> tuple[str, ...]:
        return SCORERS

    def score_without_learning(self, name: str, split: VideoSource) -> dict[str, np.ndarray]:
        """Scorer `name` on every video of `split`, one video a batch, as the trainer gathers `predict`."""
        segment = no_learning_segmenter(name, split.videos)
        pieces = [score_batch(split.batch(np.array([index])), segment) for index in range(len(split))]
        return {key: np.concatenate([piece[key].float().numpy() for piece in pieces]) for key in pieces[0]}

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """Segment every video of this run's validation split (data.val_split; for a DAVIS folder without
        ImageSets, every video folder) with the finished run's model, from the given annotations; palette PNGs in
        the data's layout under `output_dir` (and YouTube-VOS's submission.zip); J, F and J&F where every frame
        has a mask."""
        model = self.trainee.build_model()
        model.load_state_dict(trained_weights(Path(trained_run) / STAGES[self.recipe.mode][-1]))
        student = model.student.to(self.context.device).eval()
        if not self.context.is_main:
            return {}
        config = self.data_config
        videos = self.read_split(config.val_split, None, native=True)
        layout = "youtube_vos" if config.name == "youtube_vos" else "davis"
        size = tuple(config.size) if config.size else None
        return predict_videos(
            student, videos, layout, config.val_split, output_dir, self.inference, self.context.device,
            config.data_card, size,
        )  # fmt: skip

    def write_outputs(self, model, run_dir: Path) -> dict[str, Path]:
        """Overlay strips of the first validation videos; for YouTube-VOS, the submission zip as well."""
        student, device = model.student, self.context.device
        shown = self.val_videos[: self.cfg.get("overlays", 4)]
        images = write_overlays(student, shown, run_dir / "overlays", self.inference, device)
        if self.data_config.name == "youtube_vos":
            archive = export_youtube_submission(
                student, self.val_videos, run_dir / "submission", self.inference, device
            )
            print(f"YouTube-VOS submission: {archive}")
        return images

    def record_metrics(self, test_metrics):
        return {**test_metrics, **self.extra_metrics}

    def bench(self):
        from papers.two_shot_vos.bench import VOSBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(VOSBenchConfig, self.cfg.get("bench"), "bench"))


def bank_video(video: Video, folder: Path) -> Video:
    """`video` with every frame's mask read from the bank in `folder`."""
    masks = {
        t: read_index_mask(folder / video.name / f"{name}.png", "the bank") for t, name in enumerate(video.frame_names)
    }
    return replace(video, masks=masks)
