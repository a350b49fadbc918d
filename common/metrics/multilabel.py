"""Multi-label classification metrics as the ML-FSIC authors compute them with scikit-learn (yk-pku/TOMM-FSIC,
metrics.py: Metric): average precision (precision at each distinct score threshold weighted by the recall it adds,
no interpolation; 0 for a label without a positive, as scikit-learn scores it), micro and macro mAP, and precision,
recall and F1 of the labels predicted above a score threshold, F1 from the averaged precision and recall."""

from __future__ import annotations

import numpy as np

F1_EPS = 1e-12  # metrics.py: eps


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP of one label: sum over distinct thresholds (descending) of (R_n - R_{n-1}) * P_n."""
    labels, scores = np.asarray(labels, dtype=bool).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    positives = labels.sum()
    if positives == 0:
        return 0.0  # scikit-learn: recall is 0 at every threshold
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_threshold]
    predicted = last_of_threshold + 1
    precision = true_positives / predicted
    recall = true_positives / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """`macro_map`: the mean over every label (column) of its AP, 0 for a label without a positive
    (average_precision_score(average="macro")); `micro_map`: the AP of every (example, label) pair pooled."""
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64)
    per_label = [average_precision(labels[:, j], scores[:, j]) for j in range(labels.shape[1])]
    return {"macro_map": float(np.mean(per_label)), "micro_map": average_precision(labels, scores)}


def chance_map(labels: np.ndarray, draws: int = 20, seed: int = 0) -> dict[str, float]:
    """`chance_macro_map` and `chance_micro_map`: the mAP of uniformly random scores for these labels, the mean
    over `draws` draws (a fixed seed, so the same labels give the same chance level)."""
    rng = np.random.default_rng(seed)
    totals = {"macro_map": 0.0, "micro_map": 0.0}
    for _ in range(draws):
        for name, value in mean_average_precision(labels, rng.random(np.shape(labels))).items():
            totals[name] += value / draws
    return {f"chance_{name}": value for name, value in totals.items()}


def _f1(precision: float, recall: float) -> float:
    return float(2 * precision * recall / (precision + recall + F1_EPS))


def threshold_scores(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall and F1 of the labels with probability > threshold (metrics.py: pred_scores > 0.5):
    micro from the pooled counts, macro precision and recall the means over labels (0 where a ratio has a zero
    denominator, precision_recall_fscore_support's zero_division), and each F1 = 2·P·R / (P + R + 1e-12) of the
    averaged P and R, as the authors compute it (not the mean of per-label F1)."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(probabilities) > threshold
    true_positive = (labels & predicted).sum(0).astype(np.float64)
    predicted_count, actual_count = predicted.sum(0).astype(np.float64), labels.sum(0).astype(np.float64)
    precision = np.divide(true_positive, predicted_count, out=np.zeros_like(true_positive), where=predicted_count > 0)
    recall = np.divide(true_positive, actual_count, out=np.zeros_like(true_positive), where=actual_count > 0)
    micro_precision = true_positive.sum() / predicted_count.sum() if predicted_count.sum() else 0.0
    micro_recall = true_positive.sum() / actual_count.sum() if actual_count.sum() else 0.0
    macro_precision, macro_recall = float(precision.mean()), float(recall.mean())
    return {
        "micro_precision": float(micro_precision),
        "micro_recall": float(micro_recall),
        "micro_f1": _f1(micro_precision, micro_recall),
        "macro_precision": macro_precision,
        "macro_recall": macro_recall,
        "macro_f1": _f1(macro_precision, macro_recall),
    }
