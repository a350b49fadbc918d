"""No-learning rows of gastric WSI screening: patch scores and lesion maps of a slide's tiles that nothing was
trained for, which the task scores like a trained model's outputs. A no-learning row's slide score is its
highest patch score (network 3 is not trained on that path), so each scorer gives every tile a patch score whose
maximum over the slide is the slide's score.

- `oracle`, the ceiling: the generator's ground truth, i.e. the slide's label and the tile's annotated lesion
  mask (patch score: the mean of the slide's and the tile's label, so that slides and tiles both rank perfectly).
- `trivial_thumbnail_od`: the 99th percentile of optical density over the Otsu tissue pixels of the slide's
  thumbnail as the slide score (given to each of its tiles); lesions: tissue whose median-filtered optical
  density is above the slide's Otsu threshold of it.
- `trivial_otsu_tissue`: every tile called positive and all of Otsu's tissue called lesion.
"""

from __future__ import annotations

import cv2
import numpy as np

from papers.gastric_wsi.screening import SlideView
from papers.gastric_wsi.tiling import TileGrid
from papers.gastric_wsi.tissue import OtsuConfig, otsu_tissue_mask, pixels

ORACLE = "oracle"
THUMBNAIL_OD = "trivial_thumbnail_od"
OTSU_TISSUE = "trivial_otsu_tissue"
SCORERS = (ORACLE, THUMBNAIL_OD, OTSU_TISSUE)
OD_QUANTILE = 0.99  # the slide score of trivial_thumbnail_od
OD_MAX = float(np.log(256))  # optical density of a black pixel, with I + 1 against 256


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, the mean over the channels of -ln((I + 1) / 256): Beer-Lambert's stain density (0 for white)."""
    return -np.log((rgb.astype(np.float32) + 1) / 256).mean(axis=2)


def thumbnail_od_score(thumbnail: np.ndarray, tissue: np.ndarray) -> float:
    """The OD_QUANTILE quantile of optical density over the tissue pixels (0 without tissue)."""
    density = optical_density(thumbnail)[tissue > 0]
    return float(np.quantile(density, OD_QUANTILE)) if density.size else 0.0


def od_lesion_mask(thumbnail: np.ndarray, tissue: np.ndarray, blur: int) -> np.ndarray:
    """uint8 0/1: tissue pixels whose median-filtered optical density is above Otsu's threshold of the tissue's."""
    density = np.round(optical_density(thumbnail) / OD_MAX * 255).astype(np.uint8)
    density = cv2.medianBlur(density, blur | 1)
    inside = density[tissue > 0]
    if inside.size == 0:
        return np.zeros_like(tissue, dtype=np.uint8)
    threshold, _ = cv2.threshold(inside.reshape(-1, 1), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return ((density > threshold) & (tissue > 0)).astype(np.uint8)


def on_tiles(thumbnail_map: np.ndarray, downsample: float, grid: TileGrid, side: int) -> np.ndarray:
    """A thumbnail-level map read at the centre of every cell of each tile's side x side lesion map:
    [tiles, side, side] (`downsample`: level-0 pixels per thumbnail pixel)."""
    offsets = (np.arange(side) + 0.5) * grid.footprint / side  # level-0 pixels from a tile's origin
    height, width = thumbnail_map.shape
    rows = np.clip(((grid.origins[:, 1, None] + offsets) / downsample).astype(int), 0, height - 1)
    columns = np.clip(((grid.origins[:, 0, None] + offsets) / downsample).astype(int), 0, width - 1)
    return thumbnail_map[rows[:, :, None], columns[:, None, :]].astype(np.float32)


def oracle_tiles(slide_label: int, tile_labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patch scores (slide label + tile label) / 2 and the ground-truth lesion maps `truth` [tiles, side, side]."""
    return (slide_label + tile_labels.astype(np.float32)) / 2, truth.astype(np.float32)


def thumbnail_od_tiles(view: SlideView, grid: TileGrid, side: int,
                       otsu: OtsuConfig) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Every tile scored with the slide's thumbnail OD score; lesion maps from the optical-density threshold."""
    tissue = otsu_tissue_mask(view.thumbnail, otsu, view.thumbnail_mpp)
    score = thumbnail_od_score(view.thumbnail, tissue)
    lesion = od_lesion_mask(view.thumbnail, tissue, pixels(otsu.blur_um, view.thumbnail_mpp))
    return np.full(len(grid), score, np.float32), on_tiles(lesion, view.downsample, grid, side)


def otsu_tissue_tiles(view: SlideView, grid: TileGrid, side: int,
                      otsu: OtsuConfig) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Every tile scored 1 (positive); lesion maps: Otsu's tissue mask."""
    tissue = otsu_tissue_mask(view.thumbnail, otsu, view.thumbnail_mpp)
    return np.ones(len(grid), np.float32), on_tiles(tissue, view.downsample, grid, side)


TRIVIAL_SCORERS = {THUMBNAIL_OD: thumbnail_od_tiles, OTSU_TISSUE: otsu_tissue_tiles}
