"""The fine-tuned classifier baseline: the backbone and a linear head are trained as a multi-label classifier
over the training labels (on the training episodes' images); for a test episode, a new linear head over its N
labels is fitted on the support images' frozen features and scores the queries. It cannot score a label
without support images (it has no word vectors): such episodes get constant scores."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from common.backbones import feature_backbone
from papers.ml_fsic.model import PrototypeModelConfig


class FineTunedClassifier(nn.Module):
    def __init__(self, config: PrototypeModelConfig, labels: int, head_steps: int = 100, head_lr: float = 0.1):
        super().__init__()
        self.backbone = feature_backbone(config.backbone, config.backbone_weights, (-1,))
        self.head = nn.Linear(self.backbone.feature_info.channels()[-1], labels)
        self.head_steps, self.head_lr = head_steps, head_lr

    def features(self, images: torch.Tensor) -> torch.Tensor:
        (local,) = self.backbone(images)
        return local.mean((2, 3))

    def forward(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training: the head's logits of the episode's labels (label_ids) for its support and query images."""
        support = len(episode["support"])
        logits = self.head(self.features(torch.cat([episode["support"], episode["query"]])))[:, episode["label_ids"]]
        return {"support_scores": logits[:support], "query_scores": logits[support:]}

    def fit_and_score(self, episode: dict[str, torch.Tensor]) -> torch.Tensor:
        """Query logits [Q, N] from a linear head fitted (Adam) on the support set's frozen features,
        standardized by the support set's mean and spread."""
        labels = episode["query_targets"].shape[1]
        with torch.no_grad():
            query = self.features(episode["query"])
            if not len(episode["support"]):
                return torch.zeros(len(query), labels, device=query.device)
            support = self.features(episode["support"])
            centre, spread = support.mean(0), support.std(0, unbiased=False) + 1e-6
            support, query = (support - centre) / spread, (query - centre) / spread
        head = nn.Linear(query.shape[1], labels).to(query.device)
        optimizer = torch.optim.Adam(head.parameters(), lr=self.head_lr)
        with torch.enable_grad():
            for _ in range(self.head_steps):
                loss = functional.binary_cross_entropy_with_logits(head(support), episode["support_targets"])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            return head(query)
