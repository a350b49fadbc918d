"""mode=predict for ML-FSIC: the images of a COCO-format annotation file scored for chosen labels, each label
given K support images; the scores go to scores.csv (one row per image, one probability column per label).

The support images are named per label in a JSON file (`data.support.file`, {label: [K file names]}) or drawn
with the seed, K per label, among the images annotated with it; they are distinct, and each carries as targets
its annotated labels among those scored plus the label it is named for. Every other image of the file is
scored; those with at least one annotation are labeled (a label absent from an annotated image is a negative)
and give the metrics, those without any are scored only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.atomic_files import write_json_atomic
from common.config import bounded
from common.errors import DatasetError
from papers.ml_fsic.data import MultiLabelImages
from papers.ml_fsic.evaluation import episode_metrics

SCORES_FILE, SUPPORT_FILE = "scores.csv", "support.json"


@dataclass
class SupportSetConfig:
    """mode=predict: the labels to score and their support images (`data.support`)."""

    labels: list[str] | None = None  # default: the keys of `file`, else the label split's test labels
    shots: int = bounded(5, minimum=1)  # K support images per label
    file: str | None = None  # JSON {label: [K image file names]}; default: K per label drawn with the seed
    batch_size: int = bounded(64, minimum=1)  # images per forward pass when scoring


@dataclass
class SupportSet:
    rows: np.ndarray  # [S] image rows of the annotation file, distinct
    targets: np.ndarray  # [S, N] float32 0/1 over the scored labels
    by_label: dict[str, list[str]]  # each label's K support images by file name


def named_support(path: Path, labels: list[str] | None, shots: int) -> dict[str, list[str]]:
    """The support description of `path`: each of `labels` (default: every label it names) with exactly `shots`
    image file names."""
    try:
        listing = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"data.support.file={path} is not a readable JSON file ({error}).") from None
    if not isinstance(listing, dict) or not all(isinstance(names, list) for names in listing.values()):
        raise DatasetError(f"data.support.file={path} must map each label to a list of image file names.")
    labels = list(listing) if labels is None else labels
    for label in labels:
        names = listing.get(label, [])
        if len(names) != shots:
            raise DatasetError(
                f"data.support.file={path} lists {len(names)} support images for label {label!r}, not "
                f"data.support.shots={shots}; name {shots} images per label or set data.support.shots."
            )
    return {label: [str(name) for name in listing[label]] for label in labels}


def drawn_support(images: MultiLabelImages, labels: list[str], shots: int, seed: int) -> dict[str, list[str]]:
    """`shots` distinct images per label, drawn with `seed` among those annotated with it and not drawn yet."""
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(images.paths), dtype=bool)
    chosen = {}
    for label in labels:
        candidates = np.flatnonzero(images.labels[:, images.label_names.index(label)] & ~taken)
        if len(candidates) < shots:
            raise DatasetError(
                f"label {label!r} has {len(candidates)} annotated images left for its support set, fewer than "
                f"data.support.shots={shots}; lower data.support.shots, annotate more images or name the support "
                "images in data.support.file."
            )
        picked = rng.choice(candidates, shots, replace=False)
        taken[picked] = True
        chosen[label] = [images.paths[row].name for row in picked]
    return chosen


def support_set(images: MultiLabelImages, labels: list[str], by_label: dict[str, list[str]]) -> SupportSet:
    """The support rows and their targets over `labels`: their annotations, plus the label each is named for."""
    row_of = {path.name: row for row, path in enumerate(images.paths)}
    rows: list[int] = []
    named_for: dict[int, set[str]] = {}
    for label, names in by_label.items():
        for name in names:
            if name not in row_of:
                raise DatasetError(f"support image {name!r} of label {label!r} is not an image of the annotation file.")
            row = row_of[name]
            if row not in named_for:
                rows.append(row)
            named_for.setdefault(row, set()).add(label)
    columns = [images.label_names.index(label) for label in labels]
    targets = images.labels[np.ix_(rows, columns)].astype(np.float32)
    for position, row in enumerate(rows):
        targets[position, [labels.index(label) for label in named_for[row]]] = 1.0
    return SupportSet(np.array(rows, dtype=np.int64), targets, by_label)


def labels_to_score(images: MultiLabelImages, labels: list[str], where: str) -> list[str]:
    """`labels` if every one is a category of the annotation file; `where` says where they came from."""
    unknown = [label for label in labels if label not in images.label_names]
    if unknown or not labels:
        raise DatasetError(
            f"the labels to score ({where}) must be categories of the annotation file: {unknown or 'none given'} "
            f"{'are' if unknown else 'is'} not; its categories are {images.label_names}."
        )
    return list(labels)


def label_scorer(
    model: nn.Module, support: torch.Tensor, support_targets: torch.Tensor, word_vectors: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function from images to label logits [images, N] given the support images and targets [S, N]: the
    word-vector guided (or mean) prototypes built once, or the classifier baselines' head fitted once."""
    if hasattr(model, "fitted_scorer"):
        return model.fitted_scorer(support, support_targets, len(word_vectors))
    return partial(model.image_scores, prototypes=model.label_prototypes(support, support_targets, word_vectors))


def labeled_metrics(
    images: MultiLabelImages, labels: list[str], rows: np.ndarray, probabilities: np.ndarray
) -> dict[str, float]:
    """mAP and precision/recall/F1 at 0.5 over the scored images with annotations ({} if none shows a label)."""
    labeled = images.labels[rows].any(axis=1)
    columns = [images.label_names.index(label) for label in labels]
    targets = images.labels[np.ix_(rows[labeled], columns)].astype(np.float32)
    if not targets.any():
        return {}
    return episode_metrics(targets, probabilities[labeled])


def write_scores(output_dir: Path, names: list[str], labels: list[str], probabilities: np.ndarray) -> Path:
    """scores.csv: a `file_name` column, then one column per label with the image's probability of showing it."""
    path = Path(output_dir) / SCORES_FILE
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file_name", *labels])
        for name, row in zip(names, probabilities, strict=True):
            writer.writerow([name, *(f"{value:.9g}" for value in row)])
    return path


def write_support(output_dir: Path, support: SupportSet) -> Path:
    """support.json: the support images each label was given, in data.support.file's format."""
    return write_json_atomic(Path(output_dir) / SUPPORT_FILE, support.by_label, indent=1)
