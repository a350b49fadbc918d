"""Two-shot VOS (Yan et al., CVPR 2023) for the shared runner, as declared stages (`recipe.mode`), each recipe
after `static` (STCN's stage 0 on pseudo videos of static scenes, static.py) unless an official checkpoint is the
start:
- two_shot: `phase1` (labeled-frame triplets, then semi triplets with EMA-teacher pseudo labels), `bank` (the
  phase-1 model's four-pass pseudo labels of every training frame, palette PNGs in the stage directory) and
  `phase2` (from the same initialization, stage 0's model, on the bank, with 0.99 in-batch relabeling: the run's model);
- phase1: `phase1` alone; naive: `naive` (triplets of the two labeled frames only); full: `full` (every frame
  labeled).
Evaluation propagates the first frame's masks through each validation video (J, F, J&F per object).
`scorer=oracle|trivial_copy_first_frame` scores the validation videos without training (no_learning.py);
mode=predict segments a folder in DAVIS or YouTube-VOS layout with a finished run's model (prediction.py).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
from torch import nn

from common.checkpoint import trained_weights
from common.config import typed_config
from common.errors import ConfigError
from common.stages import Stage, StageContext, StageOutcome
from common.task import PaperTask
from common.units import UnitContributions
from papers.two_shot_vos.data import Video, read_index_mask
from papers.two_shot_vos.inference import InferenceConfig, build_bank
from papers.two_shot_vos.no_learning import (
    SCORERS,
    nearest_labeled_bank_jaccard,
    no_learning_segmenter,
    unlabeled_frame_jaccard,
)
from papers.two_shot_vos.outputs import export_youtube_submission, write_overlays
from papers.two_shot_vos.prediction import predict_videos
from papers.two_shot_vos.sampling import SamplingConfig, VideoSource
from papers.two_shot_vos.scoring import score_batch, video_units
from papers.two_shot_vos.sources import (
    GENERATED,
    TrainingSet,
    VOSDataConfig,
    VOSDatasetConfig,
    dataset_root,
    read_training_set,
    read_videos,
    training_sources,
)
from papers.two_shot_vos.static import StaticPretrainingConfig, cached_stage_zero, stage_zero_key
from papers.two_shot_vos.stcn import VOSModelConfig
from papers.two_shot_vos.trainee import PhaseSettings, TwoShotTrainee
from papers.two_shot_vos.training import RecipeConfig

STAGES = {  # recipe.mode -> its stages; each but the bank trains STCN with the sampler of SAMPLERS
    "two_shot": ("phase1", "bank", "phase2"),
    "phase1": ("phase1",),
    "naive": ("naive",),
    "full": ("full",),
}
SAMPLERS = {"static": "static", "phase1": "phase1", "phase2": "bank", "naive": "naive", "full": "full"}
DESCRIPTIONS = {
    "static": "STCN's stage 0: pseudo videos of static scenes (the start of every later stage)",
    "phase1": "STCN on the labeled frames, then semi triplets pseudo-labeled by its EMA teacher",
    "bank": "the four-pass pseudo labels of every training frame from the phase-1 model",
    "phase2": "STCN from the same initialization on the labeled and pseudo-labeled frames",
    "naive": "STCN on triplets of the two labeled frames only",
    "full": "STCN on every frame of every training video (full supervision)",
}


class TwoShotVOSTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(VOSModelConfig, cfg.model, "model").stcn
        self.data_config = typed_config(VOSDataConfig, cfg.data, "data")
        self.recipe = typed_config(RecipeConfig, cfg.recipe, "recipe")
        self.sampling = typed_config(SamplingConfig, cfg.sampling, "sampling")
        self.inference = typed_config(InferenceConfig, cfg.inference, "inference")
        self.static = typed_config(StaticPretrainingConfig, cfg.static, "static")
        self.max_steps = cfg.trainer.get("max_steps")  # the runner checks the trainer config itself
        if not self.max_steps:
            raise ConfigError("trainer.max_steps must be set for two_shot_vos: the recipe's schedules are in steps.")
        datasets = [("data", self.data_config)]
        datasets += [(f"data.train.{name}", source) for name, source in (self.data_config.train or {}).items()]
        for where, dataset in datasets:
            check_dataset_config(dataset, where)
        self.seed = int(cfg.seed)
        self.stage_names = stage_names(self.recipe.mode, self.static.steps, self.model_config.checkpoint)
        self.trainees = {name: self.phase(name) for name in self.stage_names if name != "bank"}
        self.trainee = list(self.trainees.values())[-1]  # the run's model
        self.extra_metrics: dict[str, float] = {}
        self.cached_sets: dict[bool, list[TrainingSet]] = {}
        self.cached_splits: dict[str, dict[str, list[str]]] = {}
        self.cached_val: list[Video] | None = None
        self.phase1_model: nn.Module | None = None
        self.banked_sets: list[TrainingSet] = []

    @property
    def model_name(self) -> str:
        return f"stcn_{self.recipe.mode}"

    def phase(self, name: str) -> TwoShotTrainee:
        """The trainee of training stage `name`; phase 1 runs recipe.phase1_steps steps when set, stage 0
        static.steps."""
        steps = self.max_steps
        if name == "phase1" and self.recipe.phase1_steps:
            steps = self.recipe.phase1_steps
        if name == "static":
            steps = self.static.steps
        settings = PhaseSettings(self.model_config, self.recipe, self.sampling, self.inference, self.static,
                                 self.data_config.generator)  # fmt: skip
        return TwoShotTrainee(self.context, name, SAMPLERS[name], steps, self.seed, settings)

    # data

    def _root(self) -> Path:
        return dataset_root(self.data_config, "data", self.context.is_main)

    def prepare_data(self) -> None:
        self._root()
        for name, (source, where) in training_sources(self.data_config).items():
            if name != self.data_config.name or source is not self.data_config:
                dataset_root(source, where, self.context.is_main)

    def read_split(self, split: str, native: bool = False) -> list[Video]:
        """The videos of the evaluation dataset's `split` at their native size (scoring is at the annotations'
        size; the model's working size is data.size). `native`: videos to segment (a DAVIS folder without
        ImageSets is read whole, each video needs its first frame's mask)."""
        config = self.data_config
        require = "first" if native else ("any" if config.name == "youtube_vos" else "every")
        return read_videos(config, self._root(), split, None, None, require, listed_only=not native)

    @property
    def working_size(self) -> tuple[int, int] | None:
        return tuple(self.data_config.size) if self.data_config.size else None

    def training_sets(self, labeled: bool) -> list[TrainingSet]:
        """Every training dataset's videos with the two-shot split's masks (`labeled`) or every mask."""
        if labeled not in self.cached_sets:
            sets = []
            for name, (source, where) in training_sources(self.data_config).items():
                training_set, split = read_training_set(name, source, where, labeled, self.context.is_main)
                sets.append(training_set)
                if split is not None:
                    self.cached_splits[name] = split
            self.cached_sets[labeled] = sets
        return self.cached_sets[labeled]

    @property
    def val_videos(self) -> list[Video]:
        if self.cached_val is None:
            self.cached_val = self.read_split(self.data_config.val_split)
        return self.cached_val

    def validation(self) -> VideoSource:
        return VideoSource(self.val_videos, self.working_size)

    def load_data(self):
        """The first stage's training triplets and the validation videos (the no-learning rows read the last)."""
        first = self.trainees[self.stage_names[0]]
        train = first.triplets(self.training_sets(labeled=first.sampler != "full"))
        return train, self.validation(), self.validation()

    # stages

    def stages(self) -> list[Stage]:
        return [self.stage(name) for name in self.stage_names]

    def stage(self, name: str) -> Stage:
        if name == "bank":
            return Stage(name, DESCRIPTIONS[name], self.run_bank, self.restore_bank, self.bank_config)
        if name == "static":
            return Stage(name, DESCRIPTIONS[name], self.run_stage_zero, config=partial(self.phase_config, name))
        training = partial(self.run_training, name)
        return Stage(name, DESCRIPTIONS[name], training, config=partial(self.phase_config, name))

    def bank_config(self) -> dict:
        """The bank's propagation settings, its memory interval per training dataset."""
        intervals = {name: source.bank_mem_every for name, (source, _) in training_sources(self.data_config).items()}
        return {**asdict(self.inference), "mem_every": intervals}

    def phase_config(self, name: str) -> dict:
        trainee = self.trainees[name]
        config = {"sampler": trainee.sampler, "steps": trainee.steps, "recipe": asdict(self.recipe)}
        return {**config, "static": asdict(self.static)} if name == "static" else config

    def run_stage_zero(self, context: StageContext) -> StageOutcome:
        """Stage 0 (read from the cache when a run with the same settings trained it): its student becomes every
        later stage's initialization; its J, F and J&F on the validation videos are recorded as `stage0_*`."""
        trainee = self.trainees["static"]
        settings = replace(context.settings, max_steps=trainee.steps)

        def train() -> tuple[dict, dict]:
            validation = self.validation()
            result = context.fit(trainee, (trainee.triplets([]), validation, validation), settings)
            return {name: tensor.cpu() for name, tensor in result.model.student.state_dict().items()}, result.metrics

        key = stage_zero_key(self.model_config, self.static, self.data_config.generator, self.sampling, self.recipe,
                             settings, self.seed)  # fmt: skip
        state, metrics, cached = cached_stage_zero(key, Path(self.data_config.cache_dir), train)
        for name, later in self.trainees.items():
            if name != "static":
                later.initial_state = state
        self.extra_metrics.update({f"stage0_{metric}": value for metric, value in metrics.items()})
        if cached:
            print(f"stage 0: read from the cache ({trainee.steps} steps trained by an earlier run, same settings)")
        return StageOutcome({**metrics, "cached": float(cached)})

    def run_training(self, name: str, context: StageContext) -> StageOutcome:
        """Train stage `name`'s STCN through the shared Trainer in its directory; phase 2 reads the bank."""
        trainee = self.trainees[name]
        sets = self.banked_sets if name == "phase2" else self.training_sets(trainee.sampler != "full")
        validation = self.validation()
        settings = replace(context.settings, max_steps=trainee.steps)
        result = context.fit(trainee, (trainee.triplets(sets), validation, validation), settings)
        if name == "phase1" and self.recipe.mode == "two_shot":
            self.phase1_model = result.model.student
            self.extra_metrics.update({f"phase1_{metric}": value for metric, value in result.metrics.items()})
        return StageOutcome(result.metrics, result)

    def run_bank(self, context: StageContext) -> StageOutcome:
        """Pseudo labels of every frame of every training video from the phase-1 model, written as palette PNGs
        (<bank>/<dataset>/<video>/<frame>.png), each dataset with its own memory interval."""
        if self.context.is_main:
            for training_set in self.training_sets(True):
                settings = replace(self.inference, mem_every=training_set.bank_mem_every)
                folder = context.directory / training_set.name
                build_bank(self.phase1_model, training_set.videos, folder, settings, self.context.device)
        self.context.barrier()
        return self.restore_bank(context)

    def restore_bank(self, context: StageContext) -> StageOutcome:
        """The training sets with every frame labeled by the bank in the stage's directory."""
        self.banked_sets = [
            replace(training_set, videos=[bank_video(video, context.directory / training_set.name) for video in
                                          training_set.videos])
            for training_set in self.training_sets(True)
        ]  # fmt: skip
        metrics = {"frames": float(sum(len(video.frames) for group in self.banked_sets for video in group.videos))}
        generated = [group for group in self.banked_sets if group.name == GENERATED]
        if generated:
            metrics["bank_jaccard"] = self.bank_quality(generated[0])
            metrics["bank_copy_nearest_jaccard"] = self.copy_nearest_quality()
            self.extra_metrics.update({name: metrics[name] for name in ("bank_jaccard", "bank_copy_nearest_jaccard")})
        return StageOutcome(metrics)

    def copy_nearest_quality(self) -> float:
        """`bank_quality`'s no-learning counterpart on the same frames: every unlabeled frame given its nearest
        labeled frame's mask."""
        two_shot, every_mask = ([group for group in self.training_sets(labeled) if group.name == GENERATED][0].videos
                                for labeled in (True, False))  # fmt: skip
        return nearest_labeled_bank_jaccard(two_shot, every_mask)

    def bank_quality(self, banked: TrainingSet) -> float:
        """Mean J of the bank's pseudo labels on the unlabeled frames, per object (the embedded data has their
        ground truth; it is read for this measure only, never for training)."""
        truth = {video.name: video for group in self.training_sets(labeled=False) for video in group.videos}
        labeled = self.cached_splits[banked.name]
        scores = []
        for video in banked.videos:
            given = {Path(frame).stem for frame in labeled[video.name]}
            indices = [t for t, name in enumerate(video.frame_names) if name in given]
            scores += unlabeled_frame_jaccard(truth[video.name], video.masks, indices)
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
        videos = self.read_split(config.val_split, native=True)
        layout = "youtube_vos" if config.name == "youtube_vos" else "davis"
        return predict_videos(
            student, videos, layout, config.val_split, output_dir, self.inference, self.context.device,
            config.data_card, self.working_size,
        )  # fmt: skip

    def write_outputs(self, model, run_dir: Path) -> dict[str, Path]:
        """Overlay strips of the first validation videos; for YouTube-VOS, the submission zip as well."""
        student, device = model.student, self.context.device
        shown = self.val_videos[: self.cfg.get("overlays", 4)]
        images = write_overlays(student, shown, run_dir / "overlays", self.inference, device, self.working_size)
        if self.data_config.name == "youtube_vos":
            archive = export_youtube_submission(
                student, self.val_videos, run_dir / "submission", self.inference, device, self.working_size
            )
            print(f"YouTube-VOS submission: {archive}")
        return images

    def record_metrics(self, test_metrics):
        return {**test_metrics, **self.extra_metrics}

    def bench(self):
        from papers.two_shot_vos.bench import VOSBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(VOSBenchConfig, self.cfg.get("bench"), "bench"))


def stage_names(mode: str, static_steps: int, checkpoint: str | None) -> tuple[str, ...]:
    """The stages of recipe `mode`, after stage 0 when it has steps and no official checkpoint (stcn_s0.pth is
    the stage-0 model) gives the starting weights."""
    if static_steps and not checkpoint:
        return ("static", *STAGES[mode])
    return STAGES[mode]


def bank_video(video: Video, folder: Path) -> Video:
    """`video` with every frame's mask read from the bank in `folder`."""
    masks = {
        t: read_index_mask(folder / video.name / f"{name}.png", "the bank") for t, name in enumerate(video.frame_names)
    }
    return replace(video, masks=masks)


def check_dataset_config(config: VOSDatasetConfig, where: str) -> None:
    generator = config.generator
    if generator.max_frames < generator.min_frames:
        raise ConfigError(
            f"Bad config value {where}.generator.max_frames={generator.max_frames}: it must be at least "
            f"{where}.generator.min_frames ({generator.min_frames})."
        )
    if config.size is not None and len(config.size) != 2:
        raise ConfigError(f"Bad config value {where}.size={config.size!r}: it must be [height, width].")
