"""General search units (GSU): how each two-stage model picks k of the L latest behaviors (Table 4).

Every retriever scores the [B, L] history (higher = keep) without gradient and returns positions into it;
the ESU then runs target attention on those k. Ties are broken by recency where a score has ties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from papers.twin.attention import SELECTIONS, TargetAttentionScorer, masked_softmax, scores_by_item
from papers.twin.features import BehaviorFeatures


@dataclass
class Selection:
    positions: torch.Tensor  # [B, k] into the history window; [B, heads, k] for a per-head selection
    mask: torch.Tensor  # same shape: a real behavior was picked


def _recency(mask: torch.Tensor) -> torch.Tensor:
    """A tie-breaker in [0, 1): later positions (more recent behaviors) score higher."""
    return torch.arange(mask.shape[1], device=mask.device, dtype=torch.float32) / mask.shape[1]


def top_k_selection(scores: torch.Tensor, mask: torch.Tensor, k: int) -> Selection:
    """Top-k of [B, L] scores among real behaviors (single-ranking retrievers)."""
    masked = scores.masked_fill(~mask, float("-inf"))
    positions = masked.topk(min(k, scores.shape[1]), dim=-1).indices
    return Selection(positions, mask.gather(1, positions))


class Retriever(nn.Module):
    """Base: select k behaviors; some retrievers also train their own parameters with an auxiliary loss."""

    searches = True  # False where the selection does not depend on relevance (DIN's recency window)

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def select(self, features: BehaviorFeatures, batch: dict, target_inherent: torch.Tensor) -> Selection:
        raise NotImplementedError

    def auxiliary_loss(self, features: BehaviorFeatures, batch: dict, target_inherent: torch.Tensor):
        return None


class RecentRetriever(Retriever):
    """DIN's input: the k most recent behaviors."""

    searches = False

    def select(self, features, batch, target_inherent):
        mask = batch["history_mask"]
        length = mask.shape[1]
        positions = torch.arange(max(0, length - self.k), length, device=mask.device).expand(mask.shape[0], -1)
        return Selection(positions, mask.gather(1, positions))


class CategoryRetriever(Retriever):
    """SIM Hard: behaviors whose category (tag) equals the target's, the most recent first."""

    def select(self, features, batch, target_inherent):
        history_tag = features.item_tag[batch["history_item"]]
        target_tag = features.item_tag[batch["target_item"]].unsqueeze(1)
        matches = (history_tag == target_tag) & (target_tag > 0)
        selection = top_k_selection(matches.float() + _recency(matches), batch["history_mask"], self.k)
        selection.mask &= matches.gather(1, selection.positions)
        return selection


def history_scores(
    scorer: TargetAttentionScorer,
    features: BehaviorFeatures,
    batch: dict,
    target_inherent: torch.Tensor,
    item_keys: Callable[[torch.Tensor], torch.Tensor],
    num_items: int,
) -> torch.Tensor:
    """Eq. 6 (with TWIN-V2's ln n where the scorer uses it) for every behavior of the [B, L] history, the first
    term from `item_keys` (K_h W^h of given items, fresh or cached): [B, heads, L], padding at -inf."""
    query = scorer.project_query(target_inherent)
    alpha = scores_by_item(batch["history_item"], item_keys, query, num_items)
    alpha = alpha + scorer.behavior_bias(features, batch["history_cross"], batch.get("history_size"))
    return alpha.masked_fill(~batch["history_mask"].unsqueeze(1), float("-inf"))


class ConsistencyPreservedGSU(Retriever):
    """TWIN's CP-GSU: the ESU's own Eq. 6 over all L behaviors, then the union of the heads' rankings
    (`selection="union"`) or each head's own top k (`"per_head"`).

    With `cache` set, K_h W^h is read from a detached per-item cache refreshed every few steps (as online,
    every 15 minutes) instead of being computed fresh.
    """

    def __init__(self, k: int, scorer: TargetAttentionScorer, num_items: int, use_cache: bool, selection: str):
        super().__init__(k)
        self.scorer = scorer
        self.selection = selection
        self.num_items = num_items
        self.use_cache = use_cache
        self.register_buffer("projection_cache", torch.empty(0), persistent=False)

    @torch.no_grad()
    def refresh_cache(self, features: BehaviorFeatures) -> None:
        items = torch.arange(self.num_items, device=features.item.weight.device)
        self.projection_cache = self.scorer.project_keys(features.inherent(items)).detach().clone()

    def item_keys(self, features: BehaviorFeatures, items: torch.Tensor) -> torch.Tensor:
        if self.use_cache:
            if self.projection_cache.numel() == 0:
                self.refresh_cache(features)
            return self.projection_cache[items]
        return self.scorer.project_keys(features.inherent(items))

    def scores(self, features: BehaviorFeatures, batch: dict, target_inherent: torch.Tensor) -> torch.Tensor:
        """Eq. 6 for all L behaviors: [B, heads, L], padding at -inf."""
        return history_scores(
            self.scorer, features, batch, target_inherent, lambda items: self.item_keys(features, items), self.num_items
        )

    @torch.no_grad()
    def select(self, features, batch, target_inherent):
        positions, picked = SELECTIONS[self.selection](self.scores(features, batch, target_inherent), self.k)
        real = batch["history_mask"].gather(1, positions.flatten(1)).view_as(positions)
        return Selection(positions, picked & real)


class AuxiliaryRetrievalTask(nn.Module):
    """Trains a retriever's own parameters (which the hard top-k cannot): the retriever's softmax over all L
    pools the behaviors into one vector that predicts the click (SIM's soft-search auxiliary task)."""

    def __init__(self, pooled_dim: int, target_dim: int, hidden: int = 64):
        super().__init__()
        self.head = nn.Sequential(nn.Linear(pooled_dim + target_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pooled: torch.Tensor, target: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logit = self.head(torch.cat([pooled, target], dim=-1)).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logit.float(), label.float())


class SeparateParameterGSU(ConsistencyPreservedGSU):
    """Fig. 6 ablation: the CP-GSU with its own copy of W^h, W^q, W^c, beta, trained by the auxiliary task."""

    def __init__(self, k: int, scorer: TargetAttentionScorer, num_items: int, features: BehaviorFeatures):
        super().__init__(k, scorer, num_items, use_cache=False, selection="union")
        self.auxiliary = AuxiliaryRetrievalTask(features.inherent_dim, features.inherent_dim)

    def auxiliary_loss(self, features, batch, target_inherent):
        weights = masked_softmax(self.scores(features, batch, target_inherent).mean(1), batch["history_mask"])
        pooled = features.pooled_inherent(batch["history_item"], weights)
        return self.auxiliary(pooled, target_inherent, batch["label"])


class SoftSearchRetriever(Retriever):
    """SIM Soft: inner product of separately trained retrieval embeddings, (W_b e_i) . (W_a e_t)."""

    def __init__(self, k: int, num_items: int, dim: int):
        super().__init__(k)
        self.num_items = num_items
        self.embedding = nn.Embedding(num_items, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.05)
        self.behavior_projection = nn.Linear(dim, dim, bias=False)
        self.target_projection = nn.Linear(dim, dim, bias=False)
        self.auxiliary = AuxiliaryRetrievalTask(dim, dim)

    def scores(self, batch: dict) -> torch.Tensor:
        query = self.target_projection(self.embedding(batch["target_item"])).unsqueeze(1)
        return scores_by_item(
            batch["history_item"], lambda items: self.behavior_projection(self.embedding(items)).unsqueeze(1),
            query, self.num_items,
        ).squeeze(1)  # fmt: skip

    @torch.no_grad()
    def select(self, features, batch, target_inherent):
        return top_k_selection(self.scores(batch), batch["history_mask"], self.k)

    def auxiliary_loss(self, features, batch, target_inherent):
        weights = masked_softmax(self.scores(batch), batch["history_mask"])
        pooled = F.embedding_bag(batch["history_item"], self.embedding.weight, mode="sum", per_sample_weights=weights)
        return self.auxiliary(pooled, self.embedding(batch["target_item"]), batch["label"])


class SimHashRetriever(Retriever):
    """Locality-sensitive hashing of K_h with fixed random hyperplanes (SimHash).

    ETA: rank by Hamming distance between the behavior's and the target's m-bit signatures.
    SDIM (`buckets` > 1): split the bits into `buckets` hash functions of m/buckets bits each and rank by the
    number of functions whose bucket matches the target's (the behaviors SDIM would sample).
    """

    def __init__(self, k: int, input_dim: int, bits: int, buckets: int, num_items: int, seed: int = 0):
        super().__init__(k)
        if bits % buckets:
            raise ValueError(f"hash bits ({bits}) must split evenly into {buckets} hash functions")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("hyperplanes", torch.randn(input_dim, bits, generator=generator), persistent=False)
        self.buckets, self.bits_per_bucket, self.num_items = buckets, bits // buckets, num_items

    def signatures(self, inherent: torch.Tensor) -> torch.Tensor:
        """Signs of the projections, +-1, grouped per hash function: [..., buckets, bits per bucket]."""
        signs = torch.where(inherent @ self.hyperplanes >= 0, 1.0, -1.0)
        return signs.unflatten(-1, (self.buckets, self.bits_per_bucket))

    @torch.no_grad()
    def select(self, features, batch, target_inherent):
        agreement = scores_by_item(
            batch["history_item"], lambda items: self.signatures(features.inherent(items)),
            self.signatures(target_inherent), self.num_items,
        )  # fmt: skip  # [B, buckets, L]: matching bits minus differing bits, per hash function
        if self.buckets == 1:
            score = agreement.squeeze(1)  # = m - 2 x Hamming distance
        else:
            score = (agreement == self.bits_per_bucket).float().sum(1)  # hash functions that collide
        mask = batch["history_mask"]
        return top_k_selection(score + _recency(mask), mask, self.k)
