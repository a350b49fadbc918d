"""Whole-slide images through OpenSlide: open with a clear error, levels and microns per pixel (resolved as
TIAToolbox resolves them), the level to read a magnification from, thumbnails read in strips and regions. A slide
is only ever read region by region."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.errors import DatasetError

FORMATS = "Aperio SVS, Hamamatsu NDPI/VMS, MIRAX MRXS, Leica SCN, Philips TIFF, Ventana BIF, generic tiled TIFF"
OBJECTIVE_POWER_MICRONS = 10.0  # µm/px = 10 / objective power, TIAToolbox's objective_power2mpp (20x: 0.5 µm/px)


class SlideReadError(DatasetError):
    """A slide that cannot be screened as it is: missing, unsupported, truncated or corrupt, or without a usable
    resolution."""


@dataclass(frozen=True)
class Resolution:
    """Where a slide's µm/px comes from, first match wins: `override` (a labels.csv mpp value or data.mpp_override),
    the slide's mpp metadata, its objective power (10 / power), `default` (data.default_mpp). A value outside
    `plausible` (e.g. a generic TIFF's default 72 dpi, 352.8 µm/px) is an error unless overridden."""

    override: float | None = None
    default: float | None = None
    plausible: tuple[float, float] = (0.1, 20.0)


@dataclass(frozen=True)
class SlideInfo:
    path: Path
    level_dimensions: tuple[tuple[int, int], ...]  # (width, height) per level
    level_downsamples: tuple[float, ...]
    mpp: float  # microns per pixel at level 0
    mpp_source: str  # override | metadata | objective power | default

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.level_downsamples[level]

    def level_for_mpp(self, target_mpp: float, tolerance: float) -> int:
        """The coarsest level at least as fine as `target_mpp`, a level up to `tolerance` (relative) coarser
        counting as fine enough (a 40x scanner's 0.2527 µm/px has 1.0108 µm/px at its 4x level: 1.0 µm/px is read
        from there, not from level 0). Reading it and resizing loses nothing, or no more than the tolerance."""
        fine_enough = [
            level
            for level in range(len(self.level_downsamples))
            if self.level_mpp(level) <= target_mpp * (1 + tolerance)
        ]
        if not fine_enough:
            raise SlideReadError(
                f"{self.path}: its finest level has {self.mpp:.3f} µm/px, coarser than the {target_mpp} µm/px asked "
                "for (tiling.mpp); choose a coarser magnification."
            )
        return max(fine_enough, key=self.level_mpp)


def slide_mpp(path: Path, properties, resolution: Resolution) -> tuple[float, str]:
    """(µm/px at level 0, where it came from) of a slide with OpenSlide `properties`, or a SlideReadError saying
    what is missing or implausible and how to set it."""
    import openslide

    low, high = resolution.plausible
    if resolution.override is not None:
        return float(resolution.override), "override"
    metadata = properties.get(openslide.PROPERTY_NAME_MPP_X)
    power = properties.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
    fix = "set its mpp column in labels.csv or data.mpp_override"
    if metadata is not None:
        value = float(metadata)
        if not low <= value <= high:
            raise SlideReadError(
                f"{path} reports {value:.4g} µm/px ({openslide.PROPERTY_NAME_MPP_X}), outside the plausible "
                f"{low}-{high} µm/px (data.mpp_range; a TIFF's default 72 dpi reads as 352.8 µm/px); {fix}."
            )
        return value, "metadata"
    if power is not None and float(power) > 0:
        return OBJECTIVE_POWER_MICRONS / float(power), "objective power"
    if resolution.default is not None:
        return float(resolution.default), "default"
    raise SlideReadError(
        f"{path} has neither microns-per-pixel ({openslide.PROPERTY_NAME_MPP_X}) nor objective power "
        f"({openslide.PROPERTY_NAME_OBJECTIVE_POWER}) metadata; {fix} (or data.default_mpp)."
    )


def open_slide(path: Path, resolution: Resolution):
    """An OpenSlide handle and its SlideInfo."""
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
    try:
        mpp, source = slide_mpp(path, slide.properties, resolution)
    except SlideReadError:
        slide.close()
        raise
    info = SlideInfo(path, tuple(slide.level_dimensions), tuple(slide.level_downsamples), mpp, source)
    return slide, info


def read_region(slide, info: SlideInfo, origin: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 [h, w, 3] of a region whose top-left is `origin` in level-0 pixels; transparent (unscanned or
    outside the slide) pixels become white. A truncated or corrupt file gets a SlideReadError naming it."""
    import openslide

    try:
        rgba = np.asarray(slide.read_region(origin, level, size))
    except openslide.OpenSlideError as error:
        raise SlideReadError(f"{info.path} could not be read at {origin}, level {level} ({error}).") from None
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255
    return (rgba[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)


def thumbnail_shape(info: SlideInfo, thumbnail_mpp: float) -> tuple[int, int]:
    """(height, width) of the slide at `thumbnail_mpp` µm/px."""
    width, height = info.level_dimensions[0]
    scale = info.mpp / thumbnail_mpp
    return max(round(height * scale), 1), max(round(width * scale), 1)


def read_thumbnail(slide, info: SlideInfo, thumbnail_mpp: float, tolerance: float, budget: int) -> np.ndarray:
    """The slide at exactly `thumbnail_mpp` µm/px (so that tissue masks and their µm sizes mean the same on every
    slide), from the coarsest level fine enough (level 0 if none is), read in horizontal strips of at most `budget`
    pixels each, every strip resized (area) as it is read: a single-level gigapixel slide is never read whole."""
    try:
        level = info.level_for_mpp(thumbnail_mpp, tolerance)
    except SlideReadError:
        level = 0  # the slide is coarser than the thumbnail: it is enlarged
    width, height = info.level_dimensions[level]
    out_height, out_width = thumbnail_shape(info, thumbnail_mpp)
    rows_per_strip = max(budget // max(width, 1), 1)
    downsample = info.level_downsamples[level]
    strips = []
    for top in range(0, height, rows_per_strip):
        bottom = min(top + rows_per_strip, height)
        first, last = round(top * out_height / height), round(bottom * out_height / height)
        if last <= first:
            continue
        strip = read_region(slide, info, (0, int(round(top * downsample))), level, (width, bottom - top))
        strips.append(cv2.resize(strip, (out_width, last - first), interpolation=cv2.INTER_AREA))
    return np.concatenate(strips)
