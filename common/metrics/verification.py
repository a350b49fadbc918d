"""Authentication metrics over identity scores: the equal-error-rate threshold of genuine against impostor
scores, FAR and FRR at a threshold, TAR at a fixed FAR, and their one-versus-rest form per identity (an
identity's genuine scores are its own samples' scores for it; its impostor scores are every other sample's)."""

from __future__ import annotations

import numpy as np

from common.metrics.ranking import auc


def far_frr(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """A score >= threshold is accepted: FAR = accepted impostors, FRR = rejected genuine attempts."""
    return float(np.mean(np.asarray(impostor) >= threshold)), float(np.mean(np.asarray(genuine) < threshold))


def eer_threshold(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(threshold, EER): among the observed scores, the threshold where FAR and FRR are closest (the highest
    such on ties); the EER is their mean there."""
    genuine, impostor = np.asarray(genuine, dtype=np.float64), np.asarray(impostor, dtype=np.float64)
    if not len(genuine) or not len(impostor):
        raise ValueError("an EER needs genuine and impostor scores")
    candidates = np.unique(np.concatenate([genuine, impostor]))[::-1]
    rates = np.array([far_frr(genuine, impostor, t) for t in candidates])
    best = int(np.argmin(np.abs(rates[:, 0] - rates[:, 1])))
    return float(candidates[best]), float(rates[best].mean())


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float = 0.01) -> float:
    """The share of genuine scores accepted at the lowest observed threshold whose FAR is at most `far`."""
    genuine, impostor = np.asarray(genuine, dtype=np.float64), np.asarray(impostor, dtype=np.float64)
    candidates = np.unique(np.concatenate([genuine, impostor, [np.inf]]))
    allowed = [t for t in candidates if np.mean(impostor >= t) <= far]
    return float(np.mean(genuine >= min(allowed)))


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
