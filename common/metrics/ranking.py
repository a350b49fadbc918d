"""Ranking and calibration metrics for click-through-rate models: AUC, group AUC and log loss."""

from __future__ import annotations

import numpy as np


def _as_array(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; metrics need finite numbers")
    return array


def _check_binary(labels: np.ndarray) -> None:
    if not np.all((labels == 0) | (labels == 1)):
        bad = labels[(labels != 0) & (labels != 1)][:3]
        raise ValueError(f"labels must be 0 or 1, got values such as {bad.tolist()}")


def _auc_of_sorted_ranks(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U statistic with average ranks for ties, normalised to [0, 1]."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(scores)]))
    average_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average_rank, ends - starts)
    positives = labels.sum()
    negatives = len(labels) - positives
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def auc(labels, scores) -> float:
    """Area under the ROC curve; ties in scores count one half."""
    labels, scores = _as_array(labels, "labels"), _as_array(scores, "scores")
    _check_binary(labels)
    if labels.min() == labels.max():
        raise ValueError("AUC is undefined when all labels belong to one class")
    return _auc_of_sorted_ranks(labels, scores)


def group_aucs(labels, scores, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group whose labels hold both classes: its id, its AUC and its sample count (groups sorted by id)."""
    labels, scores = _as_array(labels, "labels"), _as_array(scores, "scores")
    _check_binary(labels)
    groups = np.asarray(groups).reshape(-1)
    if not len(labels) == len(scores) == len(groups):
        raise ValueError(f"labels, scores and groups differ in length: {len(labels)}, {len(scores)}, {len(groups)}")
    order = np.argsort(groups, kind="mergesort")
    sorted_groups = groups[order]
    boundaries = np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1
    ids, aucs, sizes = [], [], []
    for members in np.split(order, boundaries):
        group_labels = labels[members]
        if len(members) == 0 or group_labels.min() == group_labels.max():
            continue
        ids.append(groups[members[0]])
        aucs.append(_auc_of_sorted_ranks(group_labels, scores[members]))
        sizes.append(len(members))
    return np.asarray(ids, dtype=groups.dtype), np.asarray(aucs, dtype=np.float64), np.asarray(sizes)


def gauc(labels, scores, groups) -> float:
    """Group AUC: per-group AUC weighted by the group's sample count.

    Groups whose labels are all one class are skipped, as in the TWIN and DIN papers.
    """
    _, aucs, sizes = group_aucs(labels, scores, groups)
    if not len(sizes):
        raise ValueError("GAUC is undefined: no group has both positive and negative labels")
    return float((aucs * sizes).sum() / sizes.sum())


def logloss(labels, probabilities, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of predicted probabilities, clipped to [eps, 1 - eps]."""
    labels = _as_array(labels, "labels")
    probabilities = np.clip(_as_array(probabilities, "probabilities"), eps, 1.0 - eps)
    _check_binary(labels)
    return float(-np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities)))
