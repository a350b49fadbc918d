"""Pyramidal tiled TIFF that OpenSlide reads as a generic tiled TIFF: each pyramid level its own tiled,
JPEG-compressed page (the first full resolution, the rest reduced-resolution subfiles), with resolution tags
in pixels per centimetre so that OpenSlide reports microns per pixel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_pyramid(path: Path, image: np.ndarray, mpp: float, tile: int = 256, levels: int = 4, quality: int = 90):
    """Write RGB `image` [H, W, 3] (level 0, `mpp` µm/px) and `levels - 1` halvings of it."""
    import tifffile

    level = np.ascontiguousarray(image)
    with tifffile.TiffWriter(path) as writer:
        for index in range(levels):
            pixels_per_cm = 1e4 / (mpp * 2**index)
            writer.write(
                level,
                tile=(tile, tile),
                compression="jpeg",
                compressionargs={"level": quality},
                photometric="rgb",
                resolution=(pixels_per_cm, pixels_per_cm),
                resolutionunit="CENTIMETER",
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )
            height, width = level.shape[:2]
            level = cv2.resize(level, (max(width // 2, 1), max(height // 2, 1)), interpolation=cv2.INTER_AREA)
