"""The interface a memory-based VOS model offers to the two-shot recipe: encode a frame's key, encode an
object's value from a frame and its mask, read the memory for a query, decode a readout into a mask logit.
The recipe (training on triplets, propagation, the pseudo-label bank) is written against it only, so any
model implementing it can be trained from two labeled frames per video.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class KeyFeatures:
    """What encoding a frame yields: the memory key / query key and the features the other steps reuse."""

    key: torch.Tensor  # [B, C_k, h, w]
    features: dict[str, torch.Tensor]  # model-specific (e.g. multi-scale features for the decoder)

    def select(self, rows) -> KeyFeatures:
        return KeyFeatures(self.key[rows], {name: value[rows] for name, value in self.features.items()})


class VOSModel(nn.Module, ABC):
    stride = 16  # frames are padded to a multiple of it (STCN: keys at stride 16)

    @abstractmethod
    def encode_key(self, frames: torch.Tensor) -> KeyFeatures:
        """frames [B, 3, H, W] (normalized) -> keys and features."""

    @abstractmethod
    def encode_value(
        self, frames: torch.Tensor, keys: KeyFeatures, mask: torch.Tensor, others: torch.Tensor
    ) -> torch.Tensor:
        """The memory value of one object: frames [B, 3, H, W], its mask and the other objects' [B, 1, H, W]."""

    @abstractmethod
    def read_memory(
        self, memory_keys: torch.Tensor, memory_values: torch.Tensor, query: KeyFeatures, top_k: int | None
    ) -> torch.Tensor:
        """memory_keys [B, C_k, N], memory_values [B, C_v, N] (N = frames × positions) -> readout at the query.
        With memory keys and query of batch 1, one affinity serves every row of memory_values (several objects)."""

    @abstractmethod
    def decode(self, readout: torch.Tensor, query: KeyFeatures) -> torch.Tensor:
        """The object's mask logit [B, 1, H, W] at the query frame (a query of batch 1 serves any B)."""


def soft_aggregate(probabilities: torch.Tensor) -> torch.Tensor:
    """Soft aggregation of per-object probabilities [B, K, H, W] into logits over background + K objects
    [B, K+1, H, W]: background = prod(1 - p_k), each clamped and turned into log-odds (STCN)."""
    background = torch.prod(1 - probabilities, dim=1, keepdim=True)
    joint = torch.cat([background, probabilities], dim=1).clamp(1e-7, 1 - 1e-7)
    return torch.log(joint / (1 - joint))
