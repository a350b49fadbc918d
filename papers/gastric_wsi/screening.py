"""One slide through the pipeline: thumbnail and annotations, tissue mask, tissue tiles with their lesion
masks, and after the patch network the slide's lesion heatmap and the files a pathologist looks at."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from papers.gastric_wsi.annotations import AnnotationClasses, Annotations, Region, rasterize, read_annotations
from papers.gastric_wsi.data import SlideRecord
from papers.gastric_wsi.slides import Resolution, SlideInfo, open_slide, read_thumbnail
from papers.gastric_wsi.tile_store import disk_array, fill
from papers.gastric_wsi.tiling import TileGrid, TilingConfig, check_tiled, read_tiles, tile_grid


@dataclass
class SlideView:
    """A slide's low-resolution view: its thumbnail (at exactly thumbnail_mpp) and annotations."""

    record: SlideRecord
    info: SlideInfo
    resolution: Resolution  # how its µm/px was found, to open it again for its tiles
    thumbnail: np.ndarray  # [h, w, 3] uint8
    downsample: float  # level-0 pixels per thumbnail pixel
    annotations: Annotations

    @property
    def regions(self) -> list[Region]:
        return self.annotations.regions

    @property
    def thumbnail_mpp(self) -> float:
        return self.info.mpp * self.downsample

    def annotated(self, label: str) -> bool:
        return any(region.label == label for region in self.regions)

    def mask(self, label: str) -> np.ndarray:
        return rasterize(self.regions, {label}, self.thumbnail.shape[:2], self.downsample)


def view_slide(record: SlideRecord, config: TilingConfig, resolution: Resolution,
               classes: AnnotationClasses) -> SlideView:  # fmt: skip
    """Open a slide (its labels.csv mpp overriding `resolution`'s), read its thumbnail and its annotations."""
    if record.mpp is not None:
        resolution = replace(resolution, override=record.mpp)
    slide, info = open_slide(record.path, resolution)
    try:
        thumbnail = read_thumbnail(slide, info, config.thumbnail_mpp, config.level_tolerance, config.thumbnail_budget)
    finally:
        slide.close()
    annotations = read_annotations(record.annotations, classes) if record.annotations else Annotations([])
    return SlideView(record, info, resolution, thumbnail, config.thumbnail_mpp / info.mpp, annotations)


@dataclass
class SlideTiles:
    grid: TileGrid
    tiles: np.ndarray  # [n, S, S, 3] uint8, mapped from disk
    lesion: np.ndarray  # [n, S, S] uint8, from the annotations (zeros without them), mapped from disk


def tile_slide(view: SlideView, tissue: np.ndarray, config: TilingConfig, directory: Path) -> SlideTiles:
    """The tissue tiles, read in parallel chunks, and their lesion masks rasterized at the tiles' resolution,
    written to `directory` as they come and mapped back from there (tile_store.py); a NoTissueError when there is
    no tile."""
    grid = tile_grid(view.info, tissue, view.downsample, config)
    check_tiled(grid, view.record.path)
    size, scale, name = config.size, grid.footprint / config.size, view.record.path.stem
    tiles = disk_array(directory / f"{name}.tiles.npy", (len(grid.origins), size, size, 3), np.uint8)
    slide, info = open_slide(view.record.path, view.resolution)
    try:
        fill(tiles, read_tiles(slide, info, grid, config))
    finally:
        slide.close()
    lesion = disk_array(directory / f"{name}.lesion.npy", (len(grid.origins), size, size), np.uint8)
    fill(lesion, (rasterize(view.regions, {"lesion"}, (size, size), scale, origin)[None] for origin in grid.origins))
    return SlideTiles(grid, tiles, lesion)


def on_thumbnail(view: SlideView, grid: TileGrid, slide_map: np.ndarray) -> np.ndarray:
    """A stitched slide map resampled onto the thumbnail's pixels."""
    height, width = view.thumbnail.shape[:2]
    return cv2.resize(slide_map, (width, height), interpolation=cv2.INTER_LINEAR)


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
