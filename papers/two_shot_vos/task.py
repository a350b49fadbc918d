"""Two-shot VOS (Yan et al., CVPR 2023) for the shared runner.

`recipe.mode`:
- two_shot: phase 1 (labeled-frame triplets, then semi triplets with EMA-teacher pseudo labels), the
  pseudo-label bank (four passes per video, merged), phase 2 (from the same initialization, on the bank,
  with 0.99 in-batch relabeling); phase 1 and the bank run first, phase 2 is the run's training;
- phase1: phase 1 alone; naive: triplets of the two labeled frames only; full: every frame labeled.
Evaluation propagates the first frame's masks through each validation video (J, F, J&F per object).
`scorer=oracle|trivial_copy_first_frame` scores the validation videos without training (no_learning.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.config import require_choice, typed_config
from common.errors import ConfigError
from common.logging import NullLogger
from common.metrics.segmentation import j_and_f, jaccard
from common.task import PaperTask
from common.trainer import Trainer, TrainerConfig
from common.units import UnitContributions
from papers.two_shot_vos.data import Video, read_davis, read_index_mask, read_labeled_frames, read_youtube_vos
from papers.two_shot_vos.inference import InferenceConfig, build_bank, segment_video
from papers.two_shot_vos.no_learning import SCORERS, no_learning_segmenter
from papers.two_shot_vos.outputs import export_youtube_submission, write_overlays
from papers.two_shot_vos.sampling import SamplingConfig, TripletSource, VideoSource
from papers.two_shot_vos.scoring import score_batch, video_units
from papers.two_shot_vos.stcn import STCN, STCNConfig
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, ensure_dataset
from papers.two_shot_vos.training import (
    TwoShotModel,
    bootstrap_fraction,
    confident_relabel,
    three_way_pseudo_labels,
    triplet_loss,
)

DATASETS = ("synthetic_vos", "davis", "youtube_vos")
RECIPES = ("two_shot", "phase1", "naive", "full")
TRAINING_MODE = {"two_shot": "bank", "phase1": "phase1", "naive": "naive", "full": "full"}


@dataclass
class VOSDataConfig:
    name: str = "synthetic_vos"
    root: str | None = None  # DAVIS 2017 or YouTube-VOS 2019 root; never downloaded
    cache_dir: str = ".cache/reprozoo"
    two_shot_split: str | None = None  # JSON {video: [frame.jpg, frame.jpg]}; default <root>/two_shot_frames.json
    train_split: str = "train"
    val_split: str = "val"  # DAVIS: val; YouTube-VOS: valid (no public ground truth: exported only)
    size: list[int] | None = None  # [H, W] frames and masks are resized to on load
    data_card: str = "data_cards/synthetic_vos.md"
    generator: SyntheticVOSConfig = field(default_factory=SyntheticVOSConfig)


@dataclass
class RecipeConfig:
    mode: str = "two_shot"
    phase1_steps: int = 0  # 0: as many as the run's trainer.max_steps
    warmup_fraction: float = 0.467  # official 70k of 150k: phase 1 turns to semi triplets, phase 2 to relabeling
    bootstrap_start_fraction: float = 0.133  # official 20k of 150k: bootstrapped CE starts
    bootstrap_end_fraction: float = 0.467  # official 70k of 150k: it reaches top_p
    top_p: float = 0.15
    pseudo_threshold: float = 0.9  # phase 1, three-way
    relabel_threshold: float = 0.99  # phase 2, in-batch
    ema_alpha: float = 0.995


class TwoShotVOSTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(STCNConfig, cfg.model.stcn, "model.stcn")
        self.data_config = typed_config(VOSDataConfig, cfg.data, "data")
        self.recipe = typed_config(RecipeConfig, cfg.recipe, "recipe")
        self.sampling = typed_config(SamplingConfig, cfg.sampling, "sampling")
        self.inference = typed_config(InferenceConfig, cfg.inference, "inference")
        self.trainer_settings = typed_config(TrainerConfig, cfg.trainer, "trainer")
        require_choice(self.data_config.name, DATASETS, "data.name")
        require_choice(self.recipe.mode, RECIPES, "recipe.mode")
        if not self.trainer_settings.max_steps:
            raise ConfigError("trainer.max_steps must be set for two_shot_vos: the recipe's schedules are in steps.")
        self.seed = int(cfg.seed)
        self.mode = TRAINING_MODE[self.recipe.mode]
        self.model: TwoShotModel | None = None
        self.extra_metrics: dict[str, float] = {}
        self.val_videos: list[Video] = []

    @property
    def model_name(self) -> str:
        return f"stcn_{self.recipe.mode}"

    # data

    def _root(self) -> Path:
        return self.generated_or_given_root("synthetic_vos", ensure_dataset)

    def prepare_data(self) -> None:
        self._root()

    def _read(self, split: str, labeled: dict | None, annotations: Path | None = None) -> list[Video]:
        config, root = self.data_config, self._root()
        size = tuple(config.size) if config.size else None
        if config.name == "youtube_vos":
            return read_youtube_vos(root, split, config.data_card, labeled, size)
        return read_davis(root, split, config.data_card, labeled, size, annotations=annotations)

    def two_shot_split(self) -> dict[str, list[str]]:
        path = Path(self.data_config.two_shot_split or self._root() / "two_shot_frames.json")
        return read_labeled_frames(path, self.data_config.data_card)

    def load_data(self):
        labeled = None if self.recipe.mode == "full" else self.two_shot_split()
        train_videos = self._read(self.data_config.train_split, labeled)
        self.val_videos = self._read(self.data_config.val_split, None)
        if self.recipe.mode == "two_shot" and not self.cfg.get("scorer"):  # a no-learning row trains nothing
            train_videos = self.run_phase1_and_bank(train_videos)
        return self.triplets(train_videos, self.mode), VideoSource(self.val_videos), VideoSource(self.val_videos)

    def triplets(self, videos: list[Video], mode: str) -> TripletSource:
        steps = self.trainer_settings.max_steps
        warmup = int(self.recipe.warmup_fraction * steps)
        return TripletSource(videos, mode, self.sampling, self.current_step, steps, warmup, self.seed)

    def current_step(self) -> int:
        return int(self.model.step) if self.model is not None else 0

    # the recipe's first stages

    def run_phase1_and_bank(self, videos: list[Video]) -> list[Video]:
        """Phase 1 (its own trainer, in <run>/phase1), then the bank (<run>/bank) from its model; returns the
        training videos with every frame labeled by the bank."""
        phase1 = TwoShotVOSTask(self.cfg, self.context, self.run_dir / "phase1")
        phase1.recipe = replace(self.recipe, mode="phase1")
        phase1.mode = "phase1"
        steps = self.recipe.phase1_steps or self.trainer_settings.max_steps
        phase1.trainer_settings = replace(self.trainer_settings, max_steps=steps)
        phase1.val_videos = self.val_videos
        trainer = Trainer(
            phase1, phase1.trainer_settings, self.seed, phase1.run_dir, NullLogger(), bool(self.cfg.resume)
        )
        result = trainer.fit(phase1.triplets(videos, "phase1"), *(VideoSource(self.val_videos),) * 2)
        self.extra_metrics = {f"phase1_{name}": value for name, value in result.metrics.items()}
        folder = self.run_dir / "bank"
        if self.context.is_main and not (folder / "complete").exists():
            build_bank(result.model.student, videos, folder, self.inference, self.context.device)
            (folder / "complete").touch()
        self.context.barrier()
        banked = [self.bank_video(video, folder) for video in videos]
        self.extra_metrics["bank_jaccard"] = self.bank_quality(banked)
        return banked

    @staticmethod
    def bank_video(video: Video, folder: Path) -> Video:
        masks = {
            t: read_index_mask(folder / video.name / f"{name}.png", "the bank")
            for t, name in enumerate(video.frame_names)
        }
        return replace(video, masks=masks)

    def bank_quality(self, banked: list[Video]) -> float:
        """Mean J of the bank's pseudo labels on the unlabeled frames, per object, where the dataset has ground
        truth for them (the embedded data does; it is read for this measure only, never for training)."""
        if self.data_config.name != "synthetic_vos":
            return float("nan")
        truth = {video.name: video for video in self._read(self.data_config.train_split, None)}
        scores = []
        labeled = self.two_shot_split()
        for video in banked:
            given = {Path(frame).stem for frame in labeled[video.name]}
            for t, name in enumerate(video.frame_names):
                if name in given:
                    continue
                for obj in truth[video.name].objects:
                    scores.append(jaccard(truth[video.name].masks[t] == obj, video.masks[t] == obj))
        return float(np.mean(scores))

    # model and training

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)  # phase 2 starts from the same initialization as phase 1
        self.model = TwoShotModel(STCN(self.model_config), teacher=self.mode == "phase1")
        return self.model

    def loss(self, model, batch):
        core = model.module if hasattr(model, "module") else model
        step, steps, recipe = int(core.step), self.trainer_settings.max_steps, self.recipe
        warm = step >= int(recipe.warmup_fraction * steps)
        target = batch["target"].clone()
        if self.mode == "phase1" and warm:
            taught = core.teacher_forward(batch)["masks"]
            for t in (1, 2):
                pseudo = three_way_pseudo_labels(taught[:, t - 1], batch["selector"], recipe.pseudo_threshold)
                unlabeled = batch["labeled"][:, t] < 0.5
                target[unlabeled, t] = pseudo[unlabeled]
        output = model(batch)
        if self.mode == "bank" and warm:
            for t in (1, 2):
                masks = output["masks"][:, t - 1].detach()
                confident_relabel(target[:, t], masks, batch["selector"], recipe.relabel_threshold)
        start, end = (
            int(fraction * steps) for fraction in (recipe.bootstrap_start_fraction, recipe.bootstrap_end_fraction)
        )
        top_p = bootstrap_fraction(step, start, end, recipe.top_p)
        return triplet_loss(output, target, top_p), {"top_p": top_p}

    def on_train_step(self, model, step: int) -> None:
        model.after_step(self.recipe.ema_alpha)

    # evaluation

    def predict(self, model, batch):
        core = model.module if hasattr(model, "module") else model
        return score_batch(
            batch, lambda index, frames, first: segment_video(core.student, frames, first, self.inference)
        )

    def metrics(self, outputs):
        """J, F and J&F over every object of every video; none where the split has no ground truth beyond the
        first frames (YouTube-VOS valid: its predictions are exported for the server instead)."""
        objects = {"objects": float(len(outputs["jaccard"]))}
        if not len(outputs["jaccard"]):
            return objects
        return {**j_and_f(outputs["jaccard"], outputs["boundary_f"]), **objects}

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
