"""OVRDL + AAL (Liang et al., CVPR 2019) for the shared runner, as declared stages.

`model.name`:
- ovrdl_aal: stage `ovrdl` (OVRDL on the images for `model.stage1_steps` steps), then stage `aal` (AAL on
  recombinations of the features of stage 1's model, read back from stage 1's directory: the run's model);
  the run also records stage 1's test metrics (ovrdl_*);
- ovrdl: stage `ovrdl` alone; plain: stage `plain`, the same encoder with the identity's task loss only.
Each stage keeps the checkpoint with the best validation AUC (trainer.early_stopping), as the official code keeps
the stage-1 feature file named by its validation AUC.
Evaluation is on the test ⟨class, domain⟩ cells (all unseen in training): identity scores give the mean
one-versus-rest AUC, FAR and FRR at each identity's EER threshold chosen on the validation half of those
cells, TAR at FAR = 1% and top-1 accuracy; their per-sample contributions (contributions.py) go to units.npz,
the thresholds to the last stage's thresholds.json for mode=predict (prediction.py).
`scorer=oracle|trivial_chance|trivial_colour` scores the test cells without learning (no_learning.py).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from common.atomic_files import write_json_atomic
from common.checkpoint import trained_weights
from common.config import bounded, require_choice, typed_config
from common.data.generated import dataset_root
from common.errors import ConfigError, DatasetError
from common.seeding import seed_everything
from common.stages import STAGE_FILE, Stage, StageContext, StageOutcome
from common.task import PaperTask
from common.trainer import TrainerConfig
from common.units import UnitContributions
from papers.ovrdl_aal.aal import AALConfig, MixSource, confident_rows
from papers.ovrdl_aal.celeba import CelebAProtocolConfig, build_celeba
from papers.ovrdl_aal.cmnist import CMNIST, CMNISTConfig, protocol_classes, resize_images
from papers.ovrdl_aal.contributions import add_authentication_contributions, sample_units
from papers.ovrdl_aal.data import read_celeba, read_mnist_cmnist
from papers.ovrdl_aal.digits import RenderConfig
from papers.ovrdl_aal.image_folder import DigitImagesConfig, read_digit_images
from papers.ovrdl_aal.no_learning import (
    SCORERS,
    chance_scores,
    colour_identity_frequencies,
    colour_scores,
    oracle_scores,
    stroke_colour,
)
from papers.ovrdl_aal.ovrdl import OVRDL, OVRDLConfig, as_pixels, independence_matrix, stage1_features
from papers.ovrdl_aal.prediction import (
    SCORES_FILE,
    batched_scores,
    identity_thresholds,
    metrics_at_thresholds,
    read_thresholds,
    write_scores,
    write_thresholds,
)
from papers.ovrdl_aal.synthetic import GeneratorConfig, ensure_dataset, read_dataset
from papers.ovrdl_aal.trainees import SPLITS, AALTrainee, OVRDLTrainee, has_test_rows, identity_metrics, rows_by_split

METHODS = ("ovrdl_aal", "ovrdl", "plain")
SOURCE_SPLITS = (("train",), ("val",), ("val", "test"))  # the trainer's training, validation and test sources
STAGE1_OUTPUTS_FILE = "test_outputs.npz"
HISTORY_FILE = "history.json"  # a stage's logged training losses and validation metrics by step (curves.py)


@dataclass
class OVRDLAALModelConfig:
    name: str = bounded("ovrdl_aal", choices=METHODS)  # both stages | stage 1 alone | identity loss only
    stage1_steps: int = bounded(1000, minimum=1)  # official: up to 10^5; val AUC levels off by ~800 here
    stage1_eval_every: int = bounded(50, minimum=1)  # steps between its validation passes (selection)
    intra_op_threads: int | None = bounded(1, minimum=1)  # torch's CPU threads while training; null: torch's own
    ovrdl: OVRDLConfig = field(default_factory=OVRDLConfig)
    aal: AALConfig = field(default_factory=AALConfig)


@dataclass
class CMNISTDataConfig:
    name: str = bounded("synthetic_cmnist", choices=("synthetic_cmnist", "mnist"))
    root: str | None = None  # MNIST in torchvision's layout (<root>/MNIST/raw); never downloaded
    cache_dir: str = ".cache/reprozoo"
    data_card: str = "data_cards/synthetic_cmnist.md"
    protocol: CMNISTConfig = field(default_factory=CMNISTConfig)
    render: RenderConfig = field(default_factory=RenderConfig)  # synthetic_cmnist's digits (digits.py)


@dataclass
class CelebADataConfig:
    name: str = bounded("celeba", choices=("celeba",))
    root: str | None = None  # <root>/celeba/ in torchvision's layout; never downloaded
    data_card: str = "data_cards/celeba.md"
    protocol: CelebAProtocolConfig = field(default_factory=CelebAProtocolConfig)


DATA_CONFIGS = {
    "synthetic_cmnist": CMNISTDataConfig,
    "mnist": CMNISTDataConfig,
    "celeba": CelebADataConfig,
    "digit_images": DigitImagesConfig,
}


class RowSource:
    """Rows of the dataset (images or stage-1 features) with their attribute labels and split index."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, split: np.ndarray, images: bool):
        self.inputs, self.labels, self.split, self.images = inputs, labels, split, images

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        inputs = self.inputs[indices]
        return {
            "inputs": as_pixels(inputs) if self.images else torch.from_numpy(inputs).float(),
            "labels": torch.from_numpy(self.labels[indices]),
            "split": torch.from_numpy(self.split[indices]),
        }


@contextmanager
def intra_op_threads(threads: int | None):
    """Run with torch's CPU intra-op threads fixed to `threads` (None: unchanged), restoring them after. With a
    fixed count the float reductions, hence the results, do not depend on the machine's thread count."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_history(history: list[dict], directory: Path) -> None:
    write_json_atomic(directory / HISTORY_FILE, history, indent=None)


def trained_protocol(trained_run: Path) -> CMNISTConfig:
    """The protocol a finished run's model was trained on (its input size and attributes), from its record."""
    record = json.loads((trained_run / "results.json").read_text(encoding="utf-8"))
    protocol = (record.get("typed_config") or {}).get("data", {}).get("protocol")
    if protocol is None:
        raise ConfigError(f"{trained_run}/results.json records no typed data.protocol: retrain it with this code.")
    return typed_config(CMNISTConfig, protocol, "data.protocol")


class OVRDLAALTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(OVRDLAALModelConfig, cfg.model, "model")
        name = require_choice(cfg.data.get("name"), tuple(DATA_CONFIGS), "data.name")
        self.data_config = typed_config(DATA_CONFIGS[name], cfg.data, "data")
        predicting = cfg.mode.name == "predict"
        if name == "digit_images" and not predicting:
            raise ConfigError("data=digit_images holds new images to authenticate: use it with mode=predict only.")
        if name == "celeba" and predicting:
            raise ConfigError("mode=predict reads digits (data=digit_images, synthetic_cmnist or mnist), not CelebA.")
        protocol = trained_protocol(Path(str(cfg.from_run))) if predicting else self.data_config.protocol
        self.input_size = protocol.size
        if name == "celeba":
            attributes = 1 + len(protocol.attributes)  # the people's count comes with the data
        else:
            self._classes = protocol_classes(protocol)
            attributes = len(self._classes)
        independence_matrix(self.model_config.ovrdl, attributes)  # λ checked before any data
        self.method = self.model_config.name
        self.seed = int(cfg.seed)
        self.data: CMNIST | None = None
        self.extra_metrics: dict[str, float] = {}
        self.stage1_outputs: dict[str, np.ndarray] = {}  # stage 1's test outputs (ovrdl_aal), for its units

    @property
    def attribute_classes(self) -> list[int]:
        """Classes per attribute, what the model learns to tell apart: the protocol's, or CelebA's kept people
        and its attributes' two values."""
        return self.dataset().classes if self.data_config.name == "celeba" else self._classes

    @property
    def model_name(self) -> str:
        return self.method

    @property
    def first_stage(self) -> str:
        """The stage training the encoder on the images: `plain` for the plain classifier, else `ovrdl`."""
        return "plain" if self.method == "plain" else "ovrdl"

    def _root(self) -> Path:
        config = self.data_config
        if config.name == "digit_images":
            if not config.root:
                raise DatasetError(
                    f"data=digit_images needs data.root=<a folder of PNG/JPEG images>; {config.data_card}."
                )
            return Path(config.root)
        if config.name == "synthetic_cmnist":
            return ensure_dataset(GeneratorConfig(config.protocol, config.render), Path(config.cache_dir))
        return dataset_root(config.name, config.root, config.data_card, "synthetic_cmnist", generate=None)

    def prepare_data(self) -> None:
        self._root()

    def dataset(self) -> CMNIST:
        """The coloured digits of this run (read once)."""
        if self.data is None:
            if self.data_config.name == "synthetic_cmnist":
                self.data = read_dataset(self._root())
            elif self.data_config.name == "celeba":
                config = self.data_config
                index = read_celeba(self._root(), config.protocol.attributes, config.data_card)
                self.data = build_celeba(index, self._root(), config.protocol)
            else:
                self.data = read_mnist_cmnist(self._root(), self.data_config.protocol, self.data_config.data_card)
        return self.data

    def _rows(self, inputs: np.ndarray, splits: tuple[str, ...], images: bool) -> RowSource:
        data = self.dataset()
        chosen = np.isin(data.split, splits)
        split = np.array([SPLITS.index(s) for s in data.split[chosen]])
        return RowSource(inputs[chosen], data.attributes[chosen], split, images)

    def _sources(self, inputs: np.ndarray, images: bool) -> tuple[RowSource, RowSource, RowSource]:
        """Training rows, validation rows, and validation with test rows (the test pass sets its thresholds on
        the validation rows)."""
        return tuple(self._rows(inputs, splits, images) for splits in SOURCE_SPLITS)

    def load_data(self) -> tuple[RowSource, RowSource, RowSource]:
        """The image rows (what stage 1 trains on and a no-learning row scores)."""
        return self._sources(self.dataset().images, True)

    # the trainees of the stages

    def encoder_classes(self, plain: bool) -> list[int]:
        """Classes per attribute the encoder learns: every attribute, or the identity alone (plain)."""
        return self.attribute_classes[:1] if plain else self.attribute_classes

    def ovrdl_trainee(self, plain: bool | None = None, priors: list[np.ndarray] | None = None) -> OVRDLTrainee:
        """Stage 1's trainee, or with `plain` (default: whether this run is the plain classifier) the identity's
        alone with its task loss only; the class priors (the one-versus-rest targets) from the training rows
        unless given."""
        plain = self.method == "plain" if plain is None else plain
        classes = self.encoder_classes(plain)
        if priors is None:
            train = self.dataset().attributes[self.dataset().split == "train"]
            priors = [np.bincount(train[:, k], minlength=c) / len(train) for k, c in enumerate(classes)]
        config = replace(self.model_config.ovrdl, independence=None) if plain else self.model_config.ovrdl
        shape = (3, self.input_size, self.input_size)
        return OVRDLTrainee(self.context, "plain" if plain else "ovrdl", config, shape, classes, priors)

    def aal_trainee(self) -> AALTrainee:
        config = self.model_config
        return AALTrainee(self.context, config.aal, config.ovrdl.feature_dim, self.attribute_classes)

    def final_trainee(self) -> OVRDLTrainee | AALTrainee:
        """The trainee of the run's model (the last stage's)."""
        return self.aal_trainee() if self.method == "ovrdl_aal" else self.ovrdl_trainee()

    def build_model(self):
        return self.final_trainee().build_model()

    def loss(self, model, batch):
        return self.final_trainee().loss(model, batch)

    def predict(self, model, batch):
        return self.final_trainee().predict(model, batch)

    def metrics(self, outputs):
        return identity_metrics(outputs)

    # the stages

    def stages(self) -> list[Stage]:
        if self.method != "ovrdl_aal":
            describe = "the identity's task loss on the images" if self.method == "plain" else "OVRDL on the images"
            return [Stage(self.first_stage, describe, self._run_first_stage, config=self._first_stage_config)]
        return [
            Stage("ovrdl", "OVRDL on the images: task, discriminator and adversary updates", self._run_first_stage,
                  restore=self._restore_first_stage, config=self._first_stage_config),
            Stage("aal", "AAL: seen and unseen updates over recombined stage-1 features", self._run_aal,
                  config=self._aal_stage_config),
        ]  # fmt: skip

    def _first_stage_settings(self, settings: TrainerConfig) -> TrainerConfig:
        """The image stage (`ovrdl` or `plain`) runs by steps, as the official code, with its own validation
        passes; the rest of trainer.* (batch, optimizers, the selection metric) as given."""
        config = self.model_config
        return replace(settings, max_epochs=config.stage1_steps, max_steps=config.stage1_steps,
                       eval_every=config.stage1_eval_every)  # fmt: skip

    def _first_stage_config(self) -> dict:
        settings = typed_config(TrainerConfig, self.cfg.trainer, "trainer")
        return {"ovrdl": asdict(self.ovrdl_trainee().config), "trainer": asdict(self._first_stage_settings(settings))}

    def _aal_stage_config(self) -> dict:
        return {
            "aal": asdict(self.model_config.aal),
            "trainer": asdict(typed_config(TrainerConfig, self.cfg.trainer, "trainer")),
        }

    def _run_first_stage(self, context: StageContext) -> StageOutcome:
        seed_everything(context.seed, context.settings.deterministic)
        settings = self._first_stage_settings(context.settings)
        with intra_op_threads(self.model_config.intra_op_threads):
            result = context.fit(self.ovrdl_trainee(), self.load_data(), settings)
        write_history(result.history, context.directory)
        if self.method == "ovrdl_aal":
            np.savez(context.directory / STAGE1_OUTPUTS_FILE, **result.test_outputs)
            self._keep_stage1(result.metrics, result.test_outputs)
        else:
            write_thresholds(identity_thresholds(result.test_outputs), context.directory)
        return StageOutcome(result.metrics, result)

    def _restore_first_stage(self, context: StageContext) -> StageOutcome:
        """Stage 1's test metrics (its stage.json) and outputs, as it left them; its model stays in its checkpoints."""
        metrics = json.loads((context.directory / STAGE_FILE).read_text(encoding="utf-8"))["metrics"]
        with np.load(context.directory / STAGE1_OUTPUTS_FILE) as archive:
            self._keep_stage1(metrics, dict(archive))
        return StageOutcome(metrics)

    def _keep_stage1(self, metrics: dict[str, float], outputs: dict[str, np.ndarray]) -> None:
        self.extra_metrics = {f"ovrdl_{name}": value for name, value in metrics.items()}
        self.stage1_outputs = outputs

    def _run_aal(self, context: StageContext) -> StageOutcome:
        """AAL on recombinations of the features of stage 1's model, read from stage 1's directory."""
        seed_everything(context.seed, context.settings.deterministic)
        data = self.dataset()
        stage1 = self.trained_ovrdl(context.directory.parent / "ovrdl")
        features, probabilities = stage1_features(stage1, data.images, self.context.device)
        train = data.split == "train"
        labels = data.attributes[train]
        config = self.model_config.aal
        rows = confident_rows([p[train] for p in probabilities], labels, config.confidence_percentile)
        mixes = MixSource(features[train], labels, rows, config, context.seed, context.settings.batch_size)
        _, val, test = self._sources(features, False)
        with intra_op_threads(self.model_config.intra_op_threads):
            result = context.fit(self.aal_trainee(), (mixes, val, test))
        write_history(result.history, context.directory)
        write_thresholds(identity_thresholds(result.test_outputs), context.directory)
        return StageOutcome(result.metrics, result)

    def trained_ovrdl(self, directory: Path) -> OVRDL:
        """The encoder network a finished stage 1 (or plain / ovrdl run) left in `directory`."""
        uniform = [np.full(c, 1 / c) for c in self.encoder_classes(self.method == "plain")]  # the weights hold them
        return self._load(self.ovrdl_trainee(priors=uniform).build_model(), directory)

    def _load(self, model: torch.nn.Module, directory: Path) -> torch.nn.Module:
        try:
            model.load_state_dict(trained_weights(directory))
        except RuntimeError as error:
            raise DatasetError(f"the weights in {directory} do not fit this run's model.{str(error)[:300]}") from None
        return model.to(self.context.device).eval()

    # the run record

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

    def record_metrics(self, test_metrics):
        return {**test_metrics, **self.extra_metrics}

    # mode=predict

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """Identity scores of every new image (scores.csv), and the authentication metrics at the trained run's
        thresholds where the images have identities: a digit_images folder with labels, or the test rows of a
        generated draw or of MNIST."""
        files, images, identities = self._new_images()
        scores = self.identity_scores(trained_run, images)
        write_scores(output_dir / SCORES_FILE, files, scores)
        if identities is None:
            return {}
        final_stage = "aal" if self.method == "ovrdl_aal" else self.first_stage
        return metrics_at_thresholds(scores, identities, read_thresholds(trained_run / final_stage))

    def _new_images(self) -> tuple[list[str], np.ndarray, np.ndarray | None]:
        if self.data_config.name == "digit_images":
            folder = read_digit_images(self.data_config, self._root(), self.input_size, self.attribute_classes[0])
            return folder.files, folder.images, folder.identities
        data = self.dataset()
        rows = np.flatnonzero(data.split == "test")
        files = [f"{self.data_config.name}:{row}" for row in rows]
        return files, resize_images(data.images[rows], self.input_size), data.attributes[rows, 0]

    def identity_scores(self, trained_run: Path, images: np.ndarray) -> np.ndarray:
        """The trained run's identity scores [n, identities] of uint8 images at its input size."""
        batch_size = typed_config(TrainerConfig, self.cfg.trainer, "trainer").eval_batch_size
        device = self.context.device
        encoder = self.trained_ovrdl(trained_run / self.first_stage)
        if self.method != "ovrdl_aal":
            return batched_scores(encoder, as_pixels(images), device, batch_size)
        features, _ = stage1_features(encoder, images, device, batch_size)
        aal = self._load(self.aal_trainee().build_model(), trained_run / "aal")
        return batched_scores(aal, torch.from_numpy(features), device, batch_size)

    # no-learning rows and benchmarks

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
        data = self.dataset()
        classes = data.classes[0]
        if name == "oracle":
            return oracle_scores(identities, classes)
        if name == "trivial_chance":
            return chance_scores(len(images), classes, self.seed)
        train = data.split == "train"  # trivial_colour: the training split's colour-identity counts only
        frequencies = colour_identity_frequencies(stroke_colour(data.images[train]), data.attributes[train, 0], classes)
        return colour_scores(images, frequencies)

    def bench(self):
        from papers.ovrdl_aal.bench import OVRDLBenchConfig, run_benchmarks

        with intra_op_threads(self.model_config.intra_op_threads):  # as the training runs
            return run_benchmarks(self, typed_config(OVRDLBenchConfig, self.cfg.get("bench"), "bench"))
