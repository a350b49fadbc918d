"""Tiles spilled to disk (papers/gastric_wsi/tile_store.py): what is written reads back, and several slides' arrays
gather as one without being copied together."""

from __future__ import annotations

import numpy as np
import pytest

from papers.gastric_wsi.tile_store import StackedRows, disk_array, fill


def test_a_filled_disk_array_reads_back_with_numpy(tmp_path):
    values = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    written = fill(disk_array(tmp_path / "slide.tiles.npy", values.shape, np.uint8), [values[:2], values[2:]])
    written.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "slide.tiles.npy", mmap_mode="r"), values)
    with pytest.raises(ValueError, match="4 rows were read for an array of 5"):
        fill(disk_array(tmp_path / "short.npy", values.shape, np.uint8), [values[:4]])


def test_stacked_rows_gather_rows_of_several_arrays_in_the_order_asked(tmp_path):
    first = disk_array(tmp_path / "a.npy", (3, 2), np.int64)
    first[:] = [[0, 0], [1, 1], [2, 2]]
    second = np.array([[3, 3], [4, 4]])
    rows = StackedRows([first, second])
    assert len(rows) == 5 and rows.shape == (5, 2)
    np.testing.assert_array_equal(rows[np.array([4, 0, 3, 1])], [[4, 4], [0, 0], [3, 3], [1, 1]])
    np.testing.assert_array_equal(rows[2], [2, 2])
    assert rows[np.array([], dtype=np.int64)].shape == (0, 2)
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        rows[np.array([5])]
