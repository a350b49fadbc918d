"""TWIN-V2's offline hierarchical clustering of a user's life-cycle behaviors (Si et al., CIKM 2024, Alg. 1).

1. Split the behaviors into M groups by playing completion rate (play time / duration).
2. In each group, k-means on the item embeddings with k growing with the group's size; every cluster with
   more than gamma items is clustered again, recursively, until every cluster holds at most gamma items.
3. Each final cluster becomes a virtual item: numeric features are the members' mean, categorical features
   those of the member nearest the centroid, and the cluster's size n is kept (for alpha' = alpha + ln n).

The paper's full text could not be read here; M, the k rule and gamma are config values (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.config import bounded

METHODS = ("hierarchical", "flat")
KMEANS = ("faiss", "numpy")


@dataclass
class ClusteringConfig:
    method: str = bounded("hierarchical", choices=METHODS)  # Alg. 1; flat: one k-means per group (ablation)
    groups: int = bounded(5, minimum=1)  # M: groups of equal width in completion rate over [0, 1]
    k_exponent: float = bounded(0.3, above=0.0)  # k = max(2, floor(|group| ** k_exponent))
    max_cluster_size: int = bounded(20, minimum=1)  # gamma
    iterations: int = bounded(20, minimum=1)  # Lloyd iterations per k-means
    kmeans: str = bounded("faiss", choices=KMEANS)  # faiss (chosen by measurement, see the README) | numpy
    seed: int = bounded(0, minimum=0)


def completion_groups(completion: np.ndarray, groups: int) -> np.ndarray:
    """Group index in [0, M) of each behavior by completion rate, equal-width bins over [0, 1]."""
    return np.clip(np.floor(np.clip(completion, 0.0, 1.0) * groups), 0, groups - 1).astype(np.int64)


def faiss_kmeans(vectors: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """faiss's k-means on one thread (parallelism is across users); returns a label in [0, k) per row."""
    import faiss

    faiss.omp_set_num_threads(1)
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    model = faiss.Kmeans(
        data.shape[1],
        k,
        niter=iterations,
        seed=int(rng.integers(2**31 - 1)),
        min_points_per_centroid=1,
        max_points_per_centroid=len(data),
    )
    model.train(data)
    return model.index.search(data, 1)[1][:, 0].astype(np.int64)


def kmeans(vectors: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns a label in [0, k) per row."""
    n = len(vectors)
    squared = np.einsum("ij,ij->i", vectors, vectors)
    centers = np.empty((k, vectors.shape[1]), dtype=vectors.dtype)
    centers[0] = vectors[rng.integers(n)]
    closest = squared - 2 * vectors @ centers[0] + centers[0] @ centers[0]
    for index in range(1, k):
        weights = np.maximum(closest, 0)
        total = weights.sum()
        pick = rng.choice(n, p=weights / total) if total > 0 else rng.integers(n)
        centers[index] = vectors[pick]
        closest = np.minimum(closest, squared - 2 * vectors @ centers[index] + centers[index] @ centers[index])
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        distances = squared[:, None] - 2 * vectors @ centers.T + np.einsum("ij,ij->i", centers, centers)[None, :]
        new_labels = distances.argmin(1)
        if np.array_equal(new_labels, labels) and _ > 0:
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, vectors)
        occupied = counts > 0
        centers[occupied] = sums[occupied] / counts[occupied, None]
    return labels


KMEANS_IMPLEMENTATIONS = {"faiss": faiss_kmeans, "numpy": kmeans}


def hierarchical_clusters(vectors: np.ndarray, config: ClusteringConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices of each final cluster of `vectors` (one completion group): recursive k-means until every
    cluster holds at most gamma rows."""
    final, pending = [], [np.arange(len(vectors))]
    while pending:
        members = pending.pop()
        if len(members) <= config.max_cluster_size:
            final.append(members)
            continue
        k = min(len(members), max(2, int(len(members) ** config.k_exponent)))
        labels = KMEANS_IMPLEMENTATIONS[config.kmeans](vectors[members], k, config.iterations, rng)
        if labels.max() == labels.min():  # identical vectors: split evenly so that recursion ends
            labels = np.arange(len(members)) % k
        pending.extend(members[labels == label] for label in np.unique(labels))
    return final


@dataclass
class VirtualItems:
    """A user's clusters as items: `representative` indexes the member nearest each centroid (its categorical
    features stand for the cluster), `means` holds the members' mean of each numeric feature, `size` is n and
    `spread` the members' mean distance to their centroid (cluster quality: lower is tighter)."""

    representative: np.ndarray  # [clusters] index into the user's behaviors
    means: dict[str, np.ndarray]  # feature -> [clusters]
    size: np.ndarray  # [clusters]
    spread: np.ndarray  # [clusters]
    labels: np.ndarray  # [behaviors] cluster of each behavior


def cluster_behaviors(
    embeddings: np.ndarray, completion: np.ndarray, numeric: dict[str, np.ndarray], config: ClusteringConfig, key: int
) -> VirtualItems:
    """Alg. 1 for one user: completion groups, hierarchical k-means in each, then virtual items. The seed, `key`
    (e.g. the user id) and the group seed each group's k-means, so the result is the same whichever worker
    runs it, and the flat ablation sees the very cluster counts of Alg. 1."""
    groups = completion_groups(completion, config.groups)
    labels = np.empty(len(embeddings), dtype=np.int64)
    count = 0
    for group in range(config.groups):
        members = np.flatnonzero(groups == group)
        if len(members) == 0:
            continue
        clusters = hierarchical_clusters(embeddings[members], config, np.random.default_rng([config.seed, key, group]))
        if config.method == "flat":  # the same number of clusters, from one k-means
            rng = np.random.default_rng([config.seed, key, group, 1])
            found = KMEANS_IMPLEMENTATIONS[config.kmeans](embeddings[members], len(clusters), config.iterations, rng)
            clusters = [np.flatnonzero(found == label) for label in np.unique(found)]
        for cluster in clusters:
            labels[members[cluster]] = count
            count += 1
    size = np.bincount(labels, minlength=count)
    centroids = np.zeros((count, embeddings.shape[1]))
    np.add.at(centroids, labels, embeddings)
    centroids /= size[:, None]
    distance = np.einsum("ij,ij->i", embeddings - centroids[labels], embeddings - centroids[labels])
    order = np.lexsort((distance, labels))  # by cluster, nearest first
    first = np.searchsorted(labels[order], np.arange(count))
    means = {name: np.bincount(labels, weights=values, minlength=count) / size for name, values in numeric.items()}
    spread = np.bincount(labels, weights=np.sqrt(distance), minlength=count) / size
    return VirtualItems(representative=order[first], means=means, size=size, spread=spread, labels=labels)
