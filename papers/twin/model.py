"""TWIN and its Table 4 baselines as one CTR model with a pluggable long-term interest module.

    logit = MLP([long-term interest, short-term interest, target features, context, user features])  (Eq. 2)

The long-term module is a GSU (papers/twin/retrieval.py) followed by the ESU (multi-head target attention),
or, for Avg-Pooling, the mean of the L latest behaviors. All models share features and the top network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.config import bounded
from papers.twin.attention import SELECTIONS, MultiHeadTargetAttention, TargetAttentionScorer, head_block_mask
from papers.twin.data import Vocabulary
from papers.twin.features import BehaviorFeatures
from papers.twin.retrieval import (
    CategoryRetriever,
    ConsistencyPreservedGSU,
    RecentRetriever,
    Retriever,
    Selection,
    SeparateParameterGSU,
    SimHashRetriever,
    SoftSearchRetriever,
    history_scores,
)

MODEL_NAMES = ("twin", "avg_pooling", "din", "sim_hard", "sim_soft", "eta", "sdim")


@dataclass
class TwinModelConfig:
    name: str = bounded("twin", choices=MODEL_NAMES)
    gsu_length: int = bounded(10000, minimum=1)  # L: the latest behaviors the long-term module reads (paper: 10^4)
    esu_length: int = bounded(100, minimum=1)  # k: behaviors the GSU keeps for the ESU (paper: 100)
    short_length: int = bounded(50, minimum=1)  # the short-term branch's most recent behaviors (paper: 50)
    num_heads: int = bounded(4, minimum=1)  # paper: 4
    key_dim: int = bounded(32, minimum=1)  # d_k per head (not reported in the paper)
    value_dim: int = bounded(32, minimum=1)  # per head (not reported)
    output_dim: int = bounded(128, minimum=1)  # d_out of W^o (not reported)
    id_embedding_dim: int = bounded(64, minimum=1)  # paper: 64 for large-vocabulary ids
    feature_embedding_dim: int = bounded(8, minimum=1)  # paper: 8 for other features
    mlp_dims: list[int] = bounded(default_factory=lambda: [256, 128, 64], minimum=1)  # not reported: our choice
    cross_features: bool = True  # Fig. 6 ablation when false
    separate_gsu_params: bool = False  # Fig. 6 ablation when true
    gsu_selection: str = bounded("union", choices=tuple(SELECTIONS))  # CP-GSU: union of heads' rankings, or per head
    gsu_cache: bool = False  # true: the GSU reads a detached K_h W^h cache refreshed every gsu_cache_refresh_steps
    gsu_cache_refresh_steps: int = bounded(50, minimum=1)
    retrieval_dim: int = bounded(32, minimum=1)  # SIM Soft's retrieval embedding
    hash_bits: int = bounded(16, minimum=1)  # ETA: bits of the SimHash signature; SDIM: bits in all hash functions
    sdim_hashes: int = bounded(4, minimum=1)  # SDIM: hash functions (hash_bits / sdim_hashes bits each)
    aux_loss_weight: float = bounded(1.0, minimum=0.0)  # SIM Soft and separate-parameter GSU: auxiliary retrieval
    cluster_size_bias: bool = False  # TWIN-V2: alpha' = alpha + ln n over virtual items, in GSU and ESU


class LifelongCTRModel(nn.Module):
    def __init__(self, config: TwinModelConfig, vocabulary: Vocabulary, item_tables: dict[str, np.ndarray]):
        super().__init__()
        self.config = config
        dim, small = config.id_embedding_dim, config.feature_embedding_dim
        self.features = BehaviorFeatures(vocabulary, **item_tables, id_dim=dim, feature_dim=small)
        self.user = nn.Embedding(vocabulary.users, dim)
        self.user_features = nn.ModuleList(nn.Embedding(size, small) for size in vocabulary.user_features)
        self.tab = nn.Embedding(vocabulary.tabs, small)
        self.hour = nn.Embedding(vocabulary.hours, small)
        inherent = self.features.inherent_dim

        def attention(cluster_size_bias: bool) -> MultiHeadTargetAttention:
            scorer = TargetAttentionScorer(
                self.features, inherent, config.num_heads, config.key_dim, config.cross_features, cluster_size_bias
            )
            return MultiHeadTargetAttention(self.features, scorer, config.value_dim, config.output_dim)

        self.short_term = attention(cluster_size_bias=False)  # raw recent behaviors, never clusters
        self.retriever: Retriever | None = None
        if config.name == "avg_pooling":
            self.pooled_projection = nn.Linear(inherent + self.features.cross_dim, config.output_dim)
        else:
            self.esu = attention(config.cluster_size_bias)
            self.retriever = self._build_retriever(config, vocabulary)
        top_input = 2 * config.output_dim + inherent + 2 * small + dim + small * len(vocabulary.user_features)
        layers, width = [], top_input
        for hidden in config.mlp_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.top = nn.Sequential(*layers, nn.Linear(width, 1))

    def _build_retriever(self, config: TwinModelConfig, vocabulary: Vocabulary) -> Retriever:
        k, inherent = config.esu_length, self.features.inherent_dim
        if config.name == "twin" and config.separate_gsu_params:
            scorer = TargetAttentionScorer(
                self.features,
                inherent,
                config.num_heads,
                config.key_dim,
                config.cross_features,
                config.cluster_size_bias,
            )
            return SeparateParameterGSU(k, scorer, vocabulary.items, self.features)
        if config.name == "twin":
            return ConsistencyPreservedGSU(k, self.esu.scorer, vocabulary.items, config.gsu_cache, config.gsu_selection)
        if config.name == "din":
            return RecentRetriever(k)
        if config.name == "sim_hard":
            return CategoryRetriever(k)
        if config.name == "sim_soft":
            return SoftSearchRetriever(k, vocabulary.items, config.retrieval_dim)
        buckets = 1 if config.name == "eta" else config.sdim_hashes
        return SimHashRetriever(k, inherent, config.hash_bits, buckets, vocabulary.items)

    def long_term_interest(
        self, batch: dict, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, Selection | None]:
        """The long-term interest vector, the auxiliary loss of retrievers that train with one, and the GSU's
        selection (None for Avg-Pooling)."""
        if self.retriever is None:
            mask = batch["history_mask"]
            weights = mask / mask.sum(1, keepdim=True).clamp(min=1)
            pooled = self.features.pooled_full(batch["history_item"], batch["history_cross"], weights)
            return self.pooled_projection(pooled), None, None
        selection = self.retriever.select(self.features, batch, target)
        positions = selection.positions.flatten(1)  # a per-head selection [B, heads, k] laid out as [B, heads k]
        items = batch["history_item"].gather(1, positions)
        cross_index = positions.unsqueeze(-1).expand(-1, -1, batch["history_cross"].shape[-1])
        cross = batch["history_cross"].gather(1, cross_index)
        sizes = batch["history_size"].gather(1, positions) if "history_size" in batch else None
        mask = head_block_mask(selection.mask) if selection.mask.dim() == 3 else selection.mask
        query = self.esu.scorer.project_query(target)
        interest = self.esu(self.features, items, cross, mask, query, sizes)
        auxiliary = self.retriever.auxiliary_loss(self.features, batch, target) if self.training else None
        return interest, auxiliary, selection

    def short_term_interest(self, batch: dict, target: torch.Tensor) -> torch.Tensor:
        """Target attention over the `short_length` most recent raw behaviors (batch["recent_*"])."""
        query = self.short_term.scorer.project_query(target)
        return self.short_term(self.features, batch["recent_item"], batch["recent_cross"], batch["recent_mask"], query)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Click logits [B] and the auxiliary retrieval loss (or None)."""
        logits, auxiliary, _ = self.score(batch)
        return logits, auxiliary

    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None, Selection | None]:
        """Click logits [B], the auxiliary retrieval loss (or None) and the GSU's selection (or None)."""
        target = self.features.inherent(batch["target_item"])
        long_term, auxiliary, selection = self.long_term_interest(batch, target)
        user_features = [table(batch["user_features"][:, j]) for j, table in enumerate(self.user_features)]
        inputs = [
            long_term,
            self.short_term_interest(batch, target),
            target,
            self.tab(batch["context"][:, 0]),
            self.hour(batch["context"][:, 1]),
            self.user(batch["user"]),
            *user_features,
        ]
        return self.top(torch.cat(inputs, dim=-1)).squeeze(-1), auxiliary, selection

    @torch.no_grad()
    def gsu_esu_overlap(self, batch: dict, selection: Selection | None) -> torch.Tensor:
        """Fig. 4's consistency: of the k behaviors the ESU itself would pick from all L (its fresh Eq. 6 scores,
        the same union of the heads' rankings), the fraction the GSU retrieved. [B]. TWIN's GSU scores with the
        ESU's parameters, so only a stale projection cache lowers it below 1. NaN without a search unit
        (Avg-Pooling, and DIN, whose recency window is all it reads)."""
        mask = batch["history_mask"]
        if selection is None or not self.retriever.searches:
            return torch.full((mask.shape[0],), float("nan"), device=mask.device)
        scorer = self.esu.scorer
        target = self.features.inherent(batch["target_item"])
        alpha = history_scores(
            scorer, self.features, batch, target, lambda items: scorer.project_keys(self.features.inherent(items)),
            self.features.item.num_embeddings,
        )  # fmt: skip  # the ESU's own fresh scores, never a cache
        esu_top, picked = SELECTIONS[self.config.gsu_selection](alpha, self.config.esu_length)
        esu_choice = positions_to_mask(esu_top.flatten(1), picked.flatten(1), mask.shape[1]) & mask
        retrieved = positions_to_mask(selection.positions.flatten(1), selection.mask.flatten(1), mask.shape[1])
        return (esu_choice & retrieved).sum(1) / esu_choice.sum(1).clamp(min=1)


def positions_to_mask(positions: torch.Tensor, valid: torch.Tensor, length: int) -> torch.Tensor:
    """[B, length] mask of the valid positions; invalid ones (possibly repeats of valid ones) are ignored."""
    spill = torch.where(valid, positions, length)
    marks = torch.zeros(positions.shape[0], length + 1, dtype=torch.bool, device=positions.device)
    return marks.scatter_(1, spill, True)[:, :length]


def click_loss(
    logits: torch.Tensor, auxiliary: torch.Tensor | None, label: torch.Tensor, auxiliary_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """BCE of Eq. 2, plus the weighted auxiliary retrieval loss where the retriever has one."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), label.float())
    if auxiliary is None:
        return loss, {}
    return loss + auxiliary_weight * auxiliary, {"bce": loss.detach(), "aux": auxiliary.detach()}
