"""PEPNet's multi-task baselines, on the same features and with the same task towers: SharedBottom, MMoE (Ma et
al., KDD 2018), PLE (Tang et al., RecSys 2020), and our extra row STAR (Sheng et al., CIKM 2021, multi-domain).
Each reads every feature (general and domain-side) and returns [B, tasks] logits. The single-task baselines are
in ctr_baselines.py, the multi-domain ones in domain_baselines.py."""

from __future__ import annotations

import math

import torch
from torch import nn

from papers.pepnet.layers import FeatureEmbedding, TaskTowers, mlp


class SharedBottom(nn.Module):
    def __init__(self, vocabulary, columns, tasks, embedding_dim, tower_dims, bottom_dims):
        super().__init__()
        self.columns = columns
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        self.bottom = mlp(len(columns) * embedding_dim, bottom_dims)
        self.towers = TaskTowers(bottom_dims[-1], tower_dims, tasks)

    def forward(self, batch):
        return self.towers(self.bottom(self.embedding(batch["features"], self.columns)))


def _mix(gate_logits: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Softmax-weighted sum of experts: gate logits [B, E], experts [B, E, d] -> [B, d]."""
    return torch.einsum("be,bed->bd", torch.softmax(gate_logits, dim=-1), experts)


class MMoE(nn.Module):
    """Shared experts, one softmax gate per task over them."""

    def __init__(self, vocabulary, columns, tasks, embedding_dim, tower_dims, expert_dims, experts):
        super().__init__()
        self.columns = columns
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        self.experts = nn.ModuleList(mlp(width, expert_dims) for _ in range(experts))
        self.gates = nn.ModuleList(nn.Linear(width, experts) for _ in range(tasks))
        self.towers = TaskTowers(expert_dims[-1], tower_dims, tasks)

    def forward(self, batch):
        x = self.embedding(batch["features"], self.columns)
        experts = torch.stack([expert(x) for expert in self.experts], dim=1)
        return self.towers(torch.stack([_mix(gate(x), experts) for gate in self.gates], dim=1))


class ProgressiveExtraction(nn.Module):
    """PLE's extraction network over `groups` (tasks, or domains for PLE-MD): per level, group-specific and shared
    experts; each group's gate mixes its own and the shared experts, the shared gate (below the last level) mixes
    all of them. Returns every group's output, [B, groups, expert_dims[-1]]."""

    def __init__(self, in_dim, groups, expert_dims, shared_experts, group_experts, levels):
        super().__init__()
        self.groups = groups
        self.levels = nn.ModuleList()
        for level in range(levels):
            last = level == levels - 1
            self.levels.append(
                nn.ModuleDict(
                    {
                        "group_experts": nn.ModuleList(
                            nn.ModuleList(mlp(in_dim, expert_dims) for _ in range(group_experts)) for _ in range(groups)
                        ),
                        "shared_experts": nn.ModuleList(mlp(in_dim, expert_dims) for _ in range(shared_experts)),
                        "group_gates": nn.ModuleList(
                            nn.Linear(in_dim, group_experts + shared_experts) for _ in range(groups)
                        ),
                        "shared_gate": nn.Identity()
                        if last
                        else nn.Linear(in_dim, groups * group_experts + shared_experts),
                    }
                )
            )
            in_dim = expert_dims[-1]
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group_inputs, shared_input = [x] * self.groups, x
        for level in self.levels:
            shared = [expert(shared_input) for expert in level["shared_experts"]]
            own = [[expert(group_inputs[g]) for expert in level["group_experts"][g]] for g in range(self.groups)]
            group_outputs = [
                _mix(level["group_gates"][g](group_inputs[g]), torch.stack(own[g] + shared, dim=1))
                for g in range(self.groups)
            ]
            if not isinstance(level["shared_gate"], nn.Identity):
                every = torch.stack([e for experts in own for e in experts] + shared, dim=1)
                shared_input = _mix(level["shared_gate"](shared_input), every)
            group_inputs = group_outputs
        return torch.stack(group_inputs, dim=1)


class PLE(nn.Module):
    """Progressive Layered Extraction over the tasks, each task's output feeding its own tower."""

    def __init__(
        self, vocabulary, columns, tasks, embedding_dim, tower_dims, expert_dims, shared_experts, task_experts, levels
    ):
        super().__init__()
        self.columns = columns
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        self.extraction = ProgressiveExtraction(width, tasks, expert_dims, shared_experts, task_experts, levels)
        self.towers = TaskTowers(self.extraction.out_dim, tower_dims, tasks)

    def forward(self, batch):
        return self.towers(self.extraction(self.embedding(batch["features"], self.columns)))


class StarLayer(nn.Module):
    """STAR's star-topology fully connected layer: W = W_shared ⊙ W_domain, b = b_shared + b_domain."""

    def __init__(self, in_dim: int, out_dim: int, domains: int):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)
        self.shared_weight = nn.Parameter(torch.empty(in_dim, out_dim).uniform_(-bound, bound))
        self.domain_weight = nn.Parameter(torch.ones(domains, in_dim, out_dim))
        self.shared_bias = nn.Parameter(torch.zeros(out_dim))
        self.domain_bias = nn.Parameter(torch.zeros(domains, out_dim))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        every_domain = torch.einsum("bi,dio->bdo", x, self.shared_weight * self.domain_weight)  # [B, D, out]
        own = every_domain[torch.arange(len(x), device=x.device), domain]
        return own + self.shared_bias + self.domain_bias[domain]


class PartitionedNorm(nn.Module):
    """STAR's partitioned normalization: batch statistics shared, scale and shift = shared ⊙/+ per domain."""

    def __init__(self, width: int, domains: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.shared_scale, self.shared_shift = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))
        self.domain_scale = nn.Parameter(torch.ones(domains, width))
        self.domain_shift = nn.Parameter(torch.zeros(domains, width))

    def forward(self, x, domain):
        scale = self.shared_scale * self.domain_scale[domain]
        return scale * self.norm(x) + self.shared_shift + self.domain_shift[domain]


class STAR(nn.Module):
    """Partitioned normalization, star-topology FCN, an auxiliary network on the domain-side features whose
    output is added to every task's logit; task towers on top of the FCN (STAR is single-task in its paper)."""

    def __init__(self, vocabulary, columns, domain_columns, tasks, domains, embedding_dim, tower_dims, star_dims):
        super().__init__()
        self.columns, self.domain_columns = columns, domain_columns
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        self.norm = PartitionedNorm(width, domains)
        self.layers = nn.ModuleList(
            StarLayer(fan_in, fan_out, domains)
            for fan_in, fan_out in zip([width, *star_dims[:-1]], star_dims, strict=True)
        )
        self.towers = TaskTowers(star_dims[-1], tower_dims, tasks)
        self.auxiliary = nn.Sequential(mlp(len(domain_columns) * embedding_dim, [32]), nn.Linear(32, tasks))

    def forward(self, batch):
        features, domain = batch["features"], batch["domain"]
        hidden = self.norm(self.embedding(features, self.columns), domain)
        for layer in self.layers:
            hidden = torch.relu(layer(hidden, domain))
        return self.towers(hidden) + self.auxiliary(self.embedding(features, self.domain_columns))
