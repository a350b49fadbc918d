"""STCN's stage 0: pretraining on static images, each turned into a three-frame pseudo video by random affine
transforms (STCN's dataset/static_dataset.py, kept in the two-shot repo), the model both official phases
start from (`stcn_s0.pth`). Without a user's static-image datasets the images are scenes of the embedded
generator's world (papers/two_shot_vos/synthetic.py, drawn from their own random stream), one of their objects
labeled. The trained weights are cached by every setting they depend on, so the rows of a sweep that share a
seed start from the same stage-0 model and train it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from common.config import bounded
from common.data.generated import ensure_generated
from papers.two_shot_vos.sampling import SamplingConfig, normalize
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, render_video

FILL = (124, 116, 104)  # STCN's im_mean: ImageNet's mean in 0-255, the fill of pixels warped in from outside
SCENE_STREAM = 7  # the scenes' random stream, apart from the videos' (the generator's seed alone)
WEIGHTS = "stage0.pt"


@dataclass
class StaticPretrainingConfig:
    steps: int = bounded(0, minimum=0)  # 0: no stage 0 (the run starts from random or the user's weights)
    images: int = bounded(2000, minimum=1)  # generated scenes, each one labeled object
    # per frame (STCN's pair transform): RandomAffine(degrees=20, scale=(0.9, 1.1), shear=10), ColorJitter(0.1,
    # 0.05, 0.05, 0); per triplet (its all transform): RandomAffine(scale=(0.8, 1.5)), a flip, ColorJitter(0.1,
    # 0.05, 0.05, 0.05), RandomGrayscale(0.05)
    degrees: float = bounded(20.0, minimum=0.0)
    frame_scale: list[float] = bounded(default_factory=lambda: [0.9, 1.1], above=0.0)
    shear: float = bounded(10.0, minimum=0.0)
    triplet_scale: list[float] = bounded(default_factory=lambda: [0.8, 1.5], above=0.0)
    brightness: float = bounded(0.1, minimum=0.0, maximum=1.0)
    contrast: float = bounded(0.05, minimum=0.0, maximum=1.0)
    saturation: float = bounded(0.05, minimum=0.0, maximum=1.0)
    grayscale_probability: float = bounded(0.05, minimum=0.0, maximum=1.0)


def static_scene(generator: SyntheticVOSConfig, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene `index`: one frame of the generator's world [H, W, 3] uint8 and its index mask [H, W]."""
    rng = np.random.default_rng([seed, SCENE_STREAM, index])
    images, masks = render_video(replace(generator, min_frames=1, max_frames=1), rng)
    return images[0], masks[0]


def _affine(rng: np.random.Generator, centre: np.ndarray, degrees: float, scale: list[float], shear: float):
    """torchvision's RandomAffine about `centre` as a 3 x 3 matrix: rotation, x shear and scale drawn uniformly."""
    angle = np.radians(rng.uniform(-degrees, degrees))
    tangent = np.tan(np.radians(rng.uniform(-shear, shear)))
    factor = rng.uniform(*scale)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    sheared = np.array([[1, tangent, 0], [0, 1, 0], [0, 0, 1]])
    to_origin, back = np.eye(3), np.eye(3)
    to_origin[:2, 2], back[:2, 2] = -centre, centre
    return back @ rotation @ sheared @ np.diag([factor, factor, 1]) @ to_origin


def _jitter(image: np.ndarray, rng: np.random.Generator, config: StaticPretrainingConfig) -> np.ndarray:
    """ColorJitter's brightness, contrast and saturation factors, each drawn from [1 - x, 1 + x]; float [0, 255]."""
    image = image * rng.uniform(1 - config.brightness, 1 + config.brightness)
    grey = image.mean(axis=2, keepdims=True)
    image = grey.mean() + (image - grey.mean()) * rng.uniform(1 - config.contrast, 1 + config.contrast)
    grey = image.mean(axis=2, keepdims=True)
    return (grey + (image - grey) * rng.uniform(1 - config.saturation, 1 + config.saturation)).clip(0, 255)


def static_triplet(image: np.ndarray, mask: np.ndarray, crop: tuple[int, int], config: StaticPretrainingConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Three frames [3, h, w, 3] uint8 and binary masks [3, h, w] of one scene and one object's mask: one affine
    transform and flip for the triplet, then per frame one affine transform, the resize of the short side to the
    crop's and a random crop, and colour jitter (STCN's static_dataset.py; its thin-plate-spline warps are not
    applied)."""
    height, width = mask.shape
    centre = np.array([width, height]) / 2
    shared = _affine(rng, centre, 0.0, config.triplet_scale, 0.0)
    if rng.random() < 0.5:
        shared = np.array([[-1, 0, width], [0, 1, 0], [0, 0, 1]]) @ shared
    grey = rng.random() < config.grayscale_probability
    factor = min(crop) / min(height, width)  # Resize(crop): the short side to the crop's
    resized_h, resized_w = round(height * factor), round(width * factor)
    crop_h, crop_w = min(crop[0], resized_h), min(crop[1], resized_w)
    frames = np.empty((3, crop_h, crop_w, 3), dtype=np.uint8)
    masks = np.empty((3, crop_h, crop_w), dtype=np.uint8)
    for t in range(3):
        window = np.diag([factor, factor, 1.0])  # then the crop: (x, y) shifted by (-left, -top)
        window[1, 2], window[0, 2] = -rng.integers(resized_h - crop_h + 1), -rng.integers(resized_w - crop_w + 1)
        matrix = (window @ _affine(rng, centre, config.degrees, config.frame_scale, config.shear) @ shared)[:2]
        warped = cv2.warpAffine(image, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR, borderValue=FILL)
        frame = _jitter(warped.astype(np.float32), rng, config)
        if grey:
            frame = np.repeat(frame.mean(axis=2, keepdims=True), 3, axis=2)
        frames[t] = frame.astype(np.uint8)
        masks[t] = cv2.warpAffine(mask, matrix, (crop_w, crop_h), flags=cv2.INTER_NEAREST, borderValue=0)
    return frames, masks


class StaticTripletSource:
    """Training triplets of stage 0 as a batch source, in TripletSource's batch layout: one object per triplet
    (STCN's static data is single-object), every frame labeled. A function of (seed, index, step), as
    TripletSource, so that a resumed run draws the same triplets."""

    def __init__(self, config: StaticPretrainingConfig, generator: SyntheticVOSConfig, sampling: SamplingConfig,
                 progress: Callable[[], int], seed: int):  # fmt: skip
        self.config, self.generator, self.sampling = config, generator, sampling
        self.progress, self.seed = progress, seed

    def __len__(self) -> int:
        return self.config.images

    def _sample(self, index: int, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index, step])
        image, mask = static_scene(self.generator, self.seed, index % self.config.images)
        target_object = (mask == rng.choice(np.setdiff1d(np.unique(mask), [0]))).astype(np.uint8)
        for _ in range(10):  # a reference frame without the object is drawn again, as TripletSource does
            frames, masks = static_triplet(image, target_object, self.sampling.crop, self.config, rng)
            if masks[0].any():
                break
        first = np.stack([masks[0], np.zeros_like(masks[0])]).astype(np.float32)
        return {
            "frames": normalize(frames),
            "target": torch.from_numpy(masks.astype(np.int64)),
            "first_masks": torch.from_numpy(first),
            "selector": torch.tensor([1.0, 0.0]),
            "labeled": torch.ones(3),
        }

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        step = self.progress()
        samples = [self._sample(int(index), step) for index in indices]
        return {name: torch.stack([sample[name] for sample in samples]) for name in samples[0]}


@dataclass
class StageZeroKey:
    """Everything the stage-0 weights depend on: the cache key of the trained model."""

    model: dict
    static: dict
    generator: dict
    crop: list[int]
    recipe: dict
    trainer: dict
    seed: int


def cached_stage_zero(key: StageZeroKey, cache_dir: Path, train: Callable[[], tuple[dict, dict]]):
    """The stage-0 student's state dict and its metrics, trained with `train()` (returning both) on first use and
    read from `<cache_dir>/two_shot_vos_stage0_<fingerprint>/` after; the third value says whether it was cached."""
    trained = []

    def write(folder: Path) -> None:
        state, metrics = train()
        torch.save({"state": state, "metrics": metrics}, folder / WEIGHTS)
        trained.append(True)

    folder = ensure_generated("two_shot_vos_stage0", key, cache_dir, write)
    saved = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    return saved["state"], saved["metrics"], not trained


def stage_zero_key(model, static, generator, sampling: SamplingConfig, recipe, trainer, seed: int) -> StageZeroKey:
    """The key of a run's stage 0 from its typed configs: only the settings that change its weights, so that every
    recipe (recipe.mode) of a seed shares it."""
    trainer_fields = ("batch_size", "grad_clip", "warmup_steps", "warmup_start_factor", "optimizers")
    recipe_fields = ("bootstrap_start_fraction", "bootstrap_end_fraction", "top_p")
    return StageZeroKey(
        asdict(model), asdict(static), asdict(generator), list(sampling.crop),
        {name: getattr(recipe, name) for name in recipe_fields},
        {name: asdict(trainer)[name] for name in trainer_fields}, seed,
    )  # fmt: skip
