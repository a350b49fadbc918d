"""reprozoo entry point: python run.py paper=<key> [experiment=<name>] [mode=train|table|bench] [overrides]."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from common.errors import ReprozooError
from common.hydra_setup import check_command_line, register_configs


def fail(error: ReprozooError) -> None:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="configs", config_name="run")
def main(cfg: DictConfig) -> None:
    from common.runner import run

    try:
        run(cfg)
    except ReprozooError as error:
        fail(error)


if __name__ == "__main__":
    register_configs()
    try:
        check_command_line(sys.argv[1:])
    except ReprozooError as error:
        fail(error)
    main()
