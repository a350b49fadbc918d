"""New images to authenticate (mode=predict): a folder of PNG/JPEG files, read as RGB and resized to the trained
model's input size, optionally with a CSV of `file,identity` rows labelling every image
(data_cards/digit_images.md)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.config import bounded
from common.errors import DatasetError
from papers.ovrdl_aal.cmnist import resize_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("file", "identity")


@dataclass
class DigitImagesConfig:
    name: str = bounded("digit_images", choices=("digit_images",))
    root: str | None = None  # the folder of images
    labels: str | None = None  # a CSV of file,identity; null: <root>/labels.csv where it exists, else no labels
    data_card: str = "data_cards/digit_images.md"


@dataclass
class DigitImages:
    files: list[str]  # names relative to the folder, sorted
    images: np.ndarray  # [n, 3, size, size] uint8, RGB
    identities: np.ndarray | None  # [n] int, or None without labels


def read_digit_images(config: DigitImagesConfig, folder: Path, size: int, identities: int) -> DigitImages:
    """Every PNG/JPEG image directly in `folder`, resized to size x size, and their labels where a CSV gives them
    (each identity in 0 .. identities - 1)."""
    if not folder.is_dir():
        raise DatasetError(f"data.root={folder} is not a folder of images; {config.data_card} describes the input.")
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not paths:
        raise DatasetError(
            f"{folder} holds no PNG or JPEG image (files ending in {', '.join(IMAGE_SUFFIXES)}); "
            f"{config.data_card} describes the input."
        )
    images = resize_images_of_any_size([read_rgb(path, config.data_card) for path in paths], size)
    files = [path.name for path in paths]
    labels_path = folder / (config.labels or LABELS_FILE)  # an absolute data.labels stands alone
    if config.labels is None and not labels_path.is_file():
        return DigitImages(files, images, None)
    labels = read_labels(labels_path, files, identities, config.data_card)
    return DigitImages(files, images, np.array([labels[name] for name in files], dtype=np.int64))


def read_rgb(path: Path, data_card: str) -> np.ndarray:
    """One image as uint8 [h, w, 3] RGB (grey images repeated over the channels, alpha dropped)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR, 3 channels whatever the file holds
    if image is None:
        raise DatasetError(f"{path} cannot be read as a PNG or JPEG image; {data_card} describes the input.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_images_of_any_size(images: list[np.ndarray], size: int) -> np.ndarray:
    """[h, w, 3] images of any sizes as one uint8 array [n, 3, size, size]."""
    return np.concatenate([resize_images(image.transpose(2, 0, 1)[None], size) for image in images])


def read_labels(path: Path, files: list[str], identities: int, data_card: str) -> dict[str, int]:
    """The CSV's identity of every image in `files`; anything missing, unknown or out of range is an error."""
    if not path.is_file():
        raise DatasetError(f"data.labels={path} does not exist; give a CSV with the columns file,identity.")
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
            raise DatasetError(
                f"{path} must have the header {','.join(LABEL_COLUMNS)}; it has {reader.fieldnames}. {data_card}."
            )
        rows = list(reader)
    labels: dict[str, int] = {}
    for line, row in enumerate(rows, 2):
        identity = row["identity"].strip()
        if not identity.isdigit() or int(identity) >= identities:
            raise DatasetError(
                f"{path}, line {line}: identity {identity!r} is not one of 0 .. {identities - 1} (the trained model's "
                "identities)."
            )
        labels[row["file"].strip()] = int(identity)
    unknown = sorted(set(labels) - set(files))
    unlabelled = [name for name in files if name not in labels]
    if unknown or unlabelled:
        raise DatasetError(
            f"{path} must label every image of its folder and nothing else: "
            f"{len(unlabelled)} image(s) without a row {unlabelled[:3]}, {len(unknown)} row(s) naming no image "
            f"{unknown[:3]}."
        )
    return labels
