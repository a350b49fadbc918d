"""TWIN-V2's hierarchical clustering: invariants of Alg. 1 and of the virtual items."""

import numpy as np
import pytest

from papers.twin.clustering import ClusteringConfig, cluster_behaviors, completion_groups, hierarchical_clusters, kmeans


@pytest.fixture(scope="module")
def behaviors():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(12, 8))
    topic = rng.integers(0, 12, 3_000)
    embeddings = centers[topic] + 0.1 * rng.normal(size=(3_000, 8))
    completion = rng.random(3_000) * 1.4
    return embeddings, completion, {"time_ms": rng.random(3_000) * 1e12, "completion": completion}


def test_every_behavior_in_exactly_one_cluster_and_no_cluster_above_gamma(behaviors):
    embeddings, completion, numeric = behaviors
    virtual = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(max_cluster_size=20), key=3)
    assert virtual.size.sum() == len(embeddings)
    assert np.bincount(virtual.labels).tolist() == virtual.size.tolist()
    assert virtual.size.max() <= 20 and virtual.size.min() >= 1


def test_clusters_never_mix_completion_groups(behaviors):
    embeddings, completion, numeric = behaviors
    virtual = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(groups=5), key=3)
    groups = completion_groups(completion, 5)
    for cluster in range(len(virtual.size)):
        assert len(set(groups[virtual.labels == cluster].tolist())) == 1


def test_deterministic_under_the_seed_and_key(behaviors):
    embeddings, completion, numeric = behaviors
    first = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(seed=1), key=9)
    again = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(seed=1), key=9)
    other = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(seed=2), key=9)
    assert (first.labels == again.labels).all() and (first.representative == again.representative).all()
    assert not (first.labels == other.labels).all()


def test_virtual_item_features_are_means_and_the_member_nearest_the_centroid(behaviors):
    embeddings, completion, numeric = behaviors
    virtual = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(), key=3)
    for cluster in (0, len(virtual.size) // 2, len(virtual.size) - 1):
        members = np.flatnonzero(virtual.labels == cluster)
        assert virtual.means["time_ms"][cluster] == pytest.approx(numeric["time_ms"][members].mean())
        centroid = embeddings[members].mean(0)
        nearest = members[np.argmin(((embeddings[members] - centroid) ** 2).sum(1))]
        assert virtual.representative[cluster] == nearest


def test_k_grows_with_the_group_and_recursion_ends_on_identical_vectors():
    rng = np.random.default_rng(0)
    config = ClusteringConfig(max_cluster_size=5)
    same = np.ones((64, 4))
    clusters = hierarchical_clusters(same, config, rng)
    assert sum(len(c) for c in clusters) == 64 and max(len(c) for c in clusters) <= 5
    labels = kmeans(rng.normal(size=(500, 4)), 6, 10, rng)
    assert set(labels.tolist()) == set(range(6))


def test_completion_groups_are_equal_width_bins_capped_at_one():
    groups = completion_groups(np.array([0.0, 0.19, 0.2, 0.99, 1.0, 2.5]), 5)
    assert groups.tolist() == [0, 0, 1, 4, 4, 4]


def test_flat_ablation_makes_as_many_clusters_per_group_from_one_k_means(behaviors):
    embeddings, completion, numeric = behaviors
    hierarchical = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(), key=3)
    flat = cluster_behaviors(embeddings, completion, numeric, ClusteringConfig(method="flat"), key=3)
    groups = completion_groups(completion, 5)
    for group in range(5):
        in_group = groups == group
        assert len(np.unique(flat.labels[in_group])) <= len(np.unique(hierarchical.labels[in_group]))
    assert flat.size.sum() == len(embeddings) and flat.spread.min() >= 0
