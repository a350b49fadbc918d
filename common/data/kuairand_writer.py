"""Writes generated data in KuaiRand's CSV format, so that generators of embedded datasets (TWIN's lifelong
histories, PEPNet's multi-domain logs) are read back through the very reader of the real dataset."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from common.data.kuairand import LOG_COLUMNS


def log_frame(start: datetime, seconds: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Log rows in KuaiRand's column order: `date`, `hourmin` and `time_ms` from seconds after `start`, every
    other column of LOG_COLUMNS from `columns`."""
    stamps = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
    frame = pd.DataFrame(
        {
            "user_id": columns["user_id"],
            "video_id": columns["video_id"],
            "date": stamps.strftime("%Y%m%d").astype(int),
            "hourmin": (stamps.hour * 100 + stamps.minute).astype(int),
            "time_ms": (stamps.asi8 // 1_000_000).astype(np.int64),
            **{name: values for name, values in columns.items() if name not in ("user_id", "video_id")},
        }
    )
    return frame[list(LOG_COLUMNS)]


def write_log_files(
    folder: Path, logs: pd.DataFrame, start: datetime, split_day: int, total_days: int, version: str
) -> None:
    """Two standard-log files named as KuaiRand names them: days [0, split_day) and [split_day, total_days)
    after `start`."""
    split_date = int((start + timedelta(days=split_day)).strftime("%Y%m%d"))
    before = logs["date"] < split_date
    ranges = ((0, split_day - 1, before), (split_day, total_days - 1, ~before))
    for first, last, rows in ranges:
        name = f"{(start + timedelta(days=first)):%Y_%m_%d}_to_{(start + timedelta(days=last)):%Y_%m_%d}"
        logs[rows].to_csv(folder / f"log_standard_{name}_{version}.csv", index=False)


def video_feature_frame(
    author: np.ndarray, tag: np.ndarray, duration_ms: np.ndarray, start: datetime, rng: np.random.Generator
) -> pd.DataFrame:
    """`video_features_basic`: the given author, tag and duration of each video; the other columns filled."""
    n = len(author)
    upload = pd.to_datetime(start) - pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame(
        {
            "video_id": np.arange(n),
            "author_id": author,
            "video_type": rng.choice(["NORMAL", "AD"], n, p=[0.97, 0.03]),
            "upload_dt": upload.strftime("%Y-%m-%d"),
            "upload_type": rng.choice(["ShortImport", "Web", "Kmovie"], n),
            "visible_status": "public",
            "video_duration": duration_ms.astype(float),
            "server_width": 720,
            "server_height": 1280,
            "music_id": rng.integers(0, 5_000, n),
            "music_type": rng.choice([4, 7, 9], n),
            "tag": tag,
        }
    )


ACTIVE_DEGREES = ("full_active", "high_active", "middle_active")


def user_feature_frame(num_users: int, rng: np.random.Generator, active_degree: np.ndarray | None = None):
    """`user_features`: every KuaiRand column, `user_active_degree` given or drawn, the others drawn."""
    if active_degree is None:
        active_degree = rng.choice(ACTIVE_DEGREES, num_users)
    frame = pd.DataFrame(
        {
            "user_id": np.arange(num_users),
            "user_active_degree": active_degree,
            "is_lowactive_period": 0,
            "is_live_streamer": (rng.random(num_users) < 0.05).astype(int),
            "is_video_author": (rng.random(num_users) < 0.2).astype(int),
            "follow_user_num": rng.integers(0, 500, num_users),
            "follow_user_num_range": rng.choice(["0", "(0,10]", "(10,50]", "(50,100]", "(100,150]"], num_users),
            "fans_user_num": rng.integers(0, 200, num_users),
            "fans_user_num_range": rng.choice(["0", "[1,10)", "[10,100)"], num_users),
            "friend_user_num": rng.integers(0, 50, num_users),
            "friend_user_num_range": rng.choice(["0", "[1,5)", "[5,30)"], num_users),
            "register_days": rng.integers(30, 2_000, num_users),
            "register_days_range": rng.choice(["31-60", "61-90", "91-180", "181-365", "366-730", "730+"], num_users),
        }
    )
    for index in range(18):
        frame[f"onehot_feat{index}"] = rng.integers(0, 10, num_users)
    return frame
