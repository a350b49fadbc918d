"""Tiles of a slide's tissue at a chosen magnification: per tissue region (connected component of the tissue
mask) a grid centred on the region's bounding box, so that tiles overhang its edges evenly and edge tissue is
covered, keeping the tiles whose footprint is covered enough by tissue; their pixels read region by region by
parallel worker threads (OpenSlide's C library releases the GIL), streamed in chunks: a slide is never held in
memory whole. Tile maps (lesion probabilities, masks) are stitched into one slide map."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from common.config import bounded
from papers.gastric_wsi.slides import SlideInfo, SlideReadError, read_region


class NoTissueError(SlideReadError):
    """A slide whose tissue mask leaves no tile to read."""


@dataclass
class TilingConfig:
    mpp: float = bounded(1.0, above=0.0)  # µm per pixel of the tiles network 2 sees (10x; the paper's: not stated)
    size: int = bounded(128, minimum=8)  # tile edge in pixels at that magnification (the lesion map is a quarter)
    min_tissue: float = bounded(0.1, minimum=0.0, maximum=1.0)  # share of a tile's footprint that must be tissue
    level_tolerance: float = bounded(0.1, minimum=0.0)  # a level this much (relative) coarser still counts as fine
    thumbnail_mpp: float = bounded(8.0, above=0.0)  # µm per pixel of the thumbnail tissue masks and overlays use
    thumbnail_budget: int = bounded(4_194_304, minimum=1)  # pixels per strip read to make a thumbnail
    workers: int = bounded(2, minimum=1)  # threads reading regions
    chunk: int = bounded(64, minimum=1)  # tiles read per chunk


@dataclass
class TileGrid:
    origins: np.ndarray  # [n, 2] (x, y) level-0 pixels of each kept tile's top-left (may lie outside the slide)
    footprint: int  # level-0 pixels a tile spans
    slide_size: tuple[int, int]  # level-0 (width, height)

    def __len__(self) -> int:
        return len(self.origins)

    def map_shape(self, side: int) -> tuple[int, int]:
        """(rows, columns) of a slide map whose pixels are a tile map's (`side` per tile edge)."""
        scale = self.footprint / side
        width, height = self.slide_size
        return int(np.ceil(height / scale)), int(np.ceil(width / scale))


def tile_footprint(info: SlideInfo, config: TilingConfig) -> int:
    """Level-0 pixels a tile spans; a slide coarser than the tiles' magnification is a SlideReadError."""
    info.level_for_mpp(config.mpp, config.level_tolerance)
    return max(int(round(config.size * config.mpp / info.mpp)), 1)


def tile_grid(info: SlideInfo, tissue: np.ndarray, tissue_downsample: float, config: TilingConfig) -> TileGrid:
    """The kept tiles of every tissue region's grid; `tissue` is a 0/1 mask `tissue_downsample` times coarser than
    level 0. A tile is kept when at least `min_tissue` of its footprint is tissue (of any region)."""
    footprint = tile_footprint(info, config)
    count, _, stats, _ = cv2.connectedComponentsWithStats(tissue.astype(np.uint8), connectivity=8)
    integral = cv2.integral(tissue.astype(np.uint8))  # [h + 1, w + 1] running sums
    height, width = tissue.shape
    origins = []
    for x, y, w, h in stats[1:count, :4]:
        left, top, extent_x, extent_y = (value * tissue_downsample for value in (x, y, w, h))
        columns, rows = max(int(np.ceil(extent_x / footprint)), 1), max(int(np.ceil(extent_y / footprint)), 1)
        start_x = left - (columns * footprint - extent_x) / 2
        start_y = top - (rows * footprint - extent_y) / 2
        xs, ys = np.meshgrid(start_x + footprint * np.arange(columns), start_y + footprint * np.arange(rows))
        candidates = np.round(np.column_stack([xs.ravel(), ys.ravel()])).astype(np.int64)
        box = np.clip(np.round(np.column_stack([candidates, candidates + footprint]) / tissue_downsample), 0, None)
        x0, y0 = np.minimum(box[:, 0], width).astype(int), np.minimum(box[:, 1], height).astype(int)
        x1, y1 = np.minimum(box[:, 2], width).astype(int), np.minimum(box[:, 3], height).astype(int)
        covered = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        area = max((footprint / tissue_downsample) ** 2, 1.0)
        origins.append(candidates[covered / area >= max(config.min_tissue, 1e-9)])
    kept = np.concatenate(origins) if origins else np.zeros((0, 2), np.int64)
    return TileGrid(kept, footprint, info.level_dimensions[0])


def read_tiles(slide, info: SlideInfo, grid: TileGrid, config: TilingConfig) -> Iterator[np.ndarray]:
    """Chunks of tiles [k, size, size, 3] uint8 in grid order, read from the coarsest level fine enough for
    `config.mpp` and resized (area) to the tile size."""
    level = info.level_for_mpp(config.mpp, config.level_tolerance)
    extent = max(int(round(grid.footprint / info.level_downsamples[level])), 1)

    def read(origin: np.ndarray) -> np.ndarray:
        pixels = read_region(slide, info, (int(origin[0]), int(origin[1])), level, (extent, extent))
        if extent == config.size:
            return pixels
        return cv2.resize(pixels, (config.size, config.size), interpolation=cv2.INTER_AREA)

    with ThreadPoolExecutor(max_workers=max(config.workers, 1)) as pool:
        for start in range(0, len(grid.origins), config.chunk):
            yield np.stack(list(pool.map(read, grid.origins[start : start + config.chunk])))


def stitch(grid: TileGrid, tile_maps: np.ndarray, side: int) -> np.ndarray:
    """A slide map [grid.map_shape(side)] from per-tile maps [n, side, side] placed at their tiles' origins (the
    highest value where tiles overlap, 0 off the tiles)."""
    scale = grid.footprint / side
    slide_map = np.zeros(grid.map_shape(side), dtype=np.float32)
    rows, columns = slide_map.shape
    for (x, y), tile_map in zip(grid.origins, tile_maps, strict=True):
        top, left = int(round(y / scale)), int(round(x / scale))
        r0, c0, r1, c1 = max(top, 0), max(left, 0), min(top + side, rows), min(left + side, columns)
        if r1 > r0 and c1 > c0:
            window = slide_map[r0:r1, c0:c1]
            np.maximum(window, tile_map[r0 - top : r1 - top, c0 - left : c1 - left], out=window)
    return slide_map


def check_tiled(grid: TileGrid, path) -> None:
    """A slide without a single tissue tile cannot be screened: a NoTissueError."""
    if len(grid) == 0:
        raise NoTissueError(f"{path}: no tile has tissue (see pipeline.tiling.min_tissue and the tissue mask).")
