"""Generator of `synthetic_cmnist`: digits rendered at MNIST's scale from OpenCV's Hershey fonts with random
affine and elastic distortion and stroke width (digits.py), coloured under the CMNIST protocol (cmnist.py), with
the optional thickness domain, written as one .npz file (data_cards/synthetic_cmnist.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from common.data.generated import ensure_generated
from papers.ovrdl_aal.cmnist import CMNIST, CMNISTConfig, build_cmnist
from papers.ovrdl_aal.digits import RenderConfig, render_digits


@dataclass
class GeneratorConfig:
    """What the generated folder depends on (its cache fingerprint)."""

    protocol: CMNISTConfig = field(default_factory=CMNISTConfig)
    render: RenderConfig = field(default_factory=RenderConfig)


@dataclass
class RenderedDigitsConfig:
    """What the rendered grey digits depend on: rendered once per draw, coloured by every protocol variant."""

    render: RenderConfig
    seed: int


def rendered_digits(config: RenderedDigitsConfig, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The draw's grey digits [n, 28, 28] uint8 and their digits [n], rendered on first use."""

    def write(folder: Path) -> None:
        gray, digits = render_digits(config.render, config.seed)
        np.savez_compressed(folder / "digits.npz", gray=(gray * 255).round().astype(np.uint8), digits=digits)

    folder = ensure_generated("rendered_digits", config, cache_dir, write)
    with np.load(folder / "digits.npz") as archive:
        return archive["gray"], archive["digits"]


def write_dataset(config: GeneratorConfig, cache_dir: Path, folder: Path) -> None:
    gray, digits = rendered_digits(RenderedDigitsConfig(config.render, config.protocol.seed), cache_dir)
    data = build_cmnist(gray, digits, config.protocol)
    np.savez_compressed(folder / "cmnist.npz", **data._asdict())


def read_dataset(folder: Path) -> CMNIST:
    with np.load(Path(folder) / "cmnist.npz", allow_pickle=False) as archive:
        return CMNIST(
            images=archive["images"],
            attributes=archive["attributes"],
            split=archive["split"],
            attribute_names=archive["attribute_names"].tolist(),
            classes=archive["classes"].tolist(),
        )


def ensure_dataset(config: GeneratorConfig, cache_dir: Path) -> Path:
    return ensure_generated("synthetic_cmnist", config, cache_dir, partial(write_dataset, config, cache_dir))
