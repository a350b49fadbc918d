"""PEPNet's benchmarks (mode=bench): training throughput and inference latency of PEPNet against MMoE with
the same features and task towers, i.e. the cost of the Gate NUs, measured side by side in one process."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from common.bench import (
    BenchFigure,
    median_seconds,
    multiple_figure,
    throughput_figure,
    training_samples_per_second,
)
from common.config import bounded
from papers.pepnet.model import build_model


@dataclass
class PEPNetBenchConfig:
    train_steps: int = bounded(30, minimum=1)
    batch_size: int = bounded(1024, minimum=1)
    latency_batch: int = bounded(512, minimum=1)  # candidates scored per request
    repeats: int = bounded(50, minimum=1)
    threads: int = bounded(1, minimum=1)  # inference latency is measured on this many cores


def _models(task):
    return {name: build_model(replace(task.model_config, name=name), task.data) for name in ("pepnet", "mmoe")}


def run_benchmarks(task, settings: PEPNetBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    train, _, test = task.load_data()
    torch.manual_seed(0)
    models = _models(task)
    batch_size = min(settings.batch_size, len(train))
    steps = settings.train_steps
    rates = {name: training_samples_per_second(task, model, train, steps, batch_size) for name, model in models.items()}
    note = f"batch {batch_size}, {torch.get_num_threads()} threads, same towers {task.model_config.tower_dims}"
    figures = [throughput_figure("PEPNet training", rates["pepnet"], "MMoE training", rates["mmoe"], note)]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        request = test.batch(np.arange(min(settings.latency_batch, len(test))))
        latency = {}
        for name, model in models.items():
            model.eval()
            with torch.no_grad():
                latency[name] = median_seconds(lambda model=model: model(request), settings.repeats)
    finally:
        torch.set_num_threads(previous_threads)
    note = f"{len(request['labels'])} candidates per request, {settings.threads} thread(s)"
    figures.append(multiple_figure("PEPNet inference", latency["pepnet"], "MMoE inference", latency["mmoe"], note))
    return figures
