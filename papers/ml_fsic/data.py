"""Multi-label image sets from COCO annotation JSON (pycocotools) and PASCAL VOC 2007 XML, the label-split rule
(an image belongs to a split only if all its labels do), the check that a split can fill its episodes, and images
as normalized tensors. Word vectors: papers/ml_fsic/word_vectors.py."""

from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from common.errors import ConfigError, DatasetError

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet's channel statistics
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class MultiLabelImages:
    paths: list[Path]
    labels: np.ndarray  # [images, label names] bool
    label_names: list[str]

    def subset(self, rows: np.ndarray, names: list[str]) -> MultiLabelImages:
        columns = [self.label_names.index(name) for name in names]
        return MultiLabelImages([self.paths[i] for i in rows], self.labels[np.ix_(rows, columns)], list(names))


def read_coco(
    annotation_files: list[Path], image_dirs: list[Path], data_card: str, keep_unannotated: bool = False
) -> MultiLabelImages:
    """Images with at least one annotation (every image with `keep_unannotated`, unannotated ones without any
    label) from each instances JSON, the images found in the matching folder."""
    from pycocotools.coco import COCO

    paths, label_sets, names = [], [], {}
    for annotation_file, images in zip(annotation_files, image_dirs, strict=True):
        coco = COCO()
        coco.dataset = _instances(Path(annotation_file), data_card)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            coco.createIndex()
        names.update({category["id"]: category["name"] for category in coco.loadCats(coco.getCatIds())})
        for image in coco.loadImgs(coco.getImgIds()):
            categories = {a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"], iscrowd=None))}
            if categories or keep_unannotated:
                paths.append(Path(images) / image["file_name"])
                label_sets.append({names[c] for c in categories})
    return _as_matrix(paths, label_sets, sorted(set(names.values())))


def _instances(path: Path, data_card: str) -> dict:
    """The content of a COCO instances file, refused with the file's name if it is missing, not JSON, or not an
    instances file (a captions or keypoints file lacks `categories` or the annotations' `category_id`)."""
    if not path.is_file():
        raise DatasetError(f"COCO annotation file {path} does not exist; {data_card} lists the files.")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"COCO annotation file {path} is not valid JSON ({error}); {data_card}.") from None
    missing = [key for key in ("images", "annotations", "categories") if key not in content]
    if not isinstance(content, dict) or missing:
        raise DatasetError(
            f"{path} is not a COCO instances file: it lacks {missing or 'a top-level object'} (captions files have "
            f"no categories; give annotations/instances_<split>.json, {data_card})."
        )
    if any("category_id" not in annotation for annotation in content["annotations"]):
        raise DatasetError(f"{path}: an annotation lacks category_id; it is not an instances file ({data_card}).")
    return content


def read_voc(root: Path, image_sets: list[str], data_card: str, keep_difficult: bool = True) -> MultiLabelImages:
    """VOC 2007: ImageSets/Main/<image set>.txt for each set, Annotations/<id>.xml (object/name),
    JPEGImages/<id>.jpg."""
    root = Path(root)
    image_ids = []
    for image_set in image_sets:
        listing = root / "ImageSets" / "Main" / f"{image_set}.txt"
        if not listing.is_file():
            missing = listing.relative_to(root)
            raise DatasetError(f"VOC folder {root} lacks {missing}; {data_card} describes the layout.")
        image_ids.extend(listing.read_text().split())
    paths, label_sets = [], []
    for image_id in image_ids:
        xml = root / "Annotations" / f"{image_id}.xml"
        try:
            tree = ElementTree.parse(xml)
        except (OSError, ElementTree.ParseError) as error:
            raise DatasetError(f"VOC annotation {xml} is not readable XML ({error}); {data_card}.") from None
        objects = [
            item.findtext("name").strip()
            for item in tree.getroot().iter("object")
            if keep_difficult or item.findtext("difficult", "0").strip() != "1"
        ]
        if objects:
            paths.append(root / "JPEGImages" / f"{image_id}.jpg")
            label_sets.append(set(objects))
    return _as_matrix(paths, label_sets, sorted(set().union(*label_sets)))


def _as_matrix(paths: list[Path], label_sets: list[set[str]], names: list[str]) -> MultiLabelImages:
    labels = np.zeros((len(paths), len(names)), dtype=bool)
    for row, present in enumerate(label_sets):
        labels[row, [names.index(name) for name in present]] = True
    return MultiLabelImages(paths, labels, names)


def split_by_labels(images: MultiLabelImages, splits: dict[str, list[str]]) -> dict[str, MultiLabelImages]:
    """Each split's images: those all of whose labels belong to it (the COCO few-shot protocol)."""
    unknown = sorted(set().union(*splits.values()) - set(images.label_names))
    if unknown:
        raise DatasetError(f"split labels {unknown} are not labels of the dataset; it has {images.label_names}.")
    result = {}
    for split, names in splits.items():
        outside = np.array([name not in names for name in images.label_names])
        rows = np.flatnonzero(images.labels.any(axis=1) & ~images.labels[:, outside].any(axis=1))
        result[split] = images.subset(rows, names)
    return result


def check_split_size(name: str, part: MultiLabelImages, ways: int | None, shots: int, split_path: Path) -> None:
    """Refuse, before any training, a split that cannot fill its episodes: fewer labels than `ways`, or a label
    with fewer images than `shots` support images and one query."""
    if ways is not None and len(part.label_names) < ways:
        raise ConfigError(
            f"episodes.ways.{name}={ways} but the {name} split has {len(part.label_names)} labels ({split_path}); "
            f"lower episodes.ways.{name} or give the split more labels."
        )
    needed = max(shots, 1) + 1
    counts = part.labels.sum(axis=0)
    short = {label: int(count) for label, count in zip(part.label_names, counts, strict=True) if count < needed}
    if short:
        raise DatasetError(
            f"the {name} split ({split_path}) is too small for its episodes: each label needs {needed} images "
            f"({max(shots, 1)} support, at least 1 query), but these have fewer: {short}."
        )


def load_pixels(paths: list[Path], size: int, data_card: str) -> torch.Tensor:
    """[images, 3, size, size]: each image as RGB, resized and normalized by ImageNet's channel statistics."""
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path} is not a readable image; {data_card}.")
        image = cv2.resize(image[:, :, ::-1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        frames.append((image / 255 - MEAN) / STD)
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
