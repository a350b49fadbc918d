"""Atomic checkpoints: a crash never leaves a half-written file where the last good one was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from common.atomic_files import replace_atomically
from common.errors import DatasetError


def save_atomic(obj: Any, path: Path) -> None:
    """Write with torch.save to a temporary file in the same folder, fsync it, then rename over `path`."""
    replace_atomically(path, lambda stream: torch.save(obj, stream))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by `save_atomic`; a corrupt file gets an error naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several unrelated types for a damaged file
        raise DatasetError(
            f"Checkpoint {path} cannot be read ({type(error).__name__}: {error}). "
            "Delete it to start over, or point hydra.run.dir at a run with an intact checkpoint."
        ) from None


def trained_weights(directory: Path) -> dict:
    """The final model weights a finished training wrote in `directory` (a run's or a stage's): those of
    checkpoints/best.pt when early stopping kept one, else checkpoints/last.pt."""
    checkpoints = Path(directory) / "checkpoints"
    for name in ("best.pt", "last.pt"):
        if (checkpoints / name).is_file():
            return load_checkpoint(checkpoints / name)["model"]
    raise DatasetError(
        f"{checkpoints} holds no best.pt or last.pt: {directory} is not the directory of a finished training."
    )
