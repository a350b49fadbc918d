"""TWIN-V2's life-cycle sequence: each user's behaviors before a cut-off, clustered into virtual items, and
the split that feeds them to the long-term module (GSU + ESU) in place of raw behaviors. The clustering is
rebuilt offline on a schedule (cut-offs through the sample period); each sample reads the latest clustering
built before it."""

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
    latest_rows,
    time_since_bucket,
    window_validity,
)
from papers.twin.lifecycle import UserBehaviors

CATEGORICAL = ("tab", "is_like", "is_follow")  # behavior_cross columns 1..3, taken from a cluster's representative
WINDOW_COLUMNS = ("item", "time_ms", "completion", "size", *CATEGORICAL)  # what a sample's window reads
DAY_MS = 86_400_000


def rebuild_cutoffs(data: LifelongData, every_days: int | None) -> np.ndarray:
    """The clustering cut-offs: the first sample's time (the life cycle before any sample: no leakage), then one
    every `every_days` days up to the last sample (None: the first only)."""
    first, last = int(data.samples["time_ms"].min()), int(data.samples["time_ms"].max())
    if every_days is None:
        return np.array([first], dtype=np.int64)
    return np.arange(first, last + 1, every_days * DAY_MS, dtype=np.int64)


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
    """Every clustering's virtual items in flat arrays: clustering c, built from the behaviors before
    `cutoffs_ms[c]`, holds user u's items in rows start[c, u]:end[c, u], sorted by mean time (oldest first)."""

    start: np.ndarray  # [clusterings, users]: users without any behavior before the cut-off get an empty range
    end: np.ndarray
    columns: dict[str, np.ndarray]
    cutoffs_ms: np.ndarray  # [clusterings], increasing

    @classmethod
    def from_tables(cls, clusterings: list[dict[int, dict[str, np.ndarray]]], num_users: int, cutoffs_ms: np.ndarray):
        """`clusterings[c]` maps each user to their virtual-item table of the clustering up to `cutoffs_ms[c]`."""
        pieces, counts = [], np.zeros((len(clusterings), num_users), dtype=np.int64)
        for index, tables in enumerate(clusterings):
            for user in sorted(tables):
                table = tables[user]
                order = np.argsort(table["time_ms"], kind="stable")
                pieces.append({name: values[order] for name, values in table.items()})
                counts[index, user] = len(order)
        ends = np.cumsum(counts.ravel()).reshape(counts.shape)
        columns = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
        return cls(start=ends - counts, end=ends, columns=columns, cutoffs_ms=np.asarray(cutoffs_ms, dtype=np.int64))

    def clustering_at(self, time_ms: np.ndarray) -> np.ndarray:
        """Index of the latest clustering built before each time (-1 where none was)."""
        return np.searchsorted(self.cutoffs_ms, time_ms, side="right") - 1

    def compression(self) -> float:
        """Virtual items per clustered behavior (TWIN-V2's target: about 10%), over every clustering."""
        return len(self.columns["size"]) / self.columns["size"].sum()

    def cluster_distance(self) -> float:
        """Mean distance of a clustered behavior's embedding to its cluster's centroid, over every clustering."""
        return float((self.columns["spread"] * self.columns["size"]).sum() / self.columns["size"].sum())


class VirtualItemSplit(LifelongSplit):
    """A split whose long-term window holds the user's `history_length` latest virtual items of the latest
    clustering built before the sample; the short-term branch still reads raw recent behaviors."""

    def __init__(
        self, data: LifelongData, rows: np.ndarray, history_length: int, recent_length: int, history: VirtualItemHistory
    ):
        super().__init__(data, rows, history_length, recent_length)
        if len(self) and self.columns["time_ms"].min() < history.cutoffs_ms[0]:
            raise DatasetError(
                f"samples start at time_ms={self.columns['time_ms'].min()} but the first clustering holds behaviors "
                f"up to {history.cutoffs_ms[0]}: the history would leak the future. Cluster up to the first sample."
            )
        self.history = history
        self.clustering = history.clustering_at(self.columns["time_ms"])

    def long_term_window(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        history, length = self.history, self.history_length
        users, clustering = self.columns["user"][indices], self.clustering[indices]
        end = history.end[clustering, users]
        valid = window_validity(history.start[clustering, users], end, length)
        column = {name: latest_rows(history.columns[name], end, length) for name in WINDOW_COLUMNS}
        since = self.columns["time_ms"][indices][:, None] - column["time_ms"]
        cross = np.empty((len(indices), length, len(CROSS_FEATURES)), dtype=np.int32)
        cross[..., 0] = time_since_bucket(since)
        cross[..., 1] = completion_bucket_of_rate(column["completion"])
        for offset, name in enumerate(CATEGORICAL, start=2):
            cross[..., offset] = column[name]
        cross *= valid[..., None]
        return {
            "item": torch.from_numpy(np.where(valid, column["item"], 0).astype(np.int64)),
            "cross": torch.from_numpy(cross),
            "mask": torch.from_numpy(valid),
            "size": torch.from_numpy((column["size"] * valid).astype(np.float32)),
        }
