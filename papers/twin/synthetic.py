"""Generator of `synthetic_lifelong`: lifelong user histories written as KuaiRand CSV files.

Designed from TWIN's premise (data_cards/synthetic_lifelong.md): users hold several interests that go
dormant for months and resurface, so the evidence for a target often lies far back in the history; clicks
follow the user's whole-history affinity; cross features (completion, likes) reveal how much the user
liked each past item. Deterministic given the seed; cached on disk by its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.config import bounded
from common.data.generated import ensure_generated
from common.data.kuairand_writer import (
    log_frame,
    user_feature_frame,
    video_feature_frame,
    write_log_files,
)

VERSION_TAG = "synthetic"
HISTORY_START = datetime(2021, 4, 23, tzinfo=timezone(timedelta(hours=8)))
TABS = np.arange(6)
TAB_PROBABILITIES = np.array([0.45, 0.25, 0.12, 0.08, 0.06, 0.04])


@dataclass
class SyntheticLifelongConfig:
    num_users: int = bounded(300, minimum=1)
    num_items: int = bounded(20000, minimum=1)
    num_topics: int = bounded(100, minimum=1)
    num_tags: int = bounded(20, minimum=1)
    num_authors: int = bounded(2000, minimum=1)
    latent_dim: int = bounded(16, minimum=1)
    item_spread: float = bounded(0.6, minimum=0.0)
    min_history: int = bounded(1000, minimum=1)
    max_history: int = bounded(10000, minimum=1)
    history_days: int = bounded(364, minimum=1)
    sample_days: int = bounded(14, minimum=1)
    impressions_per_day: int = bounded(8, minimum=1)
    min_interests: int = bounded(3, minimum=1)
    max_interests: int = bounded(8, minimum=1)
    active_month_probability: float = bounded(0.3, minimum=0.0, maximum=1.0)
    exploration: float = bounded(0.1, minimum=0.0, maximum=1.0)
    interest_target_share: float = bounded(0.5, minimum=0.0, maximum=1.0)
    click_scale: float = bounded(5.0, above=0.0)
    click_offset: float = 0.45
    click_noise: float = bounded(0.5, minimum=0.0)
    item_bias_std: float = bounded(0.3, minimum=0.0)
    nonclick_history_share: float = bounded(0.05, minimum=0.0, maximum=1.0)
    seed: int = bounded(0, minimum=0)


@dataclass
class ItemCatalogue:
    vectors: np.ndarray
    topic: np.ndarray
    author: np.ndarray
    tag: np.ndarray
    duration_ms: np.ndarray
    bias: np.ndarray
    topic_centers: np.ndarray
    items_of_topic: list[np.ndarray]


def _normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def make_catalogue(config: SyntheticLifelongConfig, rng: np.random.Generator) -> ItemCatalogue:
    """Items are noisy copies of topic centres; a tag (category) is a coarse union of about five topics."""
    centers = _normalize(rng.normal(size=(config.num_topics, config.latent_dim)))
    topic_popularity = rng.dirichlet(np.full(config.num_topics, 2.0))
    if config.num_items < config.num_topics:
        raise ValueError(f"num_items={config.num_items} must be at least num_topics={config.num_topics}")
    topic = rng.choice(config.num_topics, size=config.num_items, p=topic_popularity)
    topic[: config.num_topics] = np.arange(config.num_topics)  # no topic without items
    noise = rng.normal(size=(config.num_items, config.latent_dim)) * config.item_spread / np.sqrt(config.latent_dim)
    vectors = _normalize(centers[topic] + noise)
    tag_of_topic = rng.integers(0, config.num_tags, config.num_topics)
    author_topic = rng.integers(0, config.num_topics, config.num_authors)
    authors_of_topic = [np.flatnonzero(author_topic == t) for t in range(config.num_topics)]
    author = np.array(
        [
            rng.choice(authors_of_topic[t]) if len(authors_of_topic[t]) else rng.integers(config.num_authors)
            for t in topic
        ]
    )
    return ItemCatalogue(
        vectors=vectors,
        topic=topic,
        author=author,
        tag=tag_of_topic[topic],
        duration_ms=np.clip(rng.lognormal(np.log(30_000), 0.8, config.num_items), 3_000, 600_000).astype(np.int64),
        bias=rng.normal(0.0, config.item_bias_std, config.num_items),
        topic_centers=centers,
        items_of_topic=[np.flatnonzero(topic == t) for t in range(config.num_topics)],
    )


def _sample_items_of_topics(topics: np.ndarray, catalogue: ItemCatalogue, rng: np.random.Generator) -> np.ndarray:
    items = np.empty(len(topics), dtype=np.int64)
    for t in np.unique(topics):
        members = np.flatnonzero(topics == t)
        pool = catalogue.items_of_topic[t]
        items[members] = pool[rng.integers(0, len(pool), len(members))]
    return items


def _engagement(affinity: np.ndarray, duration_ms: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cross features of a watched item: the more the user likes it, the longer the play and the likelier a like."""
    completion = np.clip(1.6 / (1 + np.exp(-(4.0 * (affinity - 0.45) + rng.normal(0, 0.6, len(affinity))))), 0.02, 3)
    play_time = (completion * duration_ms).astype(np.int64)
    return {
        "play_time_ms": play_time,
        "long_view": (play_time >= np.minimum(duration_ms, 18_000)).astype(np.int64),
        "is_like": (rng.random(len(affinity)) < 1 / (1 + np.exp(-(6 * affinity - 5.0)))).astype(np.int64),
        "is_follow": (rng.random(len(affinity)) < 1 / (1 + np.exp(-(6 * affinity - 7.0)))).astype(np.int64),
        "is_comment": (rng.random(len(affinity)) < 0.02 + 0.05 * affinity).astype(np.int64),
        "is_forward": (rng.random(len(affinity)) < 0.01 + 0.03 * affinity).astype(np.int64),
        "is_hate": (rng.random(len(affinity)) < 0.003).astype(np.int64),
        "is_profile_enter": (rng.random(len(affinity)) < 0.05 + 0.1 * affinity).astype(np.int64),
    }


def _user_logs(user_id: int, config: SyntheticLifelongConfig, catalogue: ItemCatalogue, rng: np.random.Generator):
    """One user's life: behaviors over the history period, then impressions over the sample period."""
    num_interests = rng.integers(config.min_interests, config.max_interests + 1)
    interests = rng.choice(config.num_topics, num_interests, replace=False)
    strength = rng.uniform(0.3, 1.0, num_interests)
    months = int(np.ceil(config.history_days / 30))
    active = rng.random((num_interests, months)) < config.active_month_probability
    active[rng.integers(0, num_interests, months), np.arange(months)] = True

    def affinity(items: np.ndarray) -> np.ndarray:
        """Whole-history affinity: the best match of the item among all the user's interests, old or current."""
        return np.max(strength * (catalogue.vectors[items] @ catalogue.topic_centers[interests].T), axis=1)

    length = int(np.exp(rng.uniform(np.log(config.min_history), np.log(config.max_history))))
    seconds = np.sort(rng.uniform(0, config.history_days * 86_400, length))
    month = np.minimum((seconds // (30 * 86_400)).astype(int), months - 1)
    weights = (strength[:, None] * active)[:, month].T
    chosen = (weights.cumsum(1) / weights.sum(1, keepdims=True) > rng.random((length, 1))).argmax(1)
    topics = np.where(
        rng.random(length) < config.exploration, rng.integers(0, config.num_topics, length), interests[chosen]
    )
    items = _sample_items_of_topics(topics, catalogue, rng)
    history = {"seconds": seconds, "video": items, "is_click": np.ones(length, dtype=np.int64)}
    history.update(_engagement(affinity(items), catalogue.duration_ms[items], rng))

    skipped = rng.random(length) < config.nonclick_history_share
    if skipped.any():
        history["video"][skipped] = rng.integers(0, config.num_items, skipped.sum())
        history["is_click"][skipped] = 0
        for key in (
            "play_time_ms",
            "long_view",
            "is_like",
            "is_follow",
            "is_comment",
            "is_forward",
            "is_profile_enter",
        ):
            history[key][skipped] = 0

    count = config.sample_days * config.impressions_per_day
    offsets = np.sort(rng.uniform(0, config.sample_days * 86_400, count)) + config.history_days * 86_400
    from_interest = rng.random(count) < config.interest_target_share
    interest_items = _sample_items_of_topics(interests[rng.integers(0, num_interests, count)], catalogue, rng)
    targets = np.where(from_interest, interest_items, rng.integers(0, config.num_items, count))
    target_affinity = affinity(targets)
    logit = config.click_scale * (target_affinity - config.click_offset) + catalogue.bias[targets]
    uniform = rng.random(count)
    click_probability = 1 / (1 + np.exp(-(logit + rng.normal(0, config.click_noise, count))))
    clicked = (uniform < click_probability).astype(int)
    impressions = {"seconds": offsets, "video": targets, "is_click": clicked}
    engagement = _engagement(target_affinity, catalogue.duration_ms[targets], rng)
    impressions.update({key: value * clicked for key, value in engagement.items()})
    history["click_probability"] = np.full(length, np.nan)  # behaviors are logged, not drawn from a probability
    impressions["click_probability"] = click_probability
    rows = {key: np.concatenate([history[key], impressions[key]]) for key in history}
    rows["user_id"] = np.full(len(rows["video"]), user_id)
    return rows


def _log_frame(rows: dict[str, np.ndarray], catalogue: ItemCatalogue, rng: np.random.Generator) -> pd.DataFrame:
    n = len(rows["video"])
    profile_stay_time = rows["is_profile_enter"] * rng.integers(1_000, 20_000, n)
    comment_stay_time = rows["is_comment"] * rng.integers(1_000, 30_000, n)
    tab = rng.choice(TABS, n, p=TAB_PROBABILITIES)
    feedback = ("is_click", "is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view")
    columns = {
        "user_id": rows["user_id"],
        "video_id": rows["video"],
        **{name: rows[name] for name in feedback},
        "play_time_ms": rows["play_time_ms"],
        "duration_ms": catalogue.duration_ms[rows["video"]],
        "profile_stay_time": profile_stay_time,
        "comment_stay_time": comment_stay_time,
        "is_profile_enter": rows["is_profile_enter"],
        "is_rand": np.zeros(n, dtype=np.int64),
        "tab": tab,
    }
    return log_frame(HISTORY_START, rows["seconds"], columns)


def _generate_rows(config: SyntheticLifelongConfig, progress: bool):
    """Every user's log rows (with each impression's click probability), the catalogue and the generator's
    state after them: the same draws whether the files are written or only the probabilities recomputed."""
    rng = np.random.default_rng(config.seed)
    catalogue = make_catalogue(config, rng)
    users = range(config.num_users)
    parts = [_user_logs(u, config, catalogue, rng) for u in tqdm(users, desc="generate users", disable=not progress)]
    rows = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return rows, catalogue, rng


def write_dataset(config: SyntheticLifelongConfig, folder: Path, progress: bool = True) -> None:
    """Write the logs, video features and user features into `folder` in KuaiRand's format."""
    rows, catalogue, rng = _generate_rows(config, progress)
    logs = _log_frame(rows, catalogue, rng)
    total_days = config.history_days + config.sample_days
    write_log_files(folder, logs, HISTORY_START, config.history_days, total_days, VERSION_TAG)
    videos = video_feature_frame(catalogue.author, catalogue.tag, catalogue.duration_ms, HISTORY_START, rng)
    videos.to_csv(folder / f"video_features_basic_{VERSION_TAG}.csv", index=False)
    user_feature_frame(config.num_users, rng).to_csv(folder / f"user_features_{VERSION_TAG}.csv", index=False)


def sample_period_start(config: SyntheticLifelongConfig) -> int:
    """The first day (YYYYMMDD) of impressions used as samples; the days before are history only."""
    return int((HISTORY_START + timedelta(days=config.history_days)).strftime("%Y%m%d"))


def ensure_dataset(config: SyntheticLifelongConfig, cache_dir: Path, progress: bool = True) -> Path:
    """The dataset's folder under `cache_dir`, generating it first if absent."""
    return ensure_generated("synthetic_lifelong", config, cache_dir, partial(write_dataset, config, progress=progress))


def impression_click_probabilities(config: SyntheticLifelongConfig) -> pd.DataFrame:
    """The probability each impression was clicked with, sigmoid(5 (affinity - 0.45) + item bias + noise), which
    the files do not hold: recomputed by replaying the generator from its seed. Columns user_id, video_id, time_ms
    (as the logs write them) and click_probability."""
    rows, _, _ = _generate_rows(config, progress=False)
    impression = ~np.isnan(rows["click_probability"])
    stamps = pd.to_datetime(HISTORY_START) + pd.to_timedelta(rows["seconds"][impression], unit="s")
    return pd.DataFrame(
        {
            "user_id": rows["user_id"][impression],
            "video_id": rows["video"][impression],
            "time_ms": (stamps.asi8 // 1_000_000).astype(np.int64),  # as common.data.kuairand_writer.log_frame
            "click_probability": rows["click_probability"][impression],
        }
    )
