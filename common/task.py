"""The contract between the shared runner/trainer and a paper package."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from common.bench import BenchFigure
from common.data.generated import dataset_root
from common.distributed import DistributedContext
from common.errors import ConfigError
from common.units import UnitContributions


class BatchSource(Protocol):
    """A split of a dataset that builds whole batches from sample indices (vectorised collation)."""

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]: ...


class PaperTask(ABC):
    """What a paper package provides: data, model, loss, predictions, metrics and benchmarks."""

    def __init__(self, cfg: DictConfig, context: DistributedContext, run_dir: Path):
        self.cfg = cfg
        self.context = context
        self.run_dir = run_dir

    @property
    def model_name(self) -> str:
        """The run record's model: `model_config.name` unless a task says otherwise."""
        return self.model_config.name

    @property
    def dataset_name(self) -> str:
        """The run record's dataset: `data_config.name` unless a task says otherwise."""
        return self.data_config.name

    @property
    def data_seed(self) -> int | None:
        """The seed of the data draw this run reads: `data_seed` where the data config draws from it (a generator,
        unless data.root replaces it, or a sampling protocol); None for a fixed dataset, whose test set every seed
        shares."""
        data = self.cfg.get("data")
        if data is None:
            return None
        node = OmegaConf.to_container(data, resolve=False)
        if data.get("root"):
            node.pop("generator", None)
        return int(self.cfg.data_seed) if "${data_seed}" in str(node) else None

    def generated_or_given_root(self, generated: str, ensure: Callable[..., Path]) -> Path:
        """The folder the run reads: the embedded dataset `generated`, made on first use by
        `ensure(data_config.generator, cache_dir, progress=...)`, or else the user's data.root."""
        config = self.data_config
        generate = partial(ensure, config.generator, Path(config.cache_dir), progress=self.context.is_main)
        return dataset_root(config.name, config.root, config.data_card, generated, generate)

    @abstractmethod
    def prepare_data(self) -> None:
        """Generate or check the dataset on disk; runs on rank 0 before any rank loads it."""

    @abstractmethod
    def load_data(self) -> tuple[BatchSource, BatchSource, BatchSource]:
        """The train, validation and test splits."""

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer name (keys of trainer.optimizers); one group by default."""
        return {"dense": [p for p in model.parameters() if p.requires_grad]}

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss and any scalars to log beside it."""

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor], update: Callable) -> dict[str, float]:
        """One training step on a batch; returns the scalars to log (with "loss"). `update(compute, names=None)`
        runs `compute()` -> (loss, logs) under autocast, backpropagates and steps the optimizers named (all by
        default). A task with several updates per batch (adversarial training) calls it once per update."""
        return update(lambda: self.loss(model, batch))

    @abstractmethod
    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-sample outputs for evaluation (concatenated over batches and ranks)."""

    @abstractmethod
    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]: ...

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions | None:
        """Per-unit contributions of the test metrics (common/units.py), from the same outputs as `metrics`, so
        that the reproduced tables can bootstrap over the paper's test unit; None: seed-only intervals."""
        return None

    def stages(self) -> list | None:
        """The ordered stages of a multi-stage run (common/stages.py), the last of which trains the run's model;
        None: one stage, the runner trains `build_model` on `load_data`'s splits in the run directory itself."""
        return None

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """mode=predict: apply the model(s) of the finished run `trained_run` (whose typed config this task was
        built with, its data config replaced by this run's) to this task's data, write the predictions into
        `output_dir` in the data's own format, and return metrics where the data has labels ({} otherwise)."""
        raise ConfigError(f"mode=predict is not available for {type(self).__name__} yet.")

    def no_learning_scorers(self) -> tuple[str, ...]:
        """Names of the scorers that score the test split without training (`oracle`, `trivial_<name>`)."""
        return ()

    def score_without_learning(self, name: str, split: BatchSource) -> dict[str, np.ndarray]:
        """The outputs of no-learning scorer `name` on `split`, with the keys and shapes of the concatenated
        `predict` outputs, so that `metrics` and `test_units` score them as they score a trained model."""
        raise ConfigError(
            f"scorer={name!r} is not a no-learning scorer of {type(self).__name__}; "
            f"allowed: {', '.join(self.no_learning_scorers()) or 'none'}."
        )

    def record_metrics(self, test_metrics: dict[str, float]) -> dict[str, float]:
        """The metrics the run record keeps: the test metrics, plus any figure the task measured outside the
        trainer's evaluation (e.g. a baseline trained in the same run)."""
        return test_metrics

    def write_outputs(self, model: nn.Module, run_dir: Path) -> dict[str, Path]:
        """Files a user would rather look at than read (e.g. overlays), written after training on rank 0;
        the images among them are logged to wandb under the returned names."""
        return {}

    def on_train_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step with the unwrapped model (e.g. to refresh a cache)."""
        return None

    def bench(self) -> list[BenchFigure]:
        raise NotImplementedError(f"{type(self).__name__} has no benchmarks")


def embedding_and_dense_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Parameters of embedding tables apart from the dense layers' (AdaGrad and Adam in the recsys papers)."""
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    parameters = list(model.parameters())
    return {
        "embedding": [p for p in parameters if id(p) in embedding_ids],
        "dense": [p for p in parameters if id(p) not in embedding_ids],
    }
