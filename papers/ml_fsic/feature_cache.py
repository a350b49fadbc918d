"""Local features of a frozen backbone, computed once per (images, backbone, seed, size) and kept on disk, so the
rows of a benchmark that share a data draw and a seed (the model, its ablations, its baselines) compute them once."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

CHUNK = 256  # images per backbone pass


def cache_key(paths: list[Path], **settings) -> str:
    """A digest of the image files (names, sizes, modification times) and the settings that make the features."""
    files = [[str(path), path.stat().st_size, path.stat().st_mtime_ns] for path in paths]
    return hashlib.sha1(json.dumps([files, settings], sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_features(
    folder: Path, key: str, pixels: Callable[[], torch.Tensor], backbone: torch.nn.Module, label: str
) -> torch.Tensor:
    """The backbone's last stage [images, C, h, w] of `pixels()`, read from `folder/<key>.pt` when present, else
    computed (in chunks, without gradients) and written there atomically."""
    path = Path(folder) / f"{key}.pt"
    if path.is_file():
        return torch.load(path)
    with torch.no_grad():
        chunks = torch.split(pixels(), CHUNK)
        features = torch.cat([backbone(chunk)[0] for chunk in tqdm(chunks, desc=f"features {label}", leave=False)])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    torch.save(features, partial)
    partial.replace(path)
    return features
