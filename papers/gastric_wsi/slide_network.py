"""Network 3: the slide-level decision from the patch network's outputs over a slide's tissue tiles.

Slide features (the paper does not say which it uses): a 10-bin histogram of the tiles' lesion
probabilities, the top-k probabilities, and the lesion-area fraction (tissue tiles' pixels predicted lesion).
A 3-layer MLP maps them to the slide's logit; the baseline scores a slide by its highest tile probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from common.config import bounded
from common.errors import ConfigError


@dataclass
class SlideNetConfig:
    bins: int = bounded(10, minimum=1)
    top_k: int = bounded(5, minimum=1)
    hidden: list[int] = bounded(default_factory=lambda: [32, 16], minimum=1)  # two hidden layers: three linear
    epochs: int = bounded(300, minimum=1)  # full-batch Adam steps over the training slides' features
    lr: float = bounded(0.01, above=0.0)
    weight_decay: float = bounded(0.001, minimum=0.0)

    def __post_init__(self):
        if len(self.hidden) != 2:
            raise ConfigError(
                f"Bad config value pipeline.slide_net.hidden={list(self.hidden)!r}: network 3 is a 3-layer MLP, so it "
                f"takes exactly 2 hidden widths, not {len(self.hidden)}."
            )


def slide_features(probabilities: np.ndarray, lesion_fraction: float, config: SlideNetConfig) -> np.ndarray:
    """[bins + top_k + 1] features of one slide from its tiles' lesion probabilities."""
    histogram = np.histogram(probabilities, bins=config.bins, range=(0.0, 1.0))[0] / max(len(probabilities), 1)
    top = np.zeros(config.top_k)
    highest = np.sort(probabilities)[::-1][: config.top_k]
    top[: len(highest)] = highest
    return np.concatenate([histogram, top, [lesion_fraction]]).astype(np.float32)


class SlideNet(nn.Module):
    def __init__(self, inputs: int, hidden: list[int]):
        super().__init__()
        first, second = hidden
        self.layers = nn.Sequential(
            nn.Linear(inputs, first), nn.ReLU(), nn.Linear(first, second), nn.ReLU(), nn.Linear(second, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)[:, 0]


@torch.enable_grad()  # also when called from an evaluation under no_grad
def train_slide_net(features: np.ndarray, labels: np.ndarray, config: SlideNetConfig, seed: int) -> SlideNet:
    """Full-batch Adam on BCE over the training slides' features."""
    torch.manual_seed(seed)
    net = SlideNet(features.shape[1], config.hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    inputs, targets = torch.from_numpy(features), torch.from_numpy(labels.astype(np.float32))
    for _ in range(config.epochs):
        loss = functional.binary_cross_entropy_with_logits(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@torch.no_grad()
def slide_scores(net: SlideNet, features: np.ndarray) -> np.ndarray:
    return torch.sigmoid(net(torch.from_numpy(features))).numpy()
