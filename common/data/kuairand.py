"""Reader of the KuaiRand dataset's CSV files (Gao et al., CIKM 2022): 1K, Pure, 27K, or a generated set
written in the same format. Used by TWIN, TWIN-V2 and PEPNet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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
