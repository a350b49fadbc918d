"""OVRDL + AAL benchmarks (mode=bench): training steps per second of stage 1 (a task update, a discriminator
update and `adversary_steps` encoder/generator updates per batch) and of stage 2 (a seen and an unseen update
on recombined features), each against a plain classifier's step (one update of the same encoder)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from common.bench import BenchFigure, samples_per_second, throughput_figure
from common.logging import NullLogger
from common.trainer import Trainer, build_optimizers
from papers.ovrdl_aal.aal import MixSource, confident_rows


@dataclass
class OVRDLBenchConfig:
    steps: int = 20


def _steps_per_second(task, model, source, steps: int, run_dir) -> float:
    """Steps/s of `task.training_step` on random batches of `source`, through the shared trainer's update."""
    settings = task.trainer_settings
    trainer = Trainer(task, settings, task.seed, run_dir, NullLogger(), resume=False)
    update = partial(trainer.update, build_optimizers(task.parameter_groups(model), settings.optimizers))
    rng = np.random.default_rng(0)
    model.train()

    def step():
        task.training_step(model, source.batch(rng.choice(len(source), settings.batch_size, replace=False)), update)

    return samples_per_second(step, steps, 1)


def run_benchmarks(task, settings: OVRDLBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    task.data = task._read()
    method = task.method
    task.method, task.stage = "plain", "ovrdl"
    plain_source, _, _ = task.load_data()
    plain = _steps_per_second(task, task.build_model(), plain_source, settings.steps, task.run_dir / "bench")
    task.method = "ovrdl"
    stage1_source, _, _ = task.load_data()
    stage1_model = task.build_model()
    stage1 = _steps_per_second(task, stage1_model, stage1_source, settings.steps, task.run_dir / "bench")
    train = task.data.split == "train"
    with torch.no_grad():
        stage1_model.eval()
        features = torch.stack(stage1_model.features(torch.from_numpy(task.data.images[train]).float() / 255), 1)
    labels = task.data.attributes[train]
    rows = confident_rows([np.ones((len(labels), c)) / c for c in task.data.classes], labels, 5.0)
    mixes = MixSource(features.numpy(), labels, rows, task.aal_config, task.seed)
    task.method, task.stage = "ovrdl_aal", "aal"
    stage2 = _steps_per_second(task, task.build_model(), mixes, settings.steps, task.run_dir / "bench")
    task.method = method
    note = (
        f"batch {task.trainer_settings.batch_size}, {task.ovrdl_config.adversary_steps} adversary updates per "
        f"stage-1 step, {torch.get_num_threads()} threads"
    )
    return [
        throughput_figure("stage 1 (OVRDL) training steps", stage1, "plain classifier step", plain, note, "steps/s"),
        throughput_figure("stage 2 (AAL) training steps", stage2, "plain classifier step", plain, note, "steps/s"),
    ]
