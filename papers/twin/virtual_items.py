"""TWIN-V2's life-cycle sequence: each user's behaviors before a cut-off, clustered into virtual items, and
the split that feeds them to the long-term module (GSU + ESU) in place of raw behaviors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from common.errors import DatasetError
from papers.twin.data import (
    CROSS_FEATURES,
    LifelongData,
    LifelongSplit,
    completion_bucket_of_rate,
    latest_window,
    time_since_bucket,
)
from papers.twin.lifecycle import UserBehaviors

CATEGORICAL = ("tab", "is_like", "is_follow")  # behavior_cross columns 1..3, taken from a cluster's representative


def first_sample_time(data: LifelongData) -> int:
    """The clustering cut-off: the life cycle is every behavior before the first sample (no leakage)."""
    return int(data.samples["time_ms"].min())


def life_cycle_behaviors(data: LifelongData, cutoff_ms: int) -> Iterator[UserBehaviors]:
    """Every user's behaviors strictly before `cutoff_ms`, oldest first, as the clustering job's input."""
    before = data.behavior_time < cutoff_ms
    users = data.behavior_user[before]
    boundaries = np.flatnonzero(np.diff(users)) + 1
    for rows in np.split(np.flatnonzero(before), boundaries):
        if len(rows) == 0:
            continue
        completion = data.behavior_completion[rows]
        yield UserBehaviors(
            user=int(data.behavior_user[rows[0]]),
            items=data.behavior_item[rows].astype(np.int64),
            completion=completion,
            numeric={"time_ms": data.behavior_time[rows].astype(np.float64), "completion": completion},
            categorical={name: data.behavior_cross[rows, column + 1] for column, name in enumerate(CATEGORICAL)},
        )


@dataclass
class VirtualItemHistory:
    """All users' virtual items in flat arrays, each user's sorted by mean time (oldest first)."""

    start: np.ndarray  # [users + 1]: first row of each user index (users without any: empty range)
    end: np.ndarray
    columns: dict[str, np.ndarray]
    cutoff_ms: int

    @classmethod
    def from_tables(cls, tables: dict[int, dict[str, np.ndarray]], num_users: int, cutoff_ms: int):
        order = sorted(tables)
        pieces = [tables[user] for user in order]
        sorted_pieces = [
            {name: v[np.argsort(piece["time_ms"], kind="stable")] for name, v in piece.items()} for piece in pieces
        ]
        counts = np.zeros(num_users, dtype=np.int64)
        counts[order] = [len(piece["size"]) for piece in pieces]
        ends = np.cumsum(counts)
        columns = {name: np.concatenate([piece[name] for piece in sorted_pieces]) for name in pieces[0]}
        return cls(start=ends - counts, end=ends, columns=columns, cutoff_ms=cutoff_ms)

    def compression(self) -> float:
        """Virtual items per clustered behavior (TWIN-V2's target: about 10%)."""
        return len(self.columns["size"]) / self.columns["size"].sum()

    def cluster_distance(self) -> float:
        """Mean distance of a clustered behavior's embedding to its cluster's centroid."""
        return float((self.columns["spread"] * self.columns["size"]).sum() / self.columns["size"].sum())


class VirtualItemSplit(LifelongSplit):
    """A split whose long-term window holds the user's `history_length` latest virtual items (all from before
    the clustering cut-off); the short-term branch still reads raw recent behaviors."""

    def __init__(
        self, data: LifelongData, rows: np.ndarray, history_length: int, recent_length: int, history: VirtualItemHistory
    ):
        super().__init__(data, rows, history_length, recent_length)
        if len(self) and self.columns["time_ms"].min() < history.cutoff_ms:
            raise DatasetError(
                f"samples start at time_ms={self.columns['time_ms'].min()} but the virtual items were clustered up to "
                f"{history.cutoff_ms}: the history would leak the future. Cluster up to the first sample instead."
            )
        self.history = history

    def long_term_window(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        history, length = self.history, self.history_length
        users = self.columns["user"][indices]
        positions, valid = latest_window(history.start[users], history.end[users], length)
        column = history.columns
        since = self.columns["time_ms"][indices][:, None] - column["time_ms"][positions]
        cross = np.empty((len(indices), length, len(CROSS_FEATURES)), dtype=np.int32)
        cross[..., 0] = time_since_bucket(since)
        cross[..., 1] = completion_bucket_of_rate(column["completion"][positions])
        for offset, name in enumerate(CATEGORICAL, start=2):
            cross[..., offset] = column[name][positions]
        cross *= valid[..., None]
        return {
            "item": torch.from_numpy(np.where(valid, column["item"][positions], 0).astype(np.int64)),
            "cross": torch.from_numpy(cross),
            "mask": torch.from_numpy(valid),
            "size": torch.from_numpy((column["size"][positions] * valid).astype(np.float32)),
        }
