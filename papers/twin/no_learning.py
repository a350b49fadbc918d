"""No-learning rows of TWIN and TWIN-V2: scores of the test impressions that train nothing.

`oracle` is the generator's own click probability (the ceiling). The trivial rows read only what any model reads,
the user's behaviors before the impression and the training days' labels, never a test label:
`trivial_recent_topic` (how much of the latest behaviors share the target's tag), `trivial_tag_completion` (SIM
Hard's retrieval, behaviors of the target's tag, scored by how fully they were played) and `trivial_popularity`
(the item's smoothed click rate over the training days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.config import bounded
from common.errors import ConfigError
from common.no_learning import smoothed_positive_rates
from papers.twin.data import LifelongSplit, latest_window

SCORERS = ("oracle", "trivial_recent_topic", "trivial_tag_completion", "trivial_popularity")
CHUNK = 256  # samples whose behavior windows are gathered at once


@dataclass
class NoLearningConfig:
    recent_length: int = bounded(100, minimum=1)  # the latest behaviors the trivial rows read (SIM Hard's k)
    popularity_prior: float = bounded(20.0, minimum=0.0)  # pseudo-impressions at the training click rate, per item


def split_outputs(split: LifelongSplit, scores: np.ndarray) -> dict[str, np.ndarray]:
    """The scores in the keys and shapes of TwinTask.predict's concatenated outputs (no search unit: no overlap)."""
    return {
        "probability": np.asarray(scores, dtype=np.float32),
        "label": split.columns["label"],
        "user": split.columns["user"],
        "gsu_esu_overlap": np.full(len(split), np.nan, dtype=np.float32),
    }


def _in_chunks(split: LifelongSplit, score_chunk) -> np.ndarray:
    """`score_chunk(indices)` over the split in chunks of CHUNK samples, concatenated."""
    indices = np.arange(len(split))
    return np.concatenate([score_chunk(chunk) for chunk in np.array_split(indices, max(1, len(split) // CHUNK))])


def _same_tag(split: LifelongSplit, indices: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The `length` latest behaviors before each sample: their positions, which are real, and which of them carry
    the target's tag ([B, length] each)."""
    data, columns = split.data, split.columns
    positions, valid = latest_window(columns["history_start"][indices], columns["history_end"][indices], length)
    target_tag = data.item_tag[columns["item"][indices]]
    same = valid & (data.item_tag[data.behavior_item[positions]] == target_tag[:, None]) & (target_tag[:, None] > 0)
    return positions, valid, same


def recent_topic_share(split: LifelongSplit, length: int) -> np.ndarray:
    """Share of the `length` latest behaviors whose tag is the target's (0 without behaviors)."""

    def score(indices):
        _, valid, same = _same_tag(split, indices, length)
        return same.sum(1) / np.maximum(valid.sum(1), 1)

    return _in_chunks(split, score)


def tag_completion(split: LifelongSplit, window: int, length: int) -> np.ndarray:
    """Mean play completion (play time / duration) of the `length` latest behaviors with the target's tag among
    the `window` latest (SIM Hard's retrieval); 0 where the user has no behavior of that tag."""
    completion = split.data.behavior_completion

    def score(indices):
        positions, _, same = _same_tag(split, indices, window)
        rank_from_latest = np.cumsum(same[:, ::-1], axis=1)[:, ::-1]
        kept = same & (rank_from_latest <= length)
        count = kept.sum(1)
        return np.where(count > 0, (completion[positions] * kept).sum(1) / np.maximum(count, 1), 0.0)

    return _in_chunks(split, score)


def popularity(split: LifelongSplit, train_rows: np.ndarray, prior: float) -> np.ndarray:
    """The target's smoothed click rate over the training days' impressions."""
    train = split.data.samples.iloc[train_rows]
    rate = smoothed_positive_rates(
        train["item"].to_numpy(), train["label"].to_numpy(np.float64), split.data.vocabulary.items, prior
    )
    return rate[split.columns["item"]]


def oracle(split: LifelongSplit, probabilities: pd.DataFrame) -> np.ndarray:
    """The generator's click probability of each sample, matched on (user, item, time). The reader numbers the
    generator's ids 0..N-1 as 1..N (index_kuairand); a sample without a match is an error, not a guess."""
    keys = pd.DataFrame(
        {name: split.columns[column] for name, column in (("user", "user"), ("item", "item"), ("time_ms", "time_ms"))}
    )
    table = pd.DataFrame(
        {
            "user": probabilities["user_id"].to_numpy() + 1,
            "item": probabilities["video_id"].to_numpy() + 1,
            "time_ms": probabilities["time_ms"].to_numpy(),
            "click_probability": probabilities["click_probability"].to_numpy(),
        }
    ).drop_duplicates(["user", "item", "time_ms"])
    matched = keys.merge(table, on=["user", "item", "time_ms"], how="left")["click_probability"].to_numpy()
    if np.isnan(matched).any():
        raise ConfigError(
            f"{int(np.isnan(matched).sum())} test samples have no click probability in the generator's replay: "
            "scorer=oracle needs the embedded dataset generated with the run's data.generator settings."
        )
    return matched
