"""Generator of `synthetic_vos`: short videos in the DAVIS-2017 layout, with the two-labeled-frames split.

Designed from the paper's premise (data_cards/synthetic_vos.md): one to three textured objects move, rotate,
scale and occlude each other over a textured background that pans, and their colours drift over time, so
that propagating a mask from one labeled frame is not trivial and the frames between the two labeled ones
carry information that pseudo labels can add. Deterministic given the seed; cached by its parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from common.config import bounded
from common.data.generated import ensure_generated
from papers.two_shot_vos.data import RESOLUTION, save_index_mask


@dataclass
class SyntheticVOSConfig:
    train_videos: int = bounded(24, minimum=1)
    val_videos: int = bounded(8, minimum=1)
    min_frames: int = bounded(20, minimum=3)  # two labeled frames, and a frame between first and last to score
    max_frames: int = bounded(30, minimum=3)  # at least min_frames
    height: int = bounded(96, minimum=16)  # STCN's keys are at stride 16
    width: int = bounded(128, minimum=16)
    max_objects: int = bounded(3, minimum=1, maximum=254)  # object indices in palette PNGs (255: ignore)
    colour_drift: float = bounded(0.6, minimum=0.0, maximum=1.0)  # how far objects' colours move over a video
    seed: int = bounded(0, minimum=0)


def _texture(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Smooth colour noise in [0, 1]: random values upsampled from a coarse grid."""
    coarse = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _object_shape(rng: np.random.Generator) -> np.ndarray:
    """A star-convex polygon around the origin, radius about 1."""
    corners = rng.integers(5, 9)
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.6, 1.0, corners)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _video(config: SyntheticVOSConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames [T, H, W, 3] uint8 and index masks [T, H, W] (later objects occlude earlier ones)."""
    frames = int(rng.integers(config.min_frames, config.max_frames + 1))
    height, width = config.height, config.width
    background = _texture(rng, 2 * height, 2 * width, 12)
    pan = rng.uniform(-1.5, 1.5, 2)
    objects = []
    for _ in range(int(rng.integers(1, config.max_objects + 1))):
        objects.append(
            {
                "shape": _object_shape(rng),
                "texture": _texture(rng, 64, 64, 8),
                "tint": rng.uniform(-config.colour_drift, config.colour_drift, 3),
                "start": rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height]),
                "velocity": rng.uniform(-2.5, 2.5, 2),
                "size": rng.uniform(0.12, 0.22) * min(height, width),
                "growth": rng.uniform(-0.3, 0.3),
                "spin": rng.uniform(-0.08, 0.08),
            }
        )
    images = np.empty((frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        offset = (np.array([height, width]) // 2 + (pan[::-1] * t).astype(int)) % np.array([height, width])
        image = background[offset[0] : offset[0] + height, offset[1] : offset[1] + width].copy()
        for index, item in enumerate(objects, start=1):
            progress = t / max(frames - 1, 1)
            angle = item["spin"] * t
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            size = item["size"] * (1 + item["growth"] * progress)
            centre = item["start"] + item["velocity"] * t
            centre = np.abs((centre + [width, height]) % (2 * np.array([width, height])) - [width, height])  # bounce
            polygon = (item["shape"] @ rotation.T * size + centre).astype(np.int32)
            region = np.zeros((height, width), dtype=np.uint8)
            cv2.fillPoly(region, [polygon], 1)
            inside = region.astype(bool)
            warp = cv2.getRotationMatrix2D((32.0, 32.0), -np.degrees(angle), size / 32.0)  # texture moves with it
            warp[:, 2] += centre - 32.0
            texture = cv2.warpAffine(item["texture"], warp, (width, height), borderMode=cv2.BORDER_REFLECT)
            texture = texture + item["tint"] * progress
            image[inside] = texture.clip(0, 1)[inside]
            masks[t][inside] = index
        images[t] = (image * 255).astype(np.uint8)
    return images, masks


def write_dataset(config: SyntheticVOSConfig, folder: Path, progress: bool = True) -> None:
    """Write DAVIS-2017 folders (JPEGImages/480p, Annotations/480p, ImageSets/2017) and the two-shot split
    `two_shot_frames.json` (2 random labeled frames per training video) into `folder`."""
    rng = np.random.default_rng(config.seed)
    names = {"train": [], "val": []}
    labeled = {}
    total = config.train_videos + config.val_videos
    for number in tqdm(range(total), desc="generate videos", disable=not progress):
        split = "train" if number < config.train_videos else "val"
        name = f"{split}{number:03d}"
        images, masks = _video(config, rng)
        image_dir = folder / "JPEGImages" / RESOLUTION / name
        mask_dir = folder / "Annotations" / RESOLUTION / name
        image_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        for t, (image, mask) in enumerate(zip(images, masks, strict=True)):
            cv2.imwrite(str(image_dir / f"{t:05d}.jpg"), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
            save_index_mask(mask_dir / f"{t:05d}.png", mask)
        names[split].append(name)
        if split == "train":
            chosen = sorted(rng.choice(len(images), 2, replace=False))
            labeled[name] = [f"{t:05d}.jpg" for t in chosen]
    sets = folder / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    for split, videos in names.items():
        (sets / f"{split}.txt").write_text("\n".join(videos) + "\n")
    (folder / "two_shot_frames.json").write_text(json.dumps(labeled, indent=1) + "\n")


def ensure_dataset(config: SyntheticVOSConfig, cache_dir: Path, progress: bool = True) -> Path:
    return ensure_generated("synthetic_vos", config, cache_dir, partial(write_dataset, config, progress=progress))
