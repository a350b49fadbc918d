"""Lets `experiment=<name>` select configs/experiment/<paper>/<name>.yaml.

Hydra resolves `experiment@_global_: ${paper}/${experiment}` in configs/run.yaml; the `experiment`
group itself only needs to know the names, which this registers as empty configs.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def experiment_names() -> list[str]:
    return sorted({path.stem for path in CONFIG_DIR.glob("experiment/*/*.yaml")})


def register_experiment_names() -> None:
    store = ConfigStore.instance()
    for name in experiment_names():
        store.store(group="experiment", name=name, node={}, package="_global_")
