"""OVRDL + AAL benchmarks (mode=bench): training steps per second of stage 1 (a task update, a discriminator
update and `adversary_steps` encoder/generator updates per batch) and of stage 2 (a seen update and
`unseen_per_seen` unseen updates on recombined features), each against a plain classifier's step (one update of
the same encoder). Each step goes through the shared trainer's update, on random batches; nothing is
checkpointed or evaluated.

The steps are timed through `Trainer.update` because a step's several updates (each its own parameter groups,
gradient clipping, mixed-precision scaling) are that method and nowhere else; a copy here would time other
code than training runs. Constructing a Trainer only stores its settings (no file, no model, no data)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from common.bench import BenchFigure, samples_per_second, throughput_figure
from common.config import bounded, typed_config
from common.logging import NullLogger
from common.trainer import Trainer, TrainerConfig, build_optimizers
from papers.ovrdl_aal.aal import MixSource, confident_rows
from papers.ovrdl_aal.ovrdl import stage1_features


@dataclass
class OVRDLBenchConfig:
    steps: int = bounded(20, minimum=1)


def _steps_per_second(trainee, model, source, steps: int, settings: TrainerConfig, run_dir) -> float:
    """Steps/s of `trainee.training_step` on random batches of `source`, through the shared trainer's update."""
    update_owner = Trainer(trainee, settings, 0, run_dir, NullLogger(), resume=False)
    update = partial(update_owner.update, build_optimizers(trainee.parameter_groups(model), settings.optimizers))
    rng = np.random.default_rng(0)
    model.train()

    def step():
        trainee.training_step(model, source.batch(rng.choice(len(source), settings.batch_size, replace=False)), update)

    return samples_per_second(step, steps, 1)


def run_benchmarks(task, config: OVRDLBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    data = task.dataset()
    settings = typed_config(TrainerConfig, task.cfg.trainer, "trainer")
    directory = task.run_dir / "bench"
    images, _, _ = task.load_data()
    measure = partial(_steps_per_second, steps=config.steps, settings=settings, run_dir=directory)
    stage1_trainee, plain_trainee = task.ovrdl_trainee(plain=False), task.ovrdl_trainee(plain=True)
    plain = measure(plain_trainee, plain_trainee.build_model(), images)
    stage1_model = stage1_trainee.build_model()
    stage1 = measure(stage1_trainee, stage1_model, images)
    train = data.split == "train"
    features, _ = stage1_features(stage1_model, data.images[train], task.context.device)
    labels = data.attributes[train]
    rows = confident_rows([np.ones((len(labels), c)) / c for c in data.classes], labels, 5.0)
    mixes = MixSource(features, labels, rows, task.model_config.aal, task.seed, settings.batch_size)
    aal_trainee = task.aal_trainee()
    stage2 = measure(aal_trainee, aal_trainee.build_model(), mixes)
    note = (
        f"batch {settings.batch_size}, {task.model_config.ovrdl.adversary_steps} adversary updates per "
        f"stage-1 step, {mixes.unseen_per_seen} unseen per seen update in stage 2, {torch.get_num_threads()} threads"
    )
    return [
        throughput_figure("stage 1 (OVRDL) training steps", stage1, "plain classifier step", plain, note, "steps/s"),
        throughput_figure("stage 2 (AAL) training steps", stage2, "plain classifier step", plain, note, "steps/s"),
    ]
