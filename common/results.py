"""The run record: results.json in every finished run directory."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from common.atomic_files import write_json_atomic

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def build_record(
    cfg: DictConfig,
    model: str,
    dataset: str,
    metrics: dict[str, float],
    duration_s: float,
    device: str,
    data_seed: int | None = None,
) -> dict:
    """The run record; `data_seed` is the seed of the generated data draw (None: a fixed dataset)."""
    return {
        "paper": str(cfg.paper),
        "experiment": str(cfg.experiment),
        "model": model,
        "dataset": dataset,
        "seed": int(cfg.seed),
        "data_seed": data_seed,
        "metrics": {name: float(value) for name, value in sorted(metrics.items())},
        "config": OmegaConf.to_container(cfg, resolve=True),
        "git_commit": git_commit(),
        "duration_s": round(float(duration_s), 1),
        "device": device,
        "versions": library_versions(),
    }


def write_record(record: dict, run_dir: Path, name: str = "results.json") -> Path:
    """Write `record` as `run_dir/name` (results.json for a finished run; predictions.json for mode=predict)."""
    return write_json_atomic(run_dir / name, record)
