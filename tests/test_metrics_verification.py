"""Authentication metrics on hand-worked scores."""

from __future__ import annotations

import time

import numpy as np
import pytest

from common.metrics.verification import authentication_metrics, eer_threshold, far_frr, tar_at_far


def test_far_frr_and_the_eer_threshold():
    genuine = np.array([0.9, 0.8, 0.6, 0.3])
    impostor = np.array([0.7, 0.4, 0.2, 0.1])
    assert far_frr(genuine, impostor, 0.5) == (0.25, 0.25)
    # at 0.6: FAR 1/4 (0.7), FRR 1/4 (0.3): equal, and the highest threshold where they are
    assert eer_threshold(genuine, impostor) == (0.6, 0.25)
    assert eer_threshold([1.0, 0.9], [0.1, 0.0]) == (0.9, 0.0)
    with pytest.raises(ValueError, match="genuine and impostor"):
        eer_threshold([], [0.1])


def test_tar_at_far():
    impostor = np.linspace(0, 0.99, 100)  # 100 impostors: FAR <= 1% first at threshold 0.99
    genuine = np.array([1.0, 0.995, 0.98, 0.5])
    assert tar_at_far(genuine, impostor, 0.01) == 0.5
    assert tar_at_far(genuine, impostor, 0.05) == 0.75  # threshold 0.95: 5 impostors accepted


def test_authentication_metrics_one_versus_rest():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    metrics = authentication_metrics(scores, labels, scores, labels)
    assert metrics["accuracy"] == 0.75
    assert metrics["auc"] == pytest.approx((0.75 + 0.75) / 2)  # each identity: 3 of 4 pairs ordered right
    assert metrics["far"] == 0.5 and metrics["frr"] == 0.5  # EER thresholds 0.7 (id 0) and 0.4 (id 1)
    with pytest.raises(ValueError, match="two identities"):
        authentication_metrics(scores[:2], labels[:2], scores[:2], labels[:2])


def _quadratic_eer(genuine, impostor):
    """The definition swept one candidate at a time (the sorted sweep must agree with it)."""
    candidates = np.unique(np.concatenate([genuine, impostor]))[::-1]
    rates = np.array([far_frr(genuine, impostor, t) for t in candidates])
    best = int(np.argmin(np.abs(rates[:, 0] - rates[:, 1])))
    return float(candidates[best]), float(rates[best].mean())


def _quadratic_tar(genuine, impostor, far):
    candidates = np.unique(np.concatenate([genuine, impostor, [np.inf]]))
    return float(np.mean(genuine >= min(t for t in candidates if np.mean(impostor >= t) <= far)))


def test_sorted_sweeps_agree_with_the_one_threshold_at_a_time_definitions():
    rng = np.random.default_rng(0)
    for trial in range(200):
        genuine = rng.integers(0, 12, rng.integers(1, 30)) / 11  # ties between and within the two sets
        impostor = rng.integers(0, 12, rng.integers(1, 30)) / 11
        if trial % 2:
            genuine, impostor = rng.random(len(genuine)), rng.random(len(impostor))
        assert eer_threshold(genuine, impostor) == _quadratic_eer(genuine, impostor)
        for far in (0.0, 0.01, 0.2):
            assert tar_at_far(genuine, impostor, far) == _quadratic_tar(genuine, impostor, far)


def test_a_million_scores_take_well_under_a_second():
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(1, 1, 100_000), rng.normal(0, 1, 900_000)
    start = time.process_time()  # CPU time: other processes on the machine do not count
    threshold, eer = eer_threshold(genuine, impostor)
    tar_at_far(genuine, impostor, 0.01)
    assert time.process_time() - start < 1.0
    assert 0.4 < threshold < 0.6 and 0.28 < eer < 0.34  # two unit normals one apart: EER = Φ(−0.5) ≈ 0.31
