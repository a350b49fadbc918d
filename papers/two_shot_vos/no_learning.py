"""No-learning rows of the semi-supervised protocol, scored through the same path as a trained model.

At test time only the first frame's mask of a video is given (the two labeled frames of the two-shot split
are training frames), so the one trivial scorer copies that mask; the oracle predicts the ground-truth masks
the generator wrote, the ceiling of J, F and J&F."""

from __future__ import annotations

import numpy as np

from common.errors import ConfigError
from papers.two_shot_vos.data import Video
from papers.two_shot_vos.scoring import Segmenter

SCORERS = ("oracle", "trivial_copy_first_frame")


def copy_first_frame(first_mask: np.ndarray, length: int) -> np.ndarray:
    """The first frame's given mask on every one of `length` frames: what a static object would give."""
    return np.repeat(first_mask[None], length, axis=0)


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
