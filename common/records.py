"""Commit finished runs as reference records: `python -m common.records <run dir>... --into papers/<pkg>/results`.

Each run's results.json is copied to `<experiment>_seed<seed>[_data<data_seed>].json`, and its units.npz (the
test metrics' per-unit contributions, when the task writes them) beside it as `<same stem>.units.npz`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from common.units import UNITS_FILE, units_path


def record_stem(record: dict) -> str:
    stem = f"{record['experiment']}_seed{record['seed']}"
    return stem if record.get("data_seed") is None else f"{stem}_data{record['data_seed']}"


def collect(run_dir: Path, into: Path) -> Path:
    """Copy one finished run's record (and units) into `into`; returns the record's new path."""
    source = Path(run_dir) / "results.json"
    if not source.is_file():
        raise FileNotFoundError(f"{run_dir} holds no results.json: it is not a finished run directory")
    record = json.loads(source.read_text(encoding="utf-8"))
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"{record_stem(record)}.json"
    shutil.copyfile(source, target)
    units = Path(run_dir) / UNITS_FILE
    if units.is_file():
        shutil.copyfile(units, units_path(target))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories (holding results.json)")
    parser.add_argument("--into", type=Path, required=True, help="the package's results folder")
    arguments = parser.parse_args(argv)
    try:
        for run_dir in arguments.runs:
            print(collect(run_dir, arguments.into))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
