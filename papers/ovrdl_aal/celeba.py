"""CelebA under the official protocol (`data/gendata_celebA_grouped_classes_64.py`): identity = the person,
domain types = the chosen binary attributes (the official default: Eyeglasses alone). Kept are the people
photographed with both values of the first attribute, with at least `min_images` images and a share of images
without it within `max_imbalance` of one half, at most `max_identities` of them (drawn at random). The test
combinations: people below the median (of the kept people, in id order) without the attribute and people at or
above it with the attribute; everything else trains. Validation = half of each test ⟨person, attributes⟩ cell,
as on CMNIST. Images: the aligned crops resized to `size` × `size` (the official file holds 64 × 64 crops
aligned on five landmarks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from common.config import bounded
from common.errors import DatasetError
from papers.ovrdl_aal.cmnist import CMNIST, validation_half
from papers.ovrdl_aal.data import CelebAIndex


@dataclass
class CelebAProtocolConfig:
    attributes: list[str] = field(default_factory=lambda: ["Eyeglasses"])  # the domain types, first one splits
    size: int = bounded(64, minimum=6)
    min_images: int = bounded(20, minimum=1)  # official th_num_pic
    max_imbalance: float = bounded(0.2, minimum=0.0, maximum=0.5)  # official th_num_pic_0p5_minus_ratio
    max_identities: int = bounded(500, minimum=2)  # official th_num_person
    seed: int = bounded(0, minimum=0)


def kept_people(index: CelebAIndex, config: CelebAProtocolConfig) -> np.ndarray:
    """The people the protocol keeps (their CelebA ids, ascending)."""
    first = index.attributes[:, 0]
    people = np.intersect1d(np.unique(index.identity[first == 0]), np.unique(index.identity[first == 1]))
    counts = np.array([(index.identity == person).sum() for person in people])
    without = np.array([((index.identity == person) & (first == 0)).sum() for person in people])
    people = people[
        (counts >= config.min_images) & (np.abs(0.5 - without / np.maximum(counts, 1)) <= config.max_imbalance)
    ]
    if len(people) > config.max_identities:
        people = np.sort(np.random.default_rng(config.seed).permutation(people)[: config.max_identities])
    if len(people) < 2:
        raise DatasetError(
            f"CelebA under data.protocol keeps {len(people)} people (with both values of "
            f"{index.attribute_names[0]}, >= {config.min_images} images, balanced within {config.max_imbalance}); "
            "at least 2 are needed: lower data.protocol.min_images or raise data.protocol.max_imbalance."
        )
    return people


def read_image(path: Path, size: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path} is missing or cannot be decoded as an image.")
    image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    return image.transpose(2, 0, 1)


def build_celeba(index: CelebAIndex, folder: Path, config: CelebAProtocolConfig) -> CMNIST:
    """The kept people's images [n, 3, size, size] with (person, attributes) labels and the protocol's split."""
    people = kept_people(index, config)
    rows = np.flatnonzero(np.isin(index.identity, people))
    person = np.searchsorted(people, index.identity[rows])  # 0 .. P-1 in id order
    attributes = np.column_stack([person, index.attributes[rows]]).astype(np.int64)
    below = person < np.median(np.arange(len(people)))
    first = attributes[:, 1]
    test = (below & (first == 0)) | (~below & (first == 1))
    split = np.where(test, "test", "train").astype(object)
    split[validation_half(attributes, test, np.random.default_rng(config.seed))] = "val"
    images = np.stack([
        read_image(Path(folder) / "celeba" / "img_align_celeba" / index.files[row], config.size)
        for row in tqdm(rows, desc="read CelebA", dynamic_ncols=True)
    ])  # fmt: skip
    classes = [len(people)] + [2] * len(index.attribute_names)
    return CMNIST(images, attributes, split.astype(str), ["identity", *index.attribute_names], classes)
