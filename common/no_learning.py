"""No-learning scores shared by papers: what a practitioner would try before training a model."""

from __future__ import annotations

import numpy as np


def smoothed_positive_rates(keys: np.ndarray, labels: np.ndarray, num_keys: int, smoothing: float) -> np.ndarray:
    """Per key k, (positives_k + smoothing * rate) / (impressions_k + smoothing), rate being the positive rate over
    all rows (a Beta prior of `smoothing` pseudo-impressions; a key never seen scores the rate). `labels` is
    [rows] (returns [num_keys]) or [rows, tasks] (returns [num_keys, tasks], each task its own rate)."""
    labels = np.asarray(labels, dtype=np.float64)
    columns = labels.reshape(len(labels), -1)
    impressions = np.bincount(keys, minlength=num_keys)
    positives = np.stack([np.bincount(keys, weights=column, minlength=num_keys) for column in columns.T], axis=1)
    rates = (positives + smoothing * columns.mean(axis=0)) / (impressions[:, None] + smoothing)
    return rates if labels.ndim == 2 else rates[:, 0]
