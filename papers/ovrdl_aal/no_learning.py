"""No-learning identity scores for the CMNIST test cells: the ceiling and the rows a practitioner tries first.

- oracle: the generator's ground-truth identity as a one-hot score;
- trivial_chance: uniform random identity scores;
- trivial_colour: the colour shortcut, P(identity | stroke colour) counted on the training split, each sample's
  colour read from its pixels. Under the protocol the test colours are swapped, so this scores below chance.
"""

from __future__ import annotations

import numpy as np

from papers.ovrdl_aal.cmnist import COLOURS

SCORERS = ("oracle", "trivial_chance", "trivial_colour")


def oracle_scores(identities: np.ndarray, classes: int) -> np.ndarray:
    """One-hot scores [n, classes] of the true identities."""
    return np.eye(classes, dtype=np.float32)[np.asarray(identities, dtype=np.int64)]


def chance_scores(samples: int, classes: int, seed: int) -> np.ndarray:
    """Independent uniform scores [samples, classes]."""
    return np.random.default_rng(seed).random((samples, classes), dtype=np.float32)


def stroke_colour(images: np.ndarray) -> np.ndarray:
    """Each image's stroke colour index: the palette colour its summed channel intensities project on most
    (the grey background adds the same to every palette colour)."""
    channel_totals = np.asarray(images, dtype=np.float64).sum(axis=(2, 3))  # [n, 3]
    return (channel_totals @ COLOURS.T).argmax(axis=1)


def colour_identity_frequencies(colours: np.ndarray, identities: np.ndarray, classes: int) -> np.ndarray:
    """P(identity | colour) [palette, classes] from the rows given; a colour never seen scores 0 everywhere."""
    counts = np.zeros((len(COLOURS), classes))
    np.add.at(counts, (colours, identities), 1)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def colour_scores(images: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Each image's identity scores: the identity frequencies of its stroke colour."""
    return frequencies[stroke_colour(images)].astype(np.float32)
