"""Authentication metrics over identity scores: the equal-error-rate threshold of genuine against impostor
scores, FAR and FRR at a threshold, TAR at a fixed FAR, and their one-versus-rest form per identity (an
identity's genuine scores are its own samples' scores for it; its impostor scores are every other sample's)."""

from __future__ import annotations

import numpy as np

from common.metrics.ranking import auc


def far_frr(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """A score >= threshold is accepted: FAR = accepted impostors, FRR = rejected genuine attempts."""
    return float(np.mean(np.asarray(impostor) >= threshold)), float(np.mean(np.asarray(genuine) < threshold))


def _rates_at_observed_scores(genuine: np.ndarray, impostor: np.ndarray, extra: float | None = None):
    """(thresholds, FAR, FRR): every distinct observed score (and `extra`) ascending, with FAR and FRR there as
    far_frr has them, from one sort of all scores and running counts: O(n log n)."""
    scores = np.concatenate([genuine, impostor] + ([] if extra is None else [[extra]]))
    is_genuine = np.zeros(len(scores), dtype=np.int64)
    is_genuine[: len(genuine)] = 1
    is_impostor = np.zeros(len(scores), dtype=np.int64)
    is_impostor[len(genuine) : len(genuine) + len(impostor)] = 1
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # each distinct score's first position
    genuine_below = np.r_[0, np.cumsum(is_genuine[order])][first]  # genuine < t
    impostor_below = np.r_[0, np.cumsum(is_impostor[order])][first]
    return ordered[first], (len(impostor) - impostor_below) / len(impostor), genuine_below / len(genuine)


def eer_threshold(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(threshold, EER): among the observed scores, the threshold where FAR and FRR are closest (the highest
    such on ties); the EER is their mean there. One sorted sweep over the candidates."""
    genuine, impostor = np.asarray(genuine, dtype=np.float64), np.asarray(impostor, dtype=np.float64)
    if not len(genuine) or not len(impostor):
        raise ValueError("an EER needs genuine and impostor scores")
    thresholds, far, frr = (values[::-1] for values in _rates_at_observed_scores(genuine, impostor))
    best = int(np.argmin(np.abs(far - frr)))  # the first minimum from the top: the highest threshold
    return float(thresholds[best]), float((far[best] + frr[best]) / 2)


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float = 0.01) -> float:
    """The share of genuine scores accepted at the lowest observed threshold whose FAR is at most `far`."""
    genuine, impostor = np.asarray(genuine, dtype=np.float64), np.asarray(impostor, dtype=np.float64)
    thresholds, rates, _ = _rates_at_observed_scores(genuine, impostor, extra=np.inf)  # FAR(inf) = 0
    return float(np.mean(genuine >= thresholds[int(np.argmax(rates <= far))]))


def one_vs_rest(scores: np.ndarray, labels: np.ndarray, identity: int) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores of one identity: column `identity` of scores [samples, identities]."""
    own = np.asarray(labels) == identity
    return scores[own, identity], scores[~own, identity]


def authentication_metrics(scores: np.ndarray, labels: np.ndarray, val_scores: np.ndarray,
                           val_labels: np.ndarray, far: float = 0.01) -> dict[str, float]:  # fmt: skip
    """Means over the identities present in both sets: one-versus-rest ROC-AUC, FAR and FRR at each identity's
    EER threshold chosen on the validation scores, TAR at `far`; and top-1 accuracy."""
    identities = [i for i in np.unique(labels) if np.any(val_labels == i) and np.any(val_labels != i)]
    if not identities or len(np.unique(labels)) < 2:
        raise ValueError("authentication metrics need at least two identities in the test and validation sets")
    aucs, fars, frrs, tars = [], [], [], []
    for identity in identities:
        threshold, _ = eer_threshold(*one_vs_rest(val_scores, val_labels, identity))
        genuine, impostor = one_vs_rest(scores, labels, identity)
        aucs.append(auc((labels == identity).astype(int), scores[:, identity]))
        far_value, frr_value = far_frr(genuine, impostor, threshold)
        fars.append(far_value)
        frrs.append(frr_value)
        tars.append(tar_at_far(genuine, impostor, far))
    return {
        "auc": float(np.mean(aucs)),
        "far": float(np.mean(fars)),
        "frr": float(np.mean(frrs)),
        "tar_at_far1": float(np.mean(tars)),
        "accuracy": float(np.mean(scores.argmax(1) == labels)),
    }
