"""Segmenting videos with a trained model from their given annotations (mode=predict, and the YouTube-VOS
submission of a training run), at the annotations' native size, written as palette PNGs in the dataset's own
layout and scored where every frame has a mask.

Given annotations: DAVIS gives the first frame's mask (every object appears in it); YouTube-VOS gives each
object's mask in the frame where it first appears, so a video may gain objects on the way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.errors import DatasetError
from common.metrics.segmentation import video_object_scores
from papers.two_shot_vos.data import Video, save_index_mask
from papers.two_shot_vos.inference import InferenceConfig, object_ids, segment_video
from papers.two_shot_vos.interface import VOSModel
from papers.two_shot_vos.sampling import normalize, resized_frames
from papers.two_shot_vos.trainee import vos_metrics

LAYOUTS = ("davis", "youtube_vos")
SUBMISSION = "submission"  # <output dir>/submission.zip, YouTube-VOS's CodaLab upload


def first_appearances(masks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Each object's mask in the first annotated frame where it appears (YouTube-VOS's given annotations):
    frame index -> that frame's mask restricted to the objects that appear there first."""
    seen: set[int] = set()
    given = {}
    for index in sorted(masks):
        new = set(object_ids(masks[index])) - seen
        if new:
            given[index] = np.where(np.isin(masks[index], sorted(new)), masks[index], 0).astype(np.uint8)
            seen |= new
    return given


def given_annotations(video: Video, layout: str, data_card: str) -> dict[int, np.ndarray]:
    """The annotations the protocol of `layout` hands the segmenter."""
    if layout == "youtube_vos":
        return first_appearances(video.masks)
    if 0 not in video.masks:
        raise DatasetError(
            f"video {video.name} has no mask of its first frame {video.frame_names[0]} (Annotations/480p/{video.name}/"
            f"{video.frame_names[0]}.png): DAVIS videos are segmented from it ({data_card})."
        )
    return {0: video.masks[0]}


@torch.no_grad()
def segment_from_annotations(
    model: VOSModel,
    video: Video,
    given: dict[int, np.ndarray],
    settings: InferenceConfig,
    device,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Index masks [T, H, W] of every frame at the video's native size: the given annotations propagated forward
    (frames resized to `size` for the model when it is set); frames before the first annotation, and every frame
    of a video without annotations, are background."""
    if not given:
        return np.zeros((len(video.frames), *video.frames.shape[1:3]), dtype=np.uint8)
    frames = normalize(resized_frames(video.frames, tuple(size) if size else video.frames.shape[1:3]))
    return segment_video(model, frames.to(device), given, settings)


def write_video_masks(folder: Path, video: Video, masks: np.ndarray) -> None:
    """<folder>/<frame>.png for every frame of the video, palette PNGs of object indices."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(video.frame_names, masks, strict=True):
        save_index_mask(folder / f"{name}.png", mask)


def zip_submission(split_folder: Path, archive: Path) -> Path:
    """`archive`.zip holding Annotations/<video>/<frame>.png from `split_folder`, as the challenge server expects."""
    return Path(shutil.make_archive(str(archive), "zip", root_dir=split_folder, base_dir="Annotations"))


def annotation_folder(output_dir: Path, layout: str, split: str) -> Path:
    """Where a layout keeps its masks: DAVIS's Annotations/480p, YouTube-VOS's <split>/Annotations."""
    if layout == "youtube_vos":
        return output_dir / split / "Annotations"
    return output_dir / "Annotations" / "480p"


def predict_videos(
    model: VOSModel,
    videos: list[Video],
    layout: str,
    split: str,
    output_dir: Path,
    settings: InferenceConfig,
    device,
    data_card: str,
    size: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Segment every video from its given annotations and write its masks in the layout under `output_dir` (for
    YouTube-VOS also <output_dir>/submission.zip); J, F and J&F over the videos that have every frame's mask,
    {} when none has."""
    folder = annotation_folder(output_dir, layout, split)
    scores: dict[str, list[np.ndarray]] = {"jaccard": [], "boundary_f": []}
    scored_videos = 0
    for video in tqdm(videos, desc="segment videos"):
        given = given_annotations(video, layout, data_card)
        masks = segment_from_annotations(model, video, given, settings, device, size)
        write_video_masks(folder / video.name, video, masks)
        if len(video.masks) == len(video.frames):
            truth = np.stack([video.masks[t] for t in range(len(video.frames))])
            objects = sorted(set().union(*(object_ids(mask) for mask in given.values())))
            j, f = video_object_scores(truth, masks, objects)
            scores["jaccard"].append(j)
            scores["boundary_f"].append(f)
            scored_videos += 1
    if layout == "youtube_vos":
        print(f"YouTube-VOS submission: {zip_submission(output_dir / split, output_dir / SUBMISSION)}")
    if not scored_videos:
        return {}
    outputs = {name: np.concatenate(parts) for name, parts in scores.items()}
    return {**vos_metrics(outputs), "videos": float(scored_videos)}
