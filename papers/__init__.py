"""The papers reprozoo reproduces, found by key (imported lazily, never by import side effects)."""

from __future__ import annotations

import importlib
from pathlib import Path

from common.errors import ConfigError

PAPERS: dict[str, str] = {
    "twin": "papers.twin.task:TwinTask",
}


def _split(key: str) -> tuple[str, str]:
    if key not in PAPERS:
        raise ConfigError(f"Unknown paper key {key!r}; the papers are: {', '.join(sorted(PAPERS))}.")
    module, _, attribute = PAPERS[key].partition(":")
    return module, attribute


def paper_task(key: str):
    """The PaperTask subclass of the paper `key`."""
    module, attribute = _split(key)
    return getattr(importlib.import_module(module), attribute)


def paper_package_dir(key: str) -> Path:
    """papers/<pkg>/, which holds reported.yaml, results/ and RESULTS.md."""
    module, _ = _split(key)
    return Path(importlib.import_module(module).__file__).resolve().parent
