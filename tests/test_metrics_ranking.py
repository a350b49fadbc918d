import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from common.metrics import auc, gauc, logloss


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500), 1)  # many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_hand_worked_example():
    # positives score 0.8 and 0.4, negatives 0.5 and 0.1: pairs won 3 of 4
    assert auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)


def test_auc_accepts_tensors():
    labels = torch.tensor([0, 1, 0, 1])
    scores = torch.tensor([0.1, 0.9, 0.3, 0.2])
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()))


def test_gauc_weights_groups_by_size_and_skips_single_class_groups():
    labels = [1, 0, 1, 0, 0, 1, 1, 1]
    scores = [0.9, 0.1, 0.2, 0.8, 0.7, 0.6, 0.5, 0.4]
    groups = [0, 0, 1, 1, 1, 1, 2, 2]  # group 2 is all positive: skipped
    group0 = roc_auc_score([1, 0], [0.9, 0.1])
    group1 = roc_auc_score([1, 0, 0, 1], [0.2, 0.8, 0.7, 0.6])
    expected = (2 * group0 + 4 * group1) / 6
    assert gauc(labels, scores, groups) == pytest.approx(expected)


def test_gauc_matches_per_group_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 30, 2000)
    labels = rng.integers(0, 2, 2000)
    scores = rng.random(2000) + 0.3 * labels
    total, weight = 0.0, 0
    for g in np.unique(groups):
        mask = groups == g
        if labels[mask].min() != labels[mask].max():
            total += mask.sum() * roc_auc_score(labels[mask], scores[mask])
            weight += mask.sum()
    assert gauc(labels, scores, groups) == pytest.approx(total / weight)


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300)
    probabilities = rng.random(300)
    assert logloss(labels, probabilities) == pytest.approx(log_loss(labels, probabilities), rel=1e-9)


def test_metrics_reject_bad_input_with_clear_messages():
    with pytest.raises(ValueError, match="one class"):
        auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="0 or 1"):
        auc([2, 0], [0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        logloss([1, 0], [np.nan, 0.3])
    with pytest.raises(ValueError, match="no group"):
        gauc([1, 0], [0.2, 0.3], [0, 1])
