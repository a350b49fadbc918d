"""Test metrics of ML-FSIC: one row of metrics per episode, averaged over the episodes of each shot count, and
the per-episode contributions of those averages (the test unit is the episode)."""

from __future__ import annotations

import numpy as np

from common.metrics.multilabel import chance_map, mean_average_precision, threshold_scores
from common.units import UnitContributions

EPISODE_KEYS = ("shots", "episode")  # what an episode's row carries besides its metrics


def episode_metrics(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """One episode's mAP, precision/recall/F1 at 0.5 and the mAP of random scores, from its query targets and
    probabilities [Q, N]."""
    return {
        **mean_average_precision(targets, probabilities),
        **threshold_scores(targets, probabilities),
        **chance_map(targets),
    }


def metric_names(outputs: dict[str, np.ndarray]) -> list[str]:
    return [name for name in outputs if name not in EPISODE_KEYS]


def metrics_by_shots(outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """`<metric>_<K>shot`: the mean over the K-shot episodes of each per-episode metric."""
    result = {}
    for shots in np.unique(outputs["shots"]).astype(int):
        rows = outputs["shots"] == shots
        for name in metric_names(outputs):
            result[f"{name}_{shots}shot"] = float(np.asarray(outputs[name], dtype=np.float64)[rows].mean())
    return result


def episode_units(outputs: dict[str, np.ndarray], episode_seed: int) -> UnitContributions:
    """Each `<metric>_<K>shot` as a mean over episodes, weight 1 on the K-shot episodes and 0 elsewhere; the shot
    count is the stratum. An episode is a function of (episode_seed, index), so its id names both."""
    shots = np.asarray(outputs["shots"]).astype(int)
    ids = np.array([f"{episode_seed}:{int(index)}" for index in outputs["episode"]])
    units = UnitContributions(unit="episode", ids=ids, strata=shots)
    for count in np.unique(shots):
        for name in metric_names(outputs):
            units.add_mean(f"{name}_{count}shot", outputs[name], shots == count)
    return units
