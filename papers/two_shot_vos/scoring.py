"""Scoring a segmenter on whole videos (the semi-supervised protocol), and the per-video contributions of J, F
and J&F that the reproduced tables bootstrap over.

A segmenter maps (the video's index in the split, its frames [T, 3, H, W], the first frame's given mask [H, W])
to index masks [T, H, W]: a trained model propagating the first mask, or a no-learning scorer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from common.metrics.segmentation import video_object_scores
from common.units import UnitContributions

Segmenter = Callable[[int, torch.Tensor, np.ndarray], np.ndarray]


def score_video(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """J and F per object of one video: the objects of the first frame's mask, over the frames with ground
    truth."""
    objects = sorted(set(np.unique(truth[0]).tolist()) - {0, 255})
    scored = [t for t in range(len(truth)) if (truth[t] >= 0).all()]
    return video_object_scores(truth[scored], predicted[scored], objects)


def score_batch(batch: dict[str, torch.Tensor], segment: Segmenter) -> dict[str, torch.Tensor]:
    """Per object of every video in a VideoSource batch: J, F and the video's index in the split. Videos with no
    ground truth beyond the first frame (YouTube-VOS valid) are left out."""
    scores: dict[str, list[np.ndarray]] = {"jaccard": [], "boundary_f": [], "video_index": []}
    for row, length in enumerate(batch["lengths"].tolist()):
        truth = batch["masks"][row, :length].cpu().numpy()
        if (truth[1:] >= 0).sum() == 0:
            continue
        index = int(batch["index"][row])
        j, f = score_video(truth, segment(index, batch["frames"][row, :length], truth[0]))
        scores["jaccard"].append(j)
        scores["boundary_f"].append(f)
        scores["video_index"].append(np.full(len(j), index))
    device = batch["frames"].device
    return {
        name: torch.as_tensor(np.concatenate(parts) if parts else np.zeros(0), device=device)
        for name, parts in scores.items()
    }


def video_units(outputs: dict[str, np.ndarray], names: Sequence[str]) -> UnitContributions | None:
    """Per-video contributions: each video's mean J, F and (J + F) / 2 over its objects, weighted by its object
    count, so that the weighted mean over videos is the protocol's mean over all objects. None when no object
    was scored."""
    videos = np.asarray(outputs["video_index"]).astype(np.int64)
    if not len(videos):
        return None
    present, position, objects = np.unique(videos, return_inverse=True, return_counts=True)

    def per_video(values: np.ndarray) -> np.ndarray:
        return np.bincount(position, weights=np.asarray(values, dtype=np.float64)) / objects

    jaccard, boundary = outputs["jaccard"], outputs["boundary_f"]
    units = UnitContributions(unit="video", ids=np.asarray([names[index] for index in present]))
    units.add_mean("jaccard", per_video(jaccard), objects)
    units.add_mean("boundary_f", per_video(boundary), objects)
    units.add_mean("j_and_f", per_video((np.asarray(jaccard) + np.asarray(boundary)) / 2), objects)
    return units
