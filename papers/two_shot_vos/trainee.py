"""The training logic of one phase of the two-shot recipe, as a trainee the shared Trainer fits: STCN from the
run's initialization on triplets of one sampler (phase1, naive, full, or bank for phase 2), with the phase's
pseudo-label rule, and evaluated by propagating each validation video's first mask. The task's stages train one
per phase, and mode=predict rebuilds the last one to load a finished run's weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from common.distributed import DistributedContext
from common.metrics.segmentation import j_and_f
from papers.two_shot_vos.inference import InferenceConfig, segment_video
from papers.two_shot_vos.sampling import SamplingConfig, TripletSource
from papers.two_shot_vos.scoring import score_batch
from papers.two_shot_vos.sources import TrainingSet
from papers.two_shot_vos.static import StaticPretrainingConfig, StaticTripletSource
from papers.two_shot_vos.stcn import STCN, STCNConfig
from papers.two_shot_vos.synthetic import SyntheticVOSConfig
from papers.two_shot_vos.training import (
    RecipeConfig,
    TwoShotModel,
    bootstrap_fraction,
    confident_relabel,
    three_way_pseudo_labels,
    triplet_loss,
)


@dataclass
class PhaseSettings:
    """The typed configs every phase reads."""

    model: STCNConfig
    recipe: RecipeConfig
    sampling: SamplingConfig
    inference: InferenceConfig
    static: StaticPretrainingConfig
    generator: SyntheticVOSConfig  # the world stage 0's scenes are drawn from


class TwoShotTrainee:
    """One phase: `sampler` is the TripletSource mode it trains on (phase1 keeps an EMA teacher that
    pseudo-labels the unlabeled frames after the warm-up; bank relabels in the batch where the student is sure),
    or static (stage 0's pseudo videos of static scenes); `steps` is the phase's length, which its schedules are
    fractions of. `initial_state`, once set (stage 0's student), is every phase's starting point."""

    def __init__(
        self,
        context: DistributedContext,
        name: str,
        sampler: str,
        steps: int,
        seed: int,
        settings: PhaseSettings,
    ):
        self.context, self.name, self.sampler, self.steps, self.seed = context, name, sampler, steps, seed
        self.model_config, self.recipe = settings.model, settings.recipe
        self.sampling, self.inference = settings.sampling, settings.inference
        self.static, self.generator = settings.static, settings.generator
        self.model: TwoShotModel | None = None
        self.initial_state: dict[str, torch.Tensor] | None = None

    @property
    def model_name(self) -> str:
        return f"stcn_{self.name}"

    def build_model(self) -> TwoShotModel:
        torch.manual_seed(self.seed)  # every phase starts from the same initialization
        student = STCN(self.model_config)
        if self.initial_state is not None:
            student.load_state_dict(self.initial_state)
        self.model = TwoShotModel(student, teacher=self.sampler == "phase1")
        return self.model

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"dense": [p for p in model.parameters() if p.requires_grad]}

    def triplets(self, sets: list[TrainingSet]) -> TripletSource | StaticTripletSource:
        if self.sampler == "static":
            return StaticTripletSource(self.static, self.generator, self.sampling, self.current_step, self.seed)
        warmup = int(self.recipe.warmup_fraction * self.steps)
        return TripletSource(sets, self.sampler, self.sampling, self.current_step, self.steps, warmup, self.seed)

    def current_step(self) -> int:
        return int(self.model.step) if self.model is not None else 0

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        core = model.module if hasattr(model, "module") else model
        step, recipe = int(core.step), self.recipe
        warm = step >= int(recipe.warmup_fraction * self.steps)
        target = batch["target"].clone()
        if self.sampler == "phase1" and warm:
            taught = core.teacher_forward(batch)["masks"]
            for t in (1, 2):
                pseudo = three_way_pseudo_labels(taught[:, t - 1], batch["selector"], recipe.pseudo_threshold)
                unlabeled = batch["labeled"][:, t] < 0.5
                target[unlabeled, t] = pseudo[unlabeled]
        output = model(batch)
        if self.sampler == "bank" and warm:
            for t in (1, 2):
                masks = output["masks"][:, t - 1].detach()
                confident_relabel(target[:, t], masks, batch["selector"], recipe.relabel_threshold)
        start, end = (
            int(fraction * self.steps) for fraction in (recipe.bootstrap_start_fraction, recipe.bootstrap_end_fraction)
        )
        top_p = bootstrap_fraction(step, start, end, recipe.top_p)
        return triplet_loss(output, target, batch["selector"], top_p), {"top_p": top_p}

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor], update: Callable) -> dict[str, float]:
        return update(lambda: self.loss(model, batch))

    def on_train_step(self, model: nn.Module, step: int) -> None:
        model.after_step(self.recipe.ema_alpha)

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        core = model.module if hasattr(model, "module") else model
        return score_batch(
            batch, lambda index, frames, first: segment_video(core.student, frames, {0: first}, self.inference)
        )

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """J, F and J&F over every object of every video; none where the split has no ground truth beyond the
        first frames (YouTube-VOS valid: its predictions are exported for the server instead)."""
        return vos_metrics(outputs)


def vos_metrics(outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """J, F and J&F of the per-object scores, and the number of objects scored."""
    objects = {"objects": float(len(outputs["jaccard"]))}
    if not len(outputs["jaccard"]):
        return objects
    return {**j_and_f(outputs["jaccard"], outputs["boundary_f"]), **objects}
