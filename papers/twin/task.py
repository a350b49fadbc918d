"""TWIN's task for the shared runner: data, model, loss, predictions, metrics and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from torch import nn

from common.checkpoint import trained_weights
from common.config import bounded, typed_config
from common.data.kuairand import KuaiRandSourceConfig, kuairand_folder, read_kuairand, split_by_day
from common.errors import ConfigError
from common.metrics import logloss
from common.task import PaperTask
from common.trainer import TrainerConfig, predict_rows, score_outputs
from common.units import UnitContributions, grouped_auc_units
from papers.twin import no_learning
from papers.twin.data import LifelongData, LifelongSplit, build_lifelong_data
from papers.twin.ids import DataIds, TrainedIds, align_to_trained
from papers.twin.model import TwinModelConfig
from papers.twin.prediction import PREDICTIONS_CSV, raw_ids_of_samples, write_predictions
from papers.twin.synthetic import (
    SyntheticLifelongConfig,
    check_generator,
    ensure_dataset,
    impression_click_probabilities,
    sample_period_start,
)
from papers.twin.trainee import LifelongCTRTrainee

DATASETS = ("synthetic_lifelong", "kuairand")
SPLITS = ("train", "valid", "test")


@dataclass
class LifelongDataConfig(KuaiRandSourceConfig):
    name: str = bounded("synthetic_lifelong", choices=DATASETS)
    data_card: str = "data_cards/synthetic_lifelong.md"
    generator: SyntheticLifelongConfig = field(default_factory=SyntheticLifelongConfig)


class TwinTask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(TwinModelConfig, cfg.model, "model")
        self.data_config = typed_config(LifelongDataConfig, cfg.data, "data")
        check_generator(self.data_config.generator)
        self.no_learning = typed_config(no_learning.NoLearningConfig, cfg.get("no_learning"), "no_learning")
        self.trainee = LifelongCTRTrainee(context, self.model_config)
        self.data_ids: DataIds | None = None
        self.split_rows: dict[str, np.ndarray] = {}

    @property
    def data(self) -> LifelongData | None:
        """The loaded logs (the trainee's, which builds the model on their vocabulary)."""
        return self.trainee.data

    @data.setter
    def data(self, data: LifelongData) -> None:
        self.trainee.data = data

    def _folder(self) -> tuple[Path, str]:
        config = self.data_config
        generate = partial(ensure_dataset, config.generator, Path(config.cache_dir), progress=self.context.is_main)
        return kuairand_folder(config, "synthetic_lifelong", generate)

    def prepare_data(self) -> None:
        self._folder()

    def load_data(self):
        return self.make_splits(self.load_training_samples())

    def load_samples(self) -> dict[str, np.ndarray]:
        """Read the logs into `self.data` (and their raw ids into `self.data_ids`); the sample rows of the train,
        valid and test days."""
        config = self.data_config
        folder, version = self._folder()
        tables = read_kuairand(folder, version, config.data_card, config.include_random_logs)
        start = config.sample_start_date
        if start is None:
            start = sample_period_start(config.generator) if config.name == "synthetic_lifelong" else 20220422
        self.data = build_lifelong_data(tables, start, config.user_feature_columns)
        self.data_ids = DataIds.of_tables(tables, config.user_feature_columns)
        self.split_rows = split_by_day(self.data.samples["date"].to_numpy(), config.valid_days, config.test_days)
        return self.split_rows

    def load_training_samples(self) -> dict[str, np.ndarray]:
        """`load_samples`, keeping the raw ids of the indices the model is trained on in the run directory (ids.npz,
        which mode=predict reads to align new data)."""
        rows = self.load_samples()
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            TrainedIds.of_data(self.data_ids, self.data).save(self.run_dir)
        return rows

    def make_splits(self, rows: dict[str, np.ndarray]) -> tuple[LifelongSplit, ...]:
        lengths = (self.model_config.gsu_length, self.model_config.short_length)
        return tuple(LifelongSplit(self.data, rows[name], *lengths) for name in SPLITS)

    def build_model(self) -> nn.Module:
        return self.trainee.build_model()

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return self.trainee.parameter_groups(model)

    def loss(self, model, batch):
        return self.trainee.loss(model, batch)

    def predict(self, model, batch):
        return self.trainee.predict(model, batch)

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return self.trainee.metrics(outputs)

    def on_train_step(self, model: nn.Module, step: int) -> None:
        self.trainee.on_train_step(model, step)

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions:
        """Per-user contributions of GAUC, logloss and the GSU-ESU overlap (pooled AUC does not decompose)."""
        return user_units(outputs)

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """Score the test days of this task's data with the trained run's model (new data aligned to its ids:
        papers/twin/ids.py); predictions.csv in `output_dir`, and the test metrics (KuaiRand logs carry clicks)."""
        trained = TrainedIds.load(trained_run)
        rows = self.load_samples()["test"]
        user_ids, video_ids = raw_ids_of_samples(self.data.samples, rows, self.data_ids)
        self.data = align_to_trained(self.data, self.data_ids, trained)
        split = self.make_splits({name: rows for name in SPLITS})[2]
        return self.score_and_write(self.trainee, trained_run, split, (user_ids, video_ids), output_dir)

    def score_and_write(
        self,
        trainee: LifelongCTRTrainee,
        weights_dir: Path,
        split: LifelongSplit,
        raw_ids: tuple[np.ndarray, np.ndarray],
        output_dir: Path,
    ) -> dict[str, float]:
        """Load the weights trained in `weights_dir` into `trainee`'s model, score `split`, write predictions.csv
        (rank 0) and return the metrics."""
        model = trainee.build_model()
        model.load_state_dict(trained_weights(weights_dir))
        model.to(self.context.device)
        settings = typed_config(TrainerConfig, self.cfg.trainer, "trainer")
        rows = np.arange(len(split))
        outputs = predict_rows(trainee, model, split, rows, settings.eval_batch_size, self.context.device)
        if self.context.is_main:
            write_predictions(output_dir / PREDICTIONS_CSV, *raw_ids, outputs["probability"])
        return score_outputs(trainee, outputs, len(split), "test")

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
