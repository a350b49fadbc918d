"""One slide through the pipeline: thumbnail and annotations, tissue mask, tissue tiles with their lesion
masks, and after the patch network the slide's lesion heatmap and the files a pathologist looks at."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from papers.gastric_wsi.annotations import Region, rasterize, read_annotations
from papers.gastric_wsi.data import SlideRecord
from papers.gastric_wsi.slides import SlideInfo, open_slide, read_level_image, thumbnail_level
from papers.gastric_wsi.tiling import TileGrid, TilingConfig, read_tiles, tile_grid


@dataclass
class SlideView:
    """A slide's low-resolution view: its thumbnail (the level nearest thumbnail_mpp) and annotations."""

    record: SlideRecord
    info: SlideInfo
    thumbnail: np.ndarray  # [h, w, 3] uint8
    downsample: float  # level-0 pixels per thumbnail pixel
    regions: list[Region]

    def annotated(self, label: str) -> bool:
        return any(region.label == label for region in self.regions)

    def mask(self, label: str) -> np.ndarray:
        return rasterize(self.regions, {label}, self.thumbnail.shape[:2], self.downsample)


def view_slide(record: SlideRecord, config: TilingConfig, default_mpp: float | None) -> SlideView:
    slide, info = open_slide(record.path, default_mpp)
    try:
        level = thumbnail_level(info, config.thumbnail_mpp)
        thumbnail = read_level_image(slide, info, level)
    finally:
        slide.close()
    regions = read_annotations(record.annotations) if record.annotations else []
    return SlideView(record, info, thumbnail, info.level_downsamples[level], regions)


@dataclass
class SlideTiles:
    grid: TileGrid
    tiles: np.ndarray  # [n, S, S, 3] uint8
    lesion: np.ndarray  # [n, S, S] uint8, from the annotations (zeros without them)


def tile_slide(view: SlideView, tissue: np.ndarray, config: TilingConfig, default_mpp: float | None) -> SlideTiles:
    """The tissue tiles, read in parallel chunks, and their lesion masks rasterized at the tiles' resolution."""
    grid = tile_grid(view.info, tissue, view.downsample, config)
    slide, info = open_slide(view.record.path, default_mpp)
    try:
        chunks = list(read_tiles(slide, info, grid, config))
    finally:
        slide.close()
    size = config.size
    tiles = np.concatenate(chunks) if chunks else np.zeros((0, size, size, 3), np.uint8)
    rows, columns = grid.shape
    full = rasterize(view.regions, {"lesion"}, (rows * size, columns * size), grid.footprint / size)
    lesion = np.zeros((len(grid.cells), size, size), np.uint8)
    for index, (r, c) in enumerate(grid.cells):
        lesion[index] = full[r * size : (r + 1) * size, c * size : (c + 1) * size]
    return SlideTiles(grid, tiles, lesion)


def stitch(grid: TileGrid, tile_maps: np.ndarray) -> np.ndarray:
    """A slide map [rows·m, cols·m] from per-tile maps [n, m, m] placed at their grid cells (0 elsewhere)."""
    side = tile_maps.shape[-1] if len(tile_maps) else 1
    rows, columns = grid.shape
    slide_map = np.zeros((rows * side, columns * side), dtype=np.float32)
    for (r, c), tile_map in zip(grid.cells, tile_maps, strict=True):
        slide_map[r * side : (r + 1) * side, c * side : (c + 1) * side] = tile_map
    return slide_map


def on_thumbnail(view: SlideView, grid: TileGrid, slide_map: np.ndarray) -> np.ndarray:
    """A stitched slide map resampled onto the thumbnail's pixels (the grid starts at the slide's corner)."""
    height, width = view.thumbnail.shape[:2]
    rows, columns = grid.shape
    size = (round(columns * grid.footprint / view.downsample), round(rows * grid.footprint / view.downsample))
    placed = np.zeros((height, width), np.float32)
    if min(size) > 0 and slide_map.size:
        resized = cv2.resize(slide_map, size, interpolation=cv2.INTER_LINEAR)
        h, w = min(height, resized.shape[0]), min(width, resized.shape[1])
        placed[:h, :w] = resized[:h, :w]
    return placed


def write_slide_outputs(folder: Path, view: SlideView, probability: np.ndarray, threshold: float,
                        caption: str) -> dict[str, Path]:  # fmt: skip
    """For one slide, from its lesion probability on the thumbnail's pixels: `<stem>_heatmap.png` (colour-
    mapped probability), `<stem>_overlay.png` (the heatmap blended over the thumbnail, predicted lesions
    outlined, the decision written on it) and `<stem>_lesion_mask.png` (0/255 at the thumbnail level)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = view.record.path.stem
    heat = cv2.applyColorMap(np.clip(probability * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    thumbnail = cv2.cvtColor(view.thumbnail, cv2.COLOR_RGB2BGR)
    alpha = np.clip(probability, 0, 1)[..., None] * 0.6
    overlay = (thumbnail * (1 - alpha) + heat * alpha).astype(np.uint8)
    lesion = (probability >= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(lesion, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(overlay, contours, -1, (0, 0, 0), 1)
    overlay = cv2.resize(overlay, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    cv2.putText(overlay, caption, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    paths = {
        "heatmap": folder / f"{stem}_heatmap.png",
        "overlay": folder / f"{stem}_overlay.png",
        "lesion_mask": folder / f"{stem}_lesion_mask.png",
    }
    for name, image in (("heatmap", heat), ("overlay", overlay), ("lesion_mask", lesion * 255)):
        cv2.imwrite(str(paths[name]), image)
    return paths
