"""Reference records: read the committed run records of a paper, and commit finished runs as records with
`python -m common.records <run dir>... --into papers/<pkg>/results`.

Each run's results.json is copied to `[<paper>_]<experiment>_seed<seed>[_data<data_seed>].json` (the paper's key
when it is not the package's namesake), and its units.npz (the
test metrics' per-unit contributions, when the task writes them) beside it as `<same stem>.units.npz`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.errors import ReprozooError
from common.units import UNITS_FILE, UnitContributions, UnitsError, load_units, units_path

RECORD_RULE = (
    "each run record is a JSON object with experiment (str), seed (int), dataset (str), metrics (a mapping of "
    "metric name to number) and optionally data_seed (int or null)"
)


class RecordError(ReprozooError, ValueError):
    """A run record that cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class RunRecord:
    """One committed run: its record's fields the tables use, its file, and its per-unit contributions."""

    path: Path
    paper: str | None
    experiment: str
    dataset: str
    seed: int
    data_seed: int | None  # the generated data draw; None: a fixed dataset every seed shares
    metrics: dict[str, float]
    units: UnitContributions | None

    @property
    def run_key(self) -> tuple[int, int | None]:
        """What pairs runs of different experiments: the same seed on the same data draw."""
        return (self.seed, self.data_seed)


def load_records(results_dir: Path, paper: str | None = None) -> list[RunRecord]:
    """The ``*.json`` run records under ``results_dir`` (recursively), sorted by path, of `paper` only when it is
    given (papers that share a package share its results folder), each with its units file if present; [] if the
    folder is absent."""
    records: list[RunRecord] = []
    seen: dict[tuple, Path] = {}
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordError(f"{path}: not a readable JSON run record ({exc}); {RECORD_RULE}.") from None
        problem = _record_problem(raw)
        if problem:
            raise RecordError(f"{path}: {problem}; {RECORD_RULE}.")
        if paper is not None and raw.get("paper") != paper:
            continue
        record = _run_record(path, raw)
        key = (record.experiment, record.dataset, record.seed, record.data_seed)
        if key in seen:
            raise RecordError(
                f"{path}: repeats experiment {key[0]!r}, dataset {key[1]!r}, seed {key[2]}, data draw {key[3]} of "
                f"{seen[key]}; keep one record per experiment, dataset, seed and data draw so that means are not "
                "double-counted."
            )
        seen[key] = path
        records.append(record)
    return records


def _run_record(path: Path, raw: dict) -> RunRecord:
    units_file = units_path(path)
    try:
        units = load_units(units_file) if units_file.is_file() else None
    except UnitsError as exc:
        raise RecordError(str(exc)) from None
    return RunRecord(
        path=path,
        paper=raw.get("paper"),
        experiment=raw["experiment"],
        dataset=raw["dataset"],
        seed=raw["seed"],
        data_seed=recorded_data_seed(raw),
        metrics={name: float(value) for name, value in raw["metrics"].items()},
        units=units,
    )


def recorded_data_seed(raw: dict) -> int | None:
    """The record's data draw: its data_seed; for records made before data_seed was recorded, the seed its data
    config drew with (the generator's, or a sampling protocol's), or None (a fixed dataset)."""
    if "data_seed" in raw:
        return raw["data_seed"]
    data = (raw.get("config") or {}).get("data") or {}
    for node in ("generator", "protocol"):
        seed = (data.get(node) or {}).get("seed")
        if isinstance(seed, int):
            return seed
    return None


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_text(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return f"the file holds {type(record).__name__}, not an object"
    for key, valid in (("experiment", is_text), ("dataset", is_text), ("metrics", _valid_metrics)):
        if key not in record:
            return f"'{key}' is missing"
        if not valid(record[key]):
            return f"'{key}' is {record[key]!r}"
    for key, optional in (("seed", False), ("data_seed", True)):
        value = record.get(key)
        if not (optional and value is None) and (not isinstance(value, int) or isinstance(value, bool)):
            return f"'{key}' is {value!r}, not an integer"
    return None


def _valid_metrics(metrics: object) -> bool:
    return isinstance(metrics, dict) and all(is_number(value) for value in metrics.values())


def record_stem(record: dict, package: str) -> str:
    """`<experiment>_seed<S>[_data<D>]`, prefixed with the paper's key when it is not the package's namesake
    (TWIN-V2's records live in papers/twin/results/ beside TWIN's)."""
    stem = f"{record['experiment']}_seed{record['seed']}"
    if record.get("data_seed") is not None:
        stem += f"_data{record['data_seed']}"
    return stem if record["paper"] == package else f"{record['paper']}_{stem}"


def collect(run_dir: Path, into: Path) -> Path:
    """Copy one finished run's record (and units) into `into`; returns the record's new path."""
    source = Path(run_dir) / "results.json"
    if not source.is_file():
        raise FileNotFoundError(f"{run_dir} holds no results.json: it is not a finished run directory")
    record = json.loads(source.read_text(encoding="utf-8"))
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"{record_stem(record, Path(into).resolve().parent.name)}.json"
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
