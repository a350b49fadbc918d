"""No-learning rows, scored through the same path as a trained model, and the heuristic the bank must beat.

At test time only the first frame's mask of a video is given (the two labeled frames of the two-shot split
are training frames), so the test-time trivial scorer copies that mask; the oracle predicts the ground-truth
masks the generator wrote, the ceiling of J, F and J&F. The pseudo-label bank labels the unlabeled frames of
the training videos from their two labeled frames: its trivial counterpart copies each frame's nearest
labeled frame's mask (`copy_nearest_labeled_frame`), scored by the J of the bank's measure
(`unlabeled_frame_jaccard`)."""

from __future__ import annotations

import numpy as np

from common.errors import ConfigError
from common.metrics.segmentation import jaccard
from papers.two_shot_vos.data import Video
from papers.two_shot_vos.scoring import Segmenter

SCORERS = ("oracle", "trivial_copy_first_frame")


def copy_first_frame(first_mask: np.ndarray, length: int) -> np.ndarray:
    """The first frame's given mask on every one of `length` frames: what a static object would give."""
    return np.repeat(first_mask[None], length, axis=0)


def copy_nearest_labeled_frame(video: Video) -> dict[int, np.ndarray]:
    """Every frame's mask copied from the nearest of `video`'s labeled frames (the earlier one on a tie): the
    bank a practitioner would build without a model."""
    labeled = np.array(video.labeled)
    return {t: video.masks[int(labeled[np.argmin(np.abs(labeled - t))])] for t in range(len(video.frames))}


def unlabeled_frame_jaccard(truth: Video, masks: dict[int, np.ndarray], labeled: list[int]) -> list[float]:
    """J of `masks` against `truth`'s masks on every frame not in `labeled`, per object of `truth`."""
    return [
        jaccard(truth.masks[t] == obj, masks[t] == obj)
        for t in range(len(truth.frames))
        if t not in labeled
        for obj in truth.objects
    ]


def nearest_labeled_bank_jaccard(two_shot: list[Video], every_mask: list[Video]) -> float:
    """Mean J, over the unlabeled frames and objects of the training videos, of copying the nearest labeled
    frame's mask: the figure the bank's `bank_jaccard` is compared with."""
    truth = {video.name: video for video in every_mask}
    scores = [
        score
        for video in two_shot
        for score in unlabeled_frame_jaccard(truth[video.name], copy_nearest_labeled_frame(video), video.labeled)
    ]
    return float(np.mean(scores))


def ground_truth_masks(video: Video) -> np.ndarray:
    """The video's masks [T, H, W]; frames without one (not scored) are background."""
    empty = np.zeros(video.frames.shape[1:3], dtype=np.uint8)
    return np.stack([video.masks.get(t, empty) for t in range(len(video.frames))])


def no_learning_segmenter(name: str, videos: list[Video]) -> Segmenter:
    """Scorer `name` as a segmenter of the split whose videos are `videos`; only the oracle reads their masks."""
    if name == "oracle":
        return lambda index, frames, first_mask: ground_truth_masks(videos[index])
    if name == "trivial_copy_first_frame":
        return lambda index, frames, first_mask: copy_first_frame(first_mask, len(frames))
    raise ConfigError(f"scorer={name!r} is not a no-learning scorer of two_shot_vos; allowed: {', '.join(SCORERS)}.")
