"""Reproduced tables: a paper's reported numbers beside ours, and whether its claims hold on our runs.

Inputs are ``papers/<pkg>/reported.yaml`` (what the paper reports and claims) and the run records under
``papers/<pkg>/results/`` (one JSON file per run). Claim checks are small arithmetic/comparison expressions
over ``metric(experiment)`` calls; they are parsed with :mod:`ast` and never passed to ``eval``.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from common.errors import ReprozooError

ROW_KEYS = ("table", "row", "dataset", "metrics", "source", "experiment")
CLAIM_KEYS = ("id", "text", "check")
CLAIM_OPTIONAL_KEYS = ("source",)
RECORD_RULE = (
    "each run record is a JSON object with experiment (str), seed (int), dataset (str) "
    "and metrics (a mapping of metric name to number)"
)
ALLOWED_CHECK_FORMS = (
    "allowed forms: numbers, metric calls such as gauc(table4_twin) (metric and experiment as bare names), "
    "+ - * /, unary -, abs(x), max(a, b, ...), min(a, b, ...), comparisons < <= > >= == != (chains ok) "
    "and and/or/not over comparisons"
)

Verdict = Literal["holds", "does not hold", "not run"]
Values = Mapping[str, float]


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


@dataclass(frozen=True)
class MetricStats:
    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class ExperimentSummary:
    n: int
    metrics: dict[str, MetricStats]
    datasets: list[str]
    seeds: list[int]


@dataclass(frozen=True)
class ClaimResult:
    verdict: Verdict
    values: dict[str, float]
    missing: list[str]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def load_reported(path: Path) -> Reported:
    """Read and validate a paper's reported.yaml, including the syntax of every claim check."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TableError(f"{path}: cannot read reported numbers ({exc}).") from None
    valid = isinstance(data, dict) and _is_text(data.get("paper")) and isinstance(data.get("rows"), list)
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
        isinstance(raw.get(key), list) and raw[key] and all(_is_text(name) for name in raw[key])
        for key in ("metrics", "experiments")
    )
    keys_ok = set(raw) == {"id", "title", "metrics", "experiments", "reference"}
    if not keys_ok or not names_ok or not _is_text(raw["title"]) or not str(raw["id"]).isidentifier():
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
        if key != "metrics" and not _is_text(raw[key]):
            raise TableError(f"{where} has {key}={raw[key]!r}; {rule} (quote values YAML reads as non-text).")
    metrics = raw["metrics"]
    if not isinstance(metrics, dict) or not all(
        isinstance(name, str) and _is_number(value) for name, value in metrics.items()
    ):
        raise TableError(f"{where} has metrics={metrics!r}; metrics must map metric names to numbers.")
    ours = raw.get("ours", [])
    if not isinstance(ours, list) or not all(_is_text(name) for name in ours):
        raise TableError(f"{where} has ours={ours!r}; ours (optional) lists metric names.")
    fields = {key: raw[key] for key in ROW_KEYS if key != "metrics"}
    return ReportedRow(metrics={name: float(value) for name, value in metrics.items()}, ours=tuple(ours), **fields)


def _parse_claim(path: Path, section: str, index: int, raw: object) -> Claim:
    rule = f"each claim is a mapping with non-empty text keys {', '.join(CLAIM_KEYS)} and optionally source"
    where = _entry_location(path, section, index, raw, "id", rule)
    allowed = CLAIM_KEYS + CLAIM_OPTIONAL_KEYS
    unknown = sorted(str(key) for key in raw if key not in allowed)
    bad = [key for key in CLAIM_KEYS if not _is_text(raw.get(key))]
    if "source" in raw and not _is_text(raw["source"]):
        bad.append("source")
    if unknown or bad:
        raise TableError(f"{where} has missing or invalid keys {bad} / unknown keys {unknown}; {rule}.")
    try:
        _compile_check(raw["check"])
    except TableError as exc:
        raise TableError(f"{where}: {exc}") from None
    return Claim(id=raw["id"], text=raw["text"], check=raw["check"], source=raw.get("source"))


def load_records(results_dir: Path, paper: str | None = None) -> list[dict]:
    """The ``*.json`` run records under ``results_dir`` (recursively), sorted by path, of `paper` only when it is
    given (papers that share a package share its results folder); [] if the folder is absent."""
    records: list[dict] = []
    seen: dict[tuple[str, str, int], Path] = {}
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TableError(f"{path}: not a readable JSON run record ({exc}); {RECORD_RULE}.") from None
        problem = _record_problem(record)
        if problem:
            raise TableError(f"{path}: {problem}; {RECORD_RULE}.")
        if paper is not None and record.get("paper") != paper:
            continue
        key = (record["experiment"], record["dataset"], record["seed"])
        if key in seen:
            raise TableError(
                f"{path}: repeats experiment {key[0]!r}, dataset {key[1]!r}, seed {key[2]} of {seen[key]}; "
                "keep one record per experiment, dataset and seed so that means are not double-counted."
            )
        seen[key] = path
        records.append(record)
    return records


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return f"the file holds {type(record).__name__}, not an object"
    for key, valid in (("experiment", _is_text), ("dataset", _is_text), ("metrics", _valid_metrics)):
        if key not in record:
            return f"'{key}' is missing"
        if not valid(record[key]):
            return f"'{key}' is {record[key]!r}"
    if not isinstance(record.get("seed"), int) or isinstance(record["seed"], bool):
        return f"'seed' is {record.get('seed')!r}, not an integer"
    return None


def _valid_metrics(metrics: object) -> bool:
    return isinstance(metrics, dict) and all(_is_number(value) for value in metrics.values())


def summarize(records: list[dict]) -> dict[str, ExperimentSummary]:
    """Per experiment: run count, per-metric mean and sample std (0.0 for one run), datasets and seeds."""
    by_experiment: dict[str, list[dict]] = {}
    for record in records:
        by_experiment.setdefault(record["experiment"], []).append(record)
    summaries = {}
    for experiment in sorted(by_experiment):
        runs = by_experiment[experiment]
        names = sorted({name for run in runs for name in run["metrics"]})
        metrics = {}
        for name in names:
            values = [float(run["metrics"][name]) for run in runs if name in run["metrics"]]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            metrics[name] = MetricStats(mean=statistics.fmean(values), std=std, n=len(values))
        summaries[experiment] = ExperimentSummary(
            n=len(runs),
            metrics=metrics,
            datasets=sorted({run["dataset"] for run in runs}),
            seeds=sorted({run["seed"] for run in runs}),
        )
    return summaries


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {"abs": abs, "max": max, "min": min}


@dataclass(frozen=True)
class _Check:
    evaluate: Callable[[Values], bool]
    calls: dict[str, tuple[str, str]]  # "gauc(table4_twin)" -> ("gauc", "table4_twin"), first-seen order


def _compile_check(check: str) -> _Check:
    try:
        tree = ast.parse(check.strip(), mode="eval")
    except SyntaxError as exc:
        raise TableError(
            f"claim check {check!r} is not a valid expression ({exc.msg}); {ALLOWED_CHECK_FORMS}."
        ) from None
    calls: dict[str, tuple[str, str]] = {}
    return _Check(evaluate=_compile_node(tree.body, True, check, calls), calls=calls)


def _compile_node(node: ast.expr, boolean: bool, check: str, calls: dict[str, tuple[str, str]]) -> Callable:
    """Turn an allowed node into a function of the metric values; ``boolean`` says which kind is expected."""

    def sub(child: ast.expr, child_boolean: bool) -> Callable:
        return _compile_node(child, child_boolean, check, calls)

    if boolean and isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        operands = [sub(child, False) for child in (node.left, *node.comparators)]
        ops = [_COMPARE[type(op)] for op in node.ops]
        pairs = list(zip(ops, operands[:-1], operands[1:], strict=True))
        return lambda v: all(op(a(v), b(v)) for op, a, b in pairs)
    if boolean and isinstance(node, ast.BoolOp):
        parts = [sub(child, True) for child in node.values]
        combine = all if isinstance(node.op, ast.And) else any
        return lambda v: combine(part(v) for part in parts)
    if boolean and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = sub(node.operand, True)
        return lambda v: not inner(v)
    if not boolean and isinstance(node, ast.Constant) and _is_number(node.value):
        value = node.value
        return lambda v: value
    if not boolean and isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right, apply = sub(node.left, False), sub(node.right, False), _ARITHMETIC[type(node.op)]
        return lambda v: apply(left(v), right(v))
    if not boolean and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = sub(node.operand, False)
        return lambda v: -inner(v)
    if not boolean and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name, args = node.func.id, node.args
        if name in _FUNCTIONS:
            if len(args) == 1 if name == "abs" else len(args) >= 2:
                function, compiled = _FUNCTIONS[name], [sub(arg, False) for arg in args]
                return lambda v: function(*(arg(v) for arg in compiled))
        elif len(args) == 1 and isinstance(args[0], ast.Name):
            key = f"{name}({args[0].id})"
            calls.setdefault(key, (name, args[0].id))
            return lambda v: v[key]
    expected = "a comparison or and/or/not of comparisons" if boolean else "a number"
    raise TableError(
        f"claim check {check!r} uses `{ast.unparse(node)}` ({type(node).__name__}) where {expected} is "
        f"expected; {ALLOWED_CHECK_FORMS}."
    )


def evaluate_claim(check: str, summaries: Mapping[str, ExperimentSummary]) -> ClaimResult:
    """Evaluate a claim check on the seed means; "not run" if any referenced experiment/metric has no runs."""
    compiled = _compile_check(check)
    values: dict[str, float] = {}
    missing: list[str] = []
    for key, (metric, experiment) in compiled.calls.items():
        summary = summaries.get(experiment)
        if summary is None or metric not in summary.metrics:
            missing.append(key)
        else:
            values[key] = summary.metrics[metric].mean
    if missing:
        return ClaimResult(verdict="not run", values=values, missing=missing)
    try:
        holds = compiled.evaluate(values)
    except ZeroDivisionError:
        raise TableError(f"claim check {check!r} divides by zero with values {values}.") from None
    return ClaimResult(verdict="holds" if holds else "does not hold", values=values, missing=[])


def _number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _ours(row: ReportedRow, summary: ExperimentSummary | None) -> str:
    if summary is None:
        return "not run"
    parts = []
    for name in row.metrics or row.ours or summary.metrics:
        stats = summary.metrics.get(name)
        if stats is None:
            parts.append(f"{name} —")
        else:
            partial = f" [n={stats.n}]" if stats.n != summary.n else ""
            parts.append(f"{name} {_number(stats.mean)} ± {_number(stats.std)}{partial}")
    return f"{' · '.join(parts) or '—'} (n={summary.n})"


def render_markdown(paper_key: str, reported: Reported, summaries: Mapping[str, ExperimentSummary]) -> str:
    """The reproduced-table markdown document; byte-identical for identical inputs."""
    command = f"python run.py paper={paper_key} mode=table mode.write=true"
    lines = [
        f"<!-- generated by `{command}`; do not edit by hand -->",
        f"# Reproduced results: {_cell(reported.paper)}",
    ]
    tables: dict[str, list[ReportedRow]] = {}
    for row in reported.rows:
        tables.setdefault(row.table, []).append(row)
    for table, rows in tables.items():
        lines += [
            "",
            f"## {_cell(table)}",
            "",
            "| Row | Experiment | Paper dataset | Paper | Ours (mean ± std, n) | Our dataset |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            summary = summaries.get(row.experiment)
            paper = " · ".join(f"{name} {_number(value)}" for name, value in row.metrics.items()) or "—"
            datasets = ", ".join(summary.datasets) if summary else "—"
            cells = [row.row, f"`{row.experiment}`", row.dataset, paper, _ours(row, summary), datasets]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    for grid in reported.grids:
        lines += ["", *render_grid(grid, summaries)]
    if reported.claims:
        lines += ["", "## Claims", "", "| Claim | Check | Our values | Verdict |", "|---|---|---|---|"]
        counted = with_grid_counts(reported.grids, summaries)
        for claim in reported.claims:
            result = evaluate_claim(claim.check, counted)
            shown = [f"{key} = {_number(value)}" for key, value in result.values.items()]
            shown += [f"{key} = not run" for key in result.missing]
            verdict = f"**{result.verdict}**"
            cells = [f"{claim.id}: {claim.text}", f"`{claim.check}`", "<br>".join(shown), verdict]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    sources = dict.fromkeys(
        [row.source for row in reported.rows] + [claim.source for claim in reported.claims if claim.source]
    )
    if sources:
        lines += ["", "## Sources", ""] + [f"- {_cell(source)}" for source in sources]
    return "\n".join(lines) + "\n"


def _grid_values(grid: Grid, summaries: Mapping[str, ExperimentSummary]) -> dict[str, dict[str, float | None]]:
    """metric -> experiment -> mean over seeds (None: not run)."""

    def mean(metric: str, experiment: str) -> float | None:
        summary = summaries.get(experiment)
        stats = summary.metrics.get(metric) if summary else None
        return stats.mean if stats else None

    return {
        metric: {experiment: mean(metric, experiment) for experiment in grid.experiments} for metric in grid.metrics
    }


def grid_counts(grid: Grid, summaries: Mapping[str, ExperimentSummary]) -> dict[str, dict[str, int]]:
    """Per experiment, the cells where it is best (`best`) and where it beats the grid's reference (`above`)."""
    counts = {"best": dict.fromkeys(grid.experiments, 0), "above": dict.fromkeys(grid.experiments, 0)}
    for values in _grid_values(grid, summaries).values():
        known = [value for value in values.values() if value is not None]
        reference = values[grid.reference]
        for experiment, value in values.items():
            if value is not None:
                counts["best"][experiment] += value == max(known)
                counts["above"][experiment] += reference is not None and value > reference
    return counts


def with_grid_counts(grids: list[Grid], summaries: Mapping[str, ExperimentSummary]) -> dict[str, ExperimentSummary]:
    """The summaries, plus each grid's counts as metrics `<grid id>_best` and `<grid id>_above` of every run
    experiment, so that claims can check them."""
    extended = dict(summaries)
    for grid in grids:
        for kind, per_experiment in grid_counts(grid, summaries).items():
            for experiment, count in per_experiment.items():
                if experiment in extended:
                    summary = extended[experiment]
                    stats = MetricStats(mean=float(count), std=0.0, n=summary.n)
                    extended[experiment] = replace(summary, metrics={**summary.metrics, f"{grid.id}_{kind}": stats})
    return extended


def render_grid(grid: Grid, summaries: Mapping[str, ExperimentSummary]) -> list[str]:
    """A grid's markdown lines: means over seeds, the best of each row in bold, then the cell counts."""
    header = ["cell", *(f"`{experiment}`" for experiment in grid.experiments)]
    lines = [f"## {_cell(grid.title)}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for metric, values in _grid_values(grid, summaries).items():
        known = [value for value in values.values() if value is not None]
        cells = [metric] + [
            "not run" if value is None else f"**{_number(value)}**" if value == max(known) else _number(value)
            for value in values.values()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    counts = grid_counts(grid, summaries)
    labels = {"best": f"best in (cells; `{grid.id}_best`)", "above": f"above `{grid.reference}` (`{grid.id}_above`)"}
    for kind, label in labels.items():
        lines.append(f"| {label} | " + " | ".join(str(counts[kind][e]) for e in grid.experiments) + " |")
    return lines


def render_paper_tables(paper_key: str, reported_path: Path, results_dir: Path) -> str:
    """Render the markdown document of one paper from its reported numbers and its records in `results_dir`."""
    reported = load_reported(Path(reported_path))
    return render_markdown(paper_key, reported, summarize(load_records(Path(results_dir), paper_key)))
