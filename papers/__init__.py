"""The papers reprozoo reproduces, found by key (imported lazily, never by import side effects)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from common.errors import ConfigError

PAPERS: dict[str, str] = {
    "twin": "papers.twin.task:TwinTask",
    "twin_v2": "papers.twin.task_v2:TwinV2Task",
    "pepnet": "papers.pepnet.task:PEPNetTask",
    "two_shot_vos": "papers.two_shot_vos.task:TwoShotVOSTask",
    "ml_fsic": "papers.ml_fsic.task:MLFSICTask",
    "gastric_wsi": "papers.gastric_wsi.task:GastricWSITask",
    "ovrdl_aal": "papers.ovrdl_aal.task:OVRDLAALTask",
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
    """papers/<pkg>/, which holds the reported numbers, results/ and RESULTS.md."""
    module, _ = _split(key)
    return Path(importlib.util.find_spec(module).origin).resolve().parent  # located, not imported


def reported_path(key: str) -> Path:
    """What the paper reported: reported.yaml for the paper its package is named after, reported_<key>.yaml
    for another paper living in the same package (TWIN-V2 in papers/twin/)."""
    package = paper_package_dir(key)
    return package / ("reported.yaml" if package.name == key else f"reported_{key}.yaml")


def papers_in_package(key: str) -> list[str]:
    """Every paper sharing `key`'s package, the package's namesake first: the sections of its RESULTS.md."""
    package = paper_package_dir(key)
    keys = [other for other in PAPERS if paper_package_dir(other) == package]
    return sorted(keys, key=lambda other: (other != package.name, other))


def render_results(key: str) -> str:
    """The package's RESULTS.md: the reproduced tables of every paper in it, from the committed records."""
    from common.tables import render_paper_tables

    package = paper_package_dir(key)
    sections = [
        render_paper_tables(other, reported_path(other), package / "results") for other in papers_in_package(key)
    ]
    return "\n".join(sections)
