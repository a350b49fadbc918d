"""Per-user contributions of PEPNet's GAUC metrics (common/units.py): every domain × task cell's GAUC and the
means over cells that `common.metrics.multitask.domain_task_metrics` reports, over one set of users."""

from __future__ import annotations

import numpy as np

from common.metrics.multitask import cell_name
from common.units import UnitContributions, grouped_auc_units

UNIT = "user"


def cell_gauc_units(labels, scores, users, domains, domain_names, task_names) -> dict[str, UnitContributions]:
    """Each cell's GAUC contributions (per user with both classes: AUC, weight = impressions), by cell name;
    a cell where no user has both classes is left out, as the metrics leave it out."""
    cells = {}
    for domain_index, domain in enumerate(domain_names):
        rows = domains == domain_index
        for task_index, task in enumerate(task_names):
            cell = grouped_auc_units(labels[rows, task_index], scores[rows, task_index], users[rows], unit=UNIT)
            if len(cell.ids):
                cells[cell_name(domain, task)] = cell
    return cells


def _aligned(cell: UnitContributions, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cell's per-user GAUC values and weights on `ids` (sorted); a user absent from the cell gets 0 and 0."""
    entry = cell.metrics["gauc"]
    positions = np.searchsorted(ids, cell.ids)
    values, weights = np.zeros(len(ids)), np.zeros(len(ids))
    values[positions], weights[positions] = entry.first, entry.second
    return values, weights


def _mean_of_cells(aligned: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """A mean over cells of their GAUC as one weighted mean over users: each cell's weights are divided by the
    cell's total, so user u carries weight sum_c w_cu / W_c (over C cells, up to the constant C) and value
    sum_c (w_cu / W_c) a_cu over that weight. At the observed users it equals (1/C) sum_c GAUC_c exactly;
    under resampling each cell's total is held at the observed one (a ratio estimate of the mean)."""
    scaled = [weights / weights.sum() for _, weights in aligned]
    weight = np.sum(scaled, axis=0)
    weighted_values = np.sum([values * share for (values, _), share in zip(aligned, scaled, strict=True)], axis=0)
    value = np.divide(weighted_values, weight, out=np.zeros_like(weight), where=weight > 0)
    return value, weight


def domain_task_gauc_units(labels, scores, users, domains, domain_names, task_names) -> UnitContributions:
    """Every `gauc_<domain>_<task>` cell and the means `gauc_mean`, `gauc_<domain>`, `gauc_<task>` over the
    cells present, per user."""
    cells = cell_gauc_units(labels, scores, users, domains, domain_names, task_names)
    ids = np.unique(np.concatenate([cell.ids for cell in cells.values()]))
    aligned = {name: _aligned(cell, ids) for name, cell in cells.items()}
    units = UnitContributions(unit=UNIT, ids=ids)
    for name, (values, weights) in aligned.items():
        units.add_mean(f"gauc_{name}", values, weights)
    groups = {
        "mean": list(aligned),
        **{domain: [cell_name(domain, task) for task in task_names] for domain in domain_names},
        **{task: [cell_name(domain, task) for domain in domain_names] for task in task_names},
    }
    for group, names in groups.items():
        members = [aligned[name] for name in names if name in aligned]
        if members:
            units.add_mean(f"gauc_{group}", *_mean_of_cells(members))
    return units
