"""Generator of `synthetic_lifelong`: lifelong user histories written as KuaiRand CSV files.

Designed from TWIN's premise (data_cards/synthetic_lifelong.md): users hold many interests, most dormant for
months, so the evidence for a target often lies far beyond the latest 100 behaviors; tags are coarse and noisy
relative to the topic that makes a behavior relevant; the platform pushes topics the user skips, so how fully a
behavior was played (a cross feature) says how much it reveals; an interest active at the time of an impression
lifts its click probability, so recency matters too. Deterministic given the seed; cached on disk by its
parameters.
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
from common.errors import ConfigError

VERSION_TAG = "synthetic"
HISTORY_START = datetime(2021, 4, 23, tzinfo=timezone(timedelta(hours=8)))
TABS = np.arange(6)
TAB_PROBABILITIES = np.array([0.45, 0.25, 0.12, 0.08, 0.06, 0.04])
MONTH_SECONDS = 30 * 86_400
TARGET_KINDS = ("active_interest", "dormant_interest", "pushed", "random")
PLAY_KINDS = ("interest", "pushed", "exploration")


@dataclass
class SyntheticLifelongConfig:
    num_users: int = bounded(1200, minimum=1)  # 134,400 impressions: enough that the models learn, not memorize
    num_items: int = bounded(6000, minimum=1)
    num_topics: int = bounded(200, minimum=1)
    num_tags: int = bounded(10, minimum=1)
    tag_noise: float = bounded(0.3, minimum=0.0, maximum=1.0)  # share of items whose tag is drawn at random
    num_authors: int = bounded(800, minimum=1)
    min_history: int = bounded(1000, minimum=1)
    max_history: int = bounded(10000, minimum=1)
    history_days: int = bounded(364, minimum=1)
    sample_days: int = bounded(14, minimum=1)
    impressions_per_day: int = bounded(8, minimum=1)
    min_interests: int = bounded(15, minimum=1)
    max_interests: int = bounded(40, minimum=1)
    min_strength: float = bounded(0.4, minimum=0.0)
    max_strength: float = bounded(1.0, minimum=0.0)
    active_month_probability: float = bounded(0.08, minimum=0.0, maximum=1.0)
    pushed_topics: int = bounded(6, minimum=0)  # topics the platform keeps showing that the user does not like
    play_mix: list[float] = bounded(default_factory=lambda: [0.65, 0.3, 0.05], minimum=0.0)  # PLAY_KINDS
    target_mix: list[float] = bounded(default_factory=lambda: [0.2, 0.35, 0.15, 0.3], minimum=0.0)  # TARGET_KINDS
    click_scale: float = bounded(4.0, above=0.0)
    click_offset: float = 0.7
    recency_boost: float = bounded(0.5, minimum=0.0)  # affinity added while the target's interest is active
    item_bias_std: float = bounded(0.3, minimum=0.0)
    nonclick_history_share: float = bounded(0.05, minimum=0.0, maximum=1.0)
    seed: int = bounded(0, minimum=0)


def check_generator(config: SyntheticLifelongConfig, where: str = "data.generator") -> None:
    """Refuse, before any data is made, settings whose fields contradict each other."""
    pairs = (("min_history", "max_history"), ("min_interests", "max_interests"), ("min_strength", "max_strength"))
    for low, high in pairs:
        if getattr(config, low) > getattr(config, high):
            raise ConfigError(
                f"Bad config value {where}.{low}={getattr(config, low)}: it must be at most "
                f"{where}.{high}={getattr(config, high)}."
            )
    for name, kinds in (("play_mix", PLAY_KINDS), ("target_mix", TARGET_KINDS)):
        mix = getattr(config, name)
        if len(mix) != len(kinds) or sum(mix) <= 0:
            raise ConfigError(
                f"Bad config value {where}.{name}={mix!r}: it must hold {len(kinds)} non-negative weights "
                f"({', '.join(kinds)}) with a positive sum."
            )
    if config.num_items < config.num_topics:
        raise ConfigError(
            f"Bad config value {where}.num_items={config.num_items}: it must be at least "
            f"{where}.num_topics={config.num_topics}, so that every topic has an item."
        )
    if config.max_interests + config.pushed_topics > config.num_topics:
        raise ConfigError(
            f"Bad config value {where}.max_interests={config.max_interests}: with {where}.pushed_topics="
            f"{config.pushed_topics} it must leave them distinct topics among {where}.num_topics={config.num_topics}."
        )


@dataclass
class ItemCatalogue:
    topic: np.ndarray
    author: np.ndarray
    tag: np.ndarray
    duration_ms: np.ndarray
    bias: np.ndarray
    items_of_topic: list[np.ndarray]


def make_catalogue(config: SyntheticLifelongConfig, rng: np.random.Generator) -> ItemCatalogue:
    """Items belong to topics (the unit of relevance); a tag is a coarse union of about num_topics / num_tags
    topics, and a `tag_noise` share of items carries a random tag instead; authors each keep to one topic."""
    topic_popularity = rng.dirichlet(np.full(config.num_topics, 2.0))
    topic = rng.choice(config.num_topics, size=config.num_items, p=topic_popularity)
    topic[: config.num_topics] = np.arange(config.num_topics)  # no topic without items
    tag_of_topic = rng.integers(0, config.num_tags, config.num_topics)
    noisy = rng.random(config.num_items) < config.tag_noise
    tag = np.where(noisy, rng.integers(0, config.num_tags, config.num_items), tag_of_topic[topic])
    author_topic = rng.integers(0, config.num_topics, config.num_authors)
    authors_of_topic = [np.flatnonzero(author_topic == t) for t in range(config.num_topics)]
    author = np.array(
        [
            rng.choice(authors_of_topic[t]) if len(authors_of_topic[t]) else rng.integers(config.num_authors)
            for t in topic
        ]
    )
    return ItemCatalogue(
        topic=topic,
        author=author,
        tag=tag,
        duration_ms=np.clip(rng.lognormal(np.log(30_000), 0.8, config.num_items), 3_000, 600_000).astype(np.int64),
        bias=rng.normal(0.0, config.item_bias_std, config.num_items),
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
    """Cross features of a watched item: the more the user likes it, the longer the play and the likelier a like;
    an item of no interest (affinity 0) is mostly skipped early."""
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


def _choose(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row of the non-negative `weights` [rows, columns], drawn proportionally (rows of zeros take
    any column uniformly)."""
    weights = np.where(weights.sum(1, keepdims=True) > 0, weights, 1.0)
    return (weights.cumsum(1) / weights.sum(1, keepdims=True) > rng.random((len(weights), 1))).argmax(1)


def _mix(weights: list[float]) -> np.ndarray:
    return np.asarray(weights, dtype=np.float64) / np.sum(weights)


@dataclass
class UserWorld:
    """One user's hidden state: interests (topics), their strengths and the months each is active, and the topics
    the platform pushes at them."""

    interests: np.ndarray
    strength: np.ndarray
    active: np.ndarray  # [interests, months]
    pushed: np.ndarray

    def affinity(self, topics: np.ndarray) -> np.ndarray:
        """Strength of each topic for the user: the interest's strength, 0 for any other topic."""
        match = self.interests[None, :] == topics[:, None]
        return (match * self.strength).sum(1)

    def active_at(self, topics: np.ndarray, month: np.ndarray) -> np.ndarray:
        """Whether each topic is an interest active in the month."""
        match = self.interests[None, :] == topics[:, None]
        return (match & self.active[:, month].T).any(1)


def make_user(config: SyntheticLifelongConfig, rng: np.random.Generator) -> UserWorld:
    num_interests = rng.integers(config.min_interests, config.max_interests + 1)
    topics = rng.permutation(config.num_topics)
    months = int(np.ceil((config.history_days + config.sample_days) / 30))
    active = rng.random((num_interests, months)) < config.active_month_probability
    active[rng.integers(0, num_interests, months), np.arange(months)] = True  # one interest at least, every month
    return UserWorld(
        interests=topics[:num_interests],
        strength=rng.uniform(config.min_strength, config.max_strength, num_interests),
        active=active,
        pushed=topics[num_interests : num_interests + config.pushed_topics],
    )


def _history(user: UserWorld, config: SyntheticLifelongConfig, catalogue: ItemCatalogue, rng: np.random.Generator):
    """Plays over the history period: a month's active interests by strength, the pushed topics (played briefly)
    and uniform exploration, in the shares of `play_mix`."""
    length = int(np.exp(rng.uniform(np.log(config.min_history), np.log(config.max_history))))
    seconds = np.sort(rng.uniform(0, config.history_days * 86_400, length))
    month = (seconds // MONTH_SECONDS).astype(int)
    kind = rng.choice(len(PLAY_KINDS), length, p=_mix(config.play_mix))
    interest = user.interests[_choose((user.strength[:, None] * user.active)[:, month].T, rng)]
    pushed = user.pushed[rng.integers(0, len(user.pushed), length)] if len(user.pushed) else interest
    explored = rng.integers(0, config.num_topics, length)
    topics = np.choose(kind, [interest, pushed, explored])
    items = _sample_items_of_topics(topics, catalogue, rng)
    history = {"seconds": seconds, "video": items, "is_click": np.ones(length, dtype=np.int64)}
    history.update(_engagement(user.affinity(topics), catalogue.duration_ms[items], rng))
    skipped = rng.random(length) < config.nonclick_history_share
    history["video"][skipped] = rng.integers(0, config.num_items, skipped.sum())
    for key in history:
        if key not in ("seconds", "video", "is_hate"):
            history[key][skipped] = 0
    return history


def _impressions(user: UserWorld, config, catalogue: ItemCatalogue, rng: np.random.Generator):
    """Impressions over the sample period: an active interest's item, a dormant interest's, a pushed topic's or a
    uniform item, in the shares of `target_mix`; clicked with sigmoid(click_scale (affinity + recency_boost
    [interest active] - click_offset) + item bias)."""
    count = config.sample_days * config.impressions_per_day
    seconds = np.sort(rng.uniform(0, config.sample_days * 86_400, count)) + config.history_days * 86_400
    month = (seconds // MONTH_SECONDS).astype(int)
    kind = rng.choice(len(TARGET_KINDS), count, p=_mix(config.target_mix))
    active = user.active[:, month].T  # [count, interests]
    uniform = rng.random(active.shape)
    pushed = user.pushed[rng.integers(0, len(user.pushed), count)] if len(user.pushed) else user.interests[:1]
    topics = np.choose(
        kind,
        [
            user.interests[_choose(uniform * active, rng)],
            user.interests[_choose(uniform * ~active, rng)],
            np.resize(pushed, count),
            rng.integers(0, config.num_topics, count),
        ],
    )
    items = _sample_items_of_topics(topics, catalogue, rng)
    affinity = user.affinity(topics)
    lifted = affinity + config.recency_boost * user.active_at(topics, month)
    probability = 1 / (1 + np.exp(-(config.click_scale * (lifted - config.click_offset) + catalogue.bias[items])))
    clicked = (rng.random(count) < probability).astype(np.int64)
    impressions = {"seconds": seconds, "video": items, "is_click": clicked}
    engagement = _engagement(affinity, catalogue.duration_ms[items], rng)
    impressions.update({key: value * clicked for key, value in engagement.items()})
    impressions["click_probability"] = probability
    return impressions


def _user_logs(user_id: int, config: SyntheticLifelongConfig, catalogue: ItemCatalogue, rng: np.random.Generator):
    """One user's life: behaviors over the history period, then impressions over the sample period."""
    user = make_user(config, rng)
    history = _history(user, config, catalogue, rng)
    history["click_probability"] = np.full(len(history["video"]), np.nan)  # logged, not drawn from a probability
    impressions = _impressions(user, config, catalogue, rng)
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
    """The probability each impression was clicked with (`_impressions`), which the files do not hold: recomputed
    by replaying the generator from its seed. Columns user_id, video_id, time_ms (as the logs write them) and
    click_probability."""
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
