"""Per-unit metric contributions: what a run record keeps so that its test metrics can be bootstrapped.

A paper's natural test unit (a user for CTR models, a video for VOS, an episode for ML-FSIC, a slide for WSI,
a sample for authentication) is resampled with replacement to measure how much a metric owes to the particular
test set. A run writes, beside results.json, ``units.npz``: one array of unit ids, and per metric either

- ``mean``: a value and a weight per unit, the metric being sum(weight * value) / sum(weight) (GAUC: per-user
  AUC weighted by the user's impressions; J&F: one value per video, weight 1; sensitivity: detected per
  positive slide), or
- ``auc``: a label and a score per unit, the metric being the AUC over units (slide-level AUC); a unit whose
  label is neither 0 nor 1 (e.g. NaN) takes no part, which lets one unit set carry per-group AUCs, or
- ``macro_auc``: a class index and a row of class scores per unit, the metric being the mean over classes of
  the one-vs-rest AUC (identity scores of an authentication model).

Optional ``strata`` (one label per unit) keep the count of every stratum fixed under resampling (e.g.
positives and negatives of a slide AUC, or identities). Units of runs on the same data draw are paired by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import ReprozooError
from common.metrics.ranking import group_aucs

KINDS = ("mean", "auc", "macro_auc")
UNITS_FILE = "units.npz"


class UnitsError(ReprozooError, ValueError):
    """Per-unit contributions that cannot be used; the message names the file or metric."""


@dataclass(frozen=True)
class MetricUnits:
    """One metric's per-unit contributions: `first` is the value (mean), label (auc) or class (macro_auc),
    `second` the weight (mean), score (auc) or row of class scores (macro_auc), aligned with the units' ids."""

    kind: str
    first: np.ndarray
    second: np.ndarray


@dataclass
class UnitContributions:
    """The per-unit contributions of a run's test metrics (see the module docstring)."""

    unit: str
    ids: np.ndarray
    metrics: dict[str, MetricUnits] = field(default_factory=dict)
    strata: np.ndarray | None = None

    def add_mean(self, name: str, values, weights=None) -> UnitContributions:
        """Add metric `name` = sum(weights * values) / sum(weights) over units (weights default to 1)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        weights = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        self.metrics[name] = MetricUnits("mean", values, weights)
        return self._checked(name)

    def add_auc(self, name: str, labels, scores) -> UnitContributions:
        """Add metric `name` = AUC of one score per unit against one binary label per unit (units labelled
        neither 0 nor 1 are left out)."""
        labels = np.asarray(labels, dtype=np.float64).reshape(-1)
        self.metrics[name] = MetricUnits("auc", labels, np.asarray(scores, dtype=np.float64).reshape(-1))
        return self._checked(name)

    def add_macro_auc(self, name: str, classes, scores) -> UnitContributions:
        """Add metric `name` = mean over the classes (columns of `scores`) of the one-vs-rest AUC of each class's
        score, every unit carrying its class index."""
        scores = np.asarray(scores, dtype=np.float64)
        classes = np.asarray(classes, dtype=np.float64).reshape(-1)
        if scores.ndim != 2:
            raise UnitsError(f"metric {name!r} needs a units x classes score array, got shape {scores.shape}.")
        self.metrics[name] = MetricUnits("macro_auc", classes, scores)
        return self._checked(name)

    def _checked(self, name: str) -> UnitContributions:
        entry = self.metrics[name]
        if not len(entry.first) == len(entry.second) == len(self.ids):
            raise UnitsError(
                f"metric {name!r} has {len(entry.first)} values and {len(entry.second)} weights/scores for "
                f"{len(self.ids)} units; give one of each per unit."
            )
        return self

    def value(self, name: str) -> float:
        """The metric recomputed from its contributions (equal to the run's metric)."""
        entry = self.metrics[name]
        return float(aggregate(entry, np.ones((1, len(self.ids))))[0])


FEW_SCORES = 64  # up to this many distinct scores, AUC replicates are counted per score rather than per unit
# bootstrap counts (how often each unit is drawn) are whole numbers far below 2**24, so float32 holds them and
# their running sums exactly at half the memory traffic of float64; every product of two sums is taken in float64
COUNT_DTYPE = np.float32


def aggregate(entry: MetricUnits, counts: np.ndarray) -> np.ndarray:
    """The metric under each row of `counts` (replicates x units: how often each unit was drawn)."""
    if entry.kind == "mean":
        weights = counts * entry.second
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (weights * entry.first).sum(axis=1) / total, np.nan)
    if entry.kind == "auc":
        return _weighted_auc(entry.first, entry.second, counts)
    columns = range(entry.second.shape[1])
    per_class = [_weighted_auc((entry.first == k).astype(float), entry.second[:, k], counts) for k in columns]
    return np.mean(per_class, axis=0)


def _weighted_auc(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC with each unit repeated `counts` times (ties count one half), one value per row of counts."""
    distinct, group = np.unique(scores, return_inverse=True)
    if len(distinct) <= FEW_SCORES:
        return _weighted_auc_of_few_scores(labels, group, len(distinct), counts)
    order = np.argsort(group, kind="stable")  # by score, ties in their given order
    labels, scores, counts = labels[order], scores[order], counts[:, order]
    if len(distinct) == len(scores):
        return _weighted_auc_without_ties(labels, counts)
    positive = counts * (labels == 1)
    negative = counts * (labels == 0)
    # negatives strictly below each unit's score, and negatives tied with it
    _, group_start, group_index = np.unique(scores, return_index=True, return_inverse=True)
    negatives_cumulative = np.cumsum(negative, axis=1)
    before_group = np.concatenate([np.zeros((len(counts), 1)), negatives_cumulative], axis=1)[:, group_start]
    group_negatives = np.add.reduceat(negative, group_start, axis=1) if len(scores) else negative
    below = before_group[:, group_index]
    tied = group_negatives[:, group_index]
    pairs = positive.sum(axis=1, dtype=np.float64) * negative.sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (positive * (below + 0.5 * tied)).sum(axis=1) / pairs, np.nan)


def _weighted_auc_of_few_scores(labels: np.ndarray, group: np.ndarray, groups: int, counts: np.ndarray) -> np.ndarray:
    """`_weighted_auc` when the units hold few distinct scores (`group`: each unit's rank among them): the
    positives and negatives of each score are summed by one product with their indicator, and the pairs are
    counted on that small table. Whole-number counts keep every sum exact."""
    indicator = np.zeros((len(labels), 2 * groups), dtype=counts.dtype)
    indicator[labels == 1, group[labels == 1]] = 1
    indicator[labels == 0, groups + group[labels == 0]] = 1
    tallies = (counts @ indicator).astype(np.float64)
    positive, negative = tallies[:, :groups], tallies[:, groups:]
    below = np.cumsum(negative, axis=1) - negative
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (positive * (below + 0.5 * negative)).sum(axis=1) / pairs, np.nan)


def _weighted_auc_without_ties(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`_weighted_auc` for units already sorted by distinct scores: each positive's pairs are the negatives
    before it. The counts are whole numbers, so every sum is exact and the result equals the general path's."""
    positives = np.flatnonzero(labels == 1)
    negatives_before = np.cumsum(counts * (labels == 0), axis=1)[:, positives].astype(np.float64)
    weights = counts[:, positives].astype(np.float64)
    pairs = weights.sum(axis=1) * counts[:, labels == 0].sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (weights * negatives_before).sum(axis=1) / pairs, np.nan)


def units_path(record_path: Path) -> Path:
    """Where a record's units live: units.npz beside a run's results.json, <stem>.units.npz beside a
    committed record <stem>.json."""
    record_path = Path(record_path)
    if record_path.name == "results.json":
        return record_path.with_name(UNITS_FILE)
    return record_path.with_name(f"{record_path.stem}.units.npz")


def save_units(units: UnitContributions, path: Path) -> Path:
    arrays: dict[str, np.ndarray] = {"unit": np.array(units.unit), "ids": np.asarray(units.ids)}
    if units.strata is not None:
        arrays["strata"] = np.asarray(units.strata)
    for name, entry in units.metrics.items():
        arrays[f"{entry.kind}:{name}:first"] = entry.first
        arrays[f"{entry.kind}:{name}:second"] = entry.second
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    temporary.replace(path)
    return path


def load_units(path: Path) -> UnitContributions:
    """Read a units file written by `save_units`; a UnitsError names the file if it cannot be used."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise UnitsError(f"{path}: not a readable per-unit contributions file ({exc}).") from None
    if "unit" not in arrays or "ids" not in arrays:
        raise UnitsError(f"{path}: lacks the 'unit' and 'ids' arrays of a per-unit contributions file.")
    units = UnitContributions(unit=str(arrays["unit"]), ids=arrays["ids"], strata=arrays.get("strata"))
    for key in arrays:
        kind, _, rest = key.partition(":")
        name, _, part = rest.rpartition(":")
        if kind in KINDS and part == "first":
            units.metrics[name] = MetricUnits(kind, arrays[key], arrays[f"{kind}:{name}:second"])
            try:
                units._checked(name)
            except UnitsError as exc:
                raise UnitsError(f"{path}: {exc}") from None
    return units


def grouped_auc_units(labels, scores, groups, unit: str, name: str = "gauc") -> UnitContributions:
    """GAUC's contributions: per group with both classes its AUC, weighted by its sample count (the groups
    whose labels are all one class are left out, as `common.metrics.gauc` does)."""
    ids, aucs, sizes = group_aucs(labels, scores, groups)
    return UnitContributions(unit=unit, ids=ids).add_mean(name, aucs, sizes)
