"""Declared stages of a multi-stage run (e.g. TWIN-V2: item embeddings -> clustering -> TWIN-V2).

A task that has stages returns them from `PaperTask.stages()`, in order. The runner runs each in its own
subdirectory of the run (`<run dir>/<stage name>/`, holding its checkpoints), with its own progress bar, its metrics
logged to the run's wandb run under `<stage name>/...` (one wandb run per job, so a sweep's runs stay comparable;
a stage's steps continue after the previous stage's, so wandb's step axis stays monotonic), and writes
`<stage dir>/stage.json` when it finishes. With `resume=true` a finished stage is restored (its product read back
from its directory) instead of run again, so the run resumes at the first unfinished stage. The run record lists
every stage with its name, typed config, metrics and duration (`stages` in results.json). A stage without
`restore` (a training stage) is run again on resume and continues from its own checkpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from common.atomic_files import write_json_atomic
from common.logging import RunLogger
from common.plots import save_training_curves
from common.trainer import Trainer, TrainerConfig, TrainingResult

STAGE_FILE = "stage.json"


@dataclass
class StageOutcome:
    """What a stage reports: its metrics, and, for a stage that trained, the training result (the last stage's
    is the run's model and test metrics)."""

    metrics: dict[str, float] = field(default_factory=dict)
    training: TrainingResult | None = None


@dataclass
class StageContext:
    """What the runner hands a stage."""

    name: str
    directory: Path
    logger: RunLogger
    resume: bool
    seed: int
    settings: TrainerConfig

    def fit(self, trainee, splits: tuple, settings: TrainerConfig | None = None) -> TrainingResult:
        """Train `trainee` (anything with PaperTask's training methods and `context`) with the shared Trainer in
        this stage's directory, logging under this stage's name."""
        trainer = Trainer(trainee, settings or self.settings, self.seed, self.directory, self.logger, self.resume)
        return trainer.fit(*splits)


@dataclass
class Stage:
    """One step of a run: `run` trains or computes and hands its product on (through the task), `restore` reads
    a finished stage's product back from its directory, `config` is the typed config it ran with."""

    name: str
    describe: str
    run: Callable[[StageContext], StageOutcome]
    restore: Callable[[StageContext], StageOutcome] | None = None
    config: Callable[[], dict] = dict


class StageLogger:
    """The run's logger with every name prefixed by the stage's and every step shifted past earlier stages'."""

    def __init__(self, logger: RunLogger, prefix: str, offset: int):
        self.logger, self.prefix, self.offset = logger, prefix, offset
        self.last_step = offset

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.last_step = max(self.last_step, self.offset + step)
        self.logger.log_metrics({f"{self.prefix}/{name}": value for name, value in metrics.items()}, self.last_step)

    def log_images(self, images: dict[str, Path], step: int | None = None) -> None:
        self.logger.log_images({f"{self.prefix}/{name}": path for name, path in images.items()}, step)

    def log_summary(self, metrics: dict[str, float]) -> None:
        self.logger.log_summary({f"{self.prefix}/{name}": value for name, value in metrics.items()})

    def finish(self) -> None:
        return None


@dataclass
class StageRecord:
    name: str
    config: dict
    metrics: dict[str, float]
    duration_s: float
    last_step: int

    def as_dict(self) -> dict:
        return {"name": self.name, "config": self.config, "metrics": self.metrics, "duration_s": self.duration_s}


def run_stages(
    stages: list[Stage],
    run_dir: Path,
    logger: RunLogger,
    resume: bool,
    seed: int,
    settings: TrainerConfig,
    is_main: bool = True,
) -> tuple[list[StageRecord], TrainingResult]:
    """Run (or, on resume, restore) every stage in order; the records and the last stage's training result.
    Every rank runs every stage; rank 0 (`is_main`) alone writes stage.json and the curves."""
    records: list[StageRecord] = []
    training: TrainingResult | None = None
    offset = 0
    for index, stage in enumerate(stages, 1):
        directory = run_dir / stage.name
        directory.mkdir(parents=True, exist_ok=True)
        stage_logger = StageLogger(logger, stage.name, offset)
        context = StageContext(stage.name, directory, stage_logger, resume, seed, settings)
        finished = _finished(directory) if resume else None
        started = time.perf_counter()
        if finished is not None and stage.restore is not None:
            tqdm.write(f"stage {index}/{len(stages)} {stage.name}: finished earlier, restored from {directory}")
            outcome = stage.restore(context)
            kept = (finished[key] for key in ("config", "metrics", "duration_s", "last_step"))
            record = StageRecord(stage.name, *kept)
        else:
            tqdm.write(f"stage {index}/{len(stages)} {stage.name}: {stage.describe}")
            outcome = stage.run(context)
            duration = round(time.perf_counter() - started, 1)
            record = StageRecord(stage.name, stage.config(), outcome.metrics, duration, stage_logger.last_step)
            if is_main:
                _write_finished(directory, record)
            if is_main and outcome.training is not None:
                save_training_curves(outcome.training.history, directory)
        records.append(record)
        training = outcome.training or training
        offset = max(offset, record.last_step)
    if training is None:
        raise ValueError("the last stage of a staged task must train the run's model")
    return records, training


def _finished(directory: Path) -> dict | None:
    path = directory / STAGE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_finished(directory: Path, record: StageRecord) -> None:
    payload = {**record.as_dict(), "last_step": record.last_step}
    write_json_atomic(directory / STAGE_FILE, payload, default=str)
