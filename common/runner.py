"""Runs one job of `python run.py`: mode=train, table, bench, config or predict."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from common.bench import format_figures, write_figures
from common.config import bounded, require_choice, typed_config
from common.distributed import init_distributed, shutdown_distributed
from common.errors import ConfigError
from common.logging import build_logger
from common.plots import save_training_curves
from common.reported import comparison_table
from common.results import build_record, write_record
from common.seeding import seed_everything
from common.stages import StageRecord, run_stages
from common.trainer import Trainer, TrainerConfig, score_outputs
from common.units import UNITS_FILE, save_units
from papers import paper_package_dir, paper_task, render_results, reported_path

MODES = ("train", "table", "bench", "config", "predict")
PREDICTIONS_FILE = "predictions.json"


@dataclass
class ModeConfig:
    """What run.py does (configs/mode/<name>.yaml)."""

    name: str = bounded(choices=MODES)
    write: bool = False  # mode=table: also write papers/<pkg>/RESULTS.md


@dataclass
class RunSettings:
    """The top-level keys of configs/run.yaml that every mode reads."""

    seed: int = bounded(0, minimum=0)
    data_seed: int = bounded(0, minimum=0)
    resume: bool = False
    scorer: str | None = None
    from_run: str | None = None


def run(cfg: DictConfig) -> dict | None:
    mode_config = typed_config(ModeConfig, cfg.mode, "mode")
    mode = mode_config.name
    paper = str(cfg.paper)
    task_class = paper_task(paper)
    typed_config(RunSettings, {name.name: cfg.get(name.name) for name in fields(RunSettings)}, "")
    if mode == "table":
        return render_table(paper, mode_config.write)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    trained_run = None
    if mode == "predict":
        trained_run, cfg = trained_config(cfg)
    settings = typed_config(TrainerConfig, cfg.trainer, "trainer")
    context = init_distributed(settings.device)
    try:
        seed_everything(int(cfg.seed), settings.deterministic)
        task = task_class(cfg, context, run_dir)
        if mode == "config":
            return print(yaml.safe_dump(typed_settings(task, settings), sort_keys=False))
        if mode == "bench":
            return run_bench(task, run_dir)
        if mode == "predict":
            return predict(cfg, task, settings, trained_run, run_dir)
        if cfg.get("scorer"):
            return score_without_learning(cfg, task, settings, run_dir)
        return train(cfg, task, settings, run_dir)
    finally:
        shutdown_distributed()


def prepare_data(task) -> None:
    """Generate or check the dataset on rank 0, before any rank reads it."""
    if task.context.is_main:
        task.prepare_data()
    task.context.barrier()


def trained_config(cfg: DictConfig) -> tuple[Path, DictConfig]:
    """mode=predict: the finished run `from_run` and its config, with this command's data, seeds and device."""
    if not cfg.get("from_run"):
        raise ConfigError("mode=predict needs from_run=<the directory of a finished run (holding results.json)>.")
    trained = Path(str(cfg.from_run)).expanduser()
    record_path = trained / "results.json"
    if not record_path.is_file():
        raise ConfigError(
            f"from_run={trained} holds no finished run: {record_path} does not exist. Give the directory of a run "
            "that finished (it writes results.json last)."
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        trained_cfg = OmegaConf.create(record["config"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{record_path} is not a readable run record ({exc}).") from None
    if record.get("paper") != str(cfg.paper):
        raise ConfigError(
            f"from_run={trained} is a run of paper {record.get('paper')!r}, not of paper={cfg.paper}; predict with "
            f"paper={record.get('paper')} or give a run of {cfg.paper}."
        )
    this_run = {
        "data": OmegaConf.to_container(cfg.data, resolve=False),  # keeps ${data_seed}: the task sees the draw
        "seed": int(cfg.seed),
        "data_seed": int(cfg.data_seed),
        "mode": OmegaConf.to_container(cfg.mode, resolve=True),
        "from_run": str(trained),
        "resume": bool(cfg.resume),  # predict resumes per item where the task supports it
        "trainer": {name: cfg.trainer[name] for name in ("device", "eval_batch_size", "progress_bar")},
    }
    trained_cfg.data = None  # the new data replaces the trained run's, key by key
    return trained, OmegaConf.merge(trained_cfg, this_run)


def predict(cfg: DictConfig, task, settings: TrainerConfig, trained_run: Path, run_dir: Path) -> dict | None:
    """Apply a finished run to this run's data; predictions (and metrics where labels exist) in `run_dir`."""
    started = time.perf_counter()
    prepare_data(task)
    metrics = task.predict_new_data(trained_run, run_dir)
    if not task.context.is_main:
        return None
    elapsed = time.perf_counter() - started
    device = str(task.context.device)
    record = build_record(cfg, task.model_name, task.dataset_name, metrics, elapsed, device, task.data_seed)
    record["from_run"] = str(trained_run)
    write_record(record, run_dir, PREDICTIONS_FILE)
    shown = "\n".join(f"  {name:<24} {value:.4f}" for name, value in metrics.items())
    shown = shown or "  (no labels: predictions only)"
    print(f"predictions of {trained_run} on {task.dataset_name} in {run_dir}\n{shown}")
    return record


def typed_settings(task, settings: TrainerConfig) -> dict:
    """The typed, merged config that runs: the trainer's and every typed config the task built (its dataclass
    attributes made of plain values, `<name>_config` named <name>), defaults filled in and types checked."""
    typed = {"trainer": asdict(settings)}
    attributes = sorted(vars(task).items(), key=lambda item: not item[0].endswith("_config"))  # _config first
    for name, value in attributes:
        key = name.removesuffix("_config")
        if is_dataclass(value) and not isinstance(value, type) and key not in typed:
            typed[key] = asdict(value)
            try:  # loaded data (arrays, tables) is no config
                json.dumps(typed[key])
            except TypeError:
                del typed[key]
    return json.loads(json.dumps(typed))  # plain lists (no tuples), as results.json holds them


def render_table(paper: str, write: bool) -> None:
    # imported here: the tables' verdicts bring scipy.stats, about 2 s of every other run's start-up
    from common.tables import render_paper_tables

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
    prepare_data(task)
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
    stages: list[StageRecord] = (),
) -> dict:
    """Write the run record, and beside it the test metrics' per-unit contributions when the task gives them."""
    elapsed = time.perf_counter() - started
    device = str(task.context.device)
    record = build_record(cfg, model, task.dataset_name, metrics, elapsed, device, task.data_seed)
    record["typed_config"] = typed_settings(task, settings)
    if stages:
        record["stages"] = [stage.as_dict() for stage in stages]
    units = task.test_units(outputs)
    if units is not None:
        save_units(units, run_dir / UNITS_FILE)
    write_record(record, run_dir)
    return record


def train(cfg: DictConfig, task, settings: TrainerConfig, run_dir: Path) -> dict | None:
    context = task.context
    started = time.perf_counter()
    prepare_data(task)
    group = f"{cfg.paper}/{cfg.experiment}"
    tags = [str(cfg.paper), str(cfg.experiment), task.model_name, task.dataset_name]
    logger = build_logger(cfg, run_dir, context.is_main, group, tags)
    try:
        stages = task.stages()
        if stages is None:
            trainer = Trainer(task, settings, int(cfg.seed), run_dir, logger, resume=bool(cfg.resume))
            result, stage_records = trainer.fit(*task.load_data()), []
        else:
            stage_records, result = run_stages(
                stages, run_dir, logger, bool(cfg.resume), int(cfg.seed), settings, context.is_main
            )
        if not context.is_main:
            return None
        metrics = task.record_metrics(result.metrics)
        record = finish_record(
            cfg, task, settings, task.model_name, metrics, result.test_outputs, started, run_dir, stage_records
        )
        curves = save_training_curves(result.history, run_dir)
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
