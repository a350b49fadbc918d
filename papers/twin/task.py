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
from common.metrics import auc, gauc, logloss
from common.task import PaperTask, embedding_and_dense_groups
from papers.twin.data import LifelongData, LifelongSplit, build_lifelong_data
from papers.twin.model import LifelongCTRModel, TwinModelConfig, click_loss
from papers.twin.retrieval import ConsistencyPreservedGSU
from papers.twin.synthetic import SyntheticLifelongConfig, ensure_dataset, sample_period_start

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
        self.data: LifelongData | None = None

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
        return split_by_day(self.data.samples["date"].to_numpy(), config.valid_days, config.test_days)

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

    def on_train_step(self, model: nn.Module, step: int) -> None:
        retriever = model.retriever
        refresh = self.model_config.gsu_cache_refresh_steps
        if isinstance(retriever, ConsistencyPreservedGSU) and retriever.use_cache and step % refresh == 0:
            retriever.refresh_cache(model.features)

    def bench(self):
        from papers.twin.bench import TwinBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(TwinBenchConfig, self.cfg.get("bench"), "bench"))
