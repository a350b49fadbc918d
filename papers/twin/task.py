"""TWIN's task for the shared runner: data, model, loss, predictions, metrics and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.config import require_choice, typed_config
from common.data.kuairand import KuaiRandSourceConfig, kuairand_folder, read_kuairand, split_by_day
from common.errors import ConfigError
from common.metrics import auc, gauc, logloss
from common.task import PaperTask, embedding_and_dense_groups
from common.units import UnitContributions, grouped_auc_units
from papers.twin import no_learning
from papers.twin.data import LifelongData, LifelongSplit, build_lifelong_data
from papers.twin.model import LifelongCTRModel, TwinModelConfig, click_loss
from papers.twin.retrieval import ConsistencyPreservedGSU
from papers.twin.synthetic import (
    SyntheticLifelongConfig,
    ensure_dataset,
    impression_click_probabilities,
    sample_period_start,
)

DATASETS = ("synthetic_lifelong", "kuairand")
SPLITS = ("train", "valid", "test")


@dataclass
class LifelongDataConfig(KuaiRandSourceConfig):
    name: str = "synthetic_lifelong"
    data_card: str = "data_cards/synthetic_lifelong.md"
    generator: SyntheticLifelongConfig = field(default_factory=SyntheticLifelongConfig)


class TwinTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(TwinModelConfig, cfg.model, "model")
        self.data_config = typed_config(LifelongDataConfig, cfg.data, "data")
        require_choice(self.data_config.name, DATASETS, "data.name")
        self.no_learning = typed_config(no_learning.NoLearningConfig, cfg.get("no_learning"), "no_learning")
        self.data: LifelongData | None = None
        self.split_rows: dict[str, np.ndarray] = {}

    def _folder(self) -> tuple[Path, str]:
        config = self.data_config
        generate = partial(ensure_dataset, config.generator, Path(config.cache_dir), progress=self.context.is_main)
        return kuairand_folder(config, "synthetic_lifelong", generate)

    def prepare_data(self) -> None:
        self._folder()

    def load_data(self):
        return self.make_splits(self.load_samples())

    def load_samples(self) -> dict[str, np.ndarray]:
        """Read the logs into `self.data`; the sample rows of the train, valid and test days."""
        config = self.data_config
        folder, version = self._folder()
        tables = read_kuairand(folder, version, config.data_card, config.include_random_logs)
        start = config.sample_start_date
        if start is None:
            start = sample_period_start(config.generator) if config.name == "synthetic_lifelong" else 20220422
        self.data = build_lifelong_data(tables, start, config.user_feature_columns)
        self.split_rows = split_by_day(self.data.samples["date"].to_numpy(), config.valid_days, config.test_days)
        return self.split_rows

    def make_splits(self, rows: dict[str, np.ndarray]) -> tuple[LifelongSplit, ...]:
        lengths = (self.model_config.gsu_length, self.model_config.short_length)
        return tuple(LifelongSplit(self.data, rows[name], *lengths) for name in SPLITS)

    def build_model(self) -> nn.Module:
        data = self.data
        tables = {"item_author": data.item_author, "item_tag": data.item_tag, "item_duration": data.item_duration}
        return LifelongCTRModel(self.model_config, data.vocabulary, tables)

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return embedding_and_dense_groups(model)

    def loss(self, model, batch):
        logits, auxiliary = model(batch)
        return click_loss(logits, auxiliary, batch["label"], self.model_config.aux_loss_weight)

    def predict(self, model, batch):
        core = model.module if hasattr(model, "module") else model
        logits, _, selection = core.score(batch)
        return {
            "probability": torch.sigmoid(logits.float()),
            "label": batch["label"],
            "user": batch["user"],
            "gsu_esu_overlap": core.gsu_esu_overlap(batch, selection),
        }

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        labels, scores = outputs["label"], outputs["probability"]
        result = {
            "auc": auc(labels, scores),
            "gauc": gauc(labels, scores, outputs["user"]),
            "logloss": logloss(labels, scores),
        }
        overlap = outputs["gsu_esu_overlap"]
        if not np.all(np.isnan(overlap)):
            result["gsu_esu_overlap"] = float(np.nanmean(overlap))
        return result

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions:
        """Per-user contributions of GAUC, logloss and the GSU-ESU overlap (pooled AUC does not decompose)."""
        return user_units(outputs)

    def no_learning_scorers(self) -> tuple[str, ...]:
        return no_learning.SCORERS

    def score_without_learning(self, name: str, split: LifelongSplit) -> dict[str, np.ndarray]:
        settings, length = self.no_learning, self.no_learning.recent_length
        scorers = {
            "oracle": lambda: no_learning.oracle(split, self.generator_click_probabilities()),
            "trivial_recent_topic": lambda: no_learning.recent_topic_share(split, length),
            "trivial_tag_completion": lambda: no_learning.tag_completion(split, self.model_config.gsu_length, length),
            "trivial_popularity": lambda: no_learning.popularity(
                split, self.split_rows["train"], settings.popularity_prior
            ),
        }
        if name not in scorers:
            return super().score_without_learning(name, split)
        return no_learning.split_outputs(split, scorers[name]())

    def generator_click_probabilities(self):
        """The embedded dataset's click probability of every impression, replayed from the generator's seed."""
        config = self.data_config
        if config.name != "synthetic_lifelong" or config.root:
            raise ConfigError(
                "scorer=oracle needs the embedded dataset's generator (data=synthetic_lifelong without data.root); "
                f"data.name={config.name!r} has no known click probabilities."
            )
        return impression_click_probabilities(config.generator)

    def on_train_step(self, model: nn.Module, step: int) -> None:
        retriever = model.retriever
        refresh = self.model_config.gsu_cache_refresh_steps
        if isinstance(retriever, ConsistencyPreservedGSU) and retriever.use_cache and step % refresh == 0:
            retriever.refresh_cache(model.features)

    def bench(self):
        from papers.twin.bench import TwinBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(TwinBenchConfig, self.cfg.get("bench"), "bench"))


def user_units(outputs: dict[str, np.ndarray]) -> UnitContributions:
    """The test metrics over users: GAUC's per-user AUC weighted by impressions (users of one class weigh 0),
    logloss's per-user mean weighted by impressions, and the overlap's per-user mean weighted by its defined
    samples (when the model has a search unit)."""
    labels, scores, users = outputs["label"], outputs["probability"], np.asarray(outputs["user"])
    ids, members = np.unique(users, return_inverse=True)
    units = UnitContributions(unit="user", ids=ids)
    units.add_mean("gauc", *aligned_mean(grouped_auc_units(labels, scores, users, unit="user"), "gauc", ids))
    losses = [logloss(labels[members == index], scores[members == index]) for index in range(len(ids))]
    units.add_mean("logloss", losses, np.bincount(members, minlength=len(ids)))
    overlap = np.asarray(outputs["gsu_esu_overlap"], dtype=np.float64)
    defined = ~np.isnan(overlap)
    if defined.any():
        count = np.bincount(members, weights=defined, minlength=len(ids))
        total = np.bincount(members, weights=np.where(defined, overlap, 0.0), minlength=len(ids))
        units.add_mean("gsu_esu_overlap", total / np.maximum(count, 1), count)
    return units


def aligned_mean(units: UnitContributions, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values and weights of mean metric `name` of `units` on the unit ids `ids` (value 0, weight 0 where a
    unit does not take part)."""
    entry = units.metrics[name]
    position = np.searchsorted(ids, units.ids)
    values, weights = np.zeros(len(ids)), np.zeros(len(ids))
    values[position], weights[position] = entry.first, entry.second
    return values, weights
