"""Multi-label image sets from COCO annotation JSON (pycocotools) and PASCAL VOC 2007 XML, the label-split rule
(an image belongs to a split only if all its labels do), label word vectors from a GloVe-format text file
(gensim KeyedVectors; a multi-word label is the mean of its words), and images as normalized tensors."""

from __future__ import annotations

import contextlib
import io
import logging
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from common.errors import DatasetError

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
        if not Path(annotation_file).is_file():
            raise DatasetError(f"COCO annotation file {annotation_file} does not exist; {data_card} lists the files.")
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            coco = COCO(str(annotation_file))
        names.update({category["id"]: category["name"] for category in coco.loadCats(coco.getCatIds())})
        for image in coco.loadImgs(coco.getImgIds()):
            categories = {a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"], iscrowd=None))}
            if categories or keep_unannotated:
                paths.append(Path(images) / image["file_name"])
                label_sets.append({names[c] for c in categories})
    return _as_matrix(paths, label_sets, sorted(set(names.values())))


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


def label_vectors(path: Path, names: list[str], data_card: str) -> np.ndarray:
    """[labels, dim]: each label's word vector from a GloVe-format text file (no header line); a name of
    several words (spaces or underscores) is the mean of its words' vectors."""
    from gensim.models import KeyedVectors

    logging.getLogger("gensim").setLevel(logging.WARNING)  # its INFO lines log every load
    if not Path(path).is_file():
        raise DatasetError(f"word vector file {path} does not exist; {data_card} says where to get GloVe.")
    vectors = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
    rows = []
    for name in names:
        words = name.replace("_", " ").lower().split()
        missing = [word for word in words if word not in vectors]
        if missing:
            raise DatasetError(f"label {name!r}: words {missing} are not in the word vectors of {path}.")
        rows.append(np.mean([vectors[word] for word in words], axis=0))
    return np.stack(rows).astype(np.float32)


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
