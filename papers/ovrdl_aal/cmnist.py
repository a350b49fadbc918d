"""Coloured digits under the CMNIST protocol, with an optional second domain type.

Identity = the digit. Domain 1 = the stroke colour: training digits 0-4 are drawn in colour 0 and 5-9 in
colour 1 (as the official `gendata_colormnist_grouped_classes.py` splits digits <= 4 and > 4 between two colours);
test digits in the swapped colours, so every test ⟨class, colour⟩ combination is unseen. With
`training_colours=random` (the upper row: every combination seen in training) the training digits take either
colour at random, drawn from a stream of their own so that every other draw, the test rows included, is the
protocol's. Domain 2
(optional) = stroke thickness (thin / thick, by dilation): independent of everything, or, in the causal
variant, caused by the colour (thick with probability `causal_strength` when the colour is 1, else thin with
that probability). Validation = a random half of each test ⟨class, domain⟩ cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from common.config import bounded

COLOURS = np.array([[1.0, 0.15, 0.15], [0.15, 1.0, 0.15]], dtype=np.float32)  # red, green strokes
SECOND_DOMAINS = ("none", "thickness")
TRAINING_COLOURS = ("protocol", "random")


@dataclass
class CMNISTConfig:
    size: int = bounded(28, minimum=6)  # image side in pixels (MNIST's 28); the CNN encoder needs at least 6
    training_colours: str = bounded("protocol", choices=TRAINING_COLOURS)  # random: the all-combinations upper row
    second_domain: str = bounded("thickness", choices=SECOND_DOMAINS)
    causal: bool = False  # thickness caused by the colour instead of independent of it
    causal_strength: float = bounded(0.9, minimum=0.0, maximum=1.0)
    train_fraction: float = bounded(0.6, above=0.0, below=1.0)  # the rest: swapped colours (test + val)
    seed: int = bounded(0, minimum=0)


class CMNIST(NamedTuple):
    images: np.ndarray  # [n, 3, size, size] uint8
    attributes: np.ndarray  # [n, K] int: identity, colour[, thickness]
    split: np.ndarray  # [n] str: train / val / test
    attribute_names: list[str]
    classes: list[int]  # classes per attribute


def protocol_classes(config: CMNISTConfig) -> list[int]:
    """Classes per attribute: the ten digits, the two colours[, the two thicknesses]."""
    return [10, 2] + ([2] if config.second_domain == "thickness" else [])


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 images [n, 3, h, w] resized to [n, 3, size, size] (unchanged when they have that size)."""
    if images.shape[2:] == (size, size):
        return images
    resized = [cv2.resize(image.transpose(1, 2, 0), (size, size), interpolation=cv2.INTER_AREA) for image in images]
    return np.stack(resized).transpose(0, 3, 1, 2).copy()


def training_colour(digits: np.ndarray) -> np.ndarray:
    """The protocol's colour of a digit in training: 0 for 0-4, 1 for 5-9."""
    return (np.asarray(digits) >= 5).astype(np.int64)


def build_cmnist(gray: np.ndarray, digits: np.ndarray, config: CMNISTConfig) -> CMNIST:
    """Colour grayscale digits [n, h, w] (any range; scaled to [0, 1]) per the protocol."""
    rng = np.random.default_rng(config.seed)
    digits = np.asarray(digits, dtype=np.int64)
    train = rng.random(len(digits)) < config.train_fraction
    colour = np.where(train, training_colour(digits), 1 - training_colour(digits))
    if config.training_colours == "random":
        colour = np.where(train, np.random.default_rng([config.seed, 1]).integers(0, 2, len(digits)), colour)
    names, columns = ["identity", "colour"], [digits, colour]
    strokes = [cv2.resize(g.astype(np.float32) / max(float(g.max()), 1e-6), (config.size, config.size),
                          interpolation=cv2.INTER_LINEAR) for g in gray]  # fmt: skip
    if config.second_domain == "thickness":
        if config.causal:
            thick = np.where(rng.random(len(digits)) < config.causal_strength, colour, 1 - colour)
        else:
            thick = rng.integers(0, 2, len(digits))
        kernel = np.ones((2, 2), np.uint8)
        strokes = [cv2.dilate(s, kernel) if t else s for s, t in zip(strokes, thick, strict=True)]
        names.append("thickness")
        columns.append(thick.astype(np.int64))
    stroke = np.clip(np.stack(strokes), 0, 1)[:, None]  # [n, 1, s, s]
    background = 0.05 + 0.05 * rng.random(stroke.shape, dtype=np.float32)
    images = background * (1 - stroke) + stroke * COLOURS[colour][:, :, None, None]
    attributes = np.stack(columns, axis=1)
    split = np.where(train, "train", "test").astype(object)
    split[validation_half(attributes, ~train, rng)] = "val"
    return CMNIST((images * 255).round().astype(np.uint8), attributes, split.astype(str), names,
                  protocol_classes(config))  # fmt: skip


def validation_half(attributes: np.ndarray, held_out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a random half of each held-out ⟨class, domain⟩ cell."""
    chosen = []
    cells = {}
    for index in np.flatnonzero(held_out):
        cells.setdefault(tuple(attributes[index]), []).append(index)
    for members in cells.values():
        members = rng.permutation(members)
        chosen.extend(members[: len(members) // 2].tolist())
    return np.array(chosen, dtype=np.int64)
