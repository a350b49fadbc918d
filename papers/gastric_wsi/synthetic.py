"""Generator of `synthetic_gastric`: pyramidal tiled TIFF slides (OpenSlide's generic TIFF), GeoJSON
annotations of tissue and lesions, and a label CSV (data_cards/synthetic_gastric.md).

Designed from the paper's premise: screening must find lesions that are small against the slide (down to a few
cells, around 1% of the tissue or less), in mucosa whose benign changes share single nuclear features with
cancer, on slides that vary in stain, thickness and artefacts. A slide is a few fragments of gastric mucosa:
glands (a lumen inside a ring of epithelium whose nuclei sit at the ring's outer, basal side) in eosin-pink
stroma with scattered small nuclei. Any slide, positive or not, may hold benign mimics: lymphoid aggregates
(dense, dark, small round nuclei, no glands), reactive atypia (regular glands with enlarged, darker nuclei) and
intestinal metaplasia (glands with clear goblet vacuoles). A lesion replaces the mucosa with crowded, small,
irregular glands and scattered atypical cells whose nuclei are pleomorphic, randomly oriented and stratified
(not basal); each nucleus' size and darkness lie within the range spanned by normal and reactive nuclei, so
it is their variety and arrangement, not any one of them, that marks cancer. Per slide: section thickness and
stain strength; per center (plus a little per slide): the stain vectors; artefacts: a tissue fold (doubled
thickness), a pen mark on the glass, an out-of-focus region. Colour is a Beer-Lambert mix of hematoxylin and
eosin. The last center is held out of training (split `test` only). Training and validation slides are enriched
in positives, as annotated training sets are; test slides have the screening population's low prevalence.
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
PEN_INKS = np.array([[0.85, 0.15, 0.75], [0.9, 0.55, 0.1], [0.7, 0.7, 0.7]])  # green, blue, black ink OD
GLASS = (0.97, 0.96, 0.97)  # transmitted light through bare glass, per channel


@dataclass
class SyntheticGastricConfig:
    slides_per_center: int = bounded(99, minimum=1)
    centers: int = bounded(3, minimum=2)  # the last one is held out: all its slides are test slides
    split: list[int] = bounded(default_factory=lambda: [60, 15, 24], minimum=0)  # train / val / test per seen center
    positive_fraction: list[float] = bounded(
        default_factory=lambda: [0.5, 0.5, 0.2], minimum=0.0, maximum=1.0, same_length_as="split"
    )  # per split; test: screening prevalence
    size: int = bounded(2048, minimum=64)  # level-0 width and height, pixels
    mpp: float = bounded(0.5, above=0.0)  # level 0 ("20x")
    levels: int = bounded(4, minimum=1)
    tile: int = bounded(256, minimum=16)  # TIFF tile edge (TIFF tiles are multiples of 16)
    fragments: list[int] = bounded(default_factory=lambda: [1, 3], minimum=1)  # tissue fragments (min, max)
    fragment_radius: list[float] = bounded(default_factory=lambda: [0.22, 0.32], above=0.0)  # of the slide's size
    lesions: list[int] = bounded(default_factory=lambda: [1, 3], minimum=1)  # per positive slide (min, max)
    lesion_radius_um: list[float] = bounded(default_factory=lambda: [8.0, 28.0], above=0.0)  # log-uniform
    mimics: list[int] = bounded(default_factory=lambda: [0, 2], minimum=0)  # per kind and slide (min, max)
    mimic_radius_um: list[float] = bounded(default_factory=lambda: [25.0, 90.0], above=0.0)
    gland_spacing_um: float = bounded(40.0, above=0.0)  # normal mucosa; lesion glands are packed tighter
    gland_radius_um: float = bounded(14.0, above=0.0)
    nucleus_radius_um: float = bounded(2.7, above=0.0)  # normal epithelial nuclei (mean half-width)
    thickness: list[float] = bounded(default_factory=lambda: [0.7, 1.4], above=0.0)  # per-slide OD scale
    stain_jitter: float = bounded(0.12, minimum=0.0, below=1.0)  # per center: stain vectors and strengths
    slide_stain_jitter: float = bounded(0.04, minimum=0.0, below=1.0)  # and per slide on top
    artefacts: list[float] = bounded(default_factory=lambda: [0.3, 0.25, 0.25], minimum=0.0, maximum=1.0)
    # ^ per slide, the chance of a fold, a pen mark and an out-of-focus region
    seed: int = bounded(0, minimum=0)


@dataclass
class Layers:
    """Stain densities at level 0 being drawn: hematoxylin, eosin, and the lesion and tissue masks."""

    hematoxylin: np.ndarray
    eosin: np.ndarray
    tissue: np.ndarray
    lesion: np.ndarray


@dataclass(frozen=True)
class NucleusLook:
    """How a population of nuclei is drawn: half-width range (in nucleus_radius_um), elongation range (long over
    short axis), darkness range (hematoxylin density), and whether they sit at the gland's basal side, oriented
    along its radius (else anywhere in the epithelium, at any angle)."""

    size: tuple[float, float]
    elongation: tuple[float, float]
    darkness: tuple[float, float]
    polarized: bool = True


NORMAL = NucleusLook((0.9, 1.1), (1.2, 1.5), (0.75, 0.95))
REACTIVE = NucleusLook((1.25, 1.6), (1.2, 1.5), (0.95, 1.25))  # enlarged and darker, still regular and basal
METAPLASIA = NucleusLook((1.0, 1.25), (1.2, 1.5), (0.8, 1.05))
LESION = NucleusLook((0.9, 1.6), (1.0, 2.0), (0.75, 1.25), polarized=False)  # pleomorphic, within the others' span
STROMA = NucleusLook((0.7, 0.9), (1.0, 1.3), (0.8, 1.1), polarized=False)
LYMPHOID = NucleusLook((0.7, 0.95), (1.0, 1.15), (1.05, 1.4), polarized=False)  # the darkest nuclei


def _outline(centre: np.ndarray, radius: float, rng: np.random.Generator, wobble: float = 0.25) -> np.ndarray:
    """An irregular polygon [48, 1, 2] int32 around `centre`: its radius varies smoothly with angle (by up to
    ~`wobble`)."""
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    change = sum(rng.uniform(0.2, 1) * wobble * np.sin(k * angles + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    points = centre + radius * (1 + change)[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.round(points).astype(np.int32)[:, None]


def _blob(shape: tuple[int, int], centre: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 mask of one irregular filled region."""
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [_outline(centre, radius, rng)], 1)
    return mask


def _inside(mask: np.ndarray, margin: float) -> np.ndarray:
    """0/1: the pixels of `mask` more than `margin` pixels from its outside."""
    return (cv2.distanceTransform(mask, cv2.DIST_L2, 5) > margin).astype(np.uint8)


def _nucleus(layer: np.ndarray, centre: np.ndarray, half_width: float, look: NucleusLook, angle: float,
             rng: np.random.Generator) -> None:  # fmt: skip
    """One elliptical nucleus of `look` drawn into the hematoxylin `layer` (long axis along `angle`, degrees)."""
    width = half_width * rng.uniform(*look.size)
    length = width * rng.uniform(*look.elongation)
    axes = (max(int(round(length)), 1), max(int(round(width)), 1))
    centre = (int(round(centre[0])), int(round(centre[1])))
    cv2.ellipse(layer, centre, axes, angle, 0, 360, float(rng.uniform(*look.darkness)), -1)


def _points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random (x, y) pixels of the 0/1 mask (none if it is empty)."""
    where = np.flatnonzero(mask)
    if where.size == 0:
        return np.zeros((0, 2))
    rows, columns = np.divmod(where[rng.integers(0, where.size, count)], mask.shape[1])
    return np.stack([columns, rows], 1).astype(float)


def _scatter(layers: Layers, where: np.ndarray, coverage: float, half_width: float, look: NucleusLook,
             rng: np.random.Generator) -> None:  # fmt: skip
    """Nuclei of `look` at random points of the 0/1 mask `where`, covering about `coverage` of its area."""
    count = int(coverage * np.count_nonzero(where) / (np.pi * half_width**2))
    for point in _points(where, count, rng):
        _nucleus(layers.hematoxylin, point, half_width, look, rng.uniform(0, 180), rng)


def _gland(layers: Layers, centre: np.ndarray, radius: float, look: NucleusLook, half_width: float,
           rng: np.random.Generator, irregular: bool = False, goblets: bool = False) -> None:  # fmt: skip
    """A gland: a ring of eosinophilic epithelium around a clear lumen, its nuclei along the ring (at its outer,
    basal side for a polarized look, anywhere across it otherwise); goblet cells add clear vacuoles."""
    cv2.fillPoly(layers.eosin, [_outline(centre, radius, rng, wobble=0.3 if irregular else 0.08)], 0.45)
    cv2.fillPoly(layers.eosin, [_outline(centre, radius * rng.uniform(0.25, 0.45), rng, wobble=0.1)], 0.03)
    count = int(2 * np.pi * radius / (2.6 * half_width))
    for angle in np.linspace(0, 2 * np.pi, count, endpoint=False) + rng.uniform(0, 2 * np.pi):
        depth = rng.uniform(0.72, 0.85) if look.polarized else rng.uniform(0.45, 0.95)
        point = centre + depth * radius * np.array([np.cos(angle), np.sin(angle)])
        if goblets and rng.random() < 0.35:
            cv2.circle(layers.eosin, tuple(int(v) for v in point), int(half_width * rng.uniform(1.3, 1.8)), 0.03, -1)
            continue
        orientation = np.degrees(angle) if look.polarized else rng.uniform(0, 180)
        _nucleus(layers.hematoxylin, point, half_width, look, orientation, rng)


def _centres(where: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """A jittered square grid of points, `spacing` pixels apart, that fall in the 0/1 mask `where`."""
    height, width = where.shape
    ys, xs = np.mgrid[spacing / 2 : height : spacing, spacing / 2 : width : spacing]
    points = np.stack([xs.ravel(), ys.ravel()], 1) + rng.uniform(-0.2, 0.2, (xs.size, 2)) * spacing
    points = points[(points >= 0).all(1) & (points[:, 0] < width) & (points[:, 1] < height)]
    return points[where[points[:, 1].astype(int), points[:, 0].astype(int)] > 0]


def _regions_inside(tissue: np.ndarray, counts: list[int], radius_um: list[float], mpp: float,
                    rng: np.random.Generator, log_uniform: bool = False) -> np.ndarray:  # fmt: skip
    """A 0/1 mask of counts[0]..counts[1] blobs centred inside the tissue (radius drawn from radius_um)."""
    mask = np.zeros_like(tissue)
    low, high = radius_um
    for centre in _points(tissue, rng.integers(counts[0], counts[1] + 1), rng):
        radius = np.exp(rng.uniform(np.log(low), np.log(high))) if log_uniform else rng.uniform(low, high)
        mask |= _blob(tissue.shape, centre, radius / mpp, rng)
    return mask & tissue


def _mucosa(config: SyntheticGastricConfig, positive: bool, rng: np.random.Generator) -> Layers:
    """Tissue fragments of glands and stroma, with mimics in any slide and lesions in a positive one."""
    size, mpp = config.size, config.mpp
    shape = (size, size)
    tissue = np.zeros(shape, dtype=np.uint8)
    for _ in range(rng.integers(config.fragments[0], config.fragments[1] + 1)):
        radius = rng.uniform(*config.fragment_radius) * size
        tissue |= _blob(shape, rng.uniform(0.3, 0.7, 2) * size, radius, rng)
    fibres = cv2.GaussianBlur(rng.normal(size=(size // 8, size // 8)).astype(np.float32), (0, 0), 1.5)
    fibres = cv2.resize(fibres, shape, interpolation=cv2.INTER_LINEAR)
    layers = Layers(np.zeros(shape, np.float32), tissue * (0.3 + 0.1 * fibres), tissue, np.zeros_like(tissue))
    gland_radius, nucleus = config.gland_radius_um / mpp, config.nucleus_radius_um / mpp
    core = _inside(tissue, gland_radius)
    if positive:
        layers.lesion = _regions_inside(core, config.lesions, config.lesion_radius_um, mpp, rng, log_uniform=True)
    kinds = [_regions_inside(core, config.mimics, config.mimic_radius_um, mpp, rng) & (1 - layers.lesion)
             for _ in range(3)]  # fmt: skip
    lymphoid, reactive, metaplasia = kinds
    glandless = cv2.dilate(lymphoid | layers.lesion, np.ones((int(gland_radius),) * 2, np.uint8))
    for centre in _centres(core & (1 - glandless), config.gland_spacing_um / mpp, rng):
        x, y = int(centre[0]), int(centre[1])
        look = REACTIVE if reactive[y, x] else METAPLASIA if metaplasia[y, x] else NORMAL
        _gland(layers, centre, gland_radius * rng.uniform(0.9, 1.1), look, nucleus, rng,
               goblets=bool(metaplasia[y, x]))  # fmt: skip
    stroma = _stroma(layers.eosin) & (1 - lymphoid) & (1 - layers.lesion)
    _scatter(layers, stroma, 0.03, nucleus, STROMA, rng)
    _scatter(layers, lymphoid, 0.45, nucleus, LYMPHOID, rng)
    _lesions(layers, config, nucleus, rng)
    return layers


def _lesions(layers: Layers, config: SyntheticGastricConfig, nucleus: float, rng: np.random.Generator) -> None:
    """Crowded small irregular glands (0.6 times the normal radius and spacing) where a lesion has room for
    them, and atypical cells scattered in between (all a lesion of a few cells is); nothing drawn here reaches
    past the lesion's outline."""
    if not layers.lesion.any():
        return
    before = layers.hematoxylin.copy(), layers.eosin.copy()
    radius = 0.6 * config.gland_radius_um / config.mpp
    room = _inside(layers.lesion, radius / 2)
    for centre in _centres(room, 0.6 * config.gland_spacing_um / config.mpp, rng):
        _gland(layers, centre, radius * rng.uniform(0.7, 1.2), LESION, nucleus, rng, irregular=True)
    _scatter(layers, layers.lesion & _stroma(layers.eosin), 0.35, nucleus, LESION, rng)
    outside = layers.lesion == 0
    layers.hematoxylin[outside], layers.eosin[outside] = (layer[outside] for layer in before)


def _stroma(eosin: np.ndarray) -> np.ndarray:
    """0/1: stroma, i.e. neither gland epithelium (eosin 0.45) nor lumen or vacuole (0.03) nor glass."""
    return ((eosin > 0.1) & (eosin < 0.4)).astype(np.uint8)


def _fold(layers: Layers, config: SyntheticGastricConfig, rng: np.random.Generator) -> np.ndarray:
    """A per-pixel thickness factor: 2 (tissue folded over itself) along a band across a fragment, 1 elsewhere."""
    factor = np.ones(layers.tissue.shape, np.float32)
    ((x, y),) = _points(layers.tissue, 1, rng)
    angle = rng.uniform(0, np.pi)
    reach = 2 * config.size
    ends = [(int(x + s * reach * np.cos(angle)), int(y + s * reach * np.sin(angle))) for s in (-1, 1)]
    band = np.zeros_like(layers.tissue)
    cv2.line(band, ends[0], ends[1], 1, max(int(rng.uniform(12, 30) / config.mpp), 1))
    factor[(band & layers.tissue) > 0] = 2.0
    return factor


def _pen(shape: tuple[int, int], config: SyntheticGastricConfig, rng: np.random.Generator) -> np.ndarray:
    """Optical density [h, w, 3] of a pen stroke across the glass (and any tissue beneath it)."""
    size = config.size
    start, bend, end = rng.uniform(0, 1, (3, 2)) * size
    steps = np.linspace(0, 1, 32)[:, None]
    curve = (1 - steps) ** 2 * start + 2 * (1 - steps) * steps * bend + steps**2 * end  # a quadratic Bezier
    stroke = np.zeros(shape, np.float32)
    cv2.polylines(stroke, [np.round(curve).astype(np.int32)], False, 1.0, max(int(rng.uniform(15, 35) / config.mpp), 1))
    stroke = cv2.GaussianBlur(stroke, (0, 0), 2.0)
    return stroke[..., None] * PEN_INKS[rng.integers(len(PEN_INKS))] * rng.uniform(0.6, 1.3)


def _defocus(image: np.ndarray, config: SyntheticGastricConfig, rng: np.random.Generator) -> np.ndarray:
    """The image with a random rectangle (a quarter to all of the slide) out of focus (Gaussian blur)."""
    size = config.size
    width, height = (int(rng.uniform(0.5, 1.0) * size) for _ in range(2))
    x, y = rng.integers(0, size - width + 1), rng.integers(0, size - height + 1)
    blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(1.0, 2.5) / config.mpp)
    image[y : y + height, x : x + width] = blurred[y : y + height, x : x + width]
    return image


def render_slide(config: SyntheticGastricConfig, positive: bool, stain: tuple, rng: np.random.Generator):
    """RGB level-0 image and its tissue and lesion masks."""
    layers = _mucosa(config, positive, rng)
    fold, pen, defocus = rng.random(3) < np.asarray(config.artefacts)
    thickness = rng.uniform(*config.thickness) * (_fold(layers, config, rng) if fold else 1.0)
    h_vector, e_vector, (h_strength, e_strength) = _slide_stain(stain, config.slide_stain_jitter, rng)
    shape = layers.tissue.shape
    noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
    density = np.empty((*shape, 3), np.float32)
    for channel in range(3):  # Beer-Lambert: I = I0 exp(-OD), OD the stains' densities times their vectors
        stains = h_strength * layers.hematoxylin * h_vector[channel] + e_strength * layers.eosin * e_vector[channel]
        density[..., channel] = thickness * stains + noise
    if pen:
        density += _pen(shape, config, rng)
    image = np.clip(255 * np.asarray(GLASS, np.float32) * np.exp(-np.clip(density, 0, None)), 0, 255)
    image = image.astype(np.uint8)
    if defocus:
        image = _defocus(image, config, rng)
    return image, layers.tissue, layers.lesion


def _slide_stain(stain: tuple, jitter: float, rng: np.random.Generator) -> tuple:
    """A slide's stain vectors and strengths: its center's, perturbed by `jitter`."""
    h_vector, e_vector, strengths = stain
    vectors = [np.clip(v + rng.normal(0, jitter, 3), 0.02, None) for v in (h_vector, e_vector)]
    vectors = [(v / np.linalg.norm(v)).astype(np.float32) for v in vectors]
    return (*vectors, tuple(float(s * rng.uniform(1 - jitter, 1 + jitter)) for s in strengths))


def center_stains(config: SyntheticGastricConfig, rng: np.random.Generator) -> list[tuple]:
    """Per center: its hematoxylin and eosin vectors (unit optical density, jittered) and their strengths."""
    jitter = config.stain_jitter
    stains = []
    for _ in range(config.centers):
        h_vector, e_vector = (np.clip(v + rng.normal(0, jitter, 3), 0.02, None) for v in (HEMATOXYLIN, EOSIN))
        strengths = tuple(rng.uniform(1 - jitter, 1 + jitter, 2))
        stains.append((h_vector / np.linalg.norm(h_vector), e_vector / np.linalg.norm(e_vector), strengths))
    return stains


def _regions(mask: np.ndarray, label: str) -> list[Region]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [Region(label, c[:, 0, :].astype(float) + 0.5) for c in contours if len(c) >= 3]


def splits_and_labels(config: SyntheticGastricConfig, center: int, rng: np.random.Generator):
    """(split, positive) per slide of a center: the held-out (last) center's slides are all test slides; a
    seen center's follow config.split (the remainder to test). Each split is its positive_fraction positive."""
    count = config.slides_per_center
    sizes = [0, 0, count] if center == config.centers - 1 else [*config.split[:2], count - sum(config.split[:2])]
    result = []
    for split, size, fraction in zip(("train", "val", "test"), sizes, config.positive_fraction, strict=True):
        positives = rng.permutation(np.arange(size) < round(fraction * size))
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
            for index, (split, positive) in enumerate(splits_and_labels(config, center, rng)):
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
