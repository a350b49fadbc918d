"""Generator of `synthetic_gastric`: pyramidal tiled TIFF slides (OpenSlide's generic TIFF), GeoJSON
annotations of tissue and lesions, and a label CSV (data_cards/synthetic_gastric.md).

Designed from the paper's premise: a gastric biopsy slide is a few tissue fragments on white glass; tissue
is eosin-pink stroma with hematoxylin-blue nuclei; a cancerous (positive) slide holds lesions where the
nuclei are denser, larger, darker and irregular in shape and size. Benign look-alikes make density alone
insufficient: any slide may hold inflammatory clusters of dense but small, round, regular nuclei. Colour
comes from a Beer-Lambert mix of a hematoxylin and an eosin stain vector, perturbed per center, so that
centers differ in stain as real labs do; the last center is held out of training (split `test` only).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from common.config import bounded
from common.data.generated import ensure_generated
from papers.gastric_wsi.annotations import Region, write_geojson
from papers.gastric_wsi.pyramid import write_pyramid

HEMATOXYLIN = np.array([0.65, 0.70, 0.29])  # optical density per unit stain (Ruifrok & Johnston)
EOSIN = np.array([0.07, 0.99, 0.11])


@dataclass
class SyntheticGastricConfig:
    slides_per_center: int = bounded(12, minimum=1)
    centers: int = bounded(3, minimum=2)  # the last one is held out: all its slides are test slides
    positive_fraction: float = bounded(0.5, minimum=0.0, maximum=1.0)
    split: list[int] = bounded(default_factory=lambda: [6, 2, 4], minimum=0)  # train / val / test per seen center
    size: int = bounded(4096, minimum=64)  # level-0 width and height, pixels
    mpp: float = bounded(0.5, above=0.0)  # level 0 ("20x")
    levels: int = bounded(5, minimum=1)
    tile: int = bounded(256, minimum=16)  # TIFF tile edge (TIFF tiles are multiples of 16)
    fragments: list[int] = bounded(default_factory=lambda: [2, 4], minimum=1)  # tissue fragments (min, max)
    lesions: list[int] = bounded(default_factory=lambda: [1, 3], minimum=1)  # lesions per positive slide (min, max)
    lesion_radius_um: list[float] = bounded(default_factory=lambda: [120.0, 320.0], above=0.0)
    inflammation: list[int] = bounded(default_factory=lambda: [0, 3], minimum=0)  # benign dense clusters per slide
    nucleus_radius_um: float = bounded(3.5, above=0.0)  # normal nuclei; lesion nuclei are larger and vary
    stain_jitter: float = bounded(0.12, minimum=0.0, below=1.0)  # per-center perturbation of stains and strengths
    seed: int = bounded(0, minimum=0)


def _blob(shape: tuple[int, int], centre: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular filled region: a polygon whose radius varies smoothly with angle."""
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = sum(rng.uniform(0.05, 0.25) * np.sin(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    points = centre + radius * (1 + wobble)[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask


def _nuclei(density: np.ndarray, count: int, radius: float, irregular: bool, rng: np.random.Generator) -> np.ndarray:
    """A hematoxylin map of `count` nuclei drawn where `density` (0/1) allows; irregular nuclei are larger
    ellipses of varied size, elongation and darkness."""
    where = np.argwhere(density > 0)
    layer = np.zeros(density.shape, dtype=np.float32)
    if len(where) == 0:
        return layer
    for y, x in where[rng.integers(0, len(where), count)]:
        if irregular:
            axes = (radius * rng.uniform(1.3, 2.4), radius * rng.uniform(0.8, 1.6))
            darkness = rng.uniform(1.2, 1.8)
        else:
            axes = (radius * rng.uniform(0.9, 1.1),) * 2
            darkness = rng.uniform(0.8, 1.0)
        size = (max(int(axes[0]), 1), max(int(axes[1]), 1))
        cv2.ellipse(layer, (int(x), int(y)), size, rng.uniform(0, 180), 0, 360, darkness, -1)
    return layer


def _count(region: np.ndarray, coverage: float, radius: float) -> int:
    """Nuclei of `radius` covering `coverage` of the region's area."""
    return int(coverage * float(region.sum()) / (np.pi * radius**2))


def render_slide(config: SyntheticGastricConfig, positive: bool, stain: tuple, rng: np.random.Generator):
    """RGB level-0 image and its tissue and lesion masks."""
    size, mpp = config.size, config.mpp
    shape = (size, size)
    tissue = np.zeros(shape, dtype=np.uint8)
    for _ in range(rng.integers(config.fragments[0], config.fragments[1] + 1)):
        tissue |= _blob(shape, rng.uniform(0.25, 0.75, 2) * size, rng.uniform(0.12, 0.22) * size, rng)
    lesion = np.zeros(shape, dtype=np.uint8)
    inside = np.argwhere(cv2.erode(tissue, np.ones((64, 64), np.uint8)) > 0)
    if positive:
        for _ in range(rng.integers(config.lesions[0], config.lesions[1] + 1)):
            radius = rng.uniform(*config.lesion_radius_um) / mpp
            lesion |= _blob(shape, inside[rng.integers(len(inside))][::-1].astype(float), radius, rng)
        lesion &= tissue
    inflamed = np.zeros(shape, dtype=np.uint8)
    for _ in range(rng.integers(config.inflammation[0], config.inflammation[1] + 1)):
        radius = rng.uniform(*config.lesion_radius_um) / mpp * 0.6
        inflamed |= _blob(shape, inside[rng.integers(len(inside))][::-1].astype(float), radius, rng)
    inflamed &= tissue & (1 - lesion)
    nucleus = config.nucleus_radius_um / mpp
    normal = tissue & (1 - lesion) & (1 - inflamed)
    # nuclei per region: the share of its area they cover (sparse normal, dense inflammation and lesion)
    hematoxylin = _nuclei(normal, _count(normal, 0.08, nucleus), nucleus, False, rng)
    hematoxylin += _nuclei(inflamed, _count(inflamed, 0.35, nucleus), nucleus * 0.75, False, rng)
    hematoxylin += _nuclei(lesion, _count(lesion, 0.22, nucleus), nucleus, True, rng)
    fibres = cv2.GaussianBlur(rng.normal(size=(size // 8, size // 8)).astype(np.float32), (0, 0), 1.5)
    fibres = cv2.resize(fibres, shape, interpolation=cv2.INTER_LINEAR)
    eosin = np.clip(tissue * (0.35 + 0.12 * fibres) + lesion * np.float32(0.1), 0, None)
    h_vector, e_vector, strength = (np.asarray(part, dtype=np.float32) for part in stain)
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
    image = np.empty((*shape, 3), dtype=np.uint8)
    for channel, glass in enumerate((0.97, 0.96, 0.97)):  # Beer-Lambert: I = I0 exp(-OD), channel by channel
        density = strength * (hematoxylin * h_vector[channel] + eosin * e_vector[channel]) + noise
        image[..., channel] = np.clip(255 * glass * np.exp(-np.clip(density, 0, None)), 0, 255)
    return image, tissue, lesion


def center_stains(config: SyntheticGastricConfig, rng: np.random.Generator) -> list[tuple]:
    """Per center: its hematoxylin and eosin vectors (unit optical density, jittered) and a stain strength."""
    jitter = config.stain_jitter
    stains = []
    for _ in range(config.centers):
        h_vector, e_vector = (np.clip(v + rng.normal(0, jitter, 3), 0.02, None) for v in (HEMATOXYLIN, EOSIN))
        strength = rng.uniform(1 - jitter, 1 + jitter)
        stains.append((h_vector / np.linalg.norm(h_vector), e_vector / np.linalg.norm(e_vector), strength))
    return stains


def _regions(mask: np.ndarray, label: str) -> list[Region]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [Region(label, c[:, 0, :].astype(float) + 0.5) for c in contours if len(c) >= 3]


def _splits_and_labels(config: SyntheticGastricConfig, center: int, rng: np.random.Generator):
    """(split, positive) per slide of a center: the held-out (last) center's slides are all test slides; a
    seen center's follow config.split (the remainder to test). Each split is positive_fraction positive."""
    count = config.slides_per_center
    sizes = [0, 0, count] if center == config.centers - 1 else [*config.split[:2], count - sum(config.split[:2])]
    result = []
    for split, size in zip(("train", "val", "test"), sizes, strict=True):
        positives = rng.permutation(np.arange(size) < round(config.positive_fraction * size))
        result.extend((split, bool(positive)) for positive in positives)
    return result


def write_dataset(config: SyntheticGastricConfig, folder: Path, progress: bool = True) -> None:
    rng = np.random.default_rng(config.seed)
    stains = center_stains(config, rng)
    (folder / "slides").mkdir(parents=True)
    (folder / "annotations").mkdir()
    rows = []
    with tqdm(total=config.centers * config.slides_per_center, desc="synthetic_gastric slides",
              disable=not progress) as bar:  # fmt: skip
        for center in range(config.centers):
            for index, (split, positive) in enumerate(_splits_and_labels(config, center, rng)):
                name = f"center{center}_slide{index:02d}"
                image, tissue, lesion = render_slide(config, positive, stains[center], rng)
                write_pyramid(folder / "slides" / f"{name}.tiff", image, config.mpp, config.tile, config.levels)
                regions = _regions(tissue, "tissue") + _regions(lesion, "lesion")
                write_geojson(folder / "annotations" / f"{name}.geojson", regions)
                rows.append(
                    {"slide": f"{name}.tiff", "label": int(positive), "center": f"center{center}", "split": split}
                )
                bar.update(1)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["slide", "label", "center", "split"])
        writer.writeheader()
        writer.writerows(rows)


def ensure_dataset(config: SyntheticGastricConfig, cache_dir: Path, progress: bool = True) -> Path:
    return ensure_generated("synthetic_gastric", config, cache_dir, partial(write_dataset, config, progress=progress))
