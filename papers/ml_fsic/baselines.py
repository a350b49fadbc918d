"""Baselines without word vectors; neither can score a label without support images (such episodes get
constant scores).

- Fine-tuned classifier: the backbone and a linear head are trained as a multi-label classifier over the
  training labels (on the training episodes' images); for a test episode, a new linear head over its N labels
  is fitted on the support images' frozen features and scores the queries.
- LaSO-style (Alfassy et al., CVPR 2019): the same classifier, trained jointly with three label-set operation
  networks M_int, M_uni, M_sub that map a pair of image features to the feature of an image whose labels are
  the pair's intersection, union and difference; at test time the support set is augmented with the
  operations' outputs on every ordered pair of support images before the head is fitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from common.config import bounded
from papers.ml_fsic.model import FeatureStandardization, PrototypeModelConfig, frozen_or_trained_backbone


@dataclass
class EpisodeHeadConfig:
    """The linear head a test episode fits on its support set's frozen features (`model.episode_head`)."""

    steps: int = bounded(100, minimum=1)
    lr: float = bounded(0.1, above=0.0)


class FineTunedClassifier(nn.Module):
    def __init__(self, config: PrototypeModelConfig, labels: int, episode_head: EpisodeHeadConfig | None = None):
        super().__init__()
        self.backbone = frozen_or_trained_backbone(config)
        self.takes_features = config.freeze_backbone  # inputs are cached local features, not images
        self.standardize = FeatureStandardization(self.backbone.feature_info.channels()[-1])
        self.head = nn.Linear(self.backbone.feature_info.channels()[-1], labels)
        self.episode_head = episode_head or EpisodeHeadConfig()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        local = self.standardize(images if self.takes_features else self.backbone(images)[0])
        return local.mean((2, 3))

    def forward(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training: the head's logits of the episode's labels (label_ids) for its support and query images."""
        support = len(episode["support"])
        logits = self.head(self.features(torch.cat([episode["support"], episode["query"]])))[:, episode["label_ids"]]
        return {"support_scores": logits[:support], "query_scores": logits[support:]}

    def fit_and_score(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Query logits [Q, N] from a head fitted on the episode's support set (`fitted_scorer`)."""
        labels = episode["query_targets"].shape[1]
        return self.fitted_scorer(episode["support"], episode["support_targets"], labels)(episode["query"])

    def fitted_scorer(
        self, support: torch.Tensor, support_targets: torch.Tensor, labels: int
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A function from images [Q, 3, H, W] to logits [Q, N]: a linear head over N labels fitted (Adam) on the
        support set's frozen features, standardized by the support set's mean and spread; constant scores
        without support images."""
        if not len(support):
            return lambda images: torch.zeros(len(images), labels, device=images.device)
        with torch.no_grad():
            real = self.features(support)
            augmented, targets = self.support_set(real, support_targets)
            centre, spread = real.mean(0), real.std(0, unbiased=False) + 1e-6
            augmented = (augmented - centre) / spread
        head = nn.Linear(real.shape[1], labels).to(real.device)
        optimizer = torch.optim.Adam(head.parameters(), lr=self.episode_head.lr)
        with torch.enable_grad():
            for _ in range(self.episode_head.steps):
                loss = functional.binary_cross_entropy_with_logits(head(augmented), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        @torch.no_grad()
        def scores(images: torch.Tensor) -> torch.Tensor:
            return head((self.features(images) - centre) / spread)

        return scores

    def support_set(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The features and targets the episode's head is fitted on: the support images as they are."""
        return features, targets


class SetOperation(nn.Module):
    """M(a, b): an MLP over a concatenated pair of (non-negative, GAP) image features."""

    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(2 * dim, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim),
            nn.ReLU(),
        )  # fmt: skip

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([a, b], dim=-1))


class LaSOClassifier(FineTunedClassifier):
    def __init__(self, config: PrototypeModelConfig, labels: int, episode_head: EpisodeHeadConfig | None = None):
        super().__init__(config, labels, episode_head)
        dim = self.head.in_features
        self.intersection, self.union, self.difference = SetOperation(dim), SetOperation(dim), SetOperation(dim)

    def forward(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The classifier's logits as in the fine-tuned baseline, plus LaSO's losses on each episode image paired
        with another: the classifier's BCE on the three synthesized features against the label-set operations'
        targets, the symmetry of ∩ and ∪, and the reconstruction of both inputs (LaSO's mode-collapse term)."""
        support = len(episode["support"])
        features = self.features(torch.cat([episode["support"], episode["query"]]))
        targets = torch.cat([episode["support_targets"], episode["query_targets"]])
        logits = self.head(features)[:, episode["label_ids"]]
        partner = torch.randperm(len(features), device=features.device)
        a, b = features, features[partner]
        synthesized, synthesized_targets = self.set_operations(a, b, targets, targets[partner])
        both, either, only_a = synthesized
        classification = functional.binary_cross_entropy_with_logits(
            self.head(torch.cat(synthesized))[:, episode["label_ids"]], torch.cat(synthesized_targets)
        )
        symmetry = functional.mse_loss(both, self.intersection(b, a)) + functional.mse_loss(either, self.union(b, a))
        reconstruction = functional.mse_loss(self.union(only_a, both), a) + functional.mse_loss(
            self.union(self.difference(b, a), both), b
        )
        return {
            "support_scores": logits[:support],
            "query_scores": logits[support:],
            "auxiliary_loss": classification + symmetry + reconstruction,
        }

    def set_operations(self, a: torch.Tensor, b: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor):
        """[M_int(a, b), M_uni(a, b), M_sub(a, b)] and their targets [y_a ∧ y_b, y_a ∨ y_b, y_a ∧ ¬y_b]."""
        features = [self.intersection(a, b), self.union(a, b), self.difference(a, b)]
        return features, [y_a * y_b, torch.maximum(y_a, y_b), y_a * (1 - y_b)]

    def support_set(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The support images plus M_int, M_uni and M_sub of every ordered pair of distinct support images."""
        first, second = torch.triu_indices(len(features), len(features), 1, device=features.device)
        first, second = torch.cat([first, second]), torch.cat([second, first])
        synthesized, labels = self.set_operations(features[first], features[second], targets[first], targets[second])
        return torch.cat([features, *synthesized]), torch.cat([targets, *labels])
