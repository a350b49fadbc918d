"""Multi-label metrics against scikit-learn's, computed as the ML-FSIC authors' metrics.py does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from common.metrics.multilabel import average_precision, chance_map, mean_average_precision, threshold_scores


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_scikit_learn_including_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random((60, 7)) < 0.3
    labels[0] = True  # every label has a positive
    scores = np.round(rng.random((60, 7)), 1)  # rounded: many tied scores
    for column in range(7):
        expected = average_precision_score(labels[:, column], scores[:, column])
        assert average_precision(labels[:, column], scores[:, column]) == pytest.approx(expected)
    result = mean_average_precision(labels, scores)
    assert result["macro_map"] == pytest.approx(average_precision_score(labels, scores, average="macro"))
    assert result["micro_map"] == pytest.approx(average_precision_score(labels, scores, average="micro"))


@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn warns of the label without a positive
def test_a_label_without_positives_scores_zero_in_the_macro_mean_as_scikit_learn():
    labels = np.array([[1, 0], [0, 0], [1, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert mean_average_precision(labels, scores)["macro_map"] == 0.5
    assert average_precision_score(labels, scores, average="macro") == 0.5
    assert mean_average_precision(np.zeros((3, 2), dtype=bool), scores)["macro_map"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_threshold_scores_are_the_authors_f1_of_scikit_learn_s_averaged_precision_and_recall(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random((40, 6)) < 0.3
    probabilities = np.round(rng.random((40, 6)), 1)  # some exactly 0.5: not predicted (pred_scores > 0.5)
    probabilities[:, 5] = 0.1  # a label never predicted: precision 0 by zero_division=0
    result = threshold_scores(labels, probabilities, 0.5)
    predicted = (probabilities > 0.5).astype(float)
    for average in ("micro", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average=average, zero_division=0)
        assert result[f"{average}_precision"] == pytest.approx(precision)
        assert result[f"{average}_recall"] == pytest.approx(recall)
        assert result[f"{average}_f1"] == pytest.approx(2 * precision * recall / (precision + recall + 1e-12))
    per_label_f1 = precision_recall_fscore_support(labels, predicted, average="macro", zero_division=0)[2]
    assert result["macro_f1"] != pytest.approx(per_label_f1)  # the authors' macro F1 is not the mean label F1


def test_chance_map_is_the_expected_ap_of_random_scores():
    one_in_four = np.array([[1], [0], [0], [0]])
    expected = (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4  # E[1 / rank of the single positive]
    chance = chance_map(one_in_four, draws=4000)
    assert chance["chance_macro_map"] == pytest.approx(expected, abs=0.015)
    assert chance == chance_map(one_in_four, draws=4000)  # fixed seed
    assert chance_map(np.ones((3, 2)), draws=5) == {"chance_macro_map": 1.0, "chance_micro_map": 1.0}
