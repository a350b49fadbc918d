"""Real datasets in torchvision's on-disk layouts, read from a folder the user gives (never downloaded):
MNIST (<root>/MNIST/raw/*-ubyte, read by torchvision), coloured per the CMNIST protocol; CelebA
(<root>/celeba/: img_align_celeba/, identity_CelebA.txt, list_attr_celeba.txt, list_eval_partition.txt),
read from those text files (torchvision's own reader insists on the files' checksums)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DatasetError
from papers.ovrdl_aal.cmnist import CMNIST, CMNISTConfig, build_cmnist


def read_mnist_cmnist(root: Path, config: CMNISTConfig, data_card: str) -> CMNIST:
    """MNIST's training and test images pooled, then coloured and split per the CMNIST protocol."""
    from torchvision.datasets import MNIST

    parts = []
    for train in (True, False):
        try:
            dataset = MNIST(str(root), train=train, download=False)
        except RuntimeError as error:
            raise DatasetError(
                f"MNIST is not under {root}/MNIST/raw ({error}); {data_card} says where to get it."
            ) from None
        parts.append((dataset.data.numpy(), dataset.targets.numpy()))
    images = np.concatenate([p[0] for p in parts])
    digits = np.concatenate([p[1] for p in parts])
    return build_cmnist(images, digits, config)


@dataclass
class CelebAIndex:
    files: list[str]  # image file names under img_align_celeba/
    identity: np.ndarray  # [n]
    attributes: np.ndarray  # [n, len(names)] 0/1
    attribute_names: list[str]
    partition: np.ndarray  # [n] 0 train, 1 valid, 2 test (the official partition)


def read_celeba(root: Path, attributes: list[str], data_card: str) -> CelebAIndex:
    folder = Path(root) / "celeba"
    paths = {name: folder / name for name in ("identity_CelebA.txt", "list_attr_celeba.txt", "list_eval_partition.txt")}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing or not (folder / "img_align_celeba").is_dir():
        raise DatasetError(
            f"CelebA is incomplete under {folder}: missing {missing or ['img_align_celeba/']}; {data_card}."
        )
    identity = dict(line.split() for line in paths["identity_CelebA.txt"].read_text().split("\n") if line.strip())
    partition = dict(line.split() for line in paths["list_eval_partition.txt"].read_text().split("\n") if line.strip())
    lines = [line.split() for line in paths["list_attr_celeba.txt"].read_text().split("\n")[1:] if line.strip()]
    header, rows = lines[0], lines[1:]
    unknown = [name for name in attributes if name not in header]
    if unknown:
        raise DatasetError(f"CelebA has no attribute(s) {unknown}; it has {', '.join(header)}.")
    columns = [header.index(name) + 1 for name in attributes]  # +1: each row starts with its file name
    files = [row[0] for row in rows]
    return CelebAIndex(
        files=files,
        identity=np.array([int(identity[f]) for f in files]),
        attributes=np.array([[int(row[c]) > 0 for c in columns] for row in rows], dtype=np.int64),
        attribute_names=list(attributes),
        partition=np.array([int(partition[f]) for f in files]),
    )
