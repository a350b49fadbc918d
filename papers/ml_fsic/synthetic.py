"""Generator of `synthetic_multilabel`: multi-label images in COCO's format, with word vectors in GloVe's
text format.

Designed from the paper's premise (data_cards/synthetic_multilabel.md): each image shows several objects in
different regions, so each label lives in its own region; a label is a combination of visual attributes
(texture, colour, shape). Labels come in families: a (colour, shape) pair with each of the three textures. A
label's name carries its colour and shape words but not its texture: the third word is the label's own token
("red circle mark7"), so the word vectors say which family a label belongs to and never which of its textures
it shows; only the support images tell siblings apart (with `named_texture`, the texture word is the name's
instead). The word vector file holds one vector per word, built from a direction per attribute kind, one per
attribute value and noise, so that averaging a label's words gives a noisy code of its family, as real word
vectors give real labels a partial description. Families are split into train / val / test; most images show
labels of one split only, a few mix splits (and are filtered out by the split rule, as in COCO).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from itertools import product
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from common.config import bounded
from common.data.generated import ensure_generated
from common.errors import ConfigError

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220), "yellow": (230, 210, 40),
           "cyan": (40, 200, 210), "magenta": (200, 50, 200)}  # fmt: skip
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
TEXTURES = ("plain", "striped", "dotted")
ATTRIBUTES = {"texture": TEXTURES, "colour": tuple(COLOURS), "shape": SHAPES}
COMBINATIONS = len(TEXTURES) * len(COLOURS) * len(SHAPES)  # the possible labels
GRID_CELLS = 4  # an image is a 2 x 2 grid, one object per cell
SMALLEST_IMAGE = 5  # the smallest image whose object radii (size // 9 up to size // 5) form a non-empty range


@dataclass
class SyntheticMultiLabelConfig:
    # attribute combinations used as labels, whole families of len(TEXTURES) labels
    labels: int = bounded(42, minimum=len(TEXTURES), maximum=COMBINATIONS)
    # train / val / test labels, whole families each (COCO: 52 / 12 / 16)
    split: list[int] = bounded(default_factory=lambda: [24, 6, 12], minimum=len(TEXTURES))
    named_texture: bool = False  # True: names carry the texture word (the word vectors then describe the look)
    images: int = bounded(2000, minimum=1)
    mixed_fraction: float = bounded(0.1, minimum=0.0, maximum=1.0)  # images mixing labels of several splits
    min_objects: int = bounded(1, minimum=1, maximum=GRID_CELLS)
    max_objects: int = bounded(3, minimum=1, maximum=GRID_CELLS)
    image_size: int = bounded(64, minimum=SMALLEST_IMAGE)
    vector_dim: int = bounded(300, minimum=1)
    attribute_noise: float = bounded(0.5, minimum=0.0)  # per-word noise around its attribute's direction
    filler_words: int = bounded(200, minimum=0)  # unrelated words in the vector file, as in a real vocabulary
    seed: int = bounded(0, minimum=0)


def check_generator(config: SyntheticMultiLabelConfig) -> None:
    """What the fields' bounds cannot say alone: three splits within the labels, at most max_objects objects."""
    if len(config.split) != 3 or sum(config.split) > config.labels:
        raise ConfigError(
            f"Bad config value data.generator.split={config.split}: it must give the train, val and test labels "
            f"(three counts) summing to at most data.generator.labels={config.labels}."
        )
    family = len(TEXTURES)
    if config.labels % family or any(count % family for count in config.split):
        raise ConfigError(
            f"Bad config value data.generator.labels={config.labels} / split={config.split}: labels come in "
            f"families of {family} (one per texture), so every count must be a multiple of {family}."
        )
    if config.min_objects > config.max_objects:
        raise ConfigError(
            f"Bad config value data.generator.min_objects={config.min_objects}: it must be ≤ "
            f"data.generator.max_objects={config.max_objects}."
        )


def label_looks(config: SyntheticMultiLabelConfig, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(texture, colour, shape) of each label: labels // 3 random (colour, shape) families, each with every
    texture, family after family."""
    families = list(product(COLOURS, SHAPES))
    chosen = rng.choice(len(families), config.labels // len(TEXTURES), replace=False)
    return [(texture, *families[i]) for i in chosen for texture in TEXTURES]


def label_name(look: tuple[str, str, str], index: int, named_texture: bool) -> str:
    texture, colour, shape = look
    return f"{texture} {colour} {shape}" if named_texture else f"{colour} {shape} mark{index}"


def word_vectors(config: SyntheticMultiLabelConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One vector per attribute word: its kind's direction + its own direction + noise; each label's own token
    (`mark<i>`) and the filler words: random directions, unrelated to any look."""
    vectors = {}
    for values in ATTRIBUTES.values():
        kind = rng.normal(size=config.vector_dim)
        for word in values:
            own = rng.normal(size=config.vector_dim)
            vectors[word] = (0.5 * kind + own + config.attribute_noise * rng.normal(size=config.vector_dim)) / 4
    tokens = [] if config.named_texture else [f"mark{index}" for index in range(config.labels)]
    for word in tokens + [f"filler{index}" for index in range(config.filler_words)]:
        vectors[word] = rng.normal(size=config.vector_dim) / 4
    return vectors


def _draw_object(image: np.ndarray, look: tuple[str, str, str], box: tuple[int, int, int], rng) -> list:
    """Draw an object of `look` (texture, colour, shape) centred at (x, y) with radius r; returns its outline."""
    texture, colour, shape = look
    x, y, r = box
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    if shape in ("circle", "ring"):
        cv2.circle(mask, (x, y), r, 1, -1)
        if shape == "ring":
            cv2.circle(mask, (x, y), r // 2, 0, -1)
    elif shape == "square":
        cv2.rectangle(mask, (x - r, y - r), (x + r, y + r), 1, -1)
    elif shape == "triangle":
        cv2.fillPoly(mask, [np.array([[x, y - r], [x - r, y + r], [x + r, y + r]], np.int32)], 1)
    elif shape == "star":
        angles = np.arange(10) * np.pi / 5 - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        points = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(mask, [points], 1)
    else:  # cross
        width = max(r // 3, 2)
        cv2.rectangle(mask, (x - r, y - width), (x + r, y + width), 1, -1)
        cv2.rectangle(mask, (x - width, y - r), (x + width, y + r), 1, -1)
    base = np.array(COLOURS[colour], dtype=np.float32) * rng.uniform(0.85, 1.15)
    rows, cols = np.indices(mask.shape)
    if texture == "striped":
        shade = np.where(((rows + cols) // 3) % 2 == 0, 1.0, 0.45)
    elif texture == "dotted":
        shade = np.where((rows % 5 < 2) & (cols % 5 < 2), 0.35, 1.0)
    else:
        shade = np.ones(mask.shape)
    inside = mask.astype(bool)
    image[inside] = (base[None, :] * shade[inside][:, None]).clip(0, 255)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [contour.flatten().astype(float).tolist() for contour in contours if len(contour) >= 3]


def _image(config, looks: list[tuple[str, str, str]], pool: np.ndarray, rng: np.random.Generator):
    """An image of 1..max distinct labels from `pool`, objects in distinct cells of a 2 x 2 grid."""
    size = config.image_size
    image = (rng.normal(110, 18, (size, size, 3))).clip(0, 255).astype(np.uint8)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    labels = rng.choice(pool, min(count, len(pool)), replace=False)
    cells = rng.choice(GRID_CELLS, len(labels), replace=False)
    objects = []
    for label, cell in zip(labels, cells, strict=True):
        r = int(rng.integers(size // 9, size // 5))
        x = int(cell % 2) * size // 2 + size // 4 + int(rng.integers(-size // 12, size // 12 + 1))
        y = int(cell // 2) * size // 2 + size // 4 + int(rng.integers(-size // 12, size // 12 + 1))
        polygons = _draw_object(image, looks[label], (x, y, r), rng)
        objects.append((int(label), [x - r, y - r, 2 * r, 2 * r], polygons))
    return image, objects


def write_dataset(config: SyntheticMultiLabelConfig, folder: Path, progress: bool = True) -> None:
    """COCO layout: images/<id>.jpg and annotations/instances.json; label_split.json; word_vectors.txt."""
    rng = np.random.default_rng(config.seed)
    looks = label_looks(config, rng)
    names = [label_name(look, index, config.named_texture) for index, look in enumerate(looks)]
    family = len(TEXTURES)
    order = rng.permutation(config.labels // family)  # families, split whole
    bounds = np.cumsum((0, *config.split)) // family
    splits = {
        name: np.concatenate([np.arange(f * family, (f + 1) * family) for f in order[bounds[i] : bounds[i + 1]]])
        for i, name in enumerate(("train", "val", "test"))
    }
    (folder / "images").mkdir()
    (folder / "annotations").mkdir()
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i + 1, "name": n, "supercategory": looks[i][2]} for i, n in enumerate(names)]
    split_names = list(splits)
    for image_id in tqdm(range(1, config.images + 1), desc="generate images", disable=not progress):
        mixed = rng.random() < config.mixed_fraction
        pool = np.arange(config.labels) if mixed else splits[split_names[rng.choice(3, p=[0.6, 0.2, 0.2])]]
        image, objects = _image(config, looks, pool, rng)
        file_name = f"{image_id:06d}.jpg"
        cv2.imwrite(str(folder / "images" / file_name), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        size = config.image_size
        coco["images"].append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        for label, bbox, polygons in objects:
            coco["annotations"].append(
                {"id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": label + 1, "bbox": bbox,
                 "area": float(bbox[2] * bbox[3]), "iscrowd": 0, "segmentation": polygons}
            )  # fmt: skip
    (folder / "annotations" / "instances.json").write_text(json.dumps(coco))
    split_json = {name: [names[i] for i in sorted(labels)] for name, labels in splits.items()}
    (folder / "label_split.json").write_text(json.dumps(split_json, indent=1) + "\n")
    vectors = word_vectors(config, rng)
    lines = [f"{word} " + " ".join(f"{value:.5f}" for value in vector) for word, vector in vectors.items()]
    (folder / "word_vectors.txt").write_text("\n".join(lines) + "\n")


def ensure_dataset(config: SyntheticMultiLabelConfig, cache_dir: Path, progress: bool = True) -> Path:
    write = partial(write_dataset, config, progress=progress)
    return ensure_generated("synthetic_multilabel", config, cache_dir, write)
