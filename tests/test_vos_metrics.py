"""J, F and J&F on hand-worked masks, against the davis2017-evaluation definitions."""

from __future__ import annotations

import numpy as np
import pytest

from common.metrics.segmentation import VOID, boundary_f, boundary_map, j_and_f, jaccard, video_object_scores


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_jaccard_of_overlapping_squares():
    a, b = square(10, 0, 0, 4), square(10, 2, 2, 4)  # 16 each, overlap 2x2 = 4, union 28
    assert jaccard(a, b) == pytest.approx(4 / 28)
    assert jaccard(a, a) == 1.0 and jaccard(a, np.zeros_like(a)) == 0.0


def test_empty_masks_count_as_perfect_and_one_sided_as_wrong():
    empty = np.zeros((8, 8), dtype=bool)
    assert jaccard(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert boundary_f(square(8, 2, 2, 3), empty) == 0.0 and boundary_f(empty, square(8, 2, 2, 3)) == 0.0


def test_boundary_map_marks_one_pixel_wide_edges():
    mask = square(6, 1, 1, 3)  # rows and columns 1..3
    expected = np.zeros((6, 6), dtype=bool)  # a pixel differing from its right, lower or lower-right one
    expected[0, 0:4] = True  # above the top edge (and the corner, whose diagonal neighbour is inside)
    expected[1:4, 0] = True  # left of the left edge
    expected[1:4, 3] = True  # the right edge: its right neighbour is outside
    expected[3, 1:4] = True  # the bottom edge: its lower neighbour is outside
    assert np.array_equal(boundary_map(mask), expected)


def test_boundary_tolerance_is_point_eight_percent_of_the_diagonal():
    # 100 x 100: tolerance ceil(0.008 * 141.4) = 2 pixels. A square shifted by 2 still matches everywhere ...
    truth = square(100, 30, 30, 40)
    assert boundary_f(truth, square(100, 32, 30, 40)) == 1.0
    # ... but shifted by 3 its top and bottom rows no longer match (the sides still do).
    shifted = boundary_f(truth, square(100, 33, 30, 40))
    assert 0.4 < shifted < 1.0


def test_video_scores_leave_out_the_first_and_last_frames_and_average_j_and_f():
    truth = np.zeros((4, 10, 10), dtype=np.uint8)
    truth[:, 2:6, 2:6] = 1
    prediction = truth.copy()
    prediction[0] = 0  # wrong on the first and last frames only: not scored
    prediction[3] = 0
    j, f = video_object_scores(truth, prediction, [1])
    assert j.tolist() == [1.0] and f.tolist() == [1.0]
    prediction[1] = 0  # wrong on one of the two scored frames
    j, f = video_object_scores(truth, prediction, [1])
    assert j.tolist() == [0.5] and f.tolist() == [0.5]
    summary = j_and_f(np.array([0.5, 1.0]), np.array([0.0, 1.0]))
    assert summary == {"j_and_f": pytest.approx(0.625), "jaccard": 0.75, "boundary_f": 0.5}


def test_void_pixels_count_in_neither_j_nor_f():
    truth = np.zeros((3, 20, 20), dtype=np.uint8)
    truth[:, 5:15, 5:15] = 1
    truth[:, 5:15, 15:20] = VOID  # DAVIS marks uncertain pixels 255
    predicted = np.zeros_like(truth)
    predicted[:, 5:15, 5:20] = 1  # spills onto the void strip only
    j, f = video_object_scores(truth, predicted, [1])
    assert j[0] == pytest.approx(1.0) and f[0] == pytest.approx(1.0)
    assert jaccard(truth[0] == 1, predicted[0] == 1) == pytest.approx(100 / 150)  # without the void mask
