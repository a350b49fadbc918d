"""Stage 2, additive adversarial learning (AAL), over the stage-1 features f_k (fixed).

New generators G'_k = Dense(384, tanh) and discriminators D'_i = Dense(C_i, softmax) with an L1 penalty (0.01) on
their weights; ŷ_i = D'_i(Σ_k G'_k(f_k)). Training samples are recombinations: each attribute's feature is
taken from an independently drawn training row (for a domain attribute, only among rows whose stage-1
probability of their true value is at or above the `confidence_percentile`-th (5th) percentile), and the mix
carries each row's label for its attribute. A mix whose ⟨identity, domains⟩ combination occurs in training is
seen, else unseen. As the official `train_phase2.py` runs it, each step makes one seen update on a batch of seen
mixes, then `unseen_per_seen` = ⌊unseen mixes / seen mixes⌋ updates on batches of unseen mixes, and a loop
of the schedule has ⌊seen mixes / batch⌋ steps. Which generators an attribute's loss trains (`routing`):
- paper: as the paper and the official per-layer flags say: seen: CE_i through D'_i and G'_i only; unseen:
  CE_i through D'_i and G'_{j≠i};
- effective: as Keras 2 collects the flags when `make_gan_phase_2_seen/unseen` compile (after their loops):
  the seen update trains every D' and the last generator G'_{K-1} only, the unseen update every D' and
  G'_0 ... G'_{K-2}, each loss through the whole sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from common.config import bounded

ROUTINGS = ("paper", "effective")


@dataclass
class AALConfig:
    hidden: int = bounded(384, minimum=1)
    l1: float = bounded(0.01, minimum=0.0)  # on the discriminators' weights
    identity_weight: float = bounded(1.0, minimum=0.0)
    domain_weight: float = bounded(0.1, minimum=0.0)
    confidence_percentile: float = bounded(5.0, minimum=0.0, maximum=100.0)
    mixes_per_loop: int = bounded(200000, minimum=1)  # official train_phase2.py: 200k
    loops: int = bounded(10, minimum=1)  # official train_phase2.py: 10
    routing: str = bounded("paper", choices=ROUTINGS)


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

    def trained_generators(self, attribute: int, seen: bool) -> list[bool]:
        """Per generator k, whether attribute `attribute`'s loss trains G'_k in a seen or an unseen update."""
        last = len(self.generators) - 1
        if self.config.routing == "effective":
            return [(k == last) == seen for k in range(len(self.generators))]
        return [(k == attribute) == seen for k in range(len(self.generators))]

    def loss(self, features: torch.Tensor, labels: torch.Tensor, seen: bool) -> torch.Tensor:
        """Σ_i w_i · CE(D'_i(Σ_k G'_k f_k), y_i) + L1, each G'_k receiving attribute i's gradient only where
        `trained_generators(i, seen)` says."""
        parts = [g(features[:, k]) for k, g in enumerate(self.generators)]
        loss = features.new_zeros(())
        for i, discriminator in enumerate(self.discriminators):
            routed = zip(parts, self.trained_generators(i, seen), strict=True)
            trained = [part if train else part.detach() for part, train in routed]
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
    """Recombined training samples for stage 2 in the official schedule: `len(self)` / batch steps, each a batch
    of `batch_size` seen mixes followed by `unseen_per_seen` batches of unseen mixes ([B (1 + r), K, d]
    features, [B (1 + r), K] labels, `seen` flags). The ratio and the steps per loop come from a draw of
    `mixes_per_loop` mixes (as one official loop's); every batch's mixes are drawn afresh from rng([seed, 1, its
    first index]), so a resumed run sees the same ones."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, rows: list[np.ndarray], config: AALConfig,
                 seed: int, batch_size: int):  # fmt: skip
        self.features, self.labels, self.rows, self.seed = features, labels, rows, seed
        self.batch_size = batch_size
        self.radix = np.cumprod([1, *(labels.max(0)[:-1] + 1)])  # a combination's code, as the official coef
        self.seen_codes = np.unique(labels @ self.radix)
        drawn = self._mixes(np.random.default_rng([seed, 0]), config.mixes_per_loop)[1]
        seen = int(np.isin(drawn @ self.radix, self.seen_codes).sum())
        # ⌊unseen / seen⌋ as the official (integer division), at least 1 so that unseen updates are never skipped
        self.unseen_per_seen = max(1, (len(drawn) - seen) // max(seen, 1))
        self.count = config.loops * (seen // batch_size) * batch_size

    def __len__(self) -> int:
        return self.count

    def _mixes(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        attributes = self.labels.shape[1]
        drawn = np.stack([rng.choice(self.rows[k], count) for k in range(attributes)], axis=1)  # [n, K]
        return drawn, self.labels[drawn, np.arange(attributes)]

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 1, int(indices[0])])
        wanted = {True: len(indices), False: len(indices) * self.unseen_per_seen}
        kept = {True: [], False: []}
        while any(sum(len(part) for part in kept[s]) < wanted[s] for s in wanted):
            drawn, labels = self._mixes(rng, 2 * sum(wanted.values()))
            seen = np.isin(labels @ self.radix, self.seen_codes)
            for flag in wanted:
                kept[flag].append(drawn[seen == flag])
        drawn = np.concatenate([np.concatenate(kept[flag])[: wanted[flag]] for flag in (True, False)])
        attributes = np.arange(self.labels.shape[1])
        return {
            "features": torch.from_numpy(self.features[drawn, attributes].astype(np.float32)),  # f_k of drawn[:, k]
            "labels": torch.from_numpy(self.labels[drawn, attributes]),
            "seen": torch.from_numpy(np.arange(len(drawn)) < wanted[True]),
        }
