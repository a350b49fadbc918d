"""What a paper reported: ``papers/<pkg>/reported.yaml`` (its numbers with their sources, its claims as checks on
our experiments, our benchmark's own checks, and grids of per-cell results), and the comparison printed after a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.claim_checks import CheckError, compile_check
from common.errors import ReprozooError
from common.records import is_number, is_text

ROW_KEYS = ("table", "row", "dataset", "metrics", "source", "experiment")
CLAIM_KEYS = ("id", "text", "check")
CLAIM_OPTIONAL_KEYS = ("source",)


class TableError(ReprozooError, ValueError):
    """A reported.yaml, run record or claim check that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class ReportedRow:
    table: str
    row: str
    dataset: str
    metrics: dict[str, float]
    source: str
    experiment: str
    ours: tuple[str, ...] = ()  # which of our metrics to show (default: the paper's, else all of ours)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    check: str
    source: str | None = None


@dataclass(frozen=True)
class Grid:
    """Our per-cell results side by side: one row per metric (e.g. a domain × task GAUC), one column per
    experiment; the best value of each row is marked, and the last rows count, per experiment, the cells where
    it is best and where it beats `reference`."""

    id: str
    title: str
    metrics: list[str]
    experiments: list[str]
    reference: str


@dataclass(frozen=True)
class Reported:
    paper: str
    rows: list[ReportedRow]
    claims: list[Claim]
    grids: list[Grid] = field(default_factory=list)
    checks: list[Claim] = field(default_factory=list)  # the benchmark's own checks (oracle above trivial, ...)


def load_reported(path: Path) -> Reported:
    """Read and validate a paper's reported.yaml, including the syntax of every claim check."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TableError(f"{path}: cannot read reported numbers ({exc}).") from None
    valid = isinstance(data, dict) and is_text(data.get("paper")) and isinstance(data.get("rows"), list)
    if not valid:
        raise TableError(
            f"{path}: expected a mapping with 'paper' (non-empty text), 'rows' (a list) and optionally "
            f"'claims' (a list); got {str(data)[:200]!r}."
        )
    sections = {}
    for section in ("claims", "checks"):
        entries = data.get(section) or []
        if not isinstance(entries, list):
            raise TableError(f"{path}: '{section}' must be a list of claims, got {entries!r}.")
        sections[section] = [_parse_claim(path, section, i, raw) for i, raw in enumerate(entries)]
    ids = [claim.id for claim in sections["claims"] + sections["checks"]]
    duplicates = sorted({claim_id for claim_id in ids if ids.count(claim_id) > 1})
    if duplicates:
        raise TableError(f"{path}: claim and check ids must be unique; repeated: {', '.join(duplicates)}.")
    rows = [_parse_row(path, i, raw) for i, raw in enumerate(data["rows"])]
    grids = [_parse_grid(path, i, raw) for i, raw in enumerate(data.get("grids") or [])]
    return Reported(paper=data["paper"], rows=rows, grids=grids, **sections)


def _parse_grid(path: Path, index: int, raw: object) -> Grid:
    rule = "each grid is a mapping with id and title (text), metrics and experiments (lists of names), reference"
    where = _entry_location(path, "grids", index, raw, "title", rule)
    names_ok = all(
        isinstance(raw.get(key), list) and raw[key] and all(is_text(name) for name in raw[key])
        for key in ("metrics", "experiments")
    )
    keys_ok = set(raw) == {"id", "title", "metrics", "experiments", "reference"}
    if not keys_ok or not names_ok or not is_text(raw["title"]) or not str(raw["id"]).isidentifier():
        raise TableError(f"{where} is {raw!r}; {rule}.")
    if raw["reference"] not in raw["experiments"]:
        raise TableError(
            f"{where}: reference {raw['reference']!r} must be one of its experiments {raw['experiments']}."
        )
    return Grid(**raw)


def _entry_location(path: Path, section: str, index: int, raw: object, label: str, rule: str) -> str:
    """Where an entry of reported.yaml stands, for messages; it must be a mapping."""
    where = f"{path}: {section}[{index}]"
    if not isinstance(raw, dict):
        raise TableError(f"{where} is {raw!r}; {rule}.")
    return f"{where} ({label} {raw.get(label)!r})"


def _parse_row(path: Path, index: int, raw: object) -> ReportedRow:
    rule = (
        f"each row is a mapping with keys {', '.join(ROW_KEYS)} (metrics may be {{}}; the rest is text) and "
        "optionally ours (the metric names of ours to show)"
    )
    where = _entry_location(path, "rows", index, raw, "row", rule)
    missing = [key for key in ROW_KEYS if key not in raw]
    unknown = sorted(str(key) for key in raw if key not in ROW_KEYS and key != "ours")
    if missing or unknown:
        raise TableError(f"{where} lacks keys {missing} / has unknown keys {unknown}; {rule}.")
    for key in ROW_KEYS:
        if key != "metrics" and not is_text(raw[key]):
            raise TableError(f"{where} has {key}={raw[key]!r}; {rule} (quote values YAML reads as non-text).")
    metrics = raw["metrics"]
    if not isinstance(metrics, dict) or not all(
        isinstance(name, str) and is_number(value) for name, value in metrics.items()
    ):
        raise TableError(f"{where} has metrics={metrics!r}; metrics must map metric names to numbers.")
    ours = raw.get("ours", [])
    if not isinstance(ours, list) or not all(is_text(name) for name in ours):
        raise TableError(f"{where} has ours={ours!r}; ours (optional) lists metric names.")
    fields = {key: raw[key] for key in ROW_KEYS if key != "metrics"}
    return ReportedRow(metrics={name: float(value) for name, value in metrics.items()}, ours=tuple(ours), **fields)


def _parse_claim(path: Path, section: str, index: int, raw: object) -> Claim:
    rule = f"each claim is a mapping with non-empty text keys {', '.join(CLAIM_KEYS)} and optionally source"
    where = _entry_location(path, section, index, raw, "id", rule)
    allowed = CLAIM_KEYS + CLAIM_OPTIONAL_KEYS
    unknown = sorted(str(key) for key in raw if key not in allowed)
    bad = [key for key in CLAIM_KEYS if not is_text(raw.get(key))]
    if "source" in raw and not is_text(raw["source"]):
        bad.append("source")
    if unknown or bad:
        raise TableError(f"{where} has missing or invalid keys {bad} / unknown keys {unknown}; {rule}.")
    try:
        compile_check(raw["check"])
    except CheckError as exc:
        raise TableError(f"{where}: {exc}") from None
    return Claim(id=raw["id"], text=raw["text"], check=raw["check"], source=raw.get("source"))


def comparison_table(experiment: str, reported_path: Path, record: dict) -> str:
    reported = load_reported(reported_path)
    paper = record["paper"]
    rows = [row for row in reported.rows if row.experiment == experiment]
    cited = [row for row in rows if row.metrics]
    ours = record["metrics"]
    lines = [f"\n{paper} / {experiment} on {record['dataset']} (seed {record['seed']})"]
    if not rows:
        lines.append("the paper reports no row for this experiment")
    lines += [
        f"{row.table}, row '{row.row}': no number of the paper is cited ({row.source})"
        for row in rows
        if not row.metrics
    ]
    if not cited:
        lines.append("our metrics:")
        lines += [f"  {name:<20} {value:.4f}" for name, value in ours.items()]
    for row in cited:
        lines.append(f"{row.table}, row '{row.row}' — paper on {row.dataset} ({row.source})")
        lines.append(f"  {'metric':<20} {'ours':>8} {'paper':>8}")
        for name in sorted(set(ours) | set(row.metrics)):
            mine = f"{ours[name]:.4f}" if name in ours else "—"
            theirs = f"{row.metrics[name]:.4f}" if name in row.metrics else "—"
            lines.append(f"  {name:<20} {mine:>8} {theirs:>8}")
    lines.append("(not the paper's data: see the paper README for the deviations)")
    return "\n".join(lines)
