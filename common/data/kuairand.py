"""Reader of the KuaiRand dataset's CSV files (Gao et al., CIKM 2022): 1K, Pure, 27K, or a generated set
written in the same format. Used by TWIN, TWIN-V2 and PEPNet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.config import bounded
from common.data.generated import dataset_root
from common.errors import DatasetError

LOG_COLUMNS = (
    "user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
    "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
    "comment_stay_time", "is_profile_enter", "is_rand", "tab",
)  # fmt: skip
VIDEO_BASIC_COLUMNS = (
    "video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status", "video_duration",
    "server_width", "server_height", "music_id", "music_type", "tag",
)  # fmt: skip
USER_KEY_COLUMNS = ("user_id", "user_active_degree", "register_days_range")
KNOWN_VERSIONS = ("1k", "pure", "27k")


@dataclass
class KuaiRandTables:
    """The log rows (sorted by user and time), the video features and the user features."""

    logs: pd.DataFrame
    videos: pd.DataFrame
    users: pd.DataFrame
    version: str


def _log_files(root: Path, kind: str, version: str) -> list[Path]:
    """Log files of one kind; KuaiRand-27K splits each log into `_part1`, `_part2`, ... files."""
    whole = root.glob(f"log_{kind}_*_to_*_{version}.csv")
    parts = root.glob(f"log_{kind}_*_to_*_{version}_part*.csv")
    return sorted({*whole, *parts})


def kuairand_files(root: Path, version: str) -> dict[str, list[Path]]:
    return {
        "standard logs": _log_files(root, "standard", version),
        "random logs": _log_files(root, "random", version),
        "video features": [root / f"video_features_basic_{version}.csv"],
        "user features": [root / f"user_features_{version}.csv"],
    }


def _read_csv(path: Path, required: tuple[str, ...], data_card: str, **options) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise DatasetError(
            f"KuaiRand file {path} is corrupt or not a CSV ({type(error).__name__}: {error}). "
            f"Replace it with an intact copy; {data_card} describes the expected files."
        ) from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"KuaiRand file {path} lacks the columns {', '.join(missing)} (it has: {', '.join(frame.columns)}). "
            f"{data_card} lists the KuaiRand columns."
        )
    return frame


def read_kuairand(root: Path, version: str, data_card: str, include_random: bool = False) -> KuaiRandTables:
    """Read KuaiRand's logs, video features and user features from `root`.

    Real KuaiRand versions are named 1k, pure and 27k in the file names; a generated dataset may use its
    own version tag. A missing folder or file raises a DatasetError naming the data card to read.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"KuaiRand folder {root} does not exist. Download KuaiRand (see {data_card}) and pass its folder as "
            f"data.root=/path/to/KuaiRand-1K/data; versions: {', '.join(KNOWN_VERSIONS)}."
        )
    files = kuairand_files(root, version)
    absent = [name for name in ("video features", "user features") if not files[name][0].is_file()]
    if not files["standard logs"]:
        absent.insert(0, f"standard logs (log_standard_*_to_*_{version}.csv)")
    if absent:
        raise DatasetError(
            f"KuaiRand folder {root} lacks {', '.join(absent)} for version {version!r}. "
            f"{data_card} lists the files of each version ({', '.join(KNOWN_VERSIONS)})."
        )
    log_paths = files["standard logs"] + (files["random logs"] if include_random else [])
    logs = pd.concat(
        [_read_csv(path, LOG_COLUMNS, data_card, usecols=list(LOG_COLUMNS)) for path in log_paths],
        ignore_index=True,
    )
    for column in ("user_id", "video_id", "date", "time_ms", "is_click"):
        if not pd.api.types.is_numeric_dtype(logs[column]):
            raise DatasetError(
                f"KuaiRand logs in {root} have non-numeric values in column '{column}' "
                f"(e.g. {logs[column].iloc[0]!r}); {data_card} describes the format."
            )
    logs = logs.sort_values(["user_id", "time_ms"], kind="mergesort").reset_index(drop=True)
    videos = _read_csv(files["video features"][0], VIDEO_BASIC_COLUMNS, data_card)
    users = _read_csv(files["user features"][0], USER_KEY_COLUMNS, data_card)
    return KuaiRandTables(logs=logs, videos=videos, users=users, version=version)


# Indexing shared by every paper that reads KuaiRand: dense ids, item attributes, user features, labels, days.

DURATION_BUCKETS = 20  # half-octaves of seconds
TASK_COLUMNS = ("is_click", "long_view", "is_like", "is_follow", "is_forward", "is_comment", "is_hate")


def dense_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Dense codes 1..K for the distinct values (0 is reserved for padding/unknown), and K + 1."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64) + 1, len(uniques) + 1


def duration_bucket(duration_ms: np.ndarray) -> np.ndarray:
    seconds = np.maximum(np.nan_to_num(duration_ms.astype(float), nan=0.0), 0) / 1000.0
    return np.clip(np.floor(2 * np.log2(seconds + 1)), 0, DURATION_BUCKETS - 2).astype(np.int64) + 1


@dataclass
class KuaiRandIndex:
    """Dense indices 1..K (0: unknown) of users and videos for every log row, each item's author, first tag
    and duration bucket, and each user's categorical features; sizes include the 0 index."""

    user: np.ndarray  # [log rows]
    item: np.ndarray  # [log rows]
    num_users: int
    num_items: int
    item_author: np.ndarray  # [num_items]
    item_tag: np.ndarray
    item_duration: np.ndarray
    authors: int
    tags: int
    user_features: np.ndarray  # [num_users, F]
    user_feature_sizes: tuple[int, ...]


def index_kuairand(tables: KuaiRandTables, user_feature_columns: list[str]) -> KuaiRandIndex:
    logs, videos, users = tables.logs, tables.videos, tables.users
    all_video_ids = pd.Index(np.union1d(videos["video_id"].to_numpy(), logs["video_id"].to_numpy()))
    item_of_video = pd.Series(np.arange(1, len(all_video_ids) + 1), index=all_video_ids)
    video_rows = item_of_video.loc[videos["video_id"]].to_numpy()
    num_items = len(all_video_ids) + 1
    item_author = np.zeros(num_items, dtype=np.int64)
    item_tag = np.zeros(num_items, dtype=np.int64)
    item_duration = np.zeros(num_items, dtype=np.int64)
    item_author[video_rows], authors = dense_codes(videos["author_id"])
    first_tag = videos["tag"].astype(str).str.split(",").str[0].replace({"nan": np.nan})
    item_tag[video_rows], tags = dense_codes(first_tag)
    item_tag[video_rows[first_tag.isna().to_numpy()]] = 0
    item_duration[video_rows] = duration_bucket(videos["video_duration"].to_numpy())

    missing = [column for column in user_feature_columns if column not in users.columns]
    if missing:
        raise DatasetError(f"user features file lacks the configured columns {missing}; it has {list(users.columns)}")
    all_user_ids = pd.Index(np.union1d(users["user_id"].to_numpy(), logs["user_id"].to_numpy()))
    user_of_id = pd.Series(np.arange(1, len(all_user_ids) + 1), index=all_user_ids)
    user_features = np.zeros((len(all_user_ids) + 1, len(user_feature_columns)), dtype=np.int64)
    feature_sizes = []
    for column_index, column in enumerate(user_feature_columns):
        codes, size = dense_codes(users[column].astype(str))
        user_features[user_of_id.loc[users["user_id"]].to_numpy(), column_index] = codes
        feature_sizes.append(size)
    return KuaiRandIndex(
        user=user_of_id.loc[logs["user_id"]].to_numpy(),
        item=item_of_video.loc[logs["video_id"]].to_numpy(),
        num_users=len(all_user_ids) + 1,
        num_items=num_items,
        item_author=item_author,
        item_tag=item_tag,
        item_duration=item_duration,
        authors=authors,
        tags=tags,
        user_features=user_features,
        user_feature_sizes=tuple(feature_sizes),
    )


def task_labels(logs: pd.DataFrame, tasks: list[str]) -> np.ndarray:
    """[log rows, tasks] 0/1 labels from KuaiRand's feedback columns."""
    unknown = [task for task in tasks if task not in TASK_COLUMNS]
    if unknown or not tasks:
        raise DatasetError(f"data.tasks={list(tasks)}: each task must be one of {', '.join(TASK_COLUMNS)}.")
    return np.clip(logs[list(tasks)].to_numpy(), 0, 1).astype(np.float32)


def split_by_day(dates: np.ndarray, valid_days: int, test_days: int) -> dict[str, np.ndarray]:
    """Row indices of the train, valid and test samples: test = the last days, valid = the days before."""
    days = np.unique(dates)
    if len(days) < valid_days + test_days + 1:
        raise DatasetError(
            f"the sample period has {len(days)} days but data.valid_days={valid_days} and "
            f"data.test_days={test_days} need at least {valid_days + test_days + 1}."
        )
    test_start, valid_start = days[-test_days], days[-test_days - valid_days]
    return {
        "train": np.flatnonzero(dates < valid_start),
        "valid": np.flatnonzero((dates >= valid_start) & (dates < test_start)),
        "test": np.flatnonzero(dates >= test_start),
    }


@dataclass
class KuaiRandSourceConfig:
    """Where a paper's KuaiRand-format data comes from: a generated dataset (`name` = the generator's) or the
    real KuaiRand read from `root`; the day split and the user features read. Papers extend it."""

    name: str = "kuairand"
    root: str | None = None  # real KuaiRand: the folder holding its CSV files
    version: str = bounded("1k", choices=("1k", "pure", "27k", "synthetic"))  # KuaiRand version in the file names
    cache_dir: str = ".cache/reprozoo"  # where generated data is written
    sample_start_date: int | None = None  # YYYYMMDD; earlier logs are not samples
    valid_days: int = bounded(1, minimum=1)
    test_days: int = bounded(2, minimum=1)
    include_random_logs: bool = False
    user_feature_columns: list[str] = field(default_factory=lambda: ["user_active_degree", "register_days_range"])
    data_card: str = "data_cards/kuairand.md"


def kuairand_folder(config: KuaiRandSourceConfig, generated: str, generate) -> tuple[Path, str]:
    """The folder and version tag to read: `generate()`'s folder when `config.name` is the generated dataset's
    name, else the user's `data.root` (never downloaded)."""
    folder = dataset_root(config.name, config.root, config.data_card, generated, generate)
    return folder, "synthetic" if config.name == generated else config.version
