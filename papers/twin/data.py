"""Lifelong-behavior samples from KuaiRand-format logs: each impression with the user's earlier behaviors.

Behaviors are the user's clicked log rows; a sample's history holds only behaviors strictly earlier than the
sample (no leakage). Splits are by day: train on the earlier days of the sample period, validate on the
next, test on the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from common.data.kuairand import DURATION_BUCKETS, KuaiRandTables, dense_codes, index_kuairand
from common.errors import DatasetError

TIME_KEY_SHIFT = 42  # time_ms < 2**42 (year 2109), so user * 2**42 + time_ms sorts by user, then time
CROSS_FEATURES = ("time_since", "completion", "tab", "is_like", "is_follow")
TIME_SINCE_BUCKETS = 18  # log2 of hours since the behavior
COMPLETION_BUCKETS = 12  # play time / duration in steps of 0.25, capped


@dataclass
class Vocabulary:
    """Sizes of the categorical features, index 0 being padding or unknown."""

    items: int
    authors: int
    tags: int
    durations: int
    users: int
    user_features: tuple[int, ...]
    tabs: int
    hours: int = 25
    cross: tuple[int, ...] = ()


@dataclass
class LifelongData:
    vocabulary: Vocabulary
    item_author: np.ndarray
    item_tag: np.ndarray
    item_duration: np.ndarray
    behavior_item: np.ndarray
    behavior_time: np.ndarray
    behavior_cross: np.ndarray  # [num_behaviors, 4]: completion, tab, like, follow (time since is per sample)
    behavior_user: np.ndarray
    behavior_completion: np.ndarray  # play time / duration
    samples: pd.DataFrame  # user, item, time_ms, label, tab, hour, user_features..., history_end, history_start, date
    user_features: np.ndarray  # [num_users + 1, F]


def completion_rate(play_time_ms: np.ndarray, duration_ms: np.ndarray) -> np.ndarray:
    return play_time_ms / np.maximum(duration_ms, 1)


def completion_bucket_of_rate(rate: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(rate * 4), 0, COMPLETION_BUCKETS - 2).astype(np.int64) + 1


def completion_bucket(play_time_ms: np.ndarray, duration_ms: np.ndarray) -> np.ndarray:
    return completion_bucket_of_rate(completion_rate(play_time_ms, duration_ms))


def time_since_bucket(milliseconds: np.ndarray) -> np.ndarray:
    """1 + floor(log2(hours + 1)), capped: computed on whole hours (log2(h + 1) >= k exactly when floor(h) + 1 >=
    2^k), whose floor(log2) is frexp's exponent minus one; the same buckets as a float log2, a little faster."""
    whole_hours = np.maximum(milliseconds, 0) // 3_600_000
    octave = np.frexp((whole_hours + 1).astype(np.float64))[1] - 1
    return np.minimum(octave, TIME_SINCE_BUCKETS - 2).astype(np.int64) + 1


def build_lifelong_data(
    tables: KuaiRandTables, sample_start_date: int, user_feature_columns: list[str]
) -> LifelongData:
    logs = tables.logs
    index = index_kuairand(tables, user_feature_columns)
    user, item = index.user, index.item
    time_ms = logs["time_ms"].to_numpy(np.int64)
    tab_codes, tabs = dense_codes(logs["tab"])
    clicked = logs["is_click"].to_numpy() == 1
    behavior_key = (user[clicked] << TIME_KEY_SHIFT) + time_ms[clicked]
    play_time, duration = logs["play_time_ms"].to_numpy()[clicked], logs["duration_ms"].to_numpy()[clicked]
    behavior_cross = np.stack(
        [
            completion_bucket(play_time, duration),
            tab_codes[clicked],
            np.clip(logs["is_like"].to_numpy()[clicked], 0, 1) + 1,
            np.clip(logs["is_follow"].to_numpy()[clicked], 0, 1) + 1,
        ],
        axis=1,
    )
    is_sample = logs["date"].to_numpy() >= sample_start_date
    if not is_sample.any():
        raise DatasetError(
            f"no log rows on or after data.sample_start_date={sample_start_date}; the logs span dates "
            f"{logs['date'].min()} to {logs['date'].max()}."
        )
    sample_key = (user[is_sample] << TIME_KEY_SHIFT) + time_ms[is_sample]
    samples = pd.DataFrame(
        {
            "user": user[is_sample],
            "item": item[is_sample],
            "time_ms": time_ms[is_sample],
            "label": clicked[is_sample].astype(np.float32),
            "tab": tab_codes[is_sample],
            "hour": logs["hourmin"].to_numpy()[is_sample] // 100 + 1,
            "date": logs["date"].to_numpy()[is_sample],
            "history_end": np.searchsorted(behavior_key, sample_key, side="left"),
            "history_start": np.searchsorted(behavior_key, user[is_sample] << TIME_KEY_SHIFT, side="left"),
        }
    )
    vocabulary = Vocabulary(
        items=index.num_items,
        authors=index.authors,
        tags=index.tags,
        durations=DURATION_BUCKETS,
        users=index.num_users,
        user_features=index.user_feature_sizes,
        tabs=tabs,
        cross=(TIME_SINCE_BUCKETS, COMPLETION_BUCKETS, tabs, 3, 3),
    )
    return LifelongData(
        vocabulary=vocabulary,
        item_author=index.item_author,
        item_tag=index.item_tag,
        item_duration=index.item_duration,
        behavior_item=item[clicked].astype(np.int32),
        behavior_time=time_ms[clicked],
        behavior_cross=behavior_cross.astype(np.int32),
        behavior_user=user[clicked],
        behavior_completion=completion_rate(play_time, duration).astype(np.float64),
        samples=samples,
        user_features=index.user_features,
    )


def window_validity(start: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    """[B, length]: which of the `length` row positions before each `end` (latest last) lie in [start, end)."""
    return np.arange(length - 1, -1, -1) < (end - start)[:, None]


def latest_window(start: np.ndarray, end: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the `length` latest rows of each range [start, end), left-padded (latest last), and
    which of them are real: ([B, length], [B, length]); padded positions point at row 0."""
    valid = window_validity(start, end, length)
    return np.where(valid, end[:, None] - length + np.arange(length), 0), valid


def latest_rows(values: np.ndarray, end: np.ndarray, length: int) -> np.ndarray:
    """`values`' `length` rows before each `end`, [B, length, ...] (latest last), one contiguous copy per sample
    through a strided view of every window, instead of a gather of B x length positions. Positions outside a
    sample's range hold whatever rows lie there: mask them with `window_validity`."""
    first = end - length
    if len(values) < length or not len(first) or first.min() < 0:  # a window would start before row 0
        return values[np.maximum(first[:, None] + np.arange(length), 0)]
    shape = (len(values) - length + 1, length, *values.shape[1:])
    windows = np.lib.stride_tricks.as_strided(values, shape, (values.strides[0], *values.strides), writeable=False)
    return windows[first]


class LifelongSplit:
    """A split's samples. `batch` gathers, per sample, the `history_length` latest behaviors (the long-term
    window, left-padded, latest last) and the `recent_length` latest ones (the short-term branch's input)."""

    def __init__(self, data: LifelongData, rows: np.ndarray, history_length: int, recent_length: int):
        self.data = data
        self.history_length, self.recent_length = history_length, recent_length
        samples = data.samples.iloc[rows]
        self.columns = {name: samples[name].to_numpy() for name in samples.columns}

    def __len__(self) -> int:
        return len(self.columns["user"])

    def latest_behaviors(self, indices: np.ndarray, length: int) -> dict[str, torch.Tensor]:
        """The `length` latest behaviors strictly before each sample: item, cross features and mask."""
        data, end = self.data, self.columns["history_end"][indices]
        valid = window_validity(self.columns["history_start"][indices], end, length)
        since = self.columns["time_ms"][indices][:, None] - latest_rows(data.behavior_time, end, length)
        cross = np.empty((len(indices), length, len(CROSS_FEATURES)), dtype=np.int32)
        cross[..., 0] = time_since_bucket(since)
        cross[..., 1:] = latest_rows(data.behavior_cross, end, length)
        cross *= valid[..., None]
        return {
            "item": torch.from_numpy(np.where(valid, latest_rows(data.behavior_item, end, length), 0).astype(np.int64)),
            "cross": torch.from_numpy(cross),
            "mask": torch.from_numpy(valid),
        }

    def long_term_window(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """What the long-term module reads: for TWIN, the raw latest behaviors."""
        return self.latest_behaviors(indices, self.history_length)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        users = self.columns["user"][indices]
        batch = {f"history_{name}": value for name, value in self.long_term_window(indices).items()}
        batch.update(
            {f"recent_{name}": value for name, value in self.latest_behaviors(indices, self.recent_length).items()}
        )
        context = np.stack([self.columns["tab"][indices], self.columns["hour"][indices]], 1)
        batch.update(
            target_item=torch.from_numpy(self.columns["item"][indices]),
            context=torch.from_numpy(context),
            user=torch.from_numpy(users),
            user_features=torch.from_numpy(self.data.user_features[users]),
            label=torch.from_numpy(self.columns["label"][indices]),
        )
        return batch
