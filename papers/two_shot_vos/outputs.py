"""What a VOS run leaves to look at: overlay strips (frames with the predicted masks) per video, and the
YouTube-VOS submission (palette PNGs in the CodaLab layout, zipped)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from papers.two_shot_vos.data import Video, davis_palette
from papers.two_shot_vos.inference import InferenceConfig
from papers.two_shot_vos.interface import VOSModel
from papers.two_shot_vos.prediction import (
    first_appearances,
    segment_from_annotations,
    write_video_masks,
    zip_submission,
)

PALETTE = np.array(davis_palette(), dtype=np.uint8).reshape(256, 3)


def overlay(frame: np.ndarray, mask: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The frame with each object's pixels blended with its DAVIS palette colour and outlined."""
    coloured = frame.astype(np.float32)
    objects = mask > 0
    coloured[objects] = (1 - opacity) * coloured[objects] + opacity * PALETTE[mask[objects]]
    edges = cv2.morphologyEx(objects.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    coloured[edges] = PALETTE[mask[edges]]
    return coloured.clip(0, 255).astype(np.uint8)


def write_overlay_strip(video: Video, prediction: np.ndarray, path: Path, frames: int = 6) -> Path:
    """`frames` evenly spaced frames of the video side by side, predicted masks over them (top row) and the
    ground truth where the video has it (bottom row)."""
    chosen = np.linspace(0, len(video.frames) - 1, min(frames, len(video.frames))).round().astype(int)
    rows = [np.concatenate([overlay(video.frames[t], prediction[t]) for t in chosen], axis=1)]
    if all(t in video.masks for t in chosen):
        rows.append(np.concatenate([overlay(video.frames[t], video.masks[t]) for t in chosen], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[:, :, ::-1])
    return path


def write_overlays(
    model: VOSModel, videos: list[Video], folder: Path, settings: InferenceConfig, device, size=None
) -> dict:
    """Overlay strips of the given videos, segmented from their first frame's mask (the model at `size`)."""
    images = {}
    for video in videos:
        if 0 not in video.masks:
            continue
        prediction = segment_from_annotations(model, video, {0: video.masks[0]}, settings, device, size)
        images[f"overlay/{video.name}"] = write_overlay_strip(video, prediction, folder / f"{video.name}.png")
    return images


def export_youtube_submission(
    model: VOSModel, videos: list[Video], folder: Path, settings: InferenceConfig, device, size=None
) -> Path:
    """YouTube-VOS's CodaLab layout: Annotations/<video>/<frame>.png for every frame, from the given
    annotations (each object's first appearance) propagated forward; zipped as <folder>.zip."""
    for video in videos:
        masks = segment_from_annotations(model, video, first_appearances(video.masks), settings, device, size)
        write_video_masks(folder / "Annotations" / video.name, video, masks)
    return zip_submission(folder, folder)
