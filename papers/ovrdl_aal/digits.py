"""Handwriting-like digits at MNIST's scale and look, rendered locally: each digit is drawn with one of OpenCV's
Hershey vector fonts (upright or italic) at a random stroke width on a `canvas`-pixel square, distorted by a
random affine map (rotation, shear, scale) and a random elastic field (a smoothed displacement, as in Simard et
al.'s elastic distortions), then normalized as MNIST's digits are: its bounding box scaled into 20 × 20 and
placed in a 28 × 28 image by its centre of mass. A progress bar follows the rendering."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from common.config import bounded

FACES = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)  # fmt: skip
SIDE, BOX = 28, 20  # MNIST: 28 x 28 images, the digit's bounding box fitted into 20 x 20


@dataclass
class RenderConfig:
    images: int = bounded(20000, minimum=10)
    canvas: int = bounded(64, minimum=32)  # pixels of the square the glyph is drawn and distorted on
    stroke_min: int = bounded(3, minimum=1)  # stroke width on the canvas, drawn uniformly in [min, max]
    stroke_max: int = bounded(7, minimum=1)
    rotation: float = bounded(15.0, minimum=0.0)  # degrees, uniform in ±rotation
    shear: float = bounded(0.3, minimum=0.0)  # uniform in ±shear
    scale: float = bounded(0.15, minimum=0.0, below=1.0)  # uniform in 1 ± scale
    elastic_alpha: float = bounded(8.0, minimum=0.0)  # displacement in canvas pixels
    elastic_sigma: float = bounded(6.0, above=0.0)  # smoothing of the displacement field, canvas pixels


def _glyph(digit: int, config: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """One digit drawn on the canvas [canvas, canvas] float32 in [0, 1]."""
    face = int(FACES[rng.integers(len(FACES))]) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    thickness = int(rng.integers(config.stroke_min, max(config.stroke_min, config.stroke_max) + 1))
    (width, height), _ = cv2.getTextSize(str(digit), face, 1.0, thickness)
    scale = 0.55 * config.canvas / max(height, 1)
    (width, height), _ = cv2.getTextSize(str(digit), face, scale, thickness)
    canvas = np.zeros((config.canvas, config.canvas), np.uint8)
    origin = ((config.canvas - width) // 2, (config.canvas + height) // 2)
    cv2.putText(canvas, str(digit), origin, face, scale, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


def _distort(glyph: np.ndarray, config: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """A random affine map about the centre, then a random smooth elastic displacement."""
    side = glyph.shape[0]
    angle = np.deg2rad(rng.uniform(-config.rotation, config.rotation))
    shear, scale = rng.uniform(-config.shear, config.shear), rng.uniform(1 - config.scale, 1 + config.scale)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ [[1, shear], [0, 1]]
    centre = np.array([side / 2, side / 2])
    affine = np.hstack([linear, (centre - linear @ centre)[:, None]]).astype(np.float32)
    warped = cv2.warpAffine(glyph, affine, (side, side), flags=cv2.INTER_LINEAR)
    if config.elastic_alpha == 0:
        return warped
    fields = [cv2.GaussianBlur(rng.uniform(-1, 1, (side, side)).astype(np.float32), (0, 0), config.elastic_sigma)
              for _ in range(2)]  # fmt: skip
    fields = [config.elastic_alpha * f / max(float(np.abs(f).max()), 1e-6) for f in fields]
    grid_y, grid_x = np.mgrid[0:side, 0:side].astype(np.float32)
    return cv2.remap(warped, grid_x + fields[0], grid_y + fields[1], cv2.INTER_LINEAR)


def mnist_normalize(glyph: np.ndarray) -> np.ndarray:
    """The digit's bounding box scaled into 20 x 20 (aspect kept), centred by its centre of mass in 28 x 28."""
    ys, xs = np.nonzero(glyph > 0.05)
    if not len(ys):
        return np.zeros((SIDE, SIDE), np.float32)
    crop = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    factor = BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    box = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    weights = box.sum()
    centre = np.array([(box.sum(1) * np.arange(box.shape[0])).sum(), (box.sum(0) * np.arange(box.shape[1])).sum()])
    top, left = np.round(SIDE / 2 - centre / max(weights, 1e-6)).astype(int)
    top, left = int(np.clip(top, 0, SIDE - box.shape[0])), int(np.clip(left, 0, SIDE - box.shape[1]))
    image = np.zeros((SIDE, SIDE), np.float32)
    image[top : top + box.shape[0], left : left + box.shape[1]] = box
    return np.clip(image, 0, 1)


def render_digits(config: RenderConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`config.images` digits (uniform over 0-9): grey images [n, 28, 28] in [0, 1] and their digits [n]. Image i
    draws from rng([seed, i]) alone, so a larger draw extends a smaller one."""
    images, digits = [], []
    for index in tqdm(range(config.images), desc="render digits", dynamic_ncols=True):
        rng = np.random.default_rng([seed, index])
        digits.append(int(rng.integers(10)))
        images.append(mnist_normalize(_distort(_glyph(digits[-1], config, rng), config, rng)))
    return np.stack(images), np.array(digits)
