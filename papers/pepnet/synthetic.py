"""Generator of `synthetic_multidomain`: multi-domain, multi-task impression logs written as KuaiRand CSVs.

Designed from PEPNet's premise (data_cards/synthetic_multidomain.md):
- domains (KuaiRand's `tab`) of very different sizes, in which the same user-item pair is engaged with
  differently (a domain-specific view of interest) and the signals matter with different weights;
- tasks (KuaiRand's feedback columns) of very different positive rates, tied together by the engagement of
  the impression but each with its own user and item propensities;
- personal priors that carry signal: how strongly a user's feedback on a task follows engagement is a
  per-user factor (multiplicative), and users and items have per-task offsets (additive).
Deterministic given the seed; cached on disk by its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from common.config import bounded
from common.data.generated import ensure_generated
from common.data.kuairand import TASK_COLUMNS
from common.data.kuairand_writer import (
    ACTIVE_DEGREES,
    log_frame,
    user_feature_frame,
    video_feature_frame,
    write_log_files,
)
from common.errors import ConfigError

VERSION_TAG = "synthetic"
START = datetime(2022, 4, 8, tzinfo=timezone(timedelta(hours=8)))
SIGNALS = 3  # engagement = domain-weighted sum of: user-item affinity, user-author affinity, item quality


@dataclass
class SyntheticMultiDomainConfig:
    num_users: int = bounded(2000, minimum=1)
    num_items: int = bounded(4000, minimum=1)
    num_authors: int = bounded(400, minimum=1)
    num_tags: int = bounded(30, minimum=1)
    latent_dim: int = bounded(8, minimum=1)
    domains: list[int] = bounded(default_factory=lambda: [0, 1, 2, 3], minimum=0)  # tab values
    domain_shares: list[float] = bounded(
        default_factory=lambda: [0.62, 0.25, 0.09, 0.04], above=0.0, maximum=1.0, same_length_as="domains"
    )
    # users' own domain mix: Dirichlet(concentration * shares)
    domain_share_concentration: float = bounded(10.0, above=0.0)
    # 0: a pair's affinity is the same in every domain; 1: unrelated
    domain_interest_shift: float = bounded(0.6, minimum=0.0, maximum=1.0)
    domain_task_offset_std: float = bounded(0.5, minimum=0.0)  # per domain and task, on the logit
    tasks: list[str] = bounded(
        default_factory=lambda: ["is_click", "long_view", "is_like", "is_follow", "is_forward"], choices=TASK_COLUMNS
    )
    positive_rates: list[float] = bounded(
        default_factory=lambda: [0.15, 0.08, 0.03, 0.008, 0.005], above=0.0, below=1.0, same_length_as="tasks"
    )
    engagement_coupling: list[float] = bounded(
        default_factory=lambda: [1.0, 1.2, 1.0, 0.8, 0.8], same_length_as="tasks"
    )  # c_t: how the task's logit follows engagement (a negative c_t: against it)
    user_slope_std: float = bounded(0.7, minimum=0.0)  # log-normal per user and task: the personal sensitivity
    user_offset_std: float = bounded(0.6, minimum=0.0)  # per user and task
    item_offset_std: float = bounded(0.6, minimum=0.0)  # per item and task
    popularity_std: float = bounded(1.0, minimum=0.0)  # item exposure: exp(popularity) within each domain
    history_days: int = bounded(14, minimum=1)  # logs before the sample period: the source of the domain statistics
    sample_days: int = bounded(7, minimum=1)
    impressions_per_day: float = bounded(25.0, above=0.0)  # a user's mean; activity varies log-normally
    seed: int = bounded(0, minimum=0)


@dataclass
class World:
    """The hidden parameters the logs are drawn from."""

    user_vectors: np.ndarray  # [users, k]
    user_activity: np.ndarray  # [users]
    user_domain_mix: np.ndarray  # [users, domains]
    item_vectors: np.ndarray  # [items, k]
    item_author: np.ndarray
    item_tag: np.ndarray
    item_duration_ms: np.ndarray
    item_quality: np.ndarray
    author_vectors: np.ndarray  # [authors, k]
    domain_transforms: np.ndarray  # [domains, k, k]
    domain_signal_weights: np.ndarray  # [domains, SIGNALS]
    domain_popularity: np.ndarray  # [domains, items] exposure weights
    domain_task_offset: np.ndarray  # [domains, tasks]
    user_slope: np.ndarray  # [users, tasks]
    user_offset: np.ndarray  # [users, tasks]
    item_offset: np.ndarray  # [items, tasks]
    task_bias: np.ndarray  # [tasks], calibrated to the positive rates


def _check(config: SyntheticMultiDomainConfig) -> None:
    if not np.isclose(sum(config.domain_shares), 1.0):
        raise ConfigError(f"Bad config value data.generator.domain_shares={config.domain_shares}: they must sum to 1.")


def make_world(config: SyntheticMultiDomainConfig, rng: np.random.Generator) -> World:
    _check(config)
    k, domains, tasks = config.latent_dim, len(config.domains), len(config.tasks)
    author_vectors = rng.normal(size=(config.num_authors, k)) / np.sqrt(k)
    item_author = rng.integers(0, config.num_authors, config.num_items)
    item_vectors = author_vectors[item_author] + 0.7 * rng.normal(size=(config.num_items, k)) / np.sqrt(k)
    item_vectors /= np.linalg.norm(item_vectors, axis=1, keepdims=True)
    shift = config.domain_interest_shift
    random_views = rng.normal(size=(domains, k, k)) / np.sqrt(k)
    world = World(
        user_vectors=rng.normal(size=(config.num_users, k)) / np.sqrt(k) * 1.5,
        user_activity=rng.lognormal(0.0, 0.5, config.num_users),
        user_domain_mix=rng.dirichlet(
            config.domain_share_concentration * np.array(config.domain_shares), config.num_users
        ),
        item_vectors=item_vectors,
        item_author=item_author,
        item_tag=rng.integers(0, config.num_tags, config.num_items),
        item_duration_ms=np.clip(rng.lognormal(np.log(30_000), 0.8, config.num_items), 3_000, 600_000).astype(np.int64),
        item_quality=rng.normal(size=config.num_items),
        author_vectors=author_vectors,
        domain_transforms=(1 - shift) * np.eye(k)[None] + shift * random_views,
        domain_signal_weights=3.0 * rng.dirichlet(np.ones(SIGNALS), domains),
        domain_popularity=np.exp(config.popularity_std * rng.normal(size=(domains, config.num_items))),
        domain_task_offset=rng.normal(0.0, config.domain_task_offset_std, (domains, tasks)),
        user_slope=rng.lognormal(0.0, config.user_slope_std, (config.num_users, tasks)),
        user_offset=rng.normal(0.0, config.user_offset_std, (config.num_users, tasks)),
        item_offset=rng.normal(0.0, config.item_offset_std, (config.num_items, tasks)),
        task_bias=np.zeros(tasks),
    )
    probe_users = rng.integers(0, config.num_users, 50_000)
    probe_domains = _draw_domains(world, probe_users, rng)
    probe_items = _draw_items(world, probe_domains, rng)
    logits = task_logits(world, config, probe_users, probe_items, probe_domains)
    world.task_bias = np.array([_calibrate(logits[:, t], rate) for t, rate in enumerate(config.positive_rates)])
    return world


def _calibrate(logits: np.ndarray, rate: float) -> float:
    """The bias b with mean(sigmoid(logits + b)) = rate (bisection)."""
    low, high = -30.0, 30.0
    for _ in range(60):
        middle = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logits + middle)))) < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _draw_domains(world: World, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cumulative = np.cumsum(world.user_domain_mix[users], axis=1)
    return np.minimum((rng.random(len(users))[:, None] > cumulative).sum(1), cumulative.shape[1] - 1)


def _draw_items(world: World, domains: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    items = np.empty(len(domains), dtype=np.int64)
    for domain, weights in enumerate(world.domain_popularity):
        rows = np.flatnonzero(domains == domain)
        cumulative = np.cumsum(weights) / weights.sum()
        items[rows] = np.minimum(np.searchsorted(cumulative, rng.random(len(rows))), len(weights) - 1)
    return items


def domain_signals(world: World, users: np.ndarray, items: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """[impressions, SIGNALS]: the user-item affinity read through the domain's own view of the user's
    interests, the user-author affinity, and the item's quality."""
    user_view = np.einsum("bk,bkj->bj", world.user_vectors[users], world.domain_transforms[domains])
    return np.stack(
        [
            np.einsum("bj,bj->b", user_view, world.item_vectors[items]) * 2.0,
            np.einsum("bj,bj->b", world.user_vectors[users], world.author_vectors[world.item_author[items]]) * 2.0,
            world.item_quality[items],
        ],
        axis=1,
    )


def engagement(world: World, users: np.ndarray, items: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """How much the user engages with the item in that domain: the signals weighted by the domain."""
    signals = domain_signals(world, users, items, domains)
    return np.einsum("bs,bs->b", signals, world.domain_signal_weights[domains])


def task_logits(world: World, config, users: np.ndarray, items: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """[impressions, tasks]: b_t + o_{d,t} + s_{u,t} c_t e(u, i, d) + p_{u,t} + q_{i,t}."""
    coupling = np.array(config.engagement_coupling)
    shared = engagement(world, users, items, domains)[:, None]
    return (
        world.task_bias[None]
        + world.domain_task_offset[domains]
        + world.user_slope[users] * coupling[None] * shared
        + world.user_offset[users]
        + world.item_offset[items]
    )


def _impressions(config: SyntheticMultiDomainConfig, world: World, rng: np.random.Generator, progress: bool):
    """Every impression of every day: user, item, domain index, seconds after START and the task labels."""
    days = config.history_days + config.sample_days
    parts = []
    for day in tqdm(range(days), desc="generate days", disable=not progress):
        counts = rng.poisson(config.impressions_per_day * world.user_activity)
        users = np.repeat(np.arange(config.num_users), counts)
        domains = _draw_domains(world, users, rng)
        items = _draw_items(world, domains, rng)
        probabilities = 1 / (1 + np.exp(-task_logits(world, config, users, items, domains)))
        labels = (rng.random(probabilities.shape) < probabilities).astype(np.int64)
        seconds = day * 86_400 + rng.integers(7 * 3600, 24 * 3600, len(users))
        parts.append((users, items, domains, seconds, labels))
    users, items, domains, seconds, labels = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((seconds, users))
    return users[order], items[order], domains[order], seconds[order], labels[order]


def write_dataset(config: SyntheticMultiDomainConfig, folder: Path, progress: bool = True) -> None:
    """Write the logs, video features and user features into `folder` in KuaiRand's format."""
    rng = np.random.default_rng(config.seed)
    world = make_world(config, rng)
    users, items, domains, seconds, labels = _impressions(config, world, rng, progress)
    n = len(users)
    duration = world.item_duration_ms[items]
    columns = {name: np.zeros(n, dtype=np.int64) for name in ("is_click", "long_view", "is_like", "is_follow")}
    columns.update({name: np.zeros(n, dtype=np.int64) for name in ("is_forward", "is_comment", "is_hate")})
    columns.update({task: labels[:, index] for index, task in enumerate(config.tasks)})
    watched = np.maximum(columns["is_click"], columns["long_view"])
    fraction = np.where(columns["long_view"] == 1, rng.uniform(0.6, 1.0, n), rng.uniform(0.05, 0.5, n))
    columns.update(
        user_id=users,
        video_id=items,
        play_time_ms=(watched * duration * fraction).astype(np.int64),
        duration_ms=duration,
        profile_stay_time=np.zeros(n, dtype=np.int64),
        comment_stay_time=np.zeros(n, dtype=np.int64),
        is_profile_enter=np.zeros(n, dtype=np.int64),
        is_rand=np.zeros(n, dtype=np.int64),
        tab=np.asarray(config.domains)[domains],
    )
    logs = log_frame(START, seconds, columns)
    write_log_files(folder, logs, START, config.history_days, config.history_days + config.sample_days, VERSION_TAG)
    tags = world.item_tag + 1
    videos = video_feature_frame(world.item_author, tags, world.item_duration_ms, START, rng)
    videos.to_csv(folder / f"video_features_basic_{VERSION_TAG}.csv", index=False)
    activity_rank = np.argsort(np.argsort(-world.user_activity)) * len(ACTIVE_DEGREES) // config.num_users
    users_frame = user_feature_frame(config.num_users, rng, np.asarray(ACTIVE_DEGREES)[activity_rank])
    users_frame.to_csv(folder / f"user_features_{VERSION_TAG}.csv", index=False)


def sample_period_start(config: SyntheticMultiDomainConfig) -> int:
    """The first day (YYYYMMDD) of impressions used as samples; the days before feed the domain statistics."""
    return int((START + timedelta(days=config.history_days)).strftime("%Y%m%d"))


def ensure_dataset(config: SyntheticMultiDomainConfig, cache_dir: Path, progress: bool = True) -> Path:
    """The dataset's folder under `cache_dir`, generating it first if absent."""
    return ensure_generated(
        "synthetic_multidomain", config, cache_dir, partial(write_dataset, config, progress=progress)
    )
