"""Which datasets a run reads: the evaluation dataset (data.*) and the training datasets (data.train, by name;
the evaluation dataset's train split when unset), each read in its own layout with its own settings (repeat
factor, max-skip divisor, the bank's memory interval), as the official training concatenates DAVIS five
times with YouTube-VOS (train.py: ConcatDataset([davis_dataset] * 5 + [yv_dataset]))."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import bounded
from common.errors import DatasetError
from papers.two_shot_vos.data import Video, read_davis, read_labeled_frames, read_youtube_vos
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, ensure_dataset

DATASETS = ("synthetic_vos", "davis", "youtube_vos")
GENERATED = "synthetic_vos"


@dataclass
class VOSDatasetConfig:
    name: str = bounded("synthetic_vos", choices=DATASETS)
    root: str | None = None  # DAVIS 2017 or YouTube-VOS 2019 root; never downloaded
    cache_dir: str = ".cache/reprozoo"
    two_shot_split: str | None = None  # JSON {video: [frame.jpg, frame.jpg]}; default <root>/two_shot_frames.json
    train_split: str = "train"
    val_split: str = "val"  # DAVIS: val; YouTube-VOS: valid (no public ground truth: exported only)
    size: list[int] | None = bounded(None, minimum=1)  # [H, W] the model works at (training frames resized on load)
    data_card: str = "data_cards/synthetic_vos.md"
    repeat: int = bounded(1, minimum=1)  # times its training videos are repeated per epoch (official DAVIS: 5)
    max_skip_divisor: int = bounded(1, minimum=1)  # max-skip is divided by it (official YouTube-VOS: 5)
    bank_mem_every: int = bounded(5, minimum=1)  # the bank's memory interval (official: DAVIS 5, YouTube-VOS 1)
    generator: SyntheticVOSConfig = field(default_factory=SyntheticVOSConfig)


@dataclass
class VOSDataConfig(VOSDatasetConfig):
    """The evaluation dataset, and the training datasets by name (None: this one's train split)."""

    train: dict[str, VOSDatasetConfig] | None = None


@dataclass
class TrainingSet:
    """The training videos of one dataset and the settings the recipe reads them with."""

    name: str
    videos: list[Video]
    repeat: int = 1
    max_skip_divisor: int = 1
    bank_mem_every: int = 5


def dataset_root(config: VOSDatasetConfig, where: str, progress: bool) -> Path:
    """The folder of a dataset: the generated one (made on first use) or the user's root."""
    if config.name == GENERATED:
        return ensure_dataset(config.generator, Path(config.cache_dir), progress=progress)
    if not config.root:
        raise DatasetError(
            f"{where}.root is not set: the {config.name} dataset is read from a folder you give "
            f"({where}.root=/path/to/it), never downloaded; {config.data_card} says where to get it."
        )
    return Path(config.root)


def read_videos(
    config: VOSDatasetConfig,
    root: Path,
    split: str,
    labeled: dict[str, list[str]] | None,
    size: tuple[int, int] | None,
    require: str,
    listed_only: bool = True,
) -> list[Video]:
    """The videos of `split` in the dataset's layout (see data.py for `labeled` and `require`)."""
    if config.name == "youtube_vos":
        return read_youtube_vos(root, split, config.data_card, labeled, size, require)
    return read_davis(root, split, config.data_card, labeled, size, require=require, listed_only=listed_only)


def two_shot_split(config: VOSDatasetConfig, root: Path) -> dict[str, list[str]]:
    path = Path(config.two_shot_split or root / "two_shot_frames.json")
    return read_labeled_frames(path, config.data_card)


def training_sources(config: VOSDataConfig) -> dict[str, tuple[VOSDatasetConfig, str]]:
    """name -> (the dataset's config, its key path) of every training dataset."""
    if config.train is None:
        return {config.name: (config, "data")}
    if not config.train:
        raise DatasetError("data.train is empty: name at least one training dataset, or leave it null.")
    return {name: (source, f"data.train.{name}") for name, source in config.train.items()}


def read_training_set(
    name: str, config: VOSDatasetConfig, where: str, labeled: bool, progress: bool = True
) -> tuple[TrainingSet, dict[str, list[str]] | None]:
    """One training dataset with the two-shot split's masks (`labeled`; the split is returned too) or every
    mask (full supervision)."""
    root = dataset_root(config, where, progress)
    split = two_shot_split(config, root) if labeled else None
    size = tuple(config.size) if config.size else None
    videos = read_videos(config, root, config.train_split, split, size, require="labeled" if labeled else "every")
    settings = {"repeat": config.repeat, "max_skip_divisor": config.max_skip_divisor}
    return TrainingSet(name, videos, bank_mem_every=config.bank_mem_every, **settings), split
