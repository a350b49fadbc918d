"""Stain normalization and stain augmentation of tiles with torchstain's Macenko method (numpy backend), both off
unless configured (the paper states neither).

- Normalization: the reference stain matrix and maximal concentrations are fitted once on a mosaic of training
  tissue tiles and kept beside network 2's weights; every tile (training, evaluation, mode=predict) is then
  re-rendered with them.
- Augmentation: each training tile's own stain concentrations are scaled by U(1 - sigma1, 1 + sigma1) and shifted by
  U(-sigma2, sigma2) (torchstain's MacenkoAugmentor), afresh every time the tile is drawn.

A tile with too little stain for Macenko's eigen-decomposition (glass, a pale edge) is left as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic_files import write_json_atomic
from common.config import bounded
from common.errors import DatasetError

REFERENCE_FILE = "stain_reference.json"
OD_THRESHOLD = 0.15  # torchstain's beta: pixels with optical density below it in any channel are not stain
MIN_STAINED_PIXELS = 16  # fewer stained pixels than this: the tile is left unchanged


@dataclass
class StainConfig:
    normalize: bool = False  # Macenko normalization of every tile to the training tiles' stain
    augment: bool = False  # Macenko stain augmentation of the training tiles
    sigma1: float = bounded(0.2, minimum=0.0, below=1.0)  # multiplicative concentration jitter (torchstain's)
    sigma2: float = bounded(0.2, minimum=0.0)  # additive concentration jitter (torchstain's)
    reference_tiles: int = bounded(64, minimum=1)  # training tissue tiles the reference is fitted on


def _stained(tile: np.ndarray) -> bool:
    density = -np.log((tile.reshape(-1, 3).astype(np.float64) + 1) / 240)
    return int((density >= OD_THRESHOLD).all(axis=1).sum()) >= MIN_STAINED_PIXELS


class StainNormalizer:
    """torchstain's NumpyMacenkoNormalizer with a reference fitted on training tiles, saved and loaded as JSON."""

    def __init__(self, reference: dict[str, list] | None = None):
        import torchstain

        self.normalizer = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
        if reference is not None:
            self.normalizer.HERef = np.asarray(reference["HERef"])
            self.normalizer.maxCRef = np.asarray(reference["maxCRef"])

    @classmethod
    def fit(cls, tiles: np.ndarray, count: int, seed: int) -> StainNormalizer:
        """Fitted on a mosaic of `count` stained tiles drawn from `tiles` [n, S, S, 3] with `seed`."""
        stained = [index for index in range(len(tiles)) if _stained(tiles[index])]
        if not stained:
            raise DatasetError("stain normalization needs stained training tiles; none has enough stain.")
        chosen = np.random.default_rng(seed).permutation(stained)[:count]
        normalizer = cls()
        normalizer.normalizer.fit(np.concatenate([tiles[index] for index in chosen], axis=0))
        return normalizer

    def reference(self) -> dict[str, list]:
        return {"HERef": self.normalizer.HERef.tolist(), "maxCRef": self.normalizer.maxCRef.tolist()}

    def save(self, directory: Path) -> None:
        write_json_atomic(Path(directory) / REFERENCE_FILE, self.reference())

    @classmethod
    def load(cls, directory: Path) -> StainNormalizer:
        path = Path(directory) / REFERENCE_FILE
        if not path.is_file():
            raise DatasetError(f"{path} does not exist: the trained run did not normalize stain.")
        return cls(json.loads(path.read_text()))

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        """Tiles [n, S, S, 3] uint8, each re-rendered with the reference stain (unstained ones unchanged)."""
        result = tiles.copy()
        for index, tile in enumerate(tiles):
            if _stained(tile):
                try:
                    result[index] = self.normalizer.normalize(I=tile, stains=False)[0]
                except np.linalg.LinAlgError:  # degenerate stain vectors: the tile stays as it is
                    continue
        return result


class StainAugmenter:
    """torchstain's NumpyMacenkoAugmentor on each tile of a batch, drawing from numpy's global generator (which the
    runner seeds), as torchstain does."""

    def __init__(self, config: StainConfig):
        import torchstain

        self.augmentor = torchstain.augmentors.MacenkoAugmentor(backend="numpy", sigma1=config.sigma1,
                                                                sigma2=config.sigma2)  # fmt: skip

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        result = tiles.copy()
        for index, tile in enumerate(tiles):
            if _stained(tile):
                try:
                    self.augmentor.fit(tile)
                    result[index] = self.augmentor.augment()
                except np.linalg.LinAlgError:  # degenerate stain vectors: the tile stays as it is
                    continue
        return result
