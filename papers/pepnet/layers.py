"""Building blocks shared by PEPNet and its baselines: feature embeddings, MLPs, Gate NU, and task towers."""

from __future__ import annotations

import math

import torch
from torch import nn


class FeatureEmbedding(nn.Module):
    """One embedding table per categorical feature; `forward(features, columns)` concatenates the chosen
    columns' embeddings: [B, len(columns) * dim]."""

    def __init__(self, vocabulary: list[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(size, dim) for size in vocabulary)
        for table in self.tables:
            nn.init.normal_(table.weight, std=0.05)

    def forward(self, features: torch.Tensor, columns: list[int]) -> torch.Tensor:
        return torch.cat([self.tables[column](features[:, column]) for column in columns], dim=-1)


def mlp(in_dim: int, dims: list[int]) -> nn.Sequential:
    """Linear + ReLU layers of the given widths."""
    layers: list[nn.Module] = []
    for out_dim in dims:
        layers += [nn.Linear(in_dim, out_dim), nn.ReLU()]
        in_dim = out_dim
    return nn.Sequential(*layers)


class GateNU(nn.Module):
    """Gate Neural Unit (PEPNet): x' = ReLU(x W + b); delta = gamma * Sigmoid(x' W' + b'), so delta is in
    (0, gamma), centred on 1 for gamma = 2."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, gamma: float):
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, out_dim)
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.output(torch.relu(self.hidden(x))))


class TaskTowers(nn.Module):
    """One MLP tower per task (widths `dims`, then one logit), all tasks computed in one batched product.

    The input is shared ([B, in]) or per task ([B, T, in]). `gates`, when given, scales per task: with
    `gate_inputs=False` (PPNet as the paper draws it) one [B, T, width] gate per hidden layer scales that
    layer's output, after its activation; with `gate_inputs=True` (our ablation) one gate per linear layer scales
    that layer's input (the tower's input and every hidden layer). `gate_widths` gives the gates' widths."""

    def __init__(self, in_dim: int, dims: list[int], tasks: int):
        super().__init__()
        self.widths = [in_dim, *dims]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.widths, [*dims, 1], strict=True):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(tasks, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(tasks, 1, fan_out).uniform_(-bound, bound)))
        self.tasks = tasks

    def gate_widths(self, gate_inputs: bool) -> list[int]:
        return self.widths if gate_inputs else self.widths[1:]

    def forward(
        self, x: torch.Tensor, gates: list[torch.Tensor] | None = None, gate_inputs: bool = False
    ) -> torch.Tensor:
        hidden = x.unsqueeze(1).expand(-1, self.tasks, -1) if x.dim() == 2 else x
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if gates is not None and gate_inputs:
                hidden = gates[layer] * hidden  # ablation: the layer's input scaled
            hidden = torch.baddbmm(bias, hidden.transpose(0, 1), weight).transpose(0, 1)  # H W + b
            if layer < last:
                hidden = torch.relu(hidden)  # H^(l) = f(O_pp^(l-1) W + b)
                if gates is not None and not gate_inputs:
                    hidden = gates[layer] * hidden  # O_pp^(l) = delta_task^(l) ⊗ H^(l)
        return hidden.squeeze(-1)  # [B, T]
