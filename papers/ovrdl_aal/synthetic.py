"""Generator of `synthetic_cmnist`: scikit-learn's bundled handwritten digits (8 × 8, 1,797 images) upscaled
and coloured under the CMNIST protocol (cmnist.py), with the optional thickness domain, written as one .npz
file (data_cards/synthetic_cmnist.md)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from common.data.generated import ensure_generated
from papers.ovrdl_aal.cmnist import CMNIST, CMNISTConfig, build_cmnist


def write_dataset(config: CMNISTConfig, folder: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = build_cmnist(digits.images, digits.target, config)
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


def ensure_dataset(config: CMNISTConfig, cache_dir: Path) -> Path:
    return ensure_generated("synthetic_cmnist", config, cache_dir, partial(write_dataset, config))
