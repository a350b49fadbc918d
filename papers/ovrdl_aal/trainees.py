"""What the shared Trainer trains in each stage: the OVRDL network on the images (stage 1, and the plain
classifier) and the AAL network on recombined stage-1 features (stage 2). Both output identity scores, which
`predict` and `metrics` turn into the authentication metrics."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from common.distributed import DistributedContext
from common.metrics.ranking import auc
from common.metrics.verification import authentication_metrics
from papers.ovrdl_aal.aal import AAL, AALConfig
from papers.ovrdl_aal.ovrdl import OVRDL, OVRDLConfig, adversary_loss, discriminator_loss, task_loss

SPLITS = ("train", "val", "test")


def has_test_rows(outputs: dict[str, np.ndarray]) -> bool:
    """Whether the outputs are the test pass's (validation and test rows) rather than the validation pass's."""
    return bool(np.any(outputs["split"].astype(int) == SPLITS.index("test")))


def rows_by_split(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The test rows' scores and identities, then the validation rows' (which set the thresholds)."""
    scores, labels = outputs["scores"], outputs["label"].astype(int)
    test = outputs["split"].astype(int) == SPLITS.index("test")
    return scores[test], labels[test], scores[~test], labels[~test]


def identity_metrics(outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation pass: mean one-vs-rest AUC and accuracy on the validation rows. Test pass (validation and test
    rows together): the authentication metrics on the test rows, thresholds from the validation rows."""
    scores, labels = outputs["scores"], outputs["label"].astype(int)
    if not has_test_rows(outputs):
        identities = [i for i in np.unique(labels) if 0 < (labels == i).sum() < len(labels)]
        return {
            "auc": float(np.mean([auc((labels == i).astype(int), scores[:, i]) for i in identities])),
            "accuracy": float(np.mean(scores.argmax(1) == labels)),
        }
    return authentication_metrics(*rows_by_split(outputs))


class IdentityTrainee:
    """The evaluation both stages share: a model mapping a batch's inputs to identity scores."""

    def __init__(self, context: DistributedContext, model_name: str):
        self.context, self.model_name = context, model_name

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            "scores": model(batch["inputs"]),
            "label": batch["labels"][:, 0].float(),
            "split": batch["split"].float(),
        }

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return identity_metrics(outputs)

    def on_train_step(self, model: nn.Module, step: int) -> None:
        return None


class OVRDLTrainee(IdentityTrainee):
    """Stage 1 on the images: per batch a task update, a discriminator update and `adversary_steps` adversary
    updates (ovrdl.py); with one attribute or λ = 0 everywhere (the plain classifier) the task update alone."""

    def __init__(self, context: DistributedContext, model_name: str, config: OVRDLConfig,
                 input_shape: tuple[int, ...], classes: list[int], priors: list[np.ndarray]):  # fmt: skip
        super().__init__(context, model_name)
        self.config, self.input_shape, self.classes, self.priors = config, input_shape, classes, priors

    def build_model(self) -> OVRDL:
        return OVRDL(self.config, self.input_shape, self.classes, self.priors)

    def parameter_groups(self, model: OVRDL) -> dict[str, list[nn.Parameter]]:
        return model.parameter_groups()

    def loss(self, model: OVRDL, batch: dict[str, torch.Tensor]):
        return task_loss(model, batch["inputs"], batch["labels"])

    def training_step(self, model: OVRDL, batch: dict[str, torch.Tensor], update: Callable) -> dict[str, float]:
        images, labels = batch["inputs"], batch["labels"]
        logs = update(lambda: task_loss(model, images, labels), ["task"])
        if not model.pairs():  # plain, or λ = 0 everywhere: the task loss is the whole objective
            return logs
        logs["discriminator_loss"] = update(lambda: discriminator_loss(model, images, labels), ["discriminator"])[
            "loss"
        ]
        for _ in range(self.config.adversary_steps):
            logs["adversary_loss"] = update(lambda: adversary_loss(model, images, labels), ["adversary"])["loss"]
        return logs


class AALTrainee(IdentityTrainee):
    """Stage 2 on recombined stage-1 features: per step one update on the batch's seen mixes, then one per
    batch-sized chunk of its unseen mixes (MixSource's schedule)."""

    def __init__(self, context: DistributedContext, config: AALConfig, feature_dim: int, classes: list[int]):
        super().__init__(context, "ovrdl_aal")
        self.config, self.feature_dim, self.classes = config, feature_dim, classes

    def build_model(self) -> AAL:
        return AAL(self.config, self.feature_dim, self.classes)

    def parameter_groups(self, model: AAL) -> dict[str, list[nn.Parameter]]:
        return {"aal": list(model.parameters())}

    def loss(self, model: AAL, batch: dict[str, torch.Tensor]):
        return model.loss(batch["features"], batch["labels"], seen=True), {}

    def training_step(self, model: AAL, batch: dict[str, torch.Tensor], update: Callable) -> dict[str, float]:
        seen = batch["seen"]
        size = int(seen.sum())
        features, labels = batch["features"], batch["labels"]
        logs = update(lambda: (model.loss(features[seen], labels[seen], seen=True), {}), ["aal"])
        logs = {"seen_loss": logs["loss"]}
        unseen_features, unseen_labels = features[~seen], labels[~seen]
        for start in range(0, len(unseen_labels), size):
            chunk = slice(start, start + size)
            step = update(lambda c=chunk: (model.loss(unseen_features[c], unseen_labels[c], seen=False), {}), ["aal"])
            logs["unseen_loss"] = step["loss"]
        return {"loss": logs["seen_loss"] + logs.get("unseen_loss", 0.0), **logs}
