"""reprozoo entry point: python run.py paper=<key> [experiment=<name>] [mode=train|table|bench] [overrides]."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from common.errors import ReprozooError
from common.hydra_setup import register_experiment_names


@hydra.main(version_base="1.3", config_path="configs", config_name="run")
def main(cfg: DictConfig) -> None:
    from common.runner import run

    try:
        run(cfg)
    except ReprozooError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    register_experiment_names()
    main()
