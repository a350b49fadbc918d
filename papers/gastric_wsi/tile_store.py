"""Tiles on disk instead of in memory: each slide's tiles and lesion masks are written to .npy files under the run
as they are read, and read back through memory maps, so that training and the test pass hold a batch of tiles
(and the page cache whatever the system spares), never every slide's tiles at once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

TILES_DIR = "tiles"  # under the run directory; the run's own cache, safe to delete once the run has finished


def disk_array(path: Path, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A writable .npy file of `shape` mapped into memory (numpy's format: `np.load(path, mmap_mode="r")` reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def fill(target: np.ndarray, chunks: Iterable[np.ndarray]) -> np.ndarray:
    """`target`, its rows filled in order from `chunks` (which must hold exactly len(target) rows)."""
    start = 0
    for chunk in chunks:
        target[start : start + len(chunk)] = chunk
        start += len(chunk)
    if start != len(target):
        raise ValueError(f"{start} rows were read for an array of {len(target)}")
    return target


class StackedRows:
    """The rows of several arrays (e.g. memory maps, one per slide) seen as one array without copying them
    together: `len`, and `rows[indices]` (an int or an index array, any order) gathering just those rows."""

    def __init__(self, parts: list[np.ndarray]):
        if not parts:
            raise ValueError("StackedRows needs at least one array")
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(part) for part in parts)])
        self.shape = (int(self.offsets[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, indices) -> np.ndarray:
        wanted = np.asarray(indices)
        rows = np.atleast_1d(wanted)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row indices must lie in [0, {len(self)})")
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        gathered = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for part in np.unique(part_of):
            where = part_of == part
            gathered[where] = self.parts[part][rows[where] - self.offsets[part]]
        return gathered[0] if wanted.ndim == 0 else gathered
