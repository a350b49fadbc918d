"""PEPNet's benchmarks (mode=bench): training throughput and inference latency of PEPNet and of DCNv2 (Table 2's
strongest single-task baseline, one model per task) against MMoE, with the same features and task towers: the
cost of the Gate NUs and of six cross networks, measured side by side in one process. Training steps use the
configured optimizers (trainer.optimizers: AdaGrad for the embeddings, Adam for the dense layers)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from common.bench import BenchFigure, median_seconds, multiple_figure, throughput_figure, training_samples_per_second
from common.config import bounded
from papers.pepnet.model import build_model

MODELS = {"pepnet": "PEPNet", "dcn_v2": "DCNv2", "mmoe": "MMoE"}  # MMoE: the reference of both ratios


@dataclass
class PEPNetBenchConfig:
    train_steps: int = bounded(30, minimum=1)
    batch_size: int = bounded(1024, minimum=1)
    latency_batch: int = bounded(512, minimum=1)  # candidates scored per request
    repeats: int = bounded(50, minimum=1)
    threads: int = bounded(1, minimum=1)  # inference latency is measured on this many cores


def inference_seconds(models: dict, request: dict, settings: PEPNetBenchConfig) -> dict[str, float]:
    """Median latency of one request per model, on `settings.threads` cores."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        latency = {}
        for name, model in models.items():
            model.eval()
            with torch.no_grad():
                latency[name] = median_seconds(lambda model=model: model(request), settings.repeats)
    finally:
        torch.set_num_threads(previous_threads)
    return latency


def run_benchmarks(task, settings: PEPNetBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    train, _, test = task.load_data()
    torch.manual_seed(0)
    models = {name: build_model(replace(task.model_config, name=name), task.data) for name in MODELS}
    batch_size = min(settings.batch_size, len(train))
    steps = settings.train_steps
    rates = {name: training_samples_per_second(task, model, train, steps, batch_size) for name, model in models.items()}
    note = f"batch {batch_size}, {torch.get_num_threads()} threads, same towers {task.model_config.tower_dims}"
    request = test.batch(np.arange(min(settings.latency_batch, len(test))))
    latency = inference_seconds(models, request, settings)
    latency_note = f"{len(request['labels'])} candidates per request, {settings.threads} thread(s)"
    figures = []
    for name in ("pepnet", "dcn_v2"):
        label = MODELS[name]
        figures.append(throughput_figure(f"{label} training", rates[name], "MMoE training", rates["mmoe"], note))
        figures.append(
            multiple_figure(f"{label} inference", latency[name], "MMoE inference", latency["mmoe"], latency_note)
        )
    return figures
