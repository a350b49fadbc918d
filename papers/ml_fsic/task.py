"""ML-FSIC (Yan et al., AAAI 2022) for the shared runner: episodic training over the training labels and
episodic evaluation over the test labels (1- and 5-shot, and with no support image at all)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from common.config import require_choice, typed_config
from common.errors import ConfigError, DatasetError
from common.task import BatchSource, PaperTask
from common.units import UnitContributions
from papers.ml_fsic.baselines import FineTunedClassifier, LaSOClassifier
from papers.ml_fsic.data import MultiLabelImages, label_vectors, read_coco, read_voc, split_by_labels
from papers.ml_fsic.episodes_source import EpisodeSource
from papers.ml_fsic.evaluation import episode_metrics, episode_units, metrics_by_shots
from papers.ml_fsic.model import PrototypeModelConfig, WordGuidedPrototypes, episode_loss
from papers.ml_fsic.no_learning import SCORERS, build_scorer, score_episodes
from papers.ml_fsic.synthetic import SyntheticMultiLabelConfig, ensure_dataset

DATASETS = ("synthetic_multilabel", "coco", "voc2007")
MODELS = ("word_guided", "mean_prototype", "finetuned_classifier", "laso")  # mean_prototype: ProtoNet
CLASSIFIERS = {"finetuned_classifier": FineTunedClassifier, "laso": LaSOClassifier}  # no word vectors
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TEST_SEED_OFFSET, VAL_SEED_OFFSET = 10_000, 20_000  # episode seeds of the test and validation splits: offset + seed


@dataclass
class MultiLabelDataConfig:
    name: str = "synthetic_multilabel"
    root: str | None = None  # COCO 2014 (annotations/, train2014/, val2014/) or VOCdevkit/VOC2007; never downloaded
    image_sets: list[str] = field(default_factory=lambda: ["trainval", "test"])  # VOC 2007 image sets pooled
    word_vectors: str | None = None  # GloVe text file; default <dataset>/word_vectors.txt for the generated set
    label_split: str | None = None  # JSON {train: [...], val: [...], test: [...]}; default <dataset>/label_split.json
    image_size: int = 96
    cache_dir: str = ".cache/reprozoo"
    data_card: str = "data_cards/synthetic_multilabel.md"
    generator: SyntheticMultiLabelConfig = field(default_factory=SyntheticMultiLabelConfig)


@dataclass
class EpisodeConfig:
    ways: int = 5
    train_episodes: int = 2000  # one optimizer step each
    train_shots: int = 1  # the authors' training episodes: 1 support image per label
    queries_per_label: int = 4
    test_shots: list[int] = field(default_factory=lambda: [1, 5, 0])  # 0: no support image (word vectors only)
    test_episodes: int = 100  # per shot count
    val_episodes: int = 20  # per shot count, over the validation labels
    support_loss: bool = True


class MLFSICTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(PrototypeModelConfig, cfg.model.prototypes, "model.prototypes")
        self.data_config = typed_config(MultiLabelDataConfig, cfg.data, "data")
        self.episodes = typed_config(EpisodeConfig, cfg.episodes, "episodes")
        self.method = str(cfg.model.name)
        require_choice(self.method, MODELS, "model.name")
        require_choice(self.data_config.name, DATASETS, "data.name")
        if int(cfg.trainer.batch_size) != 1:
            raise ConfigError(f"trainer.batch_size={cfg.trainer.batch_size}: one batch is one episode; set it to 1.")
        self.seed = int(cfg.seed)
        self.word_dim = 0
        self.train_labels = 0

    @property
    def model_name(self) -> str:
        return self.method

    @property
    def test_episode_seed(self) -> int:
        return TEST_SEED_OFFSET + self.seed

    def _root(self) -> Path:
        return self.generated_or_given_root("synthetic_multilabel", ensure_dataset)

    def prepare_data(self) -> None:
        self._root()

    def _images(self, root: Path) -> MultiLabelImages:
        card = self.data_config.data_card
        if self.data_config.name == "synthetic_multilabel":
            return read_coco([root / "annotations" / "instances.json"], [root / "images"], card)
        if self.data_config.name == "voc2007":
            return read_voc(root, self.data_config.image_sets, card)
        files = [root / "annotations" / f"instances_{split}.json" for split in ("train2014", "val2014")]
        return read_coco(files, [root / "train2014", root / "val2014"], card)

    def _pixels(self, paths: list[Path]) -> torch.Tensor:
        size = self.data_config.image_size
        frames = []
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"{path} is not a readable image; {self.data_config.data_card}.")
            image = cv2.resize(image[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
            frames.append((image / 255 - MEAN) / STD)
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()

    def load_data(self):
        config, root = self.data_config, self._root()
        split_path = Path(config.label_split or root / "label_split.json")
        if not split_path.is_file():
            raise DatasetError(
                f"label split file {split_path} does not exist; give data.label_split=/path/to/split.json "
                f"({{train: [...], val: [...], test: [...]}}, {config.data_card})."
            )
        splits = split_by_labels(self._images(root), json.loads(split_path.read_text()))
        vectors_path = Path(config.word_vectors or root / "word_vectors.txt")
        sources = {}
        for name in ("train", "val", "test"):
            part = splits[name]
            vectors = torch.from_numpy(label_vectors(vectors_path, part.label_names, config.data_card))
            sources[name] = (self._pixels(part.paths), part.labels, vectors)
        self.word_dim = sources["train"][2].shape[1]
        self.train_labels = len(splits["train"].label_names)
        episodes = self.episodes
        for name, part in splits.items():
            if len(part.label_names) < episodes.ways:
                raise ConfigError(
                    f"episodes.ways={episodes.ways} but the {name} split has {len(part.label_names)} labels "
                    f"({split_path}); lower episodes.ways or give the split more labels."
                )
        source = partial(EpisodeSource, ways=episodes.ways, queries_per_label=episodes.queries_per_label)
        train = source(*sources["train"], episodes.train_episodes, shots=[episodes.train_shots], seed=self.seed)
        evaluation = partial(source, shots=episodes.test_shots)
        count = len(episodes.test_shots)
        val = evaluation(*sources["val"], episodes.val_episodes * count, seed=VAL_SEED_OFFSET + self.seed)
        test = evaluation(*sources["test"], episodes.test_episodes * count, seed=self.test_episode_seed)
        return train, val, test

    def build_model(self):
        config = self.model_config
        if self.method in CLASSIFIERS:
            return CLASSIFIERS[self.method](config, self.train_labels)
        if self.method == "mean_prototype":
            config = replace(config, attention=False, weighting="mean")
        return WordGuidedPrototypes(config, self.word_dim)

    def loss(self, model, batch):
        output = model(batch)
        support_term = self.method in CLASSIFIERS or (self.method == "word_guided" and self.episodes.support_loss)
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
        return score_episodes(split, build_scorer(name, self.model_config, self.word_dim, self.seed))

    def bench(self):
        from papers.ml_fsic.bench import MLFSICBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(MLFSICBenchConfig, self.cfg.get("bench"), "bench"))
