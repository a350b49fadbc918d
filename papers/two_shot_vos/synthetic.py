"""Generator of `synthetic_vos`: short videos in the DAVIS-2017 layout, with the two-labeled-frames split.

Designed from the paper's premise (data_cards/synthetic_vos.md): one to three objects, each of one saturated
hue over a pale background that pans, move fast, rotate, scale, occlude each other and drift in colour, so
that copying a labeled frame's mask scores poorly, the frames between the two labeled ones carry information
that pseudo labels can add, and what to track is learnable from random weights within minutes. Frames are
192 x 256, multiples of STCN's key stride 16. Deterministic given the seed; cached by its parameters.
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
from common.errors import ConfigError
from papers.two_shot_vos.data import RESOLUTION, save_index_mask


@dataclass
class SyntheticVOSConfig:
    train_videos: int = bounded(24, minimum=1)
    val_videos: int = bounded(12, minimum=1)
    min_frames: int = bounded(12, minimum=3)  # two labeled frames, and a frame between first and last to score
    max_frames: int = bounded(16, minimum=3)  # at least min_frames
    height: int = bounded(192, minimum=16)  # a multiple of 16 (STCN's key stride): no padding
    width: int = bounded(256, minimum=16)
    max_objects: int = bounded(3, minimum=1, maximum=254)  # object indices in palette PNGs (255: ignore)
    object_radius: list[float] = bounded(default_factory=lambda: [0.1, 0.18], minimum=0.0)  # of the short side
    speed: list[float] = bounded(default_factory=lambda: [0.025, 0.05], minimum=0.0)  # short sides per frame
    colour_drift: float = bounded(0.3, minimum=0.0, maximum=1.0)  # how far objects' colours move over a video
    seed: int = bounded(0, minimum=0)


RANGES = ("object_radius", "speed")  # [low, high] fields, drawn uniformly


def check_ranges(config: SyntheticVOSConfig) -> None:
    """Each of RANGES must be two values, low then high."""
    for name in RANGES:
        values = getattr(config, name)
        if len(values) != 2 or values[0] > values[1]:
            raise ConfigError(
                f"Bad config value data.generator.{name}={values!r}: it must be [low, high] with low <= high."
            )


def _texture(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Smooth colour noise in [0, 1]: random values upsampled from a coarse grid."""
    coarse = rng.random((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A pale, weakly coloured texture (grey plus a quarter of its colour noise), twice the frame to pan over."""
    texture = _texture(rng, 2 * height, 2 * width, 12)
    grey = texture.mean(axis=2, keepdims=True)
    return 0.2 + 0.6 * (0.75 * grey + 0.25 * texture)


def _object_colours(rng: np.random.Generator) -> np.ndarray:
    """A 64 x 64 texture of one saturated random hue, its brightness modulated by smooth noise."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(170, 255), 255]]], dtype=np.uint8)
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255
    shade = _texture(rng, 64, 64, 8).mean(axis=2, keepdims=True)
    return base * (0.6 + 0.4 * shade)


def _object_shape(rng: np.random.Generator) -> np.ndarray:
    """A star-convex polygon around the origin, radius about 1."""
    corners = rng.integers(5, 9)
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = rng.uniform(0.6, 1.0, corners)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _objects(config: SyntheticVOSConfig, rng: np.random.Generator) -> list[dict]:
    """One to max_objects objects, each with its shape, colours, drift, path, size change and spin."""
    height, width = config.height, config.width
    short = min(height, width)
    objects = []
    for _ in range(int(rng.integers(1, config.max_objects + 1))):
        direction = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(*config.speed) * short
        objects.append(
            {
                "shape": _object_shape(rng),
                "texture": _object_colours(rng),
                "tint": rng.uniform(-config.colour_drift, config.colour_drift, 3),
                "start": rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height]),
                "velocity": speed * np.array([np.cos(direction), np.sin(direction)]),
                "size": rng.uniform(*config.object_radius) * short,
                "growth": rng.uniform(-0.3, 0.3),
                "spin": rng.uniform(-0.08, 0.08),
            }
        )
    return objects


def render_video(config: SyntheticVOSConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames [T, H, W, 3] uint8 and index masks [T, H, W] (later objects occlude earlier ones)."""
    frames = int(rng.integers(config.min_frames, config.max_frames + 1))
    height, width = config.height, config.width
    background = _background(rng, height, width)
    pan = rng.uniform(-1.5, 1.5, 2)
    objects = _objects(config, rng)
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
    check_ranges(config)
    rng = np.random.default_rng(config.seed)
    names = {"train": [], "val": []}
    labeled = {}
    total = config.train_videos + config.val_videos
    for number in tqdm(range(total), desc="generate videos", disable=not progress):
        split = "train" if number < config.train_videos else "val"
        name = f"{split}{number:03d}"
        images, masks = render_video(config, rng)
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
