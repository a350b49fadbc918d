"""The N-way K-shot multi-label episode sampler's guarantees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from papers.ml_fsic.episodes import sample_episode
from papers.ml_fsic.episodes_source import EpisodeSource


def random_labels(seed: int, images: int = 300, labels: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.random((images, labels)) < 0.15
    matrix[np.arange(images), rng.integers(0, labels, images)] = True  # every image has a label
    return matrix


@pytest.mark.parametrize(("seed", "shots"), [(0, 1), (1, 5), (2, 5)])
def test_every_support_label_has_k_images_and_targets_are_episode_labels(seed, shots):
    matrix = random_labels(seed)
    episode = sample_episode(matrix, ways=5, shots=shots, queries_per_label=4, rng=np.random.default_rng(seed))
    assert len(set(episode.labels.tolist())) == 5
    assert (episode.support_targets.sum(0) >= shots).all()  # K images per label (more where others show it)
    assert not set(episode.support) & set(episode.query)  # distinct images
    assert len(set(episode.support)) == len(episode.support) and len(set(episode.query)) == len(episode.query)
    assert np.array_equal(episode.query_targets, matrix[np.ix_(episode.query, episode.labels)])
    assert (episode.query_targets.sum(1) >= 1).all()  # each query shows an episode label


def test_rare_labels_get_what_exists_and_exclusive_episodes_skip_outside_labels():
    matrix = np.zeros((6, 3), dtype=bool)
    matrix[[0, 1, 2, 3], 0] = True
    matrix[[4], 1] = True  # label 1 has a single image
    matrix[[3, 5], 2] = True
    episode = sample_episode(matrix, ways=2, shots=5, queries_per_label=1, rng=np.random.default_rng(3))
    assert len(episode.support) + len(episode.query) <= 6
    exclusive = sample_episode(matrix[:, :2], ways=2, shots=2, queries_per_label=2, rng=np.random.default_rng(0))
    assert set(exclusive.support) | set(exclusive.query) <= {0, 1, 2, 3, 4}
    one_way = sample_episode(matrix, ways=1, shots=2, queries_per_label=2, rng=np.random.default_rng(1), exclusive=True)
    drawn = set(one_way.support) | set(one_way.query)
    assert 3 not in drawn  # image 3 shows labels 0 and 2: whichever is drawn, the other lies outside
    with pytest.raises(ValueError, match="fewer than ways=4"):
        sample_episode(matrix, ways=4, shots=1, queries_per_label=1, rng=np.random.default_rng(0))


def test_an_all_label_episode_scores_every_label_of_the_split_as_the_authors_episodes():
    """ways=None: the authors' training episodes hold every training label (one support image and four queries
    each) and their test episodes every test label, so the losses and metrics run over all of them."""
    matrix = random_labels(4)
    episode = sample_episode(matrix, ways=None, shots=1, queries_per_label=4, rng=np.random.default_rng(0))
    assert episode.labels.tolist() == list(range(12))
    assert episode.support_targets.shape[1] == episode.query_targets.shape[1] == 12
    assert (episode.support_targets.sum(0) >= 1).all() and (episode.query_targets.sum(0) >= 4).all()
    np.testing.assert_array_equal(episode.query_targets, matrix[episode.query])  # every label of each image
    source = EpisodeSource(torch.zeros(300, 3, 4, 4), matrix, torch.randn(12, 6), 2, ways=None, shots=[5],
                           queries_per_label=4, seed=0)  # fmt: skip
    batch = source.batch(np.array([1]))
    assert batch["word_vectors"].shape == (12, 6) and batch["label_ids"].tolist() == list(range(12))
