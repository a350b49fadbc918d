"""ML-FSIC (Yan et al., AAAI 2022) for the shared runner: episodic training over the training labels and
episodic evaluation over the test labels (1- and 5-shot, and with no support image at all)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import trained_weights
from common.config import bounded, typed_config
from common.errors import ConfigError, DatasetError
from common.task import BatchSource, PaperTask
from common.units import UnitContributions
from papers.ml_fsic.baselines import EpisodeHeadConfig, FineTunedClassifier, LaSOClassifier
from papers.ml_fsic.data import (
    MultiLabelImages,
    check_split_size,
    load_pixels,
    read_coco,
    read_voc,
    split_by_labels,
)
from papers.ml_fsic.episodes_source import EpisodeSource
from papers.ml_fsic.evaluation import episode_metrics, episode_units, metrics_by_shots
from papers.ml_fsic.feature_cache import cache_key, cached_features
from papers.ml_fsic.model import PrototypeModelConfig, WordGuidedPrototypes, episode_loss, frozen_or_trained_backbone
from papers.ml_fsic.no_learning import SCORERS, build_scorer, score_episodes
from papers.ml_fsic.prediction import (
    SupportSet,
    SupportSetConfig,
    drawn_support,
    label_scorer,
    labeled_metrics,
    labels_to_score,
    named_support,
    support_set,
    write_scores,
    write_support,
)
from papers.ml_fsic.synthetic import SyntheticMultiLabelConfig, check_generator, ensure_dataset
from papers.ml_fsic.word_vectors import label_vectors

DATASETS = ("synthetic_multilabel", "coco", "voc2007")
# mean_prototype: ProtoNet; upper_bound: a classifier trained on many labeled images of the test labels
MODELS = ("word_guided", "mean_prototype", "finetuned_classifier", "laso", "upper_bound")
CLASSIFIERS = {"finetuned_classifier": FineTunedClassifier, "laso": LaSOClassifier}  # no word vectors
TEST_SEED_OFFSET, VAL_SEED_OFFSET = 10_000, 20_000  # episode seeds of the test and validation splits: offset + seed


VOC_IMAGE_SETS = ("train", "val", "trainval", "test")  # VOC 2007's ImageSets/Main lists


@dataclass
class MLFSICModelConfig:
    name: str = bounded("word_guided", choices=MODELS)
    prototypes: PrototypeModelConfig = field(default_factory=PrototypeModelConfig)
    episode_head: EpisodeHeadConfig = field(default_factory=EpisodeHeadConfig)  # the classifier baselines' head


@dataclass
class MultiLabelDataConfig:
    name: str = bounded("synthetic_multilabel", choices=DATASETS)
    root: str | None = None  # COCO 2014 (annotations/, train2014/, val2014/) or VOCdevkit/VOC2007; never downloaded
    # VOC 2007 image sets pooled
    image_sets: list[str] = bounded(default_factory=lambda: ["trainval", "test"], choices=VOC_IMAGE_SETS)
    # GloVe / word2vec text or the authors' JSON lines (papers/ml_fsic/word_vectors.py); required for COCO and VOC,
    # default <dataset>/word_vectors.txt for the generated set
    word_vectors: str | None = None
    aliases: dict[str, str] = field(
        default_factory=dict
    )  # label name -> the words to look up ("diningtable": "dining table")
    keep_difficult: bool = True  # VOC: objects marked difficult count as labels
    label_split: str | None = None  # JSON {train: [...], val: [...], test: [...]}; default <dataset>/label_split.json
    image_size: int = bounded(64, minimum=1)
    cache_dir: str = ".cache/reprozoo"
    data_card: str = "data_cards/synthetic_multilabel.md"
    generator: SyntheticMultiLabelConfig = field(default_factory=SyntheticMultiLabelConfig)
    support: SupportSetConfig = field(default_factory=SupportSetConfig)  # mode=predict
    # share of the test split's images kept out of every test episode to train the upper_bound classifier on
    upper_bound_share: float = bounded(0.0, minimum=0.0, below=1.0)


@dataclass
class WaysConfig:
    """Labels per episode in each split; null: every label of the split, as the authors' episodes (all 52 training
    labels per training episode, all 16 test labels per test episode on COCO)."""

    train: int | None = bounded(None, minimum=1)
    val: int | None = bounded(None, minimum=1)
    test: int | None = bounded(None, minimum=1)


@dataclass
class EpisodeConfig:
    ways: WaysConfig = field(default_factory=WaysConfig)
    train_episodes: int = bounded(400, minimum=1)  # one optimizer step each
    train_shots: int = bounded(1, minimum=1)  # model_train.yaml: k_shot 1 (the first of sub_batch_size 5 images)
    queries_per_label: int = bounded(4, minimum=1)  # the other 4 of each label's 5 images
    # 0: no support image (word vectors only)
    test_shots: list[int] = bounded(default_factory=lambda: [1, 5, 0], minimum=0)
    test_episodes: int = bounded(50, minimum=1)  # per shot count
    val_episodes: int = bounded(10, minimum=1)  # per shot count, over the validation labels
    support_loss: bool = True


class MLFSICTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(MLFSICModelConfig, cfg.model, "model")
        self.data_config = typed_config(MultiLabelDataConfig, cfg.data, "data")
        self.episodes = typed_config(EpisodeConfig, cfg.episodes, "episodes")
        self.method = self.model_config.name
        if self.data_config.name == "synthetic_multilabel" and not self.data_config.root:
            check_generator(self.data_config.generator)
        prototypes = self.model_config.prototypes
        if prototypes.dim % prototypes.heads:
            raise ConfigError(
                f"model.prototypes.dim={prototypes.dim} is not a multiple of model.prototypes.heads="
                f"{prototypes.heads}: the attention splits the dimension evenly across its heads."
            )
        if int(cfg.trainer.batch_size) != 1:
            raise ConfigError(f"trainer.batch_size={cfg.trainer.batch_size}: one batch is one episode; set it to 1.")
        self.seed = int(cfg.seed)
        self._frozen = None  # the frozen backbone whose features the sources hold (freeze_backbone)
        self._train_features = None  # its features of the training images, whose statistics standardize all
        self.word_dim = 0
        self.train_labels = 0

    @property
    def test_episode_seed(self) -> int:
        return TEST_SEED_OFFSET + self.seed

    def _root(self) -> Path:
        return self.generated_or_given_root("synthetic_multilabel", ensure_dataset)

    def prepare_data(self) -> None:
        self._root()

    def _images(self, root: Path, keep_unannotated: bool = False) -> MultiLabelImages:
        card = self.data_config.data_card
        if self.data_config.name == "synthetic_multilabel":
            return read_coco([root / "annotations" / "instances.json"], [root / "images"], card, keep_unannotated)
        if self.data_config.name == "voc2007":
            return read_voc(root, self.data_config.image_sets, card, self.data_config.keep_difficult)
        files = [root / "annotations" / f"instances_{split}.json" for split in ("train2014", "val2014")]
        return read_coco(files, [root / "train2014", root / "val2014"], card, keep_unannotated)

    def _pixels(self, paths: list[Path]) -> torch.Tensor:
        return load_pixels(paths, self.data_config.image_size, self.data_config.data_card)

    def _label_split(self, root: Path) -> tuple[Path, dict[str, list[str]]]:
        split_path = Path(self.data_config.label_split or root / "label_split.json")
        if not split_path.is_file():
            raise DatasetError(
                f"label split file {split_path} does not exist; give data.label_split=/path/to/split.json "
                f"({{train: [...], val: [...], test: [...]}}, {self.data_config.data_card})."
            )
        return split_path, json.loads(split_path.read_text())

    def _word_vectors(self, root: Path, labels: list[str]) -> torch.Tensor:
        config = self.data_config
        if not config.word_vectors and config.name != "synthetic_multilabel":
            raise ConfigError(
                f"data.word_vectors is not set: {config.name} needs a word vector file, e.g. "
                f"data.word_vectors=/path/to/glove.6B.300d.txt (data_cards/glove.md)."
            )
        path = Path(config.word_vectors or root / "word_vectors.txt")
        return torch.from_numpy(label_vectors(path, labels, config.data_card, dict(config.aliases)))

    def load_data(self):
        root = self._root()
        split_path, label_split = self._label_split(root)
        splits = split_by_labels(self._images(root), label_split)
        names = [name for part in splits.values() for name in part.label_names]
        vectors = dict(zip(names, self._word_vectors(root, names), strict=True))  # the file is read once
        splits["test"], held_out = self._held_out(splits["test"])
        parts = {**splits, "train": held_out, "val": held_out} if self.method == "upper_bound" else splits
        episodes = self.episodes
        shots = {"train": [episodes.train_shots], "val": episodes.test_shots, "test": episodes.test_shots}
        ways = {"train": episodes.ways.train, "val": episodes.ways.val, "test": episodes.ways.test}
        if self.method == "upper_bound":
            ways["train"] = ways["val"] = ways["test"]
        for name, part in parts.items():
            check_split_size(name, part, ways[name], max(shots[name]), split_path)
        self.word_dim = len(next(iter(vectors.values())))
        self.train_labels = len(parts["train"].label_names)
        seeds = {"train": self.seed, "val": VAL_SEED_OFFSET + self.seed, "test": self.test_episode_seed}
        counts = {"train": episodes.train_episodes, "val": episodes.val_episodes, "test": episodes.test_episodes}
        counts["val"] *= len(episodes.test_shots)
        counts["test"] *= len(episodes.test_shots)
        inputs = {name: self._inputs(parts[name].paths, name) for name in ("train", "val", "test")}
        self._train_features = inputs["train"]
        return tuple(
            EpisodeSource(
                inputs[name],
                parts[name].labels,
                torch.stack([vectors[label] for label in parts[name].label_names]),
                counts[name],
                ways=ways[name],
                shots=shots[name],
                queries_per_label=episodes.queries_per_label,
                seed=seeds[name],
            )
            for name in ("train", "val", "test")
        )

    def _inputs(self, paths: list[Path], split: str) -> torch.Tensor:
        """The images of a split as the model takes them: pixels, or with a frozen backbone their local features
        (papers/ml_fsic/feature_cache.py; the backbone built with the run's seed, then copied into the model)."""
        config = self.model_config.prototypes
        if not config.freeze_backbone:
            return self._pixels(paths)
        if self._frozen is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._frozen = frozen_or_trained_backbone(config).eval()
        size = self.data_config.image_size
        key = cache_key(
            paths,
            backbone=config.backbone,
            weights=config.backbone_weights,
            stage=config.feature_stage,
            seed=self.seed,
            size=size,
        )
        folder = Path(self.data_config.cache_dir) / "ml_fsic_features"
        return cached_features(folder, key, lambda: self._pixels(paths), self._frozen, split)

    def _held_out(self, test: MultiLabelImages) -> tuple[MultiLabelImages, MultiLabelImages]:
        """The test split's images for the test episodes, and those held out of them (data.upper_bound_share,
        drawn with a fixed seed) on which the upper_bound classifier trains."""
        share = self.data_config.upper_bound_share
        if self.method == "upper_bound" and share == 0:
            raise ConfigError(
                "experiment=upper_bound trains on test-label images kept out of the test episodes: set "
                "data.upper_bound_share above 0 (the synthetic data's config keeps half)."
            )
        held = np.random.default_rng(0).random(len(test.paths)) < share
        names = test.label_names
        return test.subset(np.flatnonzero(~held), names), test.subset(np.flatnonzero(held), names)

    def build_model(self):
        model = self._new_model()
        if self._frozen is not None:
            model.backbone.load_state_dict(self._frozen.state_dict())
            model.standardize.fit(self._train_features)
        return model

    def _new_model(self):
        config = self.model_config.prototypes
        if self.method in CLASSIFIERS:
            return CLASSIFIERS[self.method](config, self.train_labels, self.model_config.episode_head)
        if self.method == "upper_bound":  # its head over the test labels scores the queries, no support used
            return FineTunedClassifier(config, self.train_labels)
        if self.method == "mean_prototype":
            config = replace(config, attention="global_vector", weighting="mean")
        return WordGuidedPrototypes(config, self.word_dim)

    def loss(self, model, batch):
        output = model(batch)
        classifier = self.method in CLASSIFIERS or self.method == "upper_bound"
        support_term = classifier or (self.method == "word_guided" and self.episodes.support_loss)
        loss = episode_loss(output, batch, support_term)
        if "auxiliary_loss" not in output:
            return loss, {}
        return loss + output["auxiliary_loss"], {"auxiliary_loss": float(output["auxiliary_loss"].detach())}

    def predict(self, model, batch):
        core = model.module if hasattr(model, "module") else model
        if self.method in CLASSIFIERS:
            scores = core.fit_and_score(batch)
        else:
            scores = model(batch)["query_scores"]
        probabilities = torch.sigmoid(scores).float().cpu().numpy()
        metrics = episode_metrics(batch["query_targets"].cpu().numpy(), probabilities)
        device = batch["query"].device
        row = {name: torch.tensor([value], device=device) for name, value in metrics.items()}
        return {**row, "shots": batch["shots"].float(), "episode": batch["episode"].float()}

    def metrics(self, outputs):
        return metrics_by_shots(outputs)

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions:
        return episode_units(outputs, self.test_episode_seed)

    def no_learning_scorers(self) -> tuple[str, ...]:
        return SCORERS

    def score_without_learning(self, name: str, split: BatchSource) -> dict[str, np.ndarray]:
        return score_episodes(split, build_scorer(name, self.model_config.prototypes, self.word_dim, self.seed))

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """Score every image of this data's annotation file for data.support's labels, each given K support images,
        with the model of `trained_run` (papers/ml_fsic/prediction.py): scores.csv and support.json in
        `output_dir`, and the metrics of the scored images that have annotations."""
        if self.method == "upper_bound":
            raise ConfigError("experiment=upper_bound is a benchmark row with a fixed label set: it cannot predict.")
        if not self.context.is_main:
            return {}
        root = self._root()
        images = self._images(root, keep_unannotated=True)
        labels, support = self._support_set(root, images)
        vectors = self._word_vectors(root, labels)
        model = self._trained_model(trained_run, vectors.shape[1])
        rows = np.setdiff1d(np.arange(len(images.paths)), support.rows)
        if not len(rows):
            raise DatasetError("every image of the annotation file is a support image: there is no image to score.")
        device, batch_size = self.context.device, self.data_config.support.batch_size
        with torch.no_grad():
            support_images = self._pixels([images.paths[row] for row in support.rows]).to(device)
            targets = torch.from_numpy(support.targets).to(device)
            scorer = label_scorer(model, support_images, targets, vectors.to(device))
            chunks = [
                torch.sigmoid(scorer(self._pixels([images.paths[row] for row in chunk]).to(device))).float().cpu()
                for chunk in np.array_split(rows, -(-len(rows) // batch_size))
            ]
        probabilities = torch.cat(chunks).numpy()
        scores_path = write_scores(output_dir, [images.paths[row].name for row in rows], labels, probabilities)
        write_support(output_dir, support)
        labeled = int(images.labels[rows].any(axis=1).sum())
        shots = self.data_config.support.shots
        print(f"wrote {scores_path}: {len(rows)} images, {len(labels)} labels, {shots} support images per label")
        print(f"{labeled} of the scored images have annotations (the metrics are theirs)")
        return labeled_metrics(images, labels, rows, probabilities)

    def _support_set(self, root: Path, images: MultiLabelImages) -> tuple[list[str], SupportSet]:
        """The labels to score and their support set: named in data.support.file, else drawn with the seed."""
        config = self.data_config.support
        if config.file:
            by_label = named_support(Path(config.file), config.labels, config.shots)
            labels = labels_to_score(images, list(by_label), "data.support")
        else:
            if not config.labels and not Path(self.data_config.label_split or root / "label_split.json").is_file():
                raise DatasetError(
                    f"{root} has no label_split.json to take the test labels from: name the labels to score with "
                    "data.support.labels=[...] or data.support.file=<JSON of each label's support images>."
                )
            labels = config.labels or self._label_split(root)[1].get("test", [])
            labels = labels_to_score(images, labels, "data.support.labels" if config.labels else "the test split")
            by_label = drawn_support(images, labels, config.shots, self.seed)
        return labels, support_set(images, labels, by_label)

    def _trained_model(self, trained_run: Path, word_dim: int) -> torch.nn.Module:
        """The model of `trained_run` with its final weights, on this run's device, in evaluation mode."""
        weights = trained_weights(trained_run)
        if self.method in CLASSIFIERS:
            self.train_labels = weights["head.weight"].shape[0]
        else:
            self.word_dim = weights["word_projection.weight"].shape[1]
            if word_dim != self.word_dim:
                raise DatasetError(
                    f"the word vectors of {self.data_config.word_vectors or 'the dataset'} have {word_dim} "
                    f"dimensions, but the model of from_run={trained_run} was trained on {self.word_dim}."
                )
        model = self.build_model()
        model.load_state_dict(weights)
        model.takes_features = False  # new images: through its own (trained or frozen) backbone
        return model.to(self.context.device).eval()

    def bench(self):
        from papers.ml_fsic.bench import MLFSICBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(MLFSICBenchConfig, self.cfg.get("bench"), "bench"))
