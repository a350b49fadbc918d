"""Embeddings of behavior features, split as TWIN §3.3.1 prescribes: K = [K_h, K_c] (Eq. 4).

K_h holds the inherent item features (video id, author, tag, duration), which depend on the item only and
can therefore be projected once per item and cached; K_c holds the user-item cross features (time since
the behavior, completion, tab, like, follow), J features of 8 dimensions each.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from papers.twin.data import Vocabulary


class BehaviorFeatures(nn.Module):
    def __init__(
        self,
        vocabulary: Vocabulary,
        item_author: np.ndarray,
        item_tag: np.ndarray,
        item_duration: np.ndarray,
        id_dim: int,
        feature_dim: int,
    ):
        super().__init__()
        self.item = nn.Embedding(vocabulary.items, id_dim, padding_idx=0)
        self.author = nn.Embedding(vocabulary.authors, id_dim, padding_idx=0)
        self.tag = nn.Embedding(vocabulary.tags, feature_dim, padding_idx=0)
        self.duration = nn.Embedding(vocabulary.durations, feature_dim, padding_idx=0)
        self.cross = nn.ModuleList(nn.Embedding(size, feature_dim, padding_idx=0) for size in vocabulary.cross)
        self.register_buffer("item_author", torch.as_tensor(item_author, dtype=torch.long), persistent=False)
        self.register_buffer("item_tag", torch.as_tensor(item_tag, dtype=torch.long), persistent=False)
        self.register_buffer("item_duration", torch.as_tensor(item_duration, dtype=torch.long), persistent=False)
        for table in (self.item, self.author):
            nn.init.normal_(table.weight, std=0.05)
        self.inherent_dim = 2 * id_dim + 2 * feature_dim
        self.cross_feature_dim = feature_dim
        self.num_cross = len(vocabulary.cross)
        sizes = torch.tensor([0, *vocabulary.cross[:-1]], dtype=torch.long)
        self.register_buffer("cross_offsets", sizes.cumsum(0), persistent=False)  # row of feature j's values
        self.cross_dim = feature_dim * self.num_cross

    def _inherent_tables(self, items: torch.Tensor):
        return (
            (self.item, items),
            (self.author, self.item_author[items]),
            (self.tag, self.item_tag[items]),
            (self.duration, self.item_duration[items]),
        )

    def inherent(self, items: torch.Tensor) -> torch.Tensor:
        """K_h of the given items: [..., H]."""
        return torch.cat([table(index) for table, index in self._inherent_tables(items)], dim=-1)

    def cross_embeddings(self, cross: torch.Tensor) -> torch.Tensor:
        """K_c split per feature: [..., J, 8]."""
        return torch.stack([table(cross[..., j]) for j, table in enumerate(self.cross)], dim=-2)

    def full(self, items: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
        """The unsplit feature K = [K_h, K_c]: [..., H + C]."""
        return torch.cat([self.inherent(items), self.cross_embeddings(cross).flatten(-2)], dim=-1)

    def _weighted_bags(self, pairs, weights: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                F.embedding_bag(
                    index.long(), table.weight, mode="sum", per_sample_weights=weights.to(table.weight.dtype)
                )
                for table, index in pairs
            ],
            dim=-1,
        )

    def pooled_inherent(self, items: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_i weights_i K_h,i over a [B, L] history without materialising [B, L, H] (EmbeddingBag)."""
        return self._weighted_bags(self._inherent_tables(items), weights)

    def pooled_full(self, items: torch.Tensor, cross: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """sum_i weights_i K_i over a [B, L] history: [B, H + C]."""
        cross_pairs = [(table, cross[..., j]) for j, table in enumerate(self.cross)]
        return self._weighted_bags([*self._inherent_tables(items), *cross_pairs], weights)
