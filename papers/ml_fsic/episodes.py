"""N-way K-shot multi-label episodes.

An episode draws N labels of a split (every label of the split with `ways=None`, as the authors' episodes do:
their training episodes hold all 52 training labels, their test all 16 test labels); for each label, K support
images that show it (fewer only where the split has fewer), then query images that show it; images are distinct
across the support and the query sets. An image's targets are its labels among the episode's N, so every target
is an episode label; with `exclusive=True` only images all of whose labels are episode labels are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Episode:
    labels: np.ndarray  # [N] label indices of the split's label space
    support: np.ndarray  # [S] image indices
    support_targets: np.ndarray  # [S, N] 0/1
    query: np.ndarray  # [Q] image indices
    query_targets: np.ndarray  # [Q, N] 0/1


def sample_episode(
    image_labels: np.ndarray,
    ways: int | None,
    shots: int,
    queries_per_label: int,
    rng: np.random.Generator,
    exclusive: bool = False,
) -> Episode:
    """`image_labels` [images, labels] 0/1 over one split's labels (columns without any image are never
    drawn)."""
    image_labels = np.asarray(image_labels, dtype=bool)
    available = np.flatnonzero(image_labels.any(axis=0))
    if ways is None:
        labels = available
    elif len(available) < ways:
        raise ValueError(f"the split has {len(available)} labels with images, fewer than ways={ways}")
    else:
        labels = np.sort(rng.choice(available, ways, replace=False))
    eligible = image_labels[:, labels].any(axis=1)
    if exclusive:
        outside = np.ones(image_labels.shape[1], dtype=bool)
        outside[labels] = False
        eligible &= ~image_labels[:, outside].any(axis=1)
    taken = np.zeros(len(image_labels), dtype=bool)

    def draw(count: int) -> list[int]:
        chosen = []
        for label in labels:
            candidates = np.flatnonzero(eligible & image_labels[:, label] & ~taken)
            picked = rng.choice(candidates, min(count, len(candidates)), replace=False)
            taken[picked] = True
            chosen.extend(picked.tolist())
        return chosen

    support = np.array(draw(shots), dtype=np.int64)
    query = np.array(draw(queries_per_label), dtype=np.int64)
    return Episode(
        labels=labels,
        support=support,
        support_targets=image_labels[np.ix_(support, labels)].astype(np.float32),
        query=query,
        query_targets=image_labels[np.ix_(query, labels)].astype(np.float32),
    )
