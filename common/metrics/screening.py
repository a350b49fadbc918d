"""Slide-level screening metrics: sensitivity and specificity at a threshold, ROC-AUC, the operating point
chosen on validation scores, and a breakdown of them per group (e.g. per medical center)."""

from __future__ import annotations

import numpy as np

from common.metrics.ranking import auc

OPERATING_RULES = ("youden", "sensitivity")


def sensitivity_specificity(labels, scores, threshold: float) -> dict[str, float]:
    """A score >= threshold is called positive. NaN where a class is absent."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(scores) >= threshold
    positives, negatives = labels.sum(), (~labels).sum()
    return {
        "sensitivity": float((predicted & labels).sum() / positives) if positives else float("nan"),
        "specificity": float((~predicted & ~labels).sum() / negatives) if negatives else float("nan"),
    }


def operating_point(labels, scores, rule: str = "youden", min_sensitivity: float = 0.95) -> float:
    """The threshold chosen on validation, among the midpoints between consecutive distinct scores (and one
    below and one above them all): `youden` maximises sensitivity + specificity, taking the middle of a run of
    equally good thresholds; `sensitivity` is the highest threshold keeping sensitivity >= min_sensitivity."""
    if rule not in OPERATING_RULES:
        raise ValueError(f"operating point rule {rule!r} is not one of {', '.join(OPERATING_RULES)}")
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        raise ValueError("an operating point needs validation slides of both classes")
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1], (values[:-1] + values[1:]) / 2, [values[-1] + 1]])[::-1]
    rates = [sensitivity_specificity(labels, scores, t) for t in candidates]
    if rule == "sensitivity":
        return float(next(t for t, r in zip(candidates, rates, strict=True) if r["sensitivity"] >= min_sensitivity))
    youden = np.array([r["sensitivity"] + r["specificity"] for r in rates])
    best = np.flatnonzero(youden >= youden.max() - 1e-12)
    return float(candidates[best[len(best) // 2]])


def screening_metrics(labels, scores, threshold: float) -> dict[str, float]:
    """Sensitivity and specificity at `threshold`, and ROC-AUC (NaN with one class only)."""
    labels = np.asarray(labels).astype(int)
    both = 0 < labels.sum() < len(labels)
    return {**sensitivity_specificity(labels, scores, threshold), "auc": auc(labels, scores) if both else float("nan")}


def per_group(labels, scores, groups, threshold: float) -> dict[str, dict[str, float]]:
    """screening_metrics of each group's slides."""
    labels, scores, groups = np.asarray(labels), np.asarray(scores), np.asarray(groups)
    return {str(g): screening_metrics(labels[groups == g], scores[groups == g], threshold) for g in np.unique(groups)}
