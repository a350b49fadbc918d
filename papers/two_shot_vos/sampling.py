"""Training triplets and evaluation videos as batch sources for the shared trainer.

Triplet samplers follow the official code: STCN's (a reference and two later frames within max-skip, time
reversed with p = 0.5), the naive two-shot one (that sampler over the two labeled frames only), and phase 1's
(the reference is a labeled frame; with p = 0.5 both labeled frames are forced in; p = 0.5 time reversal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from common.config import bounded
from common.errors import DatasetError
from common.metrics.segmentation import VOID
from papers.two_shot_vos.data import Video
from papers.two_shot_vos.sources import TrainingSet
from papers.two_shot_vos.training import IGNORE

MODES = ("full", "naive", "phase1", "bank")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


@dataclass
class SamplingConfig:
    crop: list[int] = bounded(default_factory=lambda: [96, 96], minimum=1)  # [H, W] of training crops
    samples_per_video: int = bounded(8, minimum=1)  # triplets per video per epoch
    max_skip_start: int = bounded(5, minimum=1)
    max_skip_values: list[int] = bounded(default_factory=lambda: [10, 15, 20, 25, 5], minimum=1)  # STCN's curriculum
    max_skip_at: list[float] = bounded(  # fractions of training where each max-skip value starts
        default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.9], minimum=0.0, maximum=1.0, same_length_as="max_skip_values"
    )
    both_labeled_probability: float = bounded(0.5, minimum=0.0, maximum=1.0)  # phase 1: both labeled frames in


def max_skip(settings: SamplingConfig, fraction: float) -> int:
    """The max-skip curriculum: the last value whose start fraction has been reached."""
    value = settings.max_skip_start
    for start, skip in zip(settings.max_skip_at, settings.max_skip_values, strict=True):
        if fraction >= start:
            value = skip
    return value


def standard_triplet(length: int, skip: int, rng: np.random.Generator) -> list[int]:
    """STCN's: a start, then two frames each at most `skip` later, clamped to the video; reversed w.p. 0.5."""
    jump = min(length, skip)
    start = int(rng.integers(length - jump + 1))
    first = min(start + int(rng.integers(jump + 1)) + 1, length - jump, length - 1)
    second = min(first + int(rng.integers(jump + 1)) + 1, length - jump // 2, length - 1)
    triplet = [start, first, second]
    return triplet[::-1] if rng.random() < 0.5 else triplet


def labeled_triplet(labeled: list[int], skip: int, rng: np.random.Generator) -> list[int]:
    """The naive two-shot triplet: STCN's sampler over the two labeled frames alone (so frames repeat)."""
    return [labeled[position] for position in standard_triplet(len(labeled), skip, rng)]


def semi_triplet(
    length: int, labeled: list[int], skip: int, rng: np.random.Generator, both_probability: float
) -> list[int]:
    """Phase 1's triplet: starts at a labeled frame, then two frames within `skip` (unlabeled ones allowed);
    with probability `both_probability` the other labeled frame is forced in; time reversed w.p. 0.5."""
    order = list(range(length))
    labeled = sorted(labeled)
    if rng.random() < 0.5:
        order.reverse()
    position = {frame: index for index, frame in enumerate(order)}
    gt = sorted(position[frame] for frame in labeled)
    start_gt = int(rng.integers(2))
    start = gt[start_gt]
    jump = min(length, skip)
    first = min(start + int(rng.integers(jump + 1)) + 1, length - 1)
    second = min(first + int(rng.integers(jump + 1)) + 1, length - 1)
    positions = [start, first, second]
    if rng.random() < both_probability and sum(p in gt for p in positions) < 2:
        if start_gt == 1:
            positions = [gt[0], start, first]
        elif first > gt[1]:
            positions = [start, gt[1], first]
        else:
            positions = [start, first, gt[1]]
    return [order[p] for p in positions]


def normalize(frames: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] with ImageNet's mean and std."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float().div(255).movedim(-1, -3)
    return (tensor - MEAN) / STD


class TripletSource:
    """Training triplets of the videos of `sets` (each repeated its `repeat` times, as the official
    ConcatDataset). `mode`: full (every frame labeled), naive (the two labeled frames only), phase1 (naive until
    `warmup` steps, then semi triplets; unlabeled frames are IGNORE until pseudo-labeled), bank (every frame
    labeled by the pseudo-label bank). `progress()` gives the optimizer steps done so far, so that sampling is a
    function of (seed, index, step) and a resumed run draws the same triplets."""

    def __init__(self, sets: list[TrainingSet], mode: str, settings: SamplingConfig, progress: Callable[[], int],
                 total_steps: int, warmup: int, seed: int):  # fmt: skip
        self.entries = [(video, group.max_skip_divisor) for group in sets for _ in range(group.repeat)
                        for video in group.videos]  # fmt: skip
        self.mode, self.settings = mode, settings
        self.progress, self.total_steps, self.warmup, self.seed = progress, total_steps, warmup, seed

    def __len__(self) -> int:
        return len(self.entries) * self.settings.samples_per_video

    def _frames(self, video: Video, divisor: int, step: int, rng: np.random.Generator) -> list[int]:
        """The triplet's frames; max-skip divided by the dataset's divisor (official YouTube-VOS: // 5, its frames
        being every fifth of the original video)."""
        skip = max(1, max_skip(self.settings, step / max(self.total_steps, 1)) // divisor)
        labeled = video.labeled
        if self.mode == "naive" or (self.mode == "phase1" and step < self.warmup):
            return labeled_triplet(labeled, skip, rng)
        if self.mode == "phase1":
            return semi_triplet(len(video.frames), labeled, skip, rng, self.settings.both_labeled_probability)
        return standard_triplet(len(video.frames), skip, rng)

    def _sample(self, index: int, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index, step])
        video, divisor = self.entries[index % len(self.entries)]
        for _ in range(10):  # a reference frame without any object is redrawn, as STCN does
            frames = self._frames(video, divisor, step, rng)
            objects = np.setdiff1d(np.unique(video.masks[frames[0]]), [0, 255])
            if len(objects):
                break
        else:
            frames = [video.labeled[0]] * 3
            objects = np.setdiff1d(np.unique(video.masks[frames[0]]), [0, 255])
        chosen = rng.permutation(objects)[:2]
        height, width = video.frames.shape[1:3]
        crop_h, crop_w = min(self.settings.crop[0], height), min(self.settings.crop[1], width)
        top, left = int(rng.integers(height - crop_h + 1)), int(rng.integers(width - crop_w + 1))
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        flip = rng.random() < 0.5
        images = video.frames[frames][:, window[0], window[1]]
        target = np.full((3, crop_h, crop_w), IGNORE, dtype=np.int64)
        for position, frame in enumerate(frames):
            if frame in video.masks:
                mask = video.masks[frame][window]
                target[position] = np.where(mask == VOID, IGNORE, 0)  # void pixels carry no supervision
                for label, obj in enumerate(chosen, start=1):
                    target[position][mask == obj] = label
        if flip:
            images, target = images[:, :, ::-1], target[:, :, ::-1]
        first = np.stack([target[0] == 1, target[0] == 2]).astype(np.float32)
        return {
            "frames": normalize(images),
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "first_masks": torch.from_numpy(np.ascontiguousarray(first)),
            "selector": torch.tensor([1.0, float(len(chosen) > 1)]),
            "labeled": torch.tensor([float(frame in video.masks) for frame in frames]),
        }

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        step = self.progress()
        samples = [self._sample(int(index), step) for index in indices]
        return {name: torch.stack([sample[name] for sample in samples]) for name in samples[0]}


class VideoSource:
    """Whole videos for evaluation, padded to the longest of a batch: frames (resized to `size`, the model's
    working size, when it is set), ground-truth index masks at the annotations' native size (IGNORE where a frame
    has none), the number of frames, and the first frame's mask as the given reference."""

    def __init__(self, videos: list[Video], size: tuple[int, int] | None = None):
        self.videos, self.size = videos, size

    def __len__(self) -> int:
        return len(self.videos)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        videos = [self.videos[int(index)] for index in indices]
        shapes = {video.frames.shape[1:3] for video in videos}
        if len(shapes) > 1:
            raise DatasetError(
                f"videos {[video.name for video in videos]} differ in size {sorted(shapes)}: evaluate them one a batch "
                f"(trainer.eval_batch_size=1)."
            )
        longest = max(len(video.frames) for video in videos)
        native = videos[0].frames.shape[1:3]
        working = tuple(self.size) if self.size else native
        frames = torch.zeros(len(videos), longest, 3, *working)
        masks = torch.full((len(videos), longest, *native), IGNORE, dtype=torch.long)
        for row, video in enumerate(videos):
            frames[row, : len(video.frames)] = normalize(resized_frames(video.frames, working))
            for frame, mask in video.masks.items():
                masks[row, frame] = torch.from_numpy(mask.astype(np.int64))
        lengths = torch.tensor([len(video.frames) for video in videos])
        return {"frames": frames, "masks": masks, "lengths": lengths, "index": torch.as_tensor(indices)}


def resized_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 frames [T, H, W, 3] at `size` ([H, W]; area interpolation)."""
    if frames.shape[1:3] == tuple(size):
        return frames
    return np.stack([cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA) for frame in frames])
