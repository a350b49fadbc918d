"""Declared stages: own directories, prefixed metrics on one step axis, stage.json, restore on resume."""

import json

import numpy as np
import pytest

from common.stages import Stage, StageOutcome, run_stages
from common.trainer import TrainerConfig
from tests.test_trainer import RandomSource, ToyTask


class RecordingLogger:
    def __init__(self):
        self.metrics, self.summaries = [], []

    def log_metrics(self, metrics, step):
        self.metrics.append((step, metrics))

    def log_images(self, images, step=None):
        pass

    def log_summary(self, metrics):
        self.summaries.append(metrics)

    def finish(self):
        pass


class TwoStageRun:
    """A compute stage writes a product to its directory; a training stage reads it (through this object)."""

    def __init__(self):
        self.computed, self.restored, self.scale = 0, 0, None

    def stages(self):
        return [
            Stage("statistics", "computes a scale", self.compute, restore=self.restore, config=lambda: {"k": 3}),
            Stage("model", "trains the toy model", self.train),
        ]

    def compute(self, context):
        self.computed += 1
        self.scale = 3.0
        np.save(context.directory / "scale.npy", np.array(self.scale))
        return StageOutcome({"scale": self.scale})

    def restore(self, context):
        self.restored += 1
        self.scale = float(np.load(context.directory / "scale.npy"))
        return StageOutcome({"scale": self.scale})

    def train(self, context):
        assert self.scale == 3.0
        result = context.fit(ToyTask([0.5, 0.6]), (RandomSource(64), RandomSource(8), RandomSource(8)))
        return StageOutcome(result.metrics, result)


SETTINGS = TrainerConfig(max_epochs=2, batch_size=8, log_every=2, checkpoint_every=4, progress_bar=False)


def test_stages_run_in_their_own_directories_and_log_under_their_names(tmp_path):
    run, logger = TwoStageRun(), RecordingLogger()
    records, training = run_stages(run.stages(), tmp_path, logger, False, 0, SETTINGS)
    assert [record.name for record in records] == ["statistics", "model"]
    assert records[0].as_dict()["config"] == {"k": 3} and records[0].metrics == {"scale": 3.0}
    assert records[1].metrics == training.metrics and training.state.step == 16
    assert (tmp_path / "model" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "model" / "training_curves.png").is_file()
    assert json.loads((tmp_path / "statistics" / "stage.json").read_text())["metrics"] == {"scale": 3.0}
    names = {name for _, metrics in logger.metrics for name in metrics}
    assert names and all(name.startswith("model/") for name in names)
    steps = [step for step, _ in logger.metrics]
    assert steps == sorted(steps)


def test_resume_restores_finished_stages_and_continues_the_unfinished_one(tmp_path):
    first = TwoStageRun()
    with pytest.raises(ValueError):  # as if killed after stage 1: only its stage.json and product are there
        run_stages(first.stages()[:1], tmp_path, RecordingLogger(), False, 0, SETTINGS)
    resumed = TwoStageRun()
    records, training = run_stages(resumed.stages(), tmp_path, RecordingLogger(), True, 0, SETTINGS)
    assert (resumed.computed, resumed.restored) == (0, 1)
    assert records[0].metrics == {"scale": 3.0} and training.state.step == 16
    reference = run_stages(TwoStageRun().stages(), tmp_path / "reference", RecordingLogger(), False, 0, SETTINGS)[1]
    assert training.metrics == reference.metrics


def test_the_last_stage_must_train(tmp_path):
    only = [Stage("only", "computes", lambda context: StageOutcome())]
    with pytest.raises(ValueError, match="last stage"):
        run_stages(only, tmp_path, RecordingLogger(), False, 0, SETTINGS)
