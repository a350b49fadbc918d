"""ML-FSIC benchmarks (mode=bench): training and test episodes per second of word-vector guided prototypes
against the mean-prototype baseline on the same episodes. Both compute the backbone features of an
episode's support and query images once, in one batch."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from common.bench import BenchFigure, throughput_figure
from common.config import bounded
from papers.ml_fsic.model import WordGuidedPrototypes, episode_loss


@dataclass
class MLFSICBenchConfig:
    episodes: int = bounded(10, minimum=1)


def _episodes_per_second(step, episodes: int) -> float:
    step(0)
    start = time.perf_counter()
    for index in range(1, episodes + 1):
        step(index)
    return episodes / (time.perf_counter() - start)


def run_benchmarks(task, settings: MLFSICBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    train, _, test = task.load_data()
    models = {
        "word-vector guided prototypes": WordGuidedPrototypes(task.model_config.prototypes, task.word_dim),
        "mean prototypes": WordGuidedPrototypes(
            replace(task.model_config.prototypes, attention="global_vector", weighting="mean"), task.word_dim
        ),
    }
    train_rate, test_rate = {}, {}
    for name, model in models.items():
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_step(index, model=model, optimizer=optimizer):
            batch = train.batch(np.array([index % len(train)]))
            loss = episode_loss(model(batch), batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        @torch.no_grad()
        def test_step(index, model=model):
            model.eval()
            model(test.batch(np.array([index % len(test)])))

        train_rate[name] = _episodes_per_second(train_step, settings.episodes)
        test_rate[name] = _episodes_per_second(test_step, settings.episodes)
    main, baseline = models
    shape = task.episodes
    ways = shape.ways.test or "all"
    note = f"{ways}-way test, {shape.queries_per_label} queries per label, {torch.get_num_threads()} threads"
    return [
        throughput_figure(
            "training episodes, " + main, train_rate[main], baseline, train_rate[baseline], note, "episodes/s"
        ),
        throughput_figure("test episodes, " + main, test_rate[main], baseline, test_rate[baseline], note, "episodes/s"),
    ]
