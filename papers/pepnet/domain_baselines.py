"""Table 2's multi-domain baselines (arXiv 2302.01115): PLE-MD, SharedTop, SpecificTop, SpecificAll. Our reading of
the names (the paper's descriptions could not be read here): which of the network's two halves, the bottom (the
layers under the task towers) and the top (the task towers), is one per domain:
    SharedTop:   a bottom per domain, the task towers shared by every domain;
    SpecificTop: one shared bottom, task towers per domain;
    SpecificAll: a bottom and task towers per domain (the embeddings stay shared);
    PLE-MD:      PLE's extraction network with the domains in place of the tasks (experts and gates per domain,
                 plus shared experts), then task towers per domain.
Every model reads every feature; a sample's logits come from its own domain's parameters."""

from __future__ import annotations

import torch
from torch import nn

from papers.pepnet.baselines import ProgressiveExtraction
from papers.pepnet.layers import FeatureEmbedding, TaskTowers, mlp


def own_domain(per_domain: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """[B, domains, ...] -> [B, ...]: each sample's own domain's slice."""
    return per_domain[torch.arange(len(domain), device=domain.device), domain]


class DomainTowers(nn.Module):
    """Task towers per domain, [B, tasks] logits of each sample's domain. The input is shared ([B, in]) or per
    domain ([B, domains, in])."""

    def __init__(self, in_dim: int, tower_dims: list[int], tasks: int, domains: int):
        super().__init__()
        self.tasks, self.domains = tasks, domains
        self.towers = TaskTowers(in_dim, tower_dims, domains * tasks)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # [B, D, in] -> [B, D * T, in]: domain d's input to each of its T towers
            x = x.unsqueeze(2).expand(-1, -1, self.tasks, -1).reshape(len(x), self.domains * self.tasks, -1)
        return own_domain(self.towers(x).view(len(x), self.domains, self.tasks), domain)


class DomainBottoms(nn.Module):
    """One MLP per domain over the same input: [B, domains, width] (every domain's, for DomainTowers)."""

    def __init__(self, in_dim: int, dims: list[int], domains: int):
        super().__init__()
        self.bottoms = nn.ModuleList(mlp(in_dim, dims) for _ in range(domains))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([bottom(x) for bottom in self.bottoms], dim=1)


class DomainSplitModel(nn.Module):
    """SharedTop, SpecificTop or SpecificAll (`split`: which half is per domain: "bottom", "top" or "all")."""

    def __init__(self, vocabulary, columns, tasks, domains, embedding_dim, tower_dims, bottom_dims, split):
        super().__init__()
        self.columns, self.split = columns, split
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        per_domain_bottom = split in ("bottom", "all")
        self.bottom = DomainBottoms(width, bottom_dims, domains) if per_domain_bottom else mlp(width, bottom_dims)
        per_domain_top = split in ("top", "all")
        self.towers = DomainTowers(bottom_dims[-1], tower_dims, tasks, domains) if per_domain_top else None
        self.shared_towers = None if per_domain_top else TaskTowers(bottom_dims[-1], tower_dims, tasks)

    def forward(self, batch):
        domain = batch["domain"]
        hidden = self.bottom(self.embedding(batch["features"], self.columns))
        if self.towers is not None:
            return self.towers(hidden, domain)
        return self.shared_towers(own_domain(hidden, domain))


class PLEMultiDomain(nn.Module):
    """PLE-MD: the extraction network over the domains, then each domain's own task towers on its output."""

    def __init__(
        self, vocabulary, columns, tasks, domains, embedding_dim, tower_dims, expert_dims, shared_experts,
        domain_experts, levels,
    ):  # fmt: skip
        super().__init__()
        self.columns = columns
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        self.extraction = ProgressiveExtraction(width, domains, expert_dims, shared_experts, domain_experts, levels)
        self.towers = DomainTowers(self.extraction.out_dim, tower_dims, tasks, domains)

    def forward(self, batch):
        return self.towers(self.extraction(self.embedding(batch["features"], self.columns)), batch["domain"])
