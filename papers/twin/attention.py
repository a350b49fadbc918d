"""TWIN's target-attention score (§3.3), shared by the CP-GSU and the ESU.

    K_c W^c = [K_c,1 w^c_1, ..., K_c,J w^c_J]                                  (Eq. 5)
    alpha_a = (K_h W^h_a)(q W^q_a)^T / sqrt(d_k) + (K_c W^c) beta_a            (Eq. 6)
    head_a  = Softmax(alpha_a)^T K W^v_a                                       (Eq. 7)
    TWIN    = Concat(head_1, ..., head_4) W^o                                  (Eq. 8)

Equation numbers count the display equations of arXiv 2302.02352v2 in order (its HTML does not print
them). W^c is block diagonal: each cross feature j is projected by its own w^c_j in R^8 to one scalar, so
the per-behavior bias is a sum of J looked-up scalars.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from papers.twin.features import BehaviorFeatures


class TargetAttentionScorer(nn.Module):
    """The relevance alpha of Eq. 6 for every head; `use_cross=False` drops the cross-feature bias, and
    `use_cluster_size=True` scores TWIN-V2's virtual items with alpha' = alpha + ln n (cluster-aware attention)."""

    def __init__(
        self,
        features: BehaviorFeatures,
        query_dim: int,
        num_heads: int,
        key_dim: int,
        use_cross: bool,
        use_cluster_size: bool = False,
    ):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.use_cross, self.use_cluster_size = use_cross, use_cluster_size
        self.key_projection = nn.Linear(features.inherent_dim, num_heads * key_dim, bias=False)  # W^h
        self.query_projection = nn.Linear(query_dim, num_heads * key_dim, bias=False)  # W^q
        if use_cross:
            self.cross_projection = nn.Parameter(
                torch.randn(features.num_cross, features.cross_feature_dim) * 0.1
            )  # w^c
            self.cross_head_weight = nn.Parameter(torch.zeros(features.num_cross, num_heads))  # beta

    def project_keys(self, inherent: torch.Tensor) -> torch.Tensor:
        """K_h W^h, split per head: [..., heads, d_k]."""
        return self.key_projection(inherent).unflatten(-1, (self.num_heads, self.key_dim))

    def project_query(self, query: torch.Tensor) -> torch.Tensor:
        """q W^q / sqrt(d_k): [B, heads, d_k] (the scale is folded into the query)."""
        return self.query_projection(query).unflatten(-1, (self.num_heads, self.key_dim)) / math.sqrt(self.key_dim)

    def cross_bias(self, features: BehaviorFeatures, cross: torch.Tensor) -> torch.Tensor:
        """(K_c W^c) beta_a (Eq. 5, second term of Eq. 6) for each behavior: [B, heads, L]; zero without cross
        features. sum_j (K_c,j w^c_j) beta_j,a is looked up per feature value from [values_j, heads] tables and
        summed in one EmbeddingBag, never materialising the [B, L, J] scalars."""
        if not self.use_cross:
            return torch.zeros((cross.shape[0], self.num_heads, cross.shape[1]), device=cross.device)
        tables = [
            (table.weight @ self.cross_projection[j]).unsqueeze(1) * self.cross_head_weight[j]  # K_c,j w^c_j beta_j
            for j, table in enumerate(features.cross)
        ]
        bags = (cross + features.cross_offsets.to(cross.dtype)).flatten(0, -2)  # [B L, J]: rows of the joined table
        bias = F.embedding_bag(bags, torch.cat(tables), mode="sum")  # [B L, heads]
        return bias.unflatten(0, cross.shape[:-1]).transpose(1, 2)

    def behavior_bias(
        self, features: BehaviorFeatures, cross: torch.Tensor, sizes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Every per-behavior term added to the first term of Eq. 6: (K_c W^c) beta_a and, for virtual items,
        ln n of the cluster's size (TWIN-V2: alpha' = alpha + ln n, i.e. each cluster weighted by n exp(alpha)).
        [B, heads, L]."""
        bias = self.cross_bias(features, cross)
        if not self.use_cluster_size:
            return bias
        if sizes is None:
            raise ValueError("cluster-aware attention needs the virtual items' sizes (batch['history_size'])")
        return bias + sizes.clamp(min=1).log().unsqueeze(1)

    def dense_scores(self, inherent: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The first term of Eq. 6 for [B, k, H] keys: [B, heads, k]."""
        return torch.einsum("bkhd,bhd->bhk", self.project_keys(inherent), query)


def scores_by_item(
    items: torch.Tensor,
    item_vectors: Callable[[torch.Tensor], torch.Tensor],
    queries: torch.Tensor,
    num_items: int,
    budget: int = 1 << 26,
) -> torch.Tensor:
    """<item_vectors(item), query> for every behavior of a [B, L] history: [B, heads, L].

    Each item is projected once and scored against each sample's query in one GEMM, then the scores are
    gathered per behavior, so the cost grows with the items, not with B x L. With a small vocabulary the
    whole vocabulary is scored; otherwise the distinct items of chunks of samples, each chunk's score
    matrix kept within `budget` floats.
    """
    batch, heads = queries.shape[0], queries.shape[1]
    if batch * heads * num_items <= budget:
        table = torch.einsum("uhd,bhd->bhu", item_vectors(torch.arange(num_items, device=items.device)), queries)
        return table.gather(2, items.unsqueeze(1).expand(-1, heads, -1))
    out = queries.new_empty((batch, heads, items.shape[1]))
    rows = max(1, math.isqrt(budget // (heads * items.shape[1])))  # rows * heads * distinct items <= budget
    for start in range(0, batch, rows):
        unique, inverse = torch.unique(items[start : start + rows], return_inverse=True)
        table = torch.einsum("uhd,bhd->bhu", item_vectors(unique), queries[start : start + rows])
        out[start : start + rows] = table.gather(2, inverse.unsqueeze(1).expand(-1, heads, -1))
    return out


def union_of_heads_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CP-GSU selection (§3.3): walk the heads' rankings in turn (rank 1 of every head, then rank 2, ...)
    and keep the first k distinct behaviors. Returns positions [B, k] and a mask of real picks [B, k]."""
    batch, _, length = scores.shape
    per_head = scores.topk(min(k, length), dim=-1).indices  # [B, heads, k]
    walk = per_head.transpose(1, 2).reshape(batch, -1)  # rank-major traversal
    order = torch.arange(walk.shape[1], device=walk.device).expand(batch, -1)
    first_seen = torch.full((batch, length), walk.shape[1], dtype=order.dtype, device=walk.device)
    first_seen = first_seen.scatter_reduce(1, walk, order, reduce="amin")
    is_first = first_seen.gather(1, walk) == order
    keep = is_first & (is_first.cumsum(1) <= k)
    picked = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :k]
    return walk.gather(1, picked), keep.gather(1, picked)


def per_head_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The other reading of the CP-GSU's selection: every head keeps its own top k (FuxiCTR's TWIN) and its ESU
    head attends only to those. Returns positions [B, heads, k] and a mask of real picks (finite scores)."""
    top = scores.topk(min(k, scores.shape[-1]), dim=-1)
    return top.indices, torch.isfinite(top.values)


SELECTIONS = {"union": union_of_heads_top_k, "per_head": per_head_top_k}


def head_block_mask(picked: torch.Tensor) -> torch.Tensor:
    """For per-head selections [B, heads, k] laid out flat as [B, heads k]: which of the flat behaviors each head
    may attend to (its own k, where picked): [B, heads, heads k]."""
    heads = picked.shape[1]
    own = torch.eye(heads, dtype=torch.bool, device=picked.device)
    return (picked.unsqueeze(1) & own[None, :, :, None]).flatten(2)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis ignoring masked-out entries; an all-masked row gives zeros."""
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1) * mask


class MultiHeadTargetAttention(nn.Module):
    """Target attention over selected behaviors (the ESU, Eq. 7-8; also the short-term branch)."""

    def __init__(self, features: BehaviorFeatures, scorer: TargetAttentionScorer, value_dim: int, output_dim: int):
        super().__init__()
        self.scorer = scorer
        self.value_projection = nn.Linear(
            features.inherent_dim + features.cross_dim, scorer.num_heads * value_dim, bias=False
        )  # W^v
        self.output_projection = nn.Linear(scorer.num_heads * value_dim, output_dim)  # W^o
        self.value_dim = value_dim

    def forward(
        self,
        features: BehaviorFeatures,
        items: torch.Tensor,
        cross: torch.Tensor,
        mask: torch.Tensor,
        query: torch.Tensor,
        sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`mask` is [B, k] (every head attends to the same behaviors) or [B, heads, k] (each head its own)."""
        inherent = features.inherent(items)
        alpha = self.scorer.dense_scores(inherent, query) + self.scorer.behavior_bias(features, cross, sizes)  # Eq. 6
        weights = masked_softmax(alpha, mask if mask.dim() == 3 else mask.unsqueeze(1))
        keys = torch.cat([inherent, features.cross_embeddings(cross).flatten(-2)], dim=-1)  # K, unsplit
        values = self.value_projection(keys).unflatten(-1, (self.scorer.num_heads, self.value_dim))
        heads = torch.einsum("bhk,bkhd->bhd", weights, values)  # Softmax(alpha_a)^T K W^v_a
        return self.output_projection(heads.flatten(1))  # Concat(head_1..head_n) W^o, Eq. 8
