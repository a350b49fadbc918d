"""Whole-slide images through OpenSlide: open with a clear error, levels and microns per pixel, the level to
read a magnification from, thumbnails and regions. A slide is only ever read region by region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DatasetError

FORMATS = "Aperio SVS, Hamamatsu NDPI/VMS, MIRAX MRXS, Leica SCN, Philips TIFF, Ventana BIF, generic tiled TIFF"


class SlideReadError(DatasetError):
    """A slide file OpenSlide cannot open or read (missing, unsupported, truncated or corrupt)."""


@dataclass(frozen=True)
class SlideInfo:
    path: Path
    level_dimensions: tuple[tuple[int, int], ...]  # (width, height) per level
    level_downsamples: tuple[float, ...]
    mpp: float  # microns per pixel at level 0

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.level_downsamples[level]

    def level_for_mpp(self, target_mpp: float) -> int:
        """The coarsest level at least as fine as `target_mpp` (reading it and resizing down loses nothing)."""
        fine_enough = [
            level for level in range(len(self.level_downsamples)) if self.level_mpp(level) <= target_mpp * 1.01
        ]
        if not fine_enough:
            raise SlideReadError(
                f"{self.path}: its finest level has {self.mpp:.3f} µm/px, coarser than the {target_mpp} µm/px asked "
                "for (tiling.mpp); choose a coarser magnification."
            )
        return max(fine_enough, key=self.level_mpp)


def open_slide(path: Path, default_mpp: float | None = None):
    """An OpenSlide handle and its SlideInfo. A slide without resolution metadata needs `default_mpp`."""
    import openslide

    path = Path(path)
    if not path.is_file():
        raise SlideReadError(f"slide file {path} does not exist.")
    try:
        slide = openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, OSError) as error:
        raise SlideReadError(
            f"{path} is not a slide OpenSlide can open: truncated, corrupt or of an unsupported format "
            f"({type(error).__name__}: {error}); formats: {FORMATS}."
        ) from None
    properties = slide.properties
    mpp = properties.get(openslide.PROPERTY_NAME_MPP_X) or default_mpp
    if mpp is None:
        raise SlideReadError(
            f"{path} has no microns-per-pixel metadata ({openslide.PROPERTY_NAME_MPP_X}); set data.default_mpp."
        )
    info = SlideInfo(path, tuple(slide.level_dimensions), tuple(slide.level_downsamples), float(mpp))
    return slide, info


def read_region(slide, info: SlideInfo, origin: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [h, w, 3] of a region whose top-left is `origin` in level-0 pixels; transparent (unscanned)
    pixels become white. A truncated or corrupt file gets a SlideReadError naming it."""
    import openslide

    try:
        rgba = np.asarray(slide.read_region(origin, level, size))
    except openslide.OpenSlideError as error:
        raise SlideReadError(f"{info.path} could not be read at {origin}, level {level} ({error}).") from None
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255
    return (rgba[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)


def read_level_image(slide, info: SlideInfo, level: int) -> np.ndarray:
    """A whole (low-resolution) level as RGB; used for thumbnails and tissue masks only."""
    return read_region(slide, info, (0, 0), level, info.level_dimensions[level])


def thumbnail_level(info: SlideInfo, thumbnail_mpp: float) -> int:
    """The level thumbnails and tissue masks are computed on: the finest at least as coarse as thumbnail_mpp,
    or the coarsest the slide has."""
    coarse_enough = [
        level for level in range(len(info.level_downsamples)) if info.level_mpp(level) >= thumbnail_mpp * 0.99
    ]
    return min(coarse_enough, key=info.level_mpp) if coarse_enough else len(info.level_downsamples) - 1
