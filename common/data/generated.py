"""The on-disk cache of generated datasets: each lives in a folder named by a hash of its generator's
settings, written once and atomically."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from common.errors import DatasetError


def fingerprint(config) -> str:
    """A short hash of a generator's settings (a dataclass): the cache key of what it generates."""
    return hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]


def ensure_generated(name: str, config, cache_dir: Path, write: Callable[[Path], None]) -> Path:
    """The folder `<cache_dir>/<name>_<fingerprint>`, generating it first with `write(folder)` if absent. The
    data is written into a staging folder and renamed into place, so a crash never leaves a partial dataset
    and concurrent generators (e.g. ranks) never read one."""
    folder = Path(cache_dir).expanduser() / f"{name}_{fingerprint(config)}"
    if (folder / "generator.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        write(staging)
        (staging / "generator.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        staging.rename(folder)
    except OSError:
        if not (folder / "generator.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def dataset_root(name: str, root: str | None, data_card: str, generated: str, generate: Callable[[], Path]) -> Path:
    """The folder a run reads: `generate()`'s (the embedded dataset, made on first use) when `name` is the
    generated dataset's, else the user's `data.root` (real data is never downloaded)."""
    if name == generated:
        return generate()
    if not root:
        raise DatasetError(
            f"data.root is not set: the {name} dataset is read from a folder you give (data.root=/path/to/it), "
            f"never downloaded; {data_card} says where to get it."
        )
    return Path(root)
