"""The training loop shared by every paper: optimizers per parameter group, AMP on CUDA, gradient
clipping, periodic evaluation, early stopping, atomic checkpoints, exact resume, DDP and a progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from common.checkpoint import load_checkpoint, save_atomic
from common.config import bounded, require_choice
from common.errors import ConfigError, DatasetError, TrainingError
from common.logging import RunLogger
from common.seeding import restore_rng_state, rng_state
from common.task import BatchSource, PaperTask


@dataclass
class OptimizerConfig:
    name: str = bounded("adam", choices=("adam", "adamw", "adagrad", "sgd"))
    lr: float = bounded(1e-3, above=0.0)
    weight_decay: float = bounded(0.0, minimum=0.0)
    betas: list[float] | None = bounded(None, minimum=0.0, below=1.0)  # Adam/AdamW's (beta1, beta2); null: default


@dataclass
class EarlyStoppingConfig:
    metric: str | None = None  # a validation metric, e.g. gauc; None: no early stopping
    mode: str = bounded("max", choices=("max", "min"))
    patience: int = bounded(2, minimum=0)  # validation passes without improvement before stopping


@dataclass
class TrainerConfig:
    """The shared training loop's settings (configs/trainer/default.yaml extends these defaults)."""

    device: str = bounded("auto", choices=("auto", "cpu", "cuda"))
    max_epochs: int = bounded(1, minimum=1)
    max_steps: int | None = bounded(None, minimum=1)  # stop earlier than max_epochs if set
    batch_size: int = bounded(256, minimum=1)  # the global batch, split across processes under torchrun
    eval_batch_size: int = bounded(1024, minimum=1)
    eval_every: int = bounded(0, minimum=0)  # steps between validation passes; 0: after each epoch
    log_every: int = bounded(10, minimum=1)
    checkpoint_every: int = bounded(50, minimum=1)  # steps; checkpoints are also written at every epoch's end
    grad_clip: float | None = bounded(1.0, above=0.0)  # max global gradient norm; None: no clipping
    warmup_steps: int = bounded(0, minimum=0)  # linear learning-rate warm-up from warmup_start_factor x lr to lr
    warmup_start_factor: float = bounded(0.01, above=0.0, maximum=1.0)
    amp: bool = True  # mixed precision, on CUDA only
    deterministic: bool = False
    progress_bar: bool = True
    optimizers: dict[str, OptimizerConfig] = field(default_factory=lambda: {"dense": OptimizerConfig()})
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "sgd": torch.optim.SGD,
}


def build_optimizers(
    groups: dict[str, list[nn.Parameter]], settings: dict[str, OptimizerConfig]
) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per named parameter group, e.g. AdaGrad for embeddings and Adam for dense layers."""
    optimizers = {}
    for name, parameters in groups.items():
        if name not in settings:
            raise ConfigError(
                f"The model has a parameter group '{name}' but trainer.optimizers has no entry for it; "
                f"configured groups: {', '.join(settings)}."
            )
        if not parameters:
            continue
        choice = settings[name]
        require_choice(choice.name, tuple(OPTIMIZERS), f"trainer.optimizers.{name}.name")
        options = {"lr": choice.lr, "weight_decay": choice.weight_decay}
        if choice.betas is not None:
            if choice.name not in ("adam", "adamw"):
                raise ConfigError(
                    f"trainer.optimizers.{name}.betas is set but {choice.name} has no betas; use adam or adamw."
                )
            options["betas"] = tuple(choice.betas)
        optimizers[name] = OPTIMIZERS[choice.name](parameters, **options)
    return optimizers


def warmup_factor(step: int, warmup_steps: int, start_factor: float) -> float:
    """The learning-rate multiplier of optimizer step `step` (0-based): linear from start_factor to 1."""
    if step >= warmup_steps:
        return 1.0
    return start_factor + (1.0 - start_factor) * step / warmup_steps


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The global batches of one epoch: a permutation fixed by (seed, epoch), last partial batch dropped."""
    order = np.random.default_rng([seed, epoch]).permutation(num_samples)
    count = num_samples // batch_size
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(count)]


@dataclass
class TrainingState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_value: float | None = None
    best_step: int = 0
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainingResult:
    metrics: dict[str, float]
    history: list[dict]
    state: TrainingState
    model: nn.Module
    test_outputs: dict[str, np.ndarray] = field(default_factory=dict)  # what the test metrics were computed from


class Trainer:
    def __init__(
        self, task: PaperTask, settings: TrainerConfig, seed: int, run_dir: Path, logger: RunLogger, resume: bool
    ):
        self.task = task
        self.settings = settings
        self.seed = seed
        self.context = task.context
        self.device = self.context.device
        self.logger = logger
        self.resume = resume
        self.checkpoint_dir = run_dir / "checkpoints"
        if settings.batch_size % self.context.world_size:
            raise ConfigError(
                f"trainer.batch_size={settings.batch_size} is the global batch and must be divisible by the "
                f"number of processes ({self.context.world_size})."
            )
        require_choice(settings.early_stopping.mode, ("max", "min"), "trainer.early_stopping.mode")
        self.use_amp = settings.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)

    def autocast(self):
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def fit(self, train: BatchSource, valid: BatchSource, test: BatchSource) -> TrainingResult:
        model = self.task.build_model().to(self.device)
        optimizers = build_optimizers(self.task.parameter_groups(model), self.settings.optimizers)
        state = TrainingState()
        if self.resume:
            state = self._restore(model, optimizers) or state
        wrapped = DistributedDataParallel(model) if self.context.is_distributed else model
        batches_per_epoch = len(train) // self.settings.batch_size
        if batches_per_epoch == 0:
            raise ConfigError(
                f"trainer.batch_size={self.settings.batch_size} exceeds the {len(train)} training samples."
            )
        total_steps = self.settings.max_epochs * batches_per_epoch
        if self.settings.max_steps is not None:
            total_steps = min(total_steps, self.settings.max_steps)
        progress = tqdm(
            total=total_steps,
            initial=state.step,
            desc=f"train {self.task.model_name}",
            disable=not (self.context.is_main and self.settings.progress_bar),
            dynamic_ncols=True,
        )
        while state.step < total_steps and not state.stopped_early:
            batches = epoch_batches(len(train), self.settings.batch_size, self.seed, state.epoch)
            for global_batch in batches[state.batch_in_epoch :]:
                local = global_batch[self.context.rank :: self.context.world_size]
                self._set_learning_rates(optimizers, state.step)
                logs = self._train_step(wrapped, optimizers, train.batch(local))
                state.step += 1
                state.batch_in_epoch += 1
                self.task.on_train_step(model, state.step)
                progress.update(1)
                progress.set_postfix(loss=f"{logs['loss']:.4f}")
                if state.step % self.settings.log_every == 0:
                    self._log(state, {f"train/{k}": v for k, v in logs.items()})
                if self.settings.eval_every and state.step % self.settings.eval_every == 0:
                    self._evaluate_and_track(wrapped, model, valid, state)
                if state.step >= total_steps or state.stopped_early:
                    break
                if state.step % self.settings.checkpoint_every == 0:
                    self._checkpoint(model, optimizers, state)
            if state.batch_in_epoch == len(batches):
                state.epoch += 1
                state.batch_in_epoch = 0
                if not self.settings.eval_every:
                    self._evaluate_and_track(wrapped, model, valid, state)
            self._checkpoint(model, optimizers, state)
        progress.close()
        if self.settings.early_stopping.metric and (self.checkpoint_dir / "best.pt").exists():
            model.load_state_dict(load_checkpoint(self.checkpoint_dir / "best.pt")["model"])
        test_outputs = self.predict_split(wrapped, test, "test")
        test_metrics = score_outputs(self.task, test_outputs, len(test), "test")
        return TrainingResult(test_metrics, state.history, state, model, test_outputs)

    def _train_step(self, model: nn.Module, optimizers: dict, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        model.train()
        batch = {name: value.to(self.device, non_blocking=True) for name, value in batch.items()}
        return self.task.training_step(model, batch, partial(self.update, optimizers))

    def update(self, optimizers: dict, compute: Callable, names: Sequence[str] | None = None) -> dict[str, float]:
        """One update: `compute()` (under autocast) gives the loss and scalars to log; backward, gradient
        clipping and a step of the optimizers in `names` (all by default). Gradients of every optimizer's
        parameters are cleared first, so updates of different parameter groups never mix."""
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, logs = compute()
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss.item()}; lower the learning rates in trainer.optimizers or set "
                "trainer.grad_clip."
            )
        chosen = list(optimizers.values()) if names is None else [optimizers[name] for name in names]
        self.scaler.scale(loss).backward()
        if self.settings.grad_clip:
            for optimizer in chosen:
                self.scaler.unscale_(optimizer)
            parameters = [p for optimizer in chosen for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, self.settings.grad_clip)
        for optimizer in chosen:
            self.scaler.step(optimizer)
        self.scaler.update()
        return {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}

    def _set_learning_rates(self, optimizers: dict, step: int) -> None:
        if step > self.settings.warmup_steps:
            return
        factor = warmup_factor(step, self.settings.warmup_steps, self.settings.warmup_start_factor)
        for name, optimizer in optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.settings.optimizers[name].lr * factor

    def evaluate(self, model: nn.Module, source: BatchSource, split: str) -> dict[str, float]:
        """Predict on `source` (every rank its share, gathered) and compute the task's metrics."""
        return score_outputs(self.task, self.predict_split(model, source, split), len(source), split)

    def predict_split(self, model: nn.Module, source: BatchSource, split: str) -> dict[str, np.ndarray]:
        """Predict on this rank's contiguous share of `source` and gather every rank's outputs."""
        share = np.array_split(np.arange(len(source)), self.context.world_size)[self.context.rank]
        quiet = not (self.context.is_main and self.settings.progress_bar)
        local = predict_rows(
            self.task, model, source, share, self.settings.eval_batch_size, self.device, self.autocast, split, quiet
        )
        gathered = self.context.all_gather_objects(local)
        return {name: np.concatenate([part[name] for part in gathered if name in part]) for name in local}

    def _evaluate_and_track(self, wrapped: nn.Module, model: nn.Module, valid: BatchSource, state: TrainingState):
        metrics = self.evaluate(wrapped, valid, "valid")
        self._log(state, {f"valid/{k}": v for k, v in metrics.items()})
        stopping = self.settings.early_stopping
        if not stopping.metric:
            return
        if stopping.metric not in metrics:
            raise ConfigError(
                f"trainer.early_stopping.metric={stopping.metric!r} is not computed; available: {', '.join(metrics)}."
            )
        value = metrics[stopping.metric]
        sign = 1.0 if stopping.mode == "max" else -1.0
        if state.best_value is None or sign * (value - state.best_value) > 0:
            state.best_value, state.best_step, state.evals_without_improvement = value, state.step, 0
            if self.context.is_main:
                save_atomic({"model": model.state_dict(), "step": state.step}, self.checkpoint_dir / "best.pt")
        else:
            state.evals_without_improvement += 1
            state.stopped_early = state.evals_without_improvement > stopping.patience

    def _log(self, state: TrainingState, metrics: dict[str, float]) -> None:
        state.history.append({"step": state.step, **metrics})
        self.logger.log_metrics(metrics, step=state.step)

    def _checkpoint(self, model: nn.Module, optimizers: dict, state: TrainingState) -> None:
        if not self.context.is_main:
            return
        payload = {
            "model": model.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "state": state.__dict__.copy(),
            "rng": rng_state(),
        }
        save_atomic(payload, self.checkpoint_dir / "last.pt")

    def _restore(self, model: nn.Module, optimizers: dict) -> TrainingState | None:
        path = self.checkpoint_dir / "last.pt"
        if not path.exists():
            return None
        payload = load_checkpoint(path)
        model.load_state_dict(payload["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][name])
        self.scaler.load_state_dict(payload["scaler"])
        restore_rng_state(payload["rng"])
        state = TrainingState(**payload["state"])
        if self.context.is_main:
            tqdm.write(f"resumed from {path} at step {state.step} (epoch {state.epoch}, batch {state.batch_in_epoch})")
        return state


@torch.no_grad()
def predict_rows(
    task: PaperTask,
    model: nn.Module,
    source: BatchSource,
    rows: np.ndarray,
    batch_size: int,
    device: torch.device,
    autocast: Callable = contextlib.nullcontext,
    split: str = "predict",
    quiet: bool = True,
) -> dict[str, np.ndarray]:
    """`task.predict`'s outputs on `rows` of `source`, in batches of `batch_size`, concatenated in row order."""
    model.eval()
    pieces: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(rows), batch_size), desc=f"eval {split}", leave=False, disable=quiet):
        batch = {name: value.to(device) for name, value in source.batch(rows[start : start + batch_size]).items()}
        with autocast():
            outputs = task.predict(model, batch)
        for name, value in outputs.items():
            pieces.setdefault(name, []).append(value.float().cpu().numpy())
    return {name: np.concatenate(values) for name, values in pieces.items()}


def score_outputs(task: PaperTask, outputs: dict[str, np.ndarray], size: int, split: str) -> dict[str, float]:
    """The task's metrics of `outputs`; a split too small for them is a DatasetError saying what to change."""
    try:
        return task.metrics(outputs)
    except ValueError as error:
        raise DatasetError(
            f"metrics on the {split} split ({size} samples) cannot be computed: {error}. "
            "Give the split more days or samples (see the data options in configs/data/)."
        ) from None
