"""OVRDL + AAL (Liang et al., CVPR 2019) for the shared runner.

`model.name`:
- ovrdl_aal: stage 1 (OVRDL, its own trainer in <run>/stage1) on the images, then stage 2 (AAL, the run's
  training) on recombinations of the stage-1 features; the run also records stage 1's own metrics (ovrdl_*);
- ovrdl: stage 1 alone; plain: the same encoder with the identity's task loss only.
Evaluation is on the test ⟨class, domain⟩ cells (all unseen in training): identity scores give the mean
one-versus-rest AUC, FAR and FRR at each identity's EER threshold chosen on the validation half of those
cells, TAR at FAR = 1% and top-1 accuracy; their per-sample contributions (contributions.py) go to units.npz.
`scorer=oracle|trivial_chance|trivial_colour` scores the test cells without learning (no_learning.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from common.config import require_choice, typed_config
from common.data.generated import dataset_root
from common.logging import NullLogger
from common.metrics.ranking import auc
from common.metrics.verification import authentication_metrics
from common.task import PaperTask
from common.trainer import Trainer, TrainerConfig
from common.units import UnitContributions
from papers.ovrdl_aal.aal import AAL, AALConfig, MixSource, confident_rows
from papers.ovrdl_aal.cmnist import CMNIST, CMNISTConfig
from papers.ovrdl_aal.contributions import add_authentication_contributions, sample_units
from papers.ovrdl_aal.data import read_mnist_cmnist
from papers.ovrdl_aal.no_learning import (
    SCORERS,
    chance_scores,
    colour_identity_frequencies,
    colour_scores,
    oracle_scores,
    stroke_colour,
)
from papers.ovrdl_aal.ovrdl import OVRDL, OVRDLConfig, adversary_loss, discriminator_loss, task_loss
from papers.ovrdl_aal.synthetic import ensure_dataset, read_dataset

DATASETS = ("synthetic_cmnist", "mnist")
METHODS = ("ovrdl_aal", "ovrdl", "plain")
SPLITS = ("train", "val", "test")
SOURCE_SPLITS = (("train",), ("val",), ("val", "test"))  # the trainer's training, validation and test sources


@dataclass
class CMNISTDataConfig:
    name: str = "synthetic_cmnist"
    root: str | None = None  # MNIST in torchvision's layout (<root>/MNIST/raw); never downloaded
    cache_dir: str = ".cache/reprozoo"
    data_card: str = "data_cards/synthetic_cmnist.md"
    protocol: CMNISTConfig = field(default_factory=CMNISTConfig)


class RowSource:
    """Rows of the dataset (images or stage-1 features) with their attribute labels and split index."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, split: np.ndarray, images: bool):
        self.inputs, self.labels, self.split, self.images = inputs, labels, split, images

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        inputs = torch.from_numpy(self.inputs[indices])
        return {
            "inputs": inputs.float() / 255 if self.images else inputs.float(),
            "labels": torch.from_numpy(self.labels[indices]),
            "split": torch.from_numpy(self.split[indices]),
        }


def has_test_rows(outputs: dict[str, np.ndarray]) -> bool:
    """Whether the outputs are the test pass's (validation and test rows) rather than the validation pass's."""
    return bool(np.any(outputs["split"].astype(int) == SPLITS.index("test")))


def rows_by_split(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The test rows' scores and identities, then the validation rows' (which set the thresholds)."""
    scores, labels = outputs["scores"], outputs["label"].astype(int)
    test = outputs["split"].astype(int) == SPLITS.index("test")
    return scores[test], labels[test], scores[~test], labels[~test]


class OVRDLAALTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.method = str(cfg.model.name)
        require_choice(self.method, METHODS, "model.name")
        self.ovrdl_config = typed_config(OVRDLConfig, cfg.model.ovrdl, "model.ovrdl")
        self.aal_config = typed_config(AALConfig, cfg.model.aal, "model.aal")
        self.data_config = typed_config(CMNISTDataConfig, cfg.data, "data")
        require_choice(self.data_config.name, DATASETS, "data.name")
        self.trainer_settings = typed_config(TrainerConfig, cfg.trainer, "trainer")
        self.stage1_epochs = int(cfg.model.stage1_epochs)
        self.seed = int(cfg.seed)
        self.stage = "aal" if self.method == "ovrdl_aal" else "ovrdl"
        self.data: CMNIST | None = None
        self.extra_metrics: dict[str, float] = {}
        self.stage1_outputs: dict[str, np.ndarray] = {}  # stage 1's test outputs (ovrdl_aal), for its units

    @property
    def model_name(self) -> str:
        return self.method

    def _root(self) -> Path:
        config = self.data_config
        generate = partial(ensure_dataset, config.protocol, Path(config.cache_dir))
        return dataset_root(config.name, config.root, config.data_card, "synthetic_cmnist", generate)

    def prepare_data(self) -> None:
        self._root()

    def _read(self) -> CMNIST:
        if self.data_config.name == "synthetic_cmnist":
            return read_dataset(self._root())
        return read_mnist_cmnist(self._root(), self.data_config.protocol, self.data_config.data_card)

    @property
    def classes(self) -> list[int]:
        """Classes per attribute the model learns: every attribute, or the identity alone (plain)."""
        return self.data.classes[:1] if self.method == "plain" else list(self.data.classes)

    def _rows(self, inputs: np.ndarray, splits: tuple[str, ...], images: bool) -> RowSource:
        chosen = np.isin(self.data.split, splits)
        split = np.array([SPLITS.index(s) for s in self.data.split[chosen]])
        return RowSource(inputs[chosen], self.data.attributes[chosen][:, : len(self.classes)], split, images)

    def _sources(self, inputs: np.ndarray, images: bool) -> tuple[RowSource, RowSource, RowSource]:
        """Training rows, validation rows, and validation with test rows (the test pass sets its thresholds on
        the validation rows)."""
        return tuple(self._rows(inputs, splits, images) for splits in SOURCE_SPLITS)

    def load_data(self):
        self.data = self._read()
        if self.stage == "ovrdl" or self.cfg.get("scorer"):  # a no-learning row scores the images, trains nothing
            return self._sources(self.data.images, True)
        features, probabilities = self.run_stage1()
        train = self.data.split == "train"
        labels = self.data.attributes[train]
        rows = confident_rows([p[train] for p in probabilities], labels, self.aal_config.confidence_percentile)
        mixes = MixSource(features[train], labels, rows, self.aal_config, self.seed)
        _, val, test = self._sources(features, False)
        return mixes, val, test

    def run_stage1(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """OVRDL with its own trainer (in <run>/stage1); its test metrics are kept as ovrdl_*. Returns every
        row's stage-1 features [n, K, d] and per-attribute probabilities D_kk(f_k)."""
        stage1 = OVRDLAALTask(self.cfg, self.context, self.run_dir / "stage1")
        stage1.method, stage1.stage, stage1.data = "ovrdl", "ovrdl", self.data
        settings = replace(self.trainer_settings, max_epochs=self.stage1_epochs, max_steps=None)
        trainer = Trainer(stage1, settings, self.seed, stage1.run_dir, NullLogger(), bool(self.cfg.resume))
        images = self.data.images
        result = trainer.fit(*stage1._sources(images, True))
        self.extra_metrics = {f"ovrdl_{name}": value for name, value in result.metrics.items()}
        self.stage1_outputs = result.test_outputs
        model = result.model.eval()
        with torch.no_grad():
            pixels = torch.from_numpy(images).float() / 255
            chunks = [model.features(pixels[i : i + 512].to(self.context.device)) for i in range(0, len(pixels), 512)]
            features = [torch.cat([chunk[k] for chunk in chunks]) for k in range(model.attributes)]
            probabilities = [
                torch.softmax(model.discriminators[k][k](f), 1).cpu().numpy() for k, f in enumerate(features)
            ]
        return torch.stack(features, 1).cpu().numpy(), probabilities

    def build_model(self):
        if self.stage == "aal":
            return AAL(self.aal_config, self.ovrdl_config.feature_dim, self.classes)
        train = self.data.attributes[self.data.split == "train"]
        priors = [np.bincount(train[:, k], minlength=c) / len(train) for k, c in enumerate(self.classes)]
        config = replace(self.ovrdl_config, independence=None) if self.method == "plain" else self.ovrdl_config
        return OVRDL(config, self.data.images.shape[1:], self.classes, priors)

    def parameter_groups(self, model):
        if self.stage == "aal":
            return {"aal": list(model.parameters())}
        return model.parameter_groups()

    def loss(self, model, batch):
        if self.stage == "aal":
            return model.loss(batch["features"], batch["labels"], seen=True), {}
        return task_loss(model, batch["inputs"], batch["labels"])

    def training_step(self, model, batch, update):
        if self.stage == "aal":
            return self._aal_step(model, batch, update)
        logs = update(lambda: task_loss(model, batch["inputs"], batch["labels"]), ["task"])
        if not model.pairs():  # plain, or λ = 0 everywhere: the task loss is the whole objective
            return logs
        logs["discriminator_loss"] = update(
            lambda: discriminator_loss(model, batch["inputs"], batch["labels"]), ["discriminator"]
        )["loss"]
        for _ in range(self.ovrdl_config.adversary_steps):
            step = update(lambda: adversary_loss(model, batch["inputs"], batch["labels"]), ["adversary"])
            logs["adversary_loss"] = step["loss"]
        return logs

    def _aal_step(self, model, batch, update):
        """The seen mixes' update, then the unseen mixes' (each skipped when the batch has none)."""
        logs = {}
        for name, rows in (("seen", batch["seen"]), ("unseen", ~batch["seen"])):
            if rows.any():
                features, labels = batch["features"][rows], batch["labels"][rows]
                step = update(lambda f=features, y=labels, s=(name == "seen"): (model.loss(f, y, seen=s), {}), ["aal"])
                logs[f"{name}_loss"] = step["loss"]
        return {"loss": sum(logs.values()), **logs}

    def predict(self, model, batch):
        return {
            "scores": model(batch["inputs"]),
            "label": batch["labels"][:, 0].float(),
            "split": batch["split"].float(),
        }

    def metrics(self, outputs):
        """Validation pass: mean one-vs-rest AUC and accuracy on the validation rows. Test pass (validation
        and test rows together): the authentication metrics on the test rows, thresholds from the validation rows."""
        scores, labels = outputs["scores"], outputs["label"].astype(int)
        if not has_test_rows(outputs):
            identities = [i for i in np.unique(labels) if 0 < (labels == i).sum() < len(labels)]
            return {
                "auc": float(np.mean([auc((labels == i).astype(int), scores[:, i]) for i in identities])),
                "accuracy": float(np.mean(scores.argmax(1) == labels)),
            }
        return authentication_metrics(*rows_by_split(outputs))

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions | None:
        """Per test sample, stratified by identity: the test metrics but TAR, and stage 1's (ovrdl_*) beside
        them in a two-stage run (the same rows, in the same order)."""
        if not has_test_rows(outputs):
            return None
        scored = rows_by_split(outputs)
        units = add_authentication_contributions(sample_units(scored[1]), *scored)
        if self.stage1_outputs:
            add_authentication_contributions(units, *rows_by_split(self.stage1_outputs), prefix="ovrdl_")
        return units

    def no_learning_scorers(self) -> tuple[str, ...]:
        return SCORERS

    def score_without_learning(self, name: str, split: RowSource) -> dict[str, np.ndarray]:
        """The validation and test rows scored by `name` (no_learning.py), as `predict` outputs them."""
        if name not in SCORERS:
            return super().score_without_learning(name, split)
        rows = split.batch(np.arange(len(split)))
        identities = rows["labels"][:, 0].numpy()
        return {
            "scores": self._no_learning_scores(name, rows["inputs"].numpy(), identities),
            "label": identities.astype(np.float32),
            "split": rows["split"].numpy().astype(np.float32),
        }

    def _no_learning_scores(self, name: str, images: np.ndarray, identities: np.ndarray) -> np.ndarray:
        classes = self.data.classes[0]
        if name == "oracle":
            return oracle_scores(identities, classes)
        if name == "trivial_chance":
            return chance_scores(len(images), classes, self.seed)
        train = self.data.split == "train"  # trivial_colour: the training split's colour-identity counts only
        training_colours = stroke_colour(self.data.images[train])
        frequencies = colour_identity_frequencies(training_colours, self.data.attributes[train, 0], classes)
        return colour_scores(images, frequencies)

    def record_metrics(self, test_metrics):
        return {**test_metrics, **self.extra_metrics}

    def bench(self):
        from papers.ovrdl_aal.bench import OVRDLBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(OVRDLBenchConfig, self.cfg.get("bench"), "bench"))
