"""Episodes as batch sources for the shared trainer: one global batch = one episode's images and targets.
An episode is a function of (seed, index), so runs and resumed runs draw the same ones; a training run has
as many indices as episodes, so no episode repeats."""

from __future__ import annotations

import numpy as np
import torch

from papers.ml_fsic.episodes import sample_episode


class EpisodeSource:
    """`count` episodes over one split: images [I, 3, H, W] (normalized), labels [I, L] over the split's
    labels, word vectors [L, dim]. `shots` lists the shot counts drawn in turn (e.g. [1, 5, 0]); 0 shots is an
    episode without any support image, so every prototype comes from its word vector alone."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, word_vectors: torch.Tensor, count: int,
                 ways: int, shots: list[int], queries_per_label: int, seed: int):  # fmt: skip
        self.images, self.labels, self.word_vectors = images, labels, word_vectors
        self.count, self.ways, self.shots, self.queries = count, ways, shots, queries_per_label
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        if len(indices) != 1:
            raise ValueError(f"an episode is one batch: got {len(indices)} indices (set the batch size to 1)")
        index = int(indices[0])
        shots = self.shots[index % len(self.shots)]
        rng = np.random.default_rng([self.seed, index])
        episode = sample_episode(self.labels, self.ways, max(shots, 1), self.queries, rng)
        support = episode.support[: len(episode.support) if shots else 0]
        return {
            "support": self.images[support],
            "support_targets": torch.from_numpy(episode.support_targets[: len(support)]),
            "query": self.images[episode.query],
            "query_targets": torch.from_numpy(episode.query_targets),
            "word_vectors": self.word_vectors[episode.labels],
            "label_ids": torch.from_numpy(episode.labels),
            "shots": torch.tensor([shots]),
            "episode": torch.tensor([index]),
        }
