"""Generator of `synthetic_multidomain`: multi-domain, multi-task impression logs written as KuaiRand CSVs.

Designed from PEPNet's premise (data_cards/synthetic_multidomain.md):
- domains (KuaiRand's `tab`) of very different sizes, in which the same user-item pair is engaged with
  differently (a domain-specific view of the user's interests) and the signals matter with different weights;
- tasks (KuaiRand's feedback columns) of very different positive rates, each following the signals with its
  own profile (follow: the author; like: the item; hate: against the item), so a user's items rank differently
  for each task;
- personal priors that change the ranking within a user: how strongly a user's feedback on a task follows each
  signal is a per-user, per-task, per-signal factor; users and items also have per-task offsets.
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
SIGNALS = 3  # user-item affinity (through the domain's view), the author's appeal, the item's quality
PAPER_TASKS = ["is_like", "is_follow", "is_forward", "is_hate", "is_click", "long_view"]  # Table 2's, in order


@dataclass
class SyntheticMultiDomainConfig:
    num_users: int = bounded(600, minimum=1)
    num_items: int = bounded(600, minimum=1)
    num_authors: int = bounded(60, minimum=1)
    num_tags: int = bounded(30, minimum=1)
    latent_dim: int = bounded(4, minimum=1)
    domains: list[int] = bounded(default_factory=lambda: [0, 1, 2], minimum=0)  # tab values
    domain_shares: list[float] = bounded(
        default_factory=lambda: [0.7, 0.22, 0.08], above=0.0, maximum=1.0, same_length_as="domains"
    )
    # users' own domain mix: Dirichlet(concentration * shares)
    domain_share_concentration: float = bounded(10.0, above=0.0)
    # 0: a pair's affinity is the same in every domain; 1: unrelated
    domain_interest_shift: float = bounded(0.5, minimum=0.0, maximum=1.0)
    domain_task_offset_std: float = bounded(0.3, minimum=0.0)  # per domain and task, on the logit
    tasks: list[str] = bounded(default_factory=lambda: list(PAPER_TASKS), choices=TASK_COLUMNS)
    positive_rates: list[float] = bounded(
        default_factory=lambda: [0.05, 0.015, 0.01, 0.008, 0.25, 0.12], above=0.0, below=1.0, same_length_as="tasks"
    )
    # each task's weight on the SIGNALS (affinity, author appeal, quality), times the domain's: its own ranking
    task_signal_profiles: list[list[float]] = bounded(
        default_factory=lambda: [[1.0, 0.3, 0.5], [0.3, 0.8, 0.1], [0.4, 0.2, 1.0], [-0.8, -0.2, -0.5],
                                 [0.8, 0.3, 0.6], [1.0, 0.1, 0.3]],
        same_length_as="tasks",
    )  # fmt: skip
    signal_scale: float = bounded(0.8, above=0.0)  # the engagement's scale on the logit
    # log-normal per user, task and signal: how much the user's feedback on the task follows the signal
    personal_weight_std: float = bounded(1.0, minimum=0.0)
    # rho, the share of a user's personal weights common to all their tasks (per signal; their logs correlate
    # rho^2 across tasks): 0, every task its own; 1, one weight per user and signal. Above 0, a user's dense
    # tasks reveal the priors their sparse ones follow
    personal_weight_sharing: float = bounded(0.8, minimum=0.0, maximum=1.0)
    user_offset_std: float = bounded(0.4, minimum=0.0)  # per user and task
    item_offset_std: float = bounded(0.3, minimum=0.0)  # per item and task
    popularity_std: float = bounded(1.0, minimum=0.0)  # item exposure: exp(popularity) within each domain
    history_days: int = bounded(7, minimum=1)  # logs before the sample period: the source of the domain statistics
    sample_days: int = bounded(20, minimum=1)  # 17 train days: about 780 impressions per user (README)
    impressions_per_day: float = bounded(40.0, above=0.0)  # a user's mean; activity varies log-normally
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
    author_appeal: np.ndarray  # [authors]
    domain_transforms: np.ndarray  # [domains, k, k]
    domain_signal_weights: np.ndarray  # [domains, SIGNALS]
    domain_popularity: np.ndarray  # [domains, items] exposure weights
    domain_task_offset: np.ndarray  # [domains, tasks]
    personal_weights: np.ndarray  # [users, tasks, SIGNALS]
    user_offset: np.ndarray  # [users, tasks]
    item_offset: np.ndarray  # [items, tasks]
    task_bias: np.ndarray  # [tasks], calibrated to the positive rates


def _check(config: SyntheticMultiDomainConfig) -> None:
    if not np.isclose(sum(config.domain_shares), 1.0):
        raise ConfigError(f"Bad config value data.generator.domain_shares={config.domain_shares}: they must sum to 1.")
    if any(len(profile) != SIGNALS for profile in config.task_signal_profiles):
        raise ConfigError(
            f"Bad config value data.generator.task_signal_profiles={config.task_signal_profiles}: each task's "
            f"profile holds {SIGNALS} weights (user-item affinity, author appeal, item quality)."
        )


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
        author_appeal=rng.normal(size=config.num_authors),
        domain_transforms=(1 - shift) * np.eye(k)[None] + shift * random_views,
        domain_signal_weights=SIGNALS * rng.dirichlet(np.ones(SIGNALS), domains),
        domain_popularity=np.exp(config.popularity_std * rng.normal(size=(domains, config.num_items))),
        domain_task_offset=rng.normal(0.0, config.domain_task_offset_std, (domains, tasks)),
        personal_weights=_personal_weights(config, tasks, rng),
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


def _personal_weights(config: SyntheticMultiDomainConfig, tasks: int, rng: np.random.Generator) -> np.ndarray:
    """[users, tasks, SIGNALS]: m = exp(std * (rho * z_{u,s} + sqrt(1 - rho^2) * z_{u,t,s})), log-normal with the
    same spread for every rho, its logs correlated rho^2 across a user's tasks."""
    rho = config.personal_weight_sharing
    shared = rng.normal(size=(config.num_users, 1, SIGNALS))
    own = rng.normal(size=(config.num_users, tasks, SIGNALS))
    return np.exp(config.personal_weight_std * (rho * shared + np.sqrt(1 - rho**2) * own))


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
    interests, the appeal of the item's author, and the item's quality."""
    user_view = np.einsum("bk,bkj->bj", world.user_vectors[users], world.domain_transforms[domains])
    return np.stack(
        [
            np.einsum("bj,bj->b", user_view, world.item_vectors[items]),
            world.author_appeal[world.item_author[items]],
            world.item_quality[items],
        ],
        axis=1,
    )


def engagement(world: World, users: np.ndarray, items: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """How much the user engages with the item in that domain, one score shared by every task: the signals
    weighted by the domain (a no-learning reference: it ranks every task alike)."""
    signals = domain_signals(world, users, items, domains)
    return np.einsum("bs,bs->b", signals, world.domain_signal_weights[domains])


def task_logits(world: World, config, users: np.ndarray, items: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """[impressions, tasks]: b_t + o_{d,t} + a sum_s w_{d,s} P_{t,s} m_{u,t,s} x_s(u, i, d) + p_{u,t} + q_{i,t},
    with x_s the signals, w the domain's weights, P the task's profile and m the user's personal weights."""
    signals = domain_signals(world, users, items, domains)  # [B, S]
    profile = np.array(config.task_signal_profiles)  # [T, S]
    weights = world.domain_signal_weights[domains][:, None, :] * profile[None] * world.personal_weights[users]
    return (
        world.task_bias[None]
        + world.domain_task_offset[domains]
        + config.signal_scale * np.einsum("bts,bs->bt", weights, signals)
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
