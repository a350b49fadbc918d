"""Slide-screening metrics and Dice on hand-worked scores and masks."""

from __future__ import annotations

import numpy as np
import pytest

from common.metrics.screening import operating_point, per_group, screening_metrics, sensitivity_specificity
from common.metrics.segmentation import dice

LABELS = np.array([1, 1, 1, 0, 0, 0, 0])
SCORES = np.array([0.9, 0.7, 0.3, 0.8, 0.4, 0.2, 0.1])


def test_sensitivity_and_specificity_at_a_threshold():
    assert sensitivity_specificity(LABELS, SCORES, 0.5) == {"sensitivity": 2 / 3, "specificity": 3 / 4}
    assert sensitivity_specificity(LABELS, SCORES, 0.3) == {"sensitivity": 1.0, "specificity": 2 / 4}
    assert np.isnan(sensitivity_specificity([0, 0], [0.1, 0.2], 0.5)["sensitivity"])


def test_operating_points_chosen_on_validation():
    # midpoints: at 0.55 sensitivity + specificity = 2/3 + 3/4, at 0.35 2/3 + 2/4, at 0.25 1 + 2/4 (the best)
    assert operating_point(LABELS, SCORES, "youden") == pytest.approx(0.25)
    assert operating_point(LABELS, SCORES, "sensitivity", min_sensitivity=0.95) == pytest.approx(0.25)
    assert operating_point(LABELS, SCORES, "sensitivity", min_sensitivity=0.6) == pytest.approx(0.55)
    # separable scores: every threshold between 0.2 and 0.8 is perfect; the middle of that run is taken
    assert operating_point([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both classes"):
        operating_point([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="'f1' is not one of youden, sensitivity"):
        operating_point(LABELS, SCORES, "f1")


def test_screening_metrics_and_the_per_center_breakdown():
    metrics = screening_metrics(LABELS, SCORES, 0.7)
    assert metrics["sensitivity"] == 2 / 3 and metrics["specificity"] == 3 / 4
    assert metrics["auc"] == pytest.approx(9 / 12)  # 4 + 3 + 2 of the 12 positive-negative pairs ordered right
    centers = np.array(["a", "a", "b", "a", "b", "b", "b"])
    groups = per_group(LABELS, SCORES, centers, 0.7)
    assert groups["a"] == {"sensitivity": 1.0, "specificity": 0.0, "auc": 0.5}
    assert groups["b"]["sensitivity"] == 0.0 and groups["b"]["specificity"] == 1.0
    assert groups["b"]["auc"] == pytest.approx(2 / 3)


def test_dice_of_hand_made_masks():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert dice(a, b) == 0.5
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    assert dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
