"""Per-sample contributions of the authentication metrics (`common.metrics.verification.authentication_metrics`),
so that the reproduced tables can bootstrap over test samples, stratified by identity.

With every identity's test count fixed by the strata, each metric is a sum of per-sample shares:
- auc: the mean over identities of the one-vs-rest AUC (a macro AUC over the identities' score columns);
- far: mean_i (accepted impostors of i / impostors of i), a sample's share summed over the identities it is an
  impostor for; frr: mean_i (rejected genuine samples of i / samples of i), each threshold chosen on the
  validation scores, which resampling the test samples leaves fixed;
- accuracy: the mean of top-1 hits.
TAR at FAR = 1% sets its threshold on the test impostors themselves and does not decompose: it is left out.
"""

from __future__ import annotations

import numpy as np

from common.metrics.verification import eer_threshold, one_vs_rest
from common.units import UnitContributions


def scored_identities(labels: np.ndarray, val_labels: np.ndarray) -> list[int]:
    """The identities the authentication metrics average over: present in the test labels, and in the
    validation labels beside some other identity (so that an EER threshold can be chosen)."""
    return [int(i) for i in np.unique(labels) if np.any(val_labels == i) and np.any(val_labels != i)]


def sample_units(labels: np.ndarray) -> UnitContributions:
    """Contributions over the test samples (ids: their positions among the test rows), stratified by identity."""
    labels = np.asarray(labels, dtype=np.int64)
    return UnitContributions(unit="sample", ids=np.arange(len(labels)), strata=labels)


def add_authentication_contributions(units: UnitContributions, scores: np.ndarray, labels: np.ndarray,
                                     val_scores: np.ndarray, val_labels: np.ndarray,
                                     prefix: str = "") -> UnitContributions:  # fmt: skip
    """Add `<prefix>auc`, `<prefix>far`, `<prefix>frr` and `<prefix>accuracy` for scores [samples, identities]."""
    identities = scored_identities(labels, val_labels)
    position = {identity: column for column, identity in enumerate(identities)}
    classes = np.array([position.get(int(label), -1) for label in labels])  # -1: negative for every identity
    units.add_macro_auc(f"{prefix}auc", classes, scores[:, identities])
    far_shares, frr_shares = np.zeros(len(labels)), np.zeros(len(labels))
    for identity in identities:
        threshold, _ = eer_threshold(*one_vs_rest(val_scores, val_labels, identity))
        accepted, genuine = scores[:, identity] >= threshold, labels == identity
        far_shares += (accepted & ~genuine) / (~genuine).sum()
        frr_shares += (~accepted & genuine) / genuine.sum()
    # metric = sum of the shares / identities = mean over the samples of (samples / identities) * share
    scale = len(labels) / len(identities)
    units.add_mean(f"{prefix}far", scale * far_shares)
    units.add_mean(f"{prefix}frr", scale * frr_shares)
    return units.add_mean(f"{prefix}accuracy", scores.argmax(1) == labels)
