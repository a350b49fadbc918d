"""Three-way verdicts on claims: a claim's margin (common/claim_checks.py) with a 95% interval from a bootstrap
over seeds and the paper's test units, and one of "holds", "does not hold" or "inconclusive".

Each replicate (1) resamples the test units of every data draw with replacement, the same draw for every
experiment on that data draw (paired by unit id, strata kept), and recomputes each record's metric from its
per-unit contributions; (2) resamples the runs (seed x data draw) with replacement, the same runs for every
experiment when they share at least two (paired), each experiment on its own otherwise; the run-level deviation
is widened by t(n-1) / z * sqrt(n / (n - 1)), so that for a difference of two means the interval has the width of
the paired Student-t interval at n runs; (3) evaluates the margin on the resulting means. The interval is the 2.5th
to 97.5th percentile of the margins. Records without a per-unit file contribute their recorded value to every
replicate: their interval covers the seeds only, and says so.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from common.claim_checks import CompiledCheck
from common.records import RunRecord
from common.units import COUNT_DTYPE, aggregate

Verdict = Literal["holds", "does not hold", "inconclusive", "not run"]
Input = tuple[str, str]  # (metric, experiment)
# a derived value: the inputs it is computed from and how (e.g. a grid's count of cells won)
Derived = tuple[list[Input], Callable[[Mapping[Input, float]], float]]

REPLICATES = 1000
CONFIDENCE = 0.95
CHUNK = 250  # replicates resampled at once, bounding memory on large unit counts


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    margin: float | None  # the claim's margin on the means (for `a > b`: a - b)
    low: float | None
    high: float | None
    values: dict[str, float]  # each call of the check on the means
    missing: list[str]
    interval: str  # how the interval was computed, in words


def run_factor(n: int) -> float:
    """The widening of the run-level bootstrap deviation at n runs (see the module docstring)."""
    if n < 2:
        return 0.0
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) / z * math.sqrt(n / (n - 1)))


def decide(
    check: CompiledCheck,
    records: Mapping[str, Sequence[RunRecord]],
    derive: Callable[[str, str], Derived | None] = lambda metric, experiment: None,
) -> Decision:
    """Decide `check` on the records of each experiment; `derive(metric, experiment)` may define a call as a
    function of other inputs (e.g. grid counts)."""
    derived = {key: derive(*call) for key, call in check.calls.items()}
    inputs = list(dict.fromkeys(i for key, call in check.calls.items() for i in (derived[key] or ([call],))[0]))
    used = {experiment: _usable(records.get(experiment, ()), inputs, experiment) for _, experiment in inputs}
    missing = [key for key, call in check.calls.items() if _missing(call, derived[key], used)]
    if missing:
        values = {key: _call_value(call, derived[key], _means(inputs, used)) for key, call in check.calls.items()}
        shown = {key: value for key, value in values.items() if key not in missing and not math.isnan(value)}
        return Decision("not run", None, None, None, shown, missing, "")
    runs = _choose_runs(used)
    point = _means(inputs, runs)
    values = {key: _call_value(call, derived[key], point) for key, call in check.calls.items()}
    margin = check.evaluate(values)
    margins = _bootstrap(check, derived, inputs, runs)
    description = _describe(inputs, runs)
    finite = margins[np.isfinite(margins)]
    if not len(finite) or not _measurable(inputs, runs):
        return Decision("inconclusive", margin, None, None, values, [], description + "; no interval")
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = (float(bound) for bound in np.percentile(finite, [tail, 100 - tail]))
    verdict: Verdict = "holds" if low > 0 else "does not hold" if high < 0 else "inconclusive"
    return Decision(verdict, margin, low, high, values, [], description)


def _usable(runs: Sequence[RunRecord], inputs: list[Input], experiment: str) -> list[RunRecord]:
    """The experiment's runs that recorded every metric the check reads of it."""
    needed = [metric for metric, name in inputs if name == experiment]
    return [run for run in runs if all(metric in run.metrics for metric in needed)]


def _missing(call: Input, derived: Derived | None, used: Mapping[str, list[RunRecord]]) -> bool:
    dependencies = derived[0] if derived else [call]
    return not dependencies or any(not used.get(experiment) for _, experiment in dependencies)  # none: nothing to read


def _choose_runs(used: Mapping[str, list[RunRecord]]) -> dict[str, list[RunRecord]]:
    """The runs each experiment contributes: the runs all experiments share when at least two are shared
    (paired), else every run of each."""
    shared = set.intersection(*({run.run_key for run in runs} for runs in used.values()))
    if len(shared) < 2:
        return dict(used)
    return {
        experiment: sorted((r for r in runs if r.run_key in shared), key=_order) for experiment, runs in used.items()
    }


def _order(run: RunRecord) -> tuple:
    return (run.seed, -1 if run.data_seed is None else run.data_seed)


def _means(inputs: list[Input], runs: Mapping[str, list[RunRecord]]) -> dict[Input, float]:
    return {
        (metric, experiment): float(np.mean([run.metrics[metric] for run in runs[experiment]]))
        if runs.get(experiment)
        else math.nan
        for metric, experiment in inputs
    }


def _call_value(call: Input, derived: Derived | None, values: Mapping[Input, float]) -> float:
    return derived[1](values) if derived else values[call]


def _paired(runs: Mapping[str, list[RunRecord]]) -> bool:
    keys = [[run.run_key for run in experiment_runs] for experiment_runs in runs.values()]
    return len(keys[0]) >= 2 and all(other == keys[0] for other in keys)


def _bootstrap(
    check: CompiledCheck, derived: Mapping[str, Derived | None], inputs: list[Input], runs: dict
) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(check.text.encode()))
    universes = _unit_universes(inputs, runs)
    margins = []
    for start in range(0, REPLICATES, CHUNK):
        size = min(CHUNK, REPLICATES - start)
        counts = {draw: _resample_counts(rng, universe, size) for draw, universe in universes.items()}
        per_run = {i: _replicate_values(i, runs[i[1]], universes, counts, size) for i in inputs}
        means = _resample_runs(rng, per_run, runs, size)
        for b in range(size):
            values = {i: float(means[i][b]) for i in inputs}
            call_values = {key: _call_value(call, derived[key], values) for key, call in check.calls.items()}
            margins.append(_safe_margin(check, call_values))
    return np.asarray(margins)


def _safe_margin(check: CompiledCheck, values: Mapping[str, float]) -> float:
    if any(math.isnan(value) for value in values.values()):
        return math.nan
    try:
        return check.margin(values)
    except ZeroDivisionError:
        return math.nan


@dataclass
class _Universe:
    """The test units of one data draw: every id seen in the records on it, and where each stratum's units are."""

    position: dict[str, int]
    strata: list[np.ndarray]


def _unit_universes(inputs: list[Input], runs: Mapping[str, list[RunRecord]]) -> dict[object, _Universe]:
    ids: dict[object, dict[str, object]] = {}
    for metric, experiment in inputs:
        for run in runs[experiment]:
            units = run.units
            if units is not None and metric in units.metrics:
                strata = units.strata if units.strata is not None else np.zeros(len(units.ids))
                ids.setdefault(run.data_seed, {}).update(zip(map(str, units.ids), map(str, strata), strict=True))
    universes = {}
    for draw, stratum_of in ids.items():
        names = sorted(stratum_of)
        labels = np.array([stratum_of[name] for name in names])
        groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
        universes[draw] = _Universe({name: i for i, name in enumerate(names)}, groups)
    return universes


def _resample_counts(rng: np.random.Generator, universe: _Universe, size: int) -> np.ndarray:
    """How often each unit is drawn in each of `size` replicates, every stratum keeping its count."""
    counts = np.zeros((size, len(universe.position)), dtype=COUNT_DTYPE)
    for members in universe.strata:
        draws = rng.integers(0, len(members), size=(size, len(members)))
        flat = draws + (np.arange(size) * len(members))[:, None]
        counts[:, members] = np.bincount(flat.ravel(), minlength=size * len(members)).reshape(size, len(members))
    return counts


def _replicate_values(
    item: Input, runs: list[RunRecord], universes: Mapping[object, _Universe], counts: Mapping, size: int
) -> np.ndarray:
    """The metric of every run under each replicate's unit resampling: replicates x runs."""
    metric, _ = item
    columns = []
    for run in runs:
        units = run.units
        if units is None or metric not in units.metrics:
            columns.append(np.full(size, run.metrics[metric]))
            continue
        universe = universes[run.data_seed]
        positions = [universe.position[str(unit)] for unit in units.ids]
        columns.append(aggregate(units.metrics[metric], counts[run.data_seed][:, positions]))
    return np.stack(columns, axis=1)


def _resample_runs(
    rng: np.random.Generator, per_run: Mapping[Input, np.ndarray], runs: Mapping[str, list[RunRecord]], size: int
) -> dict[Input, np.ndarray]:
    """Each input's mean over runs in each replicate, the runs resampled (paired when the experiments share
    them) and their deviation widened by `run_factor`."""
    counts = {experiment: len(experiment_runs) for experiment, experiment_runs in runs.items()}
    shared = rng.integers(0, next(iter(counts.values())), size=(size, next(iter(counts.values()))))
    own = {experiment: rng.integers(0, n, size=(size, n)) for experiment, n in counts.items()}
    paired = _paired(runs)
    means = {}
    for (metric, experiment), values in per_run.items():
        chosen = shared if paired else own[experiment]
        centre = values.mean(axis=1)
        resampled = np.take_along_axis(values, chosen, axis=1).mean(axis=1)
        means[(metric, experiment)] = centre + run_factor(counts[experiment]) * (resampled - centre)
    return means


def _measurable(inputs: list[Input], runs: Mapping[str, list[RunRecord]]) -> bool:
    """Whether anything measures noise: two runs of an experiment, or per-unit contributions."""
    for metric, experiment in inputs:
        experiment_runs = runs[experiment]
        if len(experiment_runs) > 1 or any(
            run.units is not None and metric in run.units.metrics for run in experiment_runs
        ):
            return True
    return False


def _describe(inputs: list[Input], runs: Mapping[str, list[RunRecord]]) -> str:
    sizes = sorted({len(experiment_runs) for experiment_runs in runs.values()})
    count = f"{sizes[0]} paired runs" if _paired(runs) else f"unpaired runs (n = {', '.join(map(str, sizes))})"
    draws = {run.data_seed for experiment_runs in runs.values() for run in experiment_runs}
    count += f", {len(draws)} data draw{'s' if len(draws) > 1 else ''}"
    with_units = [
        run.units.unit
        for metric, experiment in inputs
        for run in runs[experiment]
        if run.units is not None and metric in run.units.metrics
    ]
    total = sum(len(runs[experiment]) for _, experiment in inputs)
    if not with_units:
        return f"{count}; seeds only (no per-unit contributions)"
    unit = sorted(set(with_units))[0]
    if len(with_units) < total:
        return f"{count}; bootstrap over {unit}s where recorded, seeds only elsewhere"
    return f"{count}; bootstrap over seeds and {unit}s"
