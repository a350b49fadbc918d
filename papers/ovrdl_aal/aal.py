"""Stage 2, additive adversarial learning (AAL), over the stage-1 features f_k (fixed).

New generators G'_k = Dense(384, tanh) and discriminators D'_i = Dense(C_i, softmax) with an L1 penalty on
their weights; ŷ_i = D'_i(Σ_k G'_k(f_k)). Training samples are recombinations: each attribute's feature is
taken from an independently drawn training row (for a domain attribute, only among rows whose stage-1
probability of their true value is at or above the `confidence_percentile`-th percentile), and the mix carries each
row's label for its attribute. A mix whose ⟨identity, domains⟩ combination occurs in training is seen, else
unseen. Seen update: each attribute's CE through D'_i and G'_i (the other generators held fixed). Unseen
update: each attribute's CE through D'_i and G'_{j≠i} (G'_i held fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from common.config import bounded


@dataclass
class AALConfig:
    hidden: int = bounded(384, minimum=1)
    l1: float = bounded(0.01, minimum=0.0)  # on the discriminators' weights
    identity_weight: float = bounded(1.0, minimum=0.0)
    domain_weight: float = bounded(0.1, minimum=0.0)
    confidence_percentile: float = bounded(5.0, minimum=0.0, maximum=100.0)
    mixes_per_loop: int = bounded(20000, minimum=1)  # official train_phase2.py: 200k
    loops: int = bounded(3, minimum=1)  # official train_phase2.py: 10; each loop draws new mixes


class AAL(nn.Module):
    def __init__(self, config: AALConfig, feature_dim: int, classes: list[int]):
        super().__init__()
        self.config = config
        self.generators = nn.ModuleList(
            nn.Sequential(nn.Linear(feature_dim, config.hidden), nn.Tanh()) for _ in classes
        )
        self.discriminators = nn.ModuleList(nn.Linear(config.hidden, c) for c in classes)
        self.weights = [config.identity_weight] + [config.domain_weight] * (len(classes) - 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Identity probabilities [B, C_0] from stage-1 features [B, K, d]."""
        combined = sum(g(features[:, k]) for k, g in enumerate(self.generators))
        return torch.softmax(self.discriminators[0](combined), dim=1)

    def loss(self, features: torch.Tensor, labels: torch.Tensor, seen: bool) -> torch.Tensor:
        """Σ_i w_i · CE(D'_i(Σ_k G'_k f_k), y_i) + L1, where for attribute i only G'_i (seen) or only
        G'_{j≠i} (unseen) receive its gradient."""
        parts = [g(features[:, k]) for k, g in enumerate(self.generators)]
        loss = features.new_zeros(())
        for i, discriminator in enumerate(self.discriminators):
            trained = [p if (k == i) == seen else p.detach() for k, p in enumerate(parts)]
            loss = loss + self.weights[i] * functional.cross_entropy(discriminator(sum(trained)), labels[:, i])
        penalty = sum(d.weight.abs().sum() for d in self.discriminators)
        return loss + self.config.l1 * penalty


def confident_rows(probabilities: list[np.ndarray], labels: np.ndarray, percentile: float) -> list[np.ndarray]:
    """Per attribute, the training rows whose stage-1 probability of their true value is at or above the
    `percentile`-th percentile of those probabilities (every row for the identity, attribute 0)."""
    rows = [np.arange(len(labels))]
    for k in range(1, labels.shape[1]):
        own = probabilities[k][np.arange(len(labels)), labels[:, k]]
        rows.append(np.flatnonzero(own >= np.percentile(own, percentile)))
    return rows


class MixSource:
    """Recombined training samples for stage 2, `loops` x `mixes_per_loop` per epoch: a batch's mixes are drawn
    from rng([seed, its first index]), so a resumed run sees the same ones; a batch carries each mix's features
    [B, K, d], labels [B, K] and whether its combination is seen in training."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, rows: list[np.ndarray], config: AALConfig, seed: int):
        self.features, self.labels, self.rows, self.seed = features, labels, rows, seed
        self.count = config.mixes_per_loop * config.loops
        self.seen = {tuple(row) for row in labels.tolist()}

    def __len__(self) -> int:
        return self.count

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        attributes = self.labels.shape[1]
        rng = np.random.default_rng([self.seed, int(indices[0])])
        drawn = np.stack([rng.choice(self.rows[k], len(indices)) for k in range(attributes)], axis=1)  # [B, K]
        features = self.features[drawn, np.arange(attributes)]  # [B, K, d]: f_k of row drawn[:, k]
        labels = self.labels[drawn, np.arange(attributes)]
        seen = np.array([tuple(row) in self.seen for row in labels.tolist()])
        return {
            "features": torch.from_numpy(features.astype(np.float32)),
            "labels": torch.from_numpy(labels),
            "seen": torch.from_numpy(seen),
        }
