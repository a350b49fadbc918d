"""Shared fixtures: wandb off (but for the one test that checks offline logging), a shared data cache,
and a helper that runs `python run.py ...` the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def wandb_disabled(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One generated-data cache for the whole session, so smoke datasets are generated once."""
    return tmp_path_factory.mktemp("reprozoo-cache")


@pytest.fixture
def run_cli(cache_dir):
    """Run `python run.py <args>` from the repository root; returns the CompletedProcess."""

    def run(*args: str, env: dict | None = None, timeout: float = 300, command: list[str] | None = None):
        environment = {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled", **(env or {})}
        prefix = command or [sys.executable, "run.py"]
        return subprocess.run(
            [*prefix, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout
        )

    return run


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu need CUDA; they are skipped where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
