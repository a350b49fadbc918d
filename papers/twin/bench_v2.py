"""TWIN-V2's benchmarks (mode=bench): clustering throughput (adaptive hierarchical vs one flat k-means with the
same number of clusters; one core vs a process pool on all cores) and the online GSU+ESU latency on
virtual items against TWIN's on raw behaviors. Inputs are generated in-process: clustered Gaussian
embeddings of the model's width stand for a user's item embeddings."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.bench import BenchFigure, median_seconds, speedup_figure, throughput_figure
from common.config import bounded
from papers.twin.bench import OneRequestGSU
from papers.twin.clustering import (
    KMEANS_IMPLEMENTATIONS,
    ClusteringConfig,
    cluster_behaviors,
    completion_groups,
    hierarchical_clusters,
)
from papers.twin.lifecycle import ClusteringJob, UserBehaviors


@dataclass
class TwinV2BenchConfig:
    user_lengths: list[int] = bounded(default_factory=lambda: [100_000, 1_000_000], minimum=1)
    flat_max_length: int = bounded(100_000, minimum=0)  # flat k-means takes minutes beyond this on one core
    pool_users: int = bounded(8, minimum=1)
    pool_user_length: int = bounded(100_000, minimum=1)
    embedding_dim: int = bounded(144, minimum=1)  # K_h's width in TWIN's config
    topics: int = bounded(300, minimum=1)
    virtual_items: int = bounded(10_000, minimum=1)  # what TWIN-V2's GSU reads per request
    raw_behaviors: int = bounded(100_000, minimum=1)  # what TWIN's GSU would read for the same life cycle
    repeats: int = bounded(30, minimum=1)
    items: int = bounded(200_000, minimum=1)


def synthetic_user(length: int, settings: TwinV2BenchConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Item embeddings around `topics` centres and completion rates of one user's `length` behaviors."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(settings.topics, settings.embedding_dim)).astype(np.float32)
    noise = 0.5 * rng.normal(size=(length, settings.embedding_dim)).astype(np.float32)
    return centers[rng.integers(0, settings.topics, length)] + noise, rng.random(length) * 1.2


def seconds_hierarchical(embeddings: np.ndarray, completion: np.ndarray, config: ClusteringConfig) -> float:
    """Alg. 1 for one user, virtual items included."""
    start = time.perf_counter()
    cluster_behaviors(embeddings, completion, {}, config, key=0)
    return time.perf_counter() - start


def seconds_flat(embeddings: np.ndarray, completion: np.ndarray, config: ClusteringConfig) -> float:
    """One k-means per completion group with Alg. 1's cluster count (counted first, untimed)."""
    groups = completion_groups(completion, config.groups)
    members = [embeddings[groups == group] for group in range(config.groups)]
    rng = np.random.default_rng(config.seed)
    counts = [len(hierarchical_clusters(vectors, config, rng)) if len(vectors) else 0 for vectors in members]
    start = time.perf_counter()
    for vectors, count in zip(members, counts, strict=True):
        if count:
            KMEANS_IMPLEMENTATIONS[config.kmeans](vectors, count, config.iterations, rng)
    return time.perf_counter() - start


def clustering_figures(settings: TwinV2BenchConfig, config: ClusteringConfig) -> list[BenchFigure]:
    """Behaviors/s of Alg. 1 for one user on one core: against flat k-means with the same cluster count where
    that can be timed, and at the longest length against the shortest (how it scales)."""
    figures, rates = [], {}
    note = f"{config.kmeans} k-means, one core"
    for length in settings.user_lengths:
        embeddings, completion = synthetic_user(length, settings, seed=length)
        rates[length] = length / seconds_hierarchical(embeddings, completion, config)
        if length <= settings.flat_max_length:
            flat = length / seconds_flat(embeddings, completion, config)
            name = f"hierarchical clustering, {length:,} behaviors"
            baseline = "flat k-means, same cluster count"
            figures.append(throughput_figure(name, rates[length], baseline, flat, note, "behaviors/s"))
    shortest, longest = min(rates), max(rates)
    if longest != shortest:
        name = f"hierarchical clustering, {longest:,} behaviors"
        baseline = f"hierarchical clustering, {shortest:,} behaviors"
        figures.append(throughput_figure(name, rates[longest], baseline, rates[shortest], note, "behaviors/s"))
    return figures


def pool_figures(settings: TwinV2BenchConfig, config: ClusteringConfig) -> list[BenchFigure]:
    """Users per second of the whole job: a process pool on every core against one core."""
    users, embeddings = [], []
    for user in range(settings.pool_users):
        vectors, completion = synthetic_user(settings.pool_user_length, settings, seed=user)
        items = np.arange(len(vectors)) + user * len(vectors)  # each behavior its own row of the table
        users.append(UserBehaviors(user, items, completion, {"completion": completion}, {}))
        embeddings.append(vectors)
    table = np.concatenate(embeddings)
    rates = {}
    for backend in ("serial", "process"):
        with tempfile.TemporaryDirectory() as folder:
            job = ClusteringJob(Path(folder), config, backend, shard_size=1, progress=False)
            start = time.perf_counter()
            job.run(users, table)
            rates[backend] = len(users) / (time.perf_counter() - start)
    note = f"{len(users)} users of {settings.pool_user_length:,} behaviors, {os.cpu_count()} cores"
    return [
        throughput_figure(
            "clustering job, process pool", rates["process"], "one core", rates["serial"], note, "users/s"
        )
    ]


def online_figures(settings: TwinV2BenchConfig, model_config, cross_sizes) -> list[BenchFigure]:
    """GSU+ESU latency of one request on the clustered life cycle against TWIN on raw behaviors, one thread."""
    shape = (
        model_config.num_heads,
        model_config.key_dim,
        model_config.id_embedding_dim,
        model_config.feature_embedding_dim,
    )
    virtual = OneRequestGSU(settings.virtual_items, settings.items, *shape, cross_sizes, cluster_sizes=True)
    raw = OneRequestGSU(settings.raw_behaviors, settings.items, *shape, cross_sizes)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        v2, twin = median_seconds(virtual.serve, settings.repeats), median_seconds(raw.serve, settings.repeats)
    finally:
        torch.set_num_threads(previous)
    name = f"TWIN-V2 GSU+ESU, {settings.virtual_items:,} virtual items"
    return [speedup_figure(name, v2, f"TWIN GSU+ESU, {settings.raw_behaviors:,} raw behaviors", twin, "one thread")]


def run_benchmarks(
    settings: TwinV2BenchConfig, clustering: ClusteringConfig, model_config, cross_sizes
) -> list[BenchFigure]:
    return [
        *clustering_figures(settings, clustering),
        *pool_figures(settings, clustering),
        *online_figures(settings, model_config, cross_sizes),
    ]
