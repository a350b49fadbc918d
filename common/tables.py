"""Reproduced tables: a paper's reported numbers beside ours, our no-learning headroom rows, and three-way verdicts
with intervals on the paper's claims and on our benchmark's own checks.

Inputs are ``papers/<pkg>/reported.yaml`` (common/reported.py) and the run records under ``papers/<pkg>/results/``
(common/records.py); verdicts come from common/verdicts.py. The output is byte-identical for identical inputs.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.claim_checks import compile_check
from common.records import RunRecord, load_records
from common.reported import Claim, Grid, Reported, ReportedRow, load_reported
from common.results import REPOSITORY_ROOT
from common.verdicts import Decision, Derived, decide

HEADROOM_PREFIXES = ("oracle", "trivial_")
VERDICTS_SECTION = "../../README.md#how-verdicts-are-decided"


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
    data_seeds: list[int | None]


def group_by_experiment(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    grouped: dict[str, list[RunRecord]] = {}
    for record in records:
        grouped.setdefault(record.experiment, []).append(record)
    return dict(sorted(grouped.items()))


def summarize(records: Sequence[RunRecord]) -> dict[str, ExperimentSummary]:
    """Per experiment: run count, per-metric mean and sample std (0.0 for one run), datasets, seeds, data draws."""
    summaries = {}
    for experiment, runs in group_by_experiment(records).items():
        names = sorted({name for run in runs for name in run.metrics})
        metrics = {}
        for name in names:
            values = [run.metrics[name] for run in runs if name in run.metrics]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            metrics[name] = MetricStats(mean=statistics.fmean(values), std=std, n=len(values))
        summaries[experiment] = ExperimentSummary(
            n=len(runs),
            metrics=metrics,
            datasets=sorted({run.dataset for run in runs}),
            seeds=sorted({run.seed for run in runs}),
            data_seeds=sorted({run.data_seed for run in runs}, key=lambda seed: -1 if seed is None else seed),
        )
    return summaries


def is_headroom(experiment: str) -> bool:
    """A no-learning row: the generator's oracle or a trivial score."""
    return experiment == "oracle" or experiment.startswith("trivial_")


def grid_deriver(grids: Sequence[Grid], by_experiment: Mapping[str, list[RunRecord]]):
    """`derive` for common.verdicts.decide: `<grid id>_best(e)` and `<grid id>_above(e)` count the grid's cells
    where e is best or beats the grid's reference, computed from the cells' values (so bootstrapped too)."""
    kinds = {f"{grid.id}_{kind}": (grid, kind) for grid in grids for kind in ("best", "above")}

    def derive(metric: str, experiment: str) -> Derived | None:
        if metric not in kinds:
            return None
        grid, kind = kinds[metric]
        run = [name for name in grid.experiments if name in by_experiment]
        inputs = [(cell, name) for cell in grid.metrics for name in run if _has(by_experiment[name], cell)]
        return inputs, lambda values: _count_cells(grid, kind, experiment, values)

    return derive


def _has(runs: list[RunRecord], metric: str) -> bool:
    return any(metric in run.metrics for run in runs)


def _count_cells(grid: Grid, kind: str, experiment: str, values: Mapping[tuple[str, str], float]) -> float:
    count = 0
    for cell in grid.metrics:
        row = {name: value for (metric, name), value in values.items() if metric == cell}
        mine = row.get(experiment)
        if mine is None:
            continue
        if kind == "best":
            count += mine == max(row.values())
        else:
            count += grid.reference in row and mine > row[grid.reference]
    return float(count)


def _number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _signed(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else str(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _ours(names: Sequence[str], summary: ExperimentSummary | None) -> str:
    if summary is None:
        return "not run"
    parts = []
    for name in names or summary.metrics:
        stats = summary.metrics.get(name)
        if stats is None:
            parts.append(f"{name} —")
        else:
            partial = f" [n={stats.n}]" if stats.n != summary.n else ""
            parts.append(f"{name} {_number(stats.mean)} ± {_number(stats.std)}{partial}")
    return " · ".join(parts) or "—"


def _runs(summary: ExperimentSummary | None) -> str:
    if summary is None:
        return "—"
    draws = len(summary.data_seeds)
    return f"{summary.n} ({len(summary.seeds)} seeds, {draws} data draw{'s' if draws > 1 else ''})"


class _Links:
    """Markdown links, relative to the package folder that holds RESULTS.md, to an experiment's config and
    records."""

    def __init__(self, package_dir: Path, paper: str, by_experiment: Mapping[str, list[RunRecord]]):
        self.package_dir = package_dir
        self.paper = paper
        self.by_experiment = by_experiment

    def _relative(self, path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), self.package_dir.resolve())).as_posix()

    def __call__(self, experiment: str) -> str:
        config = REPOSITORY_ROOT / "configs" / "experiment" / self.paper / f"{experiment}.yaml"
        parts = [f"[config]({self._relative(config)})"] if config.is_file() else []
        records = [f"[{_run_label(run)}]({self._relative(run.path)})" for run in self.by_experiment.get(experiment, [])]
        if records:
            parts.append("records " + " ".join(records))
        return " · ".join(parts) or "—"


def _run_label(run: RunRecord) -> str:
    if run.data_seed is None or run.data_seed == run.seed:
        return f"s{run.seed}"
    return f"s{run.seed}d{run.data_seed}"


def render_markdown(
    paper_key: str, reported: Reported, records: Sequence[RunRecord], package_dir: Path | None = None
) -> str:
    """The reproduced-table markdown document of one paper."""
    by_experiment = group_by_experiment(records)
    summaries = summarize(records)
    links = _Links(package_dir or Path.cwd(), paper_key, by_experiment)
    command = f"python run.py paper={paper_key} mode=table mode.write=true"
    lines = [
        f"<!-- generated by `{command}`; do not edit by hand -->",
        f"# Reproduced results: {_cell(reported.paper)}",
        "",
        "Ours: mean ± sample std over runs (seeds × data draws). Verdicts: the claim's difference on the means, "
        "its 95% interval over seeds and test units, and holds / does not hold / inconclusive "
        f"([how]({VERDICTS_SECTION})).",
    ]
    lines += _headroom(reported, summaries, links)
    tables: dict[str, list[ReportedRow]] = {}
    for row in reported.rows:
        tables.setdefault(row.table, []).append(row)
    for table, rows in tables.items():
        lines += [
            "",
            f"## {_cell(table)}",
            "",
            "| Row | Paper dataset | Paper | Ours (mean ± std) | Runs | Our dataset | Config · records |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            summary = summaries.get(row.experiment)
            paper = " · ".join(f"{name} {_number(value)}" for name, value in row.metrics.items()) or "—"
            datasets = ", ".join(summary.datasets) if summary else "—"
            ours = _ours(list(row.ours) or list(row.metrics), summary)
            name = f"{row.row} (`{row.experiment}`)"
            lines.append(_line([name, row.dataset, paper, ours, _runs(summary), datasets, links(row.experiment)]))
    for grid in reported.grids:
        lines += ["", *render_grid(grid, summaries)]
    derive = grid_deriver(reported.grids, by_experiment)
    sections = (
        ("Claims (the paper's)", reported.claims),
        ("Benchmark checks (ours, not the paper's)", reported.checks),
    )
    for title, claims in sections:
        if claims:
            lines += ["", f"## {title}", "", *_claim_table(claims, by_experiment, derive)]
    sources = dict.fromkeys(
        [row.source for row in reported.rows] + [claim.source for claim in reported.claims if claim.source]
    )
    if sources:
        lines += ["", "## Sources", ""] + [f"- {_cell(source)}" for source in sources]
    return "\n".join(lines) + "\n"


def _headroom(reported: Reported, summaries: Mapping[str, ExperimentSummary], links: _Links) -> list[str]:
    """The no-learning rows first: what the data allows (oracle) and what needs no learning (trivial)."""
    experiments = sorted((e for e in summaries if is_headroom(e)), key=lambda e: (e != "oracle", e))
    if not experiments:
        return []
    shown = list(dict.fromkeys(name for row in reported.rows for name in (*row.metrics, *row.ours)))
    recorded = {name for e in experiments for name in summaries[e].metrics}
    names = [name for name in shown if name in recorded]
    lines = [
        "",
        "## Headroom on our data (no learning)",
        "",
        "`oracle` scores with the generator's own ground truth (the ceiling); `trivial_*` rows are no-learning scores "
        "a practitioner would try first. A trained model is worth something here only above the trivial rows.",
        "",
        "| Row | Ours (mean ± std) | Runs | Our dataset | Config · records |",
        "|---|---|---|---|---|",
    ]
    for experiment in experiments:
        summary = summaries[experiment]
        cells = [f"`{experiment}`", _ours(names, summary), _runs(summary), ", ".join(summary.datasets)]
        lines.append(_line([*cells, links(experiment)]))
    return lines


def _claim_table(claims: Sequence[Claim], by_experiment: Mapping[str, list[RunRecord]], derive) -> list[str]:
    lines = [
        "| Claim | Check | Our values | Difference [95% interval] | Verdict | Interval from |",
        "|---|---|---|---|---|---|",
    ]
    for claim in claims:
        decision = decide(compile_check(claim.check), by_experiment, derive)
        shown = [f"{key} = {_number(value)}" for key, value in decision.values.items()]
        shown += [f"{key} = not run" for key in decision.missing]
        cells = [
            f"{claim.id}: {claim.text}",
            f"`{claim.check}`",
            "<br>".join(shown),
            _difference(decision),
            f"**{decision.verdict}**",
            decision.interval or "—",
        ]
        lines.append(_line(cells))
    return lines


def _difference(decision: Decision) -> str:
    if decision.margin is None:
        return "—"
    if decision.low is None:
        return f"{_signed(decision.margin)} [no interval]"
    return f"{_signed(decision.margin)} [{_signed(decision.low)}, {_signed(decision.high)}]"


def _grid_values(grid: Grid, summaries: Mapping[str, ExperimentSummary]) -> dict[str, dict[str, float | None]]:
    """metric -> experiment -> mean over runs (None: not run)."""

    def mean(metric: str, experiment: str) -> float | None:
        summary = summaries.get(experiment)
        stats = summary.metrics.get(metric) if summary else None
        return stats.mean if stats else None

    return {
        metric: {experiment: mean(metric, experiment) for experiment in grid.experiments} for metric in grid.metrics
    }


def grid_counts(grid: Grid, summaries: Mapping[str, ExperimentSummary]) -> dict[str, dict[str, int]]:
    """Per experiment, the cells where it is best (`best`) and where it beats the grid's reference (`above`)."""
    counts: dict[str, dict[str, int]] = {kind: dict.fromkeys(grid.experiments, 0) for kind in ("best", "above")}
    for metric, values in _grid_values(grid, summaries).items():
        known = {(metric, e): value for e, value in values.items() if value is not None}
        for experiment in grid.experiments:
            if values[experiment] is not None:
                for kind in counts:
                    counts[kind][experiment] += int(_count_cells(grid, kind, experiment, known))
    return counts


def render_grid(grid: Grid, summaries: Mapping[str, ExperimentSummary]) -> list[str]:
    """A grid's markdown lines: means over runs, the best of each row in bold, then the cell counts."""
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
    """Render the markdown document of one paper from its reported numbers and its records in `results_dir`
    (links relative to the folder holding `results_dir`, where RESULTS.md lives)."""
    reported = load_reported(Path(reported_path))
    records = load_records(Path(results_dir), paper_key)
    return render_markdown(paper_key, reported, records, Path(results_dir).parent)
