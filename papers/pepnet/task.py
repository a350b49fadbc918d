"""PEPNet's task for the shared runner: multi-domain, multi-task data, the model, summed BCE, and AUC/GAUC
per domain × task."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.checkpoint import trained_weights
from common.config import bounded, require_choice, typed_config
from common.data.kuairand import (
    TASK_COLUMNS,
    KuaiRandSourceConfig,
    KuaiRandTables,
    kuairand_folder,
    read_kuairand,
    split_by_day,
)
from common.errors import ConfigError, DatasetError
from common.metrics.multitask import domain_task_metrics
from common.task import PaperTask, embedding_and_dense_groups
from common.trainer import predict_rows
from common.units import UnitContributions
from papers.pepnet.data import MultiDomainData, MultiDomainSplit, build_multidomain_data
from papers.pepnet.gauc_units import domain_task_gauc_units
from papers.pepnet.model import PEPNetModelConfig, build_model, multitask_loss
from papers.pepnet.no_learning import (
    ORACLE,
    TRIVIAL_KEYS,
    NoLearningConfig,
    oracle_probabilities,
    rate_lookup,
)
from papers.pepnet.predict import PREDICTIONS_CSV, unknown_note, write_predictions
from papers.pepnet.synthetic import SyntheticMultiDomainConfig, ensure_dataset, sample_period_start
from papers.pepnet.vocabulary import VOCABULARY_FILE, Vocabulary, load_vocabulary, translate, vocabulary_of

DATASETS = ("synthetic_multidomain", "kuairand")
SPLITS = ("train", "valid", "test")


@dataclass
class MultiDomainDataConfig(KuaiRandSourceConfig):
    name: str = bounded("synthetic_multidomain", choices=DATASETS)
    valid_days: int = bounded(1, minimum=1)
    test_days: int = bounded(2, minimum=1)
    data_card: str = "data_cards/synthetic_multidomain.md"
    tasks: list[str] = bounded(
        default_factory=lambda: ["is_click", "long_view", "is_like", "is_follow", "is_forward"], choices=TASK_COLUMNS
    )
    domains: list[int] | None = bounded(None, minimum=0)  # tab values; null: every tab of the sample period
    generator: SyntheticMultiDomainConfig = field(default_factory=SyntheticMultiDomainConfig)


class PEPNetTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(PEPNetModelConfig, cfg.model, "model")
        self.data_config = typed_config(MultiDomainDataConfig, cfg.data, "data")
        self.data: MultiDomainData | None = None
        self.train_rows: np.ndarray | None = None
        self.vocabulary: Vocabulary | None = None

    def _folder(self) -> tuple[Path, str]:
        config = self.data_config
        if config.name == "synthetic_multidomain" and config.tasks != config.generator.tasks:
            raise DatasetError(
                f"data.tasks={config.tasks} must be the generated tasks data.generator.tasks="
                f"{config.generator.tasks} for synthetic_multidomain."
            )
        generate = partial(ensure_dataset, config.generator, Path(config.cache_dir), progress=self.context.is_main)
        return kuairand_folder(config, "synthetic_multidomain", generate)

    def prepare_data(self) -> None:
        self._folder()

    def _read(self) -> tuple[KuaiRandTables, MultiDomainData]:
        config = self.data_config
        folder, version = self._folder()
        tables = read_kuairand(folder, version, config.data_card, config.include_random_logs)
        start = config.sample_start_date
        if start is None:
            start = sample_period_start(config.generator) if config.name == "synthetic_multidomain" else 20220422
        data = build_multidomain_data(tables, start, config.tasks, config.domains, config.user_feature_columns)
        return tables, data

    def _split_rows(self) -> dict[str, np.ndarray]:
        return split_by_day(self.data.date, self.data_config.valid_days, self.data_config.test_days)

    def load_data(self) -> tuple[MultiDomainSplit, ...]:
        tables, self.data = self._read()
        self.vocabulary = vocabulary_of(tables, self.data, self.data_config.user_feature_columns)
        rows = self._split_rows()
        self.train_rows = rows["train"]
        return tuple(MultiDomainSplit(self.data, rows[name]) for name in SPLITS)

    def build_model(self) -> nn.Module:
        return build_model(self.model_config, self.data)

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return embedding_and_dense_groups(model)

    def loss(self, model, batch):
        return multitask_loss(model(batch), batch["labels"])

    def predict(self, model, batch):
        return {
            "probability": torch.sigmoid(model(batch).float()),
            "labels": batch["labels"],
            "user": batch["user"],
            "domain": batch["domain"],
        }

    def _cells(self, outputs: dict[str, np.ndarray]) -> tuple:
        """The outputs as the per-cell metrics read them: labels, scores, users, domains and the cells' names."""
        domains = outputs["domain"].astype(np.int64)
        names = (self.data.domain_names, self.data.task_names)
        return outputs["labels"], outputs["probability"], outputs["user"], domains, *names

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return domain_task_metrics(*self._cells(outputs))

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions:
        """Per-user contributions of every GAUC cell and of the GAUC means (AUC ranks samples across users and
        does not decompose by user)."""
        return domain_task_gauc_units(*self._cells(outputs))

    def write_outputs(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """The raw id behind every embedding row (papers/pepnet/vocabulary.py), which mode=predict reads."""
        self.vocabulary.save(run_dir / VOCABULARY_FILE)
        return {}

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """Score every impression of this data's test days with the run `trained_run`: predictions.csv, and the
        test metrics of its labels. Ids the run never saw take the reserved unknown row; tabs it never saw are
        refused (papers/pepnet/vocabulary.py)."""
        if not self.context.is_main:
            return {}
        vocabulary = load_vocabulary(trained_run)
        if self.data_config.tasks != vocabulary.task_names:
            raise ConfigError(
                f"data.tasks={self.data_config.tasks}, but the model of from_run={trained_run} predicts the tasks "
                f"{vocabulary.task_names}: give data.tasks={vocabulary.task_names} (for synthetic_multidomain, "
                "data.generator.tasks too)."
            )
        tables, data = self._read()
        translation = translate(tables, data, vocabulary, self.data_config.user_feature_columns)
        self.data = translation.data
        test = MultiDomainSplit(self.data, self._split_rows()["test"])
        model = self.build_model()
        model.load_state_dict(trained_weights(trained_run))
        model.to(self.context.device)
        rows, batch_size = np.arange(len(test)), int(self.cfg.trainer.eval_batch_size)
        outputs = predict_rows(self, model, test, rows, batch_size, self.context.device)
        path = write_predictions(output_dir / PREDICTIONS_CSV, self.data, test.rows, outputs["probability"])
        print(f"wrote {path}: {len(test)} impressions; {unknown_note(translation.unknown, test.rows)}")
        try:
            return self.metrics(outputs)
        except ValueError as error:
            print(f"no metrics: {error} on the test days")
            return {}

    def no_learning_scorers(self) -> tuple[str, ...]:
        generated = self.data_config.name == "synthetic_multidomain" and not self.data_config.root
        return ((ORACLE,) if generated else ()) + tuple(TRIVIAL_KEYS)

    def score_without_learning(self, name: str, split: MultiDomainSplit) -> dict[str, np.ndarray]:
        """The outputs `predict` gives, with the scorer's probabilities (papers/pepnet/no_learning.py)."""
        return {
            "probability": self._no_learning_probabilities(name, split).astype(np.float32),
            "labels": split.labels.numpy(),
            "user": split.user.numpy(),
            "domain": split.domain.numpy(),
        }

    def _no_learning_probabilities(self, name: str, split: MultiDomainSplit) -> np.ndarray:
        data = self.data
        require_choice(name, self.no_learning_scorers(), "scorer")
        if name == ORACLE:
            ids = {column: values[split.rows] for column, values in data.log_ids.items()}
            return oracle_probabilities(self.data_config.generator, ids["user_id"], ids["video_id"], ids["tab"])
        key = data.columns([TRIVIAL_KEYS[name]])[0]
        smoothing = typed_config(NoLearningConfig, self.cfg.get("no_learning"), "no_learning").smoothing
        train = self.train_rows
        return rate_lookup(data.features[train, key], data.labels[train], data.features[split.rows, key], smoothing)

    def bench(self):
        from papers.pepnet.bench import PEPNetBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(PEPNetBenchConfig, self.cfg.get("bench"), "bench"))
