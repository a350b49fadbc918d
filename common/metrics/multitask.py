"""Metrics of multi-domain, multi-task models: AUC and GAUC in every domain × task cell, and their means."""

from __future__ import annotations

import numpy as np

from common.metrics.ranking import auc, gauc


def cell_name(domain: str, task: str) -> str:
    return f"{domain}_{task}"


def domain_task_metrics(
    labels: np.ndarray, scores: np.ndarray, users: np.ndarray, domains: np.ndarray, domain_names, task_names
) -> dict[str, float]:
    """`auc_<domain>_<task>` and `gauc_<domain>_<task>` (GAUC grouped by user) for every cell, and their means
    over all cells (`gauc_mean`), over a domain's tasks (`gauc_<domain>`) and over a task's domains
    (`gauc_<task>`). A cell whose labels are all one class (or, for GAUC, where no user has both) is left out
    of the result and of the means; which cells those are depends on the labels only, so every model is
    averaged over the same cells."""
    if labels.shape != scores.shape or labels.shape[1] != len(task_names):
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be [samples, {len(task_names)}]")
    result: dict[str, float] = {}
    for domain_index, domain in enumerate(domain_names):
        rows = domains == domain_index
        for task_index, task in enumerate(task_names):
            cell_labels, cell_scores = labels[rows, task_index], scores[rows, task_index]
            for metric, compute in (("auc", auc), ("gauc", gauc)):
                arguments = (cell_labels, cell_scores) + ((users[rows],) if metric == "gauc" else ())
                try:
                    result[f"{metric}_{cell_name(domain, task)}"] = compute(*arguments)
                except ValueError:
                    continue
    means: dict[str, float] = {}
    for metric in ("auc", "gauc"):
        groups = {"mean": [], **{domain: [] for domain in domain_names}, **{task: [] for task in task_names}}
        for domain in domain_names:
            for task in task_names:
                value = result.get(f"{metric}_{cell_name(domain, task)}")
                if value is not None:
                    groups["mean"].append(value)
                    groups[domain].append(value)
                    groups[task].append(value)
        if not groups["mean"]:
            raise ValueError(f"no domain × task cell has both positive and negative labels for {metric}")
        means.update({f"{metric}_{name}": float(np.mean(values)) for name, values in groups.items() if values})
    return {**result, **means}
