"""Tiles of a slide's tissue at a chosen magnification: the grid of tile origins whose footprint is covered
enough by the tissue mask, and their pixels read region by region by parallel worker threads (OpenSlide's C
library releases the GIL), streamed in chunks: a slide is never held in memory whole."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from common.config import bounded
from papers.gastric_wsi.slides import SlideInfo, read_region


@dataclass
class TilingConfig:
    mpp: float = bounded(1.0, above=0.0)  # µm per pixel of the tiles network 2 sees (10x; the paper's: not stated)
    size: int = bounded(128, minimum=8)  # tile edge in pixels at that magnification (the lesion map is a quarter)
    min_tissue: float = bounded(0.25, minimum=0.0, maximum=1.0)  # share of a tile's footprint that must be tissue
    thumbnail_mpp: float = bounded(8.0, above=0.0)  # µm per pixel of the level tissue masks and overlays are made on
    workers: int = bounded(2, minimum=1)  # threads reading regions
    chunk: int = bounded(64, minimum=1)  # tiles read per chunk


@dataclass
class TileGrid:
    origins: np.ndarray  # [n, 2] (x, y) level-0 pixels of each kept tile
    cells: np.ndarray  # [n, 2] (row, column) in the grid
    shape: tuple[int, int]  # grid rows and columns
    footprint: int  # level-0 pixels a tile spans


def tile_grid(info: SlideInfo, tissue: np.ndarray, tissue_downsample: float, config: TilingConfig) -> TileGrid:
    """Every grid tile (covering the slide from its top-left corner) whose footprint is at least
    `min_tissue` tissue; `tissue` is a 0/1 mask at `tissue_downsample` times coarser than level 0."""
    footprint = int(round(config.size * config.mpp / info.mpp))
    width, height = info.level_dimensions[0]
    rows, columns = height // footprint, width // footprint
    if rows == 0 or columns == 0:
        return TileGrid(np.zeros((0, 2), int), np.zeros((0, 2), int), (rows, columns), footprint)
    covered = tissue[: int(rows * footprint / tissue_downsample), : int(columns * footprint / tissue_downsample)]
    coverage = cv2.resize(covered.astype(np.float32), (columns, rows), interpolation=cv2.INTER_AREA)
    cells = np.argwhere(coverage >= config.min_tissue)
    return TileGrid(cells[:, ::-1] * footprint, cells, (rows, columns), footprint)


def read_tiles(slide, info: SlideInfo, grid: TileGrid, config: TilingConfig) -> Iterator[np.ndarray]:
    """Chunks of tiles [k, size, size, 3] uint8 in grid order, read from the coarsest level at least as fine
    as `config.mpp` and resized (area) to the tile size."""
    level = info.level_for_mpp(config.mpp)
    extent = int(round(grid.footprint / info.level_downsamples[level]))

    def read(origin: np.ndarray) -> np.ndarray:
        pixels = read_region(slide, info, (int(origin[0]), int(origin[1])), level, (extent, extent))
        if extent == config.size:
            return pixels
        return cv2.resize(pixels, (config.size, config.size), interpolation=cv2.INTER_AREA)

    with ThreadPoolExecutor(max_workers=max(config.workers, 1)) as pool:
        for start in range(0, len(grid.origins), config.chunk):
            yield np.stack(list(pool.map(read, grid.origins[start : start + config.chunk])))
