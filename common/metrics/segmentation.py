"""Segmentation metrics. Dice of two masks; and video object segmentation metrics as the
davis2017-evaluation protocol computes them (semi-supervised): region similarity J (IoU), boundary accuracy F
(boundary F-measure with a tolerance of 0.8% of the image diagonal), per object averaged over the frames
between the first and the last, and J&F. Void pixels (annotation value 255) count in neither J nor F, as
davis2017-evaluation leaves them out (davis2017/metrics.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_TOLERANCE = 0.008  # of the image diagonal, as in davis2017-evaluation
VOID = 255  # DAVIS's label of pixels no metric counts


def _cared(annotation: np.ndarray, void: np.ndarray | None) -> np.ndarray:
    return np.ones(annotation.shape, dtype=bool) if void is None else ~void.astype(bool)


def jaccard(annotation: np.ndarray, segmentation: np.ndarray, void: np.ndarray | None = None) -> float:
    """|A ∩ B| / |A ∪ B| of two binary masks over the pixels not `void`; 1 when both are empty there."""
    cared = _cared(annotation, void)
    annotation, segmentation = annotation.astype(bool) & cared, segmentation.astype(bool) & cared
    union = np.logical_or(annotation, segmentation).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(annotation, segmentation).sum() / union)


def dice(annotation: np.ndarray, segmentation: np.ndarray) -> float:
    """2 |A ∩ B| / (|A| + |B|) of two binary masks; 1 when both are empty."""
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    total = int(annotation.sum()) + int(segmentation.sum())
    if total == 0:
        return 1.0
    return float(2 * np.logical_and(annotation, segmentation).sum() / total)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a binary mask: pixels that differ from their right, lower or lower-right
    neighbour (the DAVIS `seg2bmap`)."""
    mask = mask.astype(bool)
    right, below, diagonal = np.zeros_like(mask), np.zeros_like(mask), np.zeros_like(mask)
    right[:, :-1], below[:-1, :], diagonal[:-1, :-1] = mask[:, 1:], mask[1:, :], mask[1:, 1:]
    boundary = (mask ^ right) | (mask ^ below) | (mask ^ diagonal)
    boundary[-1, :] = mask[-1, :] ^ right[-1, :]
    boundary[:, -1] = mask[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def _disk(radius: int) -> np.ndarray:
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_f(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    tolerance: float = BOUNDARY_TOLERANCE,
    void: np.ndarray | None = None,
) -> float:
    """Boundary F-measure: precision and recall of the two boundaries (of the masks with `void` pixels cleared)
    matched within ceil(tolerance × image diagonal) pixels; 1 when both masks are empty, 0 when only one is."""
    height, width = annotation.shape
    radius = tolerance if tolerance >= 1 else math.ceil(tolerance * math.hypot(height, width))
    cared = _cared(annotation, void)
    predicted, truth = boundary_map(segmentation.astype(bool) & cared), boundary_map(annotation.astype(bool) & cared)
    disk = _disk(int(radius))
    predicted_dilated = cv2.dilate(predicted.astype(np.uint8), disk).astype(bool)
    truth_dilated = cv2.dilate(truth.astype(np.uint8), disk).astype(bool)
    predicted_count, truth_count = predicted.sum(), truth.sum()
    if predicted_count == 0 and truth_count == 0:
        return 1.0
    if predicted_count == 0 or truth_count == 0:
        return 0.0
    precision = (predicted & truth_dilated).sum() / predicted_count
    recall = (truth & predicted_dilated).sum() / truth_count
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def video_object_scores(truth: np.ndarray, prediction: np.ndarray, objects: list[int]) -> tuple[np.ndarray, ...]:
    """Per object of a video: mean J and mean F over the frames between the first and the last (the protocol
    leaves both out), from index masks [T, H, W]; pixels the truth marks VOID are left out.
    Returns (J [objects], F [objects])."""
    frames = range(1, len(truth) - 1) if len(truth) > 2 else range(len(truth))
    void = truth == VOID
    j_scores, f_scores = [], []
    for index in objects:
        pairs = [(truth[t] == index, prediction[t] == index, void[t]) for t in frames]
        j_scores.append(np.mean([jaccard(a, b, v) for a, b, v in pairs]))
        f_scores.append(np.mean([boundary_f(a, b, void=v) for a, b, v in pairs]))
    return np.array(j_scores), np.array(f_scores)


def j_and_f(j_per_object: np.ndarray, f_per_object: np.ndarray) -> dict[str, float]:
    """The protocol's summary over all objects of all videos: J mean, F mean and J&F = their average."""
    j_mean, f_mean = float(np.mean(j_per_object)), float(np.mean(f_per_object))
    return {"j_and_f": (j_mean + f_mean) / 2, "jaccard": j_mean, "boundary_f": f_mean}
