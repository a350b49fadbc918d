"""Runs one job of `python run.py`: mode=train, mode=table or mode=bench."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from common.bench import format_figures, write_figures
from common.config import bounded, require_choice, typed_config
from common.distributed import init_distributed, shutdown_distributed
from common.logging import build_logger
from common.plots import plot_training_curves
from common.reported import comparison_table
from common.results import build_record, write_record
from common.seeding import seed_everything
from common.tables import render_paper_tables
from common.trainer import Trainer, TrainerConfig, score_outputs
from common.units import UNITS_FILE, save_units
from papers import paper_package_dir, paper_task, render_results, reported_path

MODES = ("train", "table", "bench", "config")


@dataclass
class RunSettings:
    """The top-level keys of configs/run.yaml that every mode reads."""

    seed: int = bounded(0, minimum=0)
    data_seed: int = bounded(0, minimum=0)
    resume: bool = False
    scorer: str | None = None


def run(cfg: DictConfig) -> dict | None:
    mode = require_choice(cfg.mode.name, MODES, "mode")
    paper = str(cfg.paper)
    task_class = paper_task(paper)
    typed_config(RunSettings, {name.name: cfg.get(name.name) for name in fields(RunSettings)}, "")
    if mode == "table":
        return render_table(paper, bool(cfg.mode.get("write", False)))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    settings = typed_config(TrainerConfig, cfg.trainer, "trainer")
    context = init_distributed(settings.device)
    try:
        seed_everything(int(cfg.seed), settings.deterministic)
        task = task_class(cfg, context, run_dir)
        if mode == "config":
            return print(yaml.safe_dump(typed_settings(task, settings), sort_keys=False))
        if mode == "bench":
            return run_bench(task, run_dir)
        if cfg.get("scorer"):
            return score_without_learning(cfg, task, settings, run_dir)
        return train(cfg, task, settings, run_dir)
    finally:
        shutdown_distributed()


def typed_settings(task, settings: TrainerConfig) -> dict:
    """The typed, merged config that runs: the trainer's and every typed config the task built (its
    `<name>_config` attributes, named <name>), defaults filled in and types checked."""
    typed = {"trainer": asdict(settings)}
    for name, value in vars(task).items():
        if is_dataclass(value) and not isinstance(value, type):
            typed[name.removesuffix("_config")] = asdict(value)
    return json.loads(json.dumps(typed, default=str))  # plain lists and strings, as results.json holds them


def render_table(paper: str, write: bool) -> None:
    print(render_paper_tables(paper, reported_path(paper), paper_package_dir(paper) / "results"))
    if write:
        path = paper_package_dir(paper) / "RESULTS.md"
        path.write_text(render_results(paper))
        print(f"wrote {path}")


def run_bench(task, run_dir: Path) -> None:
    figures = task.bench()
    print(format_figures(figures))
    print(f"wrote {write_figures(figures, run_dir)}")


def score_without_learning(cfg: DictConfig, task, settings: TrainerConfig, run_dir: Path) -> dict | None:
    """A no-learning row (`scorer=oracle`, `scorer=trivial_<name>`): score the test split, train nothing."""
    name = require_choice(str(cfg.scorer), task.no_learning_scorers(), "scorer")
    started = time.perf_counter()
    if task.context.is_main:
        task.prepare_data()
    task.context.barrier()
    test_split = task.load_data()[2]
    if not task.context.is_main:
        return None
    outputs = task.score_without_learning(name, test_split)
    metrics = score_outputs(task, outputs, len(test_split), "test")
    record = finish_record(cfg, task, settings, name, metrics, outputs, started, run_dir)
    print(comparison_table(str(cfg.experiment), reported_path(str(cfg.paper)), record))
    print(f"run directory: {run_dir}")
    return record


def finish_record(
    cfg: DictConfig,
    task,
    settings: TrainerConfig,
    model: str,
    metrics: dict,
    outputs: dict,
    started: float,
    run_dir: Path,
) -> dict:
    """Write the run record, and beside it the test metrics' per-unit contributions when the task gives them."""
    elapsed = time.perf_counter() - started
    device = str(task.context.device)
    record = build_record(cfg, model, task.dataset_name, metrics, elapsed, device, task.data_seed)
    record["typed_config"] = typed_settings(task, settings)
    units = task.test_units(outputs)
    if units is not None:
        save_units(units, run_dir / UNITS_FILE)
    write_record(record, run_dir)
    return record


def train(cfg: DictConfig, task, settings: TrainerConfig, run_dir: Path) -> dict | None:
    context = task.context
    started = time.perf_counter()
    if context.is_main:
        task.prepare_data()
    context.barrier()
    train_split, valid_split, test_split = task.load_data()
    group = f"{cfg.paper}/{cfg.experiment}"
    tags = [str(cfg.paper), str(cfg.experiment), task.model_name, task.dataset_name]
    logger = build_logger(cfg, run_dir, context.is_main, group, tags)
    try:
        trainer = Trainer(task, settings, int(cfg.seed), run_dir, logger, resume=bool(cfg.resume))
        result = trainer.fit(train_split, valid_split, test_split)
        if not context.is_main:
            return None
        metrics = task.record_metrics(result.metrics)
        record = finish_record(cfg, task, settings, task.model_name, metrics, result.test_outputs, started, run_dir)
        curves = plot_training_curves(result.history, run_dir / "training_curves.png")
        images = {"training_curves": curves} if curves else {}
        images.update(task.write_outputs(result.model, run_dir))
        if images:
            logger.log_images(images)
        logger.log_summary({f"test/{name}": value for name, value in metrics.items()})
        print(comparison_table(str(cfg.experiment), reported_path(str(cfg.paper)), record))
        print(f"run directory: {run_dir}")
        return record
    finally:
        logger.finish()
