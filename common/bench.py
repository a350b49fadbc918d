"""Side-by-side performance figures: each measured against its baseline in the same process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from common.atomic_files import write_json_atomic
from common.config import typed_config


@dataclass
class BenchFigure:
    """One figure of `mode=bench` beside its baseline; `ratio_meaning` says how to read `ratio`."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    ratio: float
    ratio_meaning: str
    note: str = ""


def median_seconds(function: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of `function()` over `repeats` calls, after `warmup` calls, synchronising CUDA."""
    for _ in range(warmup):
        function()
    timings = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def samples_per_second(step: Callable[[], object], steps: int, batch_size: int) -> float:
    """Training throughput: `step()` (one optimizer step on `batch_size` samples) once to warm up, then timed
    over `steps` calls."""
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def training_samples_per_second(task, model: torch.nn.Module, split, steps: int, batch_size: int) -> float:
    """Samples/s of full training steps on random batches of `split`: batch gathering, the task's loss,
    backward and an update by each of the configured optimizers (trainer.optimizers, by parameter group)."""
    # imported here: common.trainer imports common.task, which imports this module
    from common.trainer import TrainerConfig, build_optimizers

    settings = typed_config(TrainerConfig, task.cfg.trainer, "trainer")
    optimizers = build_optimizers(task.parameter_groups(model), settings.optimizers).values()
    rng = np.random.default_rng(0)

    def step():
        batch = split.batch(rng.choice(len(split), batch_size, replace=False))
        loss, _ = task.loss(model, batch)
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()

    return samples_per_second(step, steps, batch_size)


def speedup_figure(
    name: str, seconds: float, baseline_name: str, baseline_seconds: float, note: str = ""
) -> BenchFigure:
    """A latency in milliseconds and how many times faster than the baseline it is."""
    speedup = baseline_seconds / seconds
    return BenchFigure(name, seconds * 1e3, "ms", baseline_name, baseline_seconds * 1e3, speedup, "speedup", note)


def multiple_figure(
    name: str, seconds: float, baseline_name: str, baseline_seconds: float, note: str = ""
) -> BenchFigure:
    """A latency in milliseconds as a multiple of the baseline's (e.g. of a floor no code can beat)."""
    multiple = seconds / baseline_seconds
    return BenchFigure(
        name, seconds * 1e3, "ms", baseline_name, baseline_seconds * 1e3, multiple, "× baseline time", note
    )


def throughput_figure(
    name: str, rate: float, baseline_name: str, baseline_rate: float, note: str = "", unit: str = "samples/s"
) -> BenchFigure:
    """A rate (samples per second unless `unit` says otherwise) and its multiple of the baseline's rate."""
    return BenchFigure(name, rate, unit, baseline_name, baseline_rate, rate / baseline_rate, "× baseline rate", note)


def format_figures(figures: list[BenchFigure]) -> str:
    header = "| figure | value | baseline | baseline value | ratio | note |\n|---|---:|---|---:|---:|---|\n"
    rows = [
        f"| {f.name} | {f.value:.4g} {f.unit} | {f.baseline_name} | {f.baseline_value:.4g} {f.unit} | "
        f"{f.ratio:.3g} ({f.ratio_meaning}) | {f.note} |"
        for f in figures
    ]
    return header + "\n".join(rows)


def write_figures(figures: list[BenchFigure], run_dir: Path) -> Path:
    return write_json_atomic(run_dir / "bench.json", [asdict(figure) for figure in figures])
