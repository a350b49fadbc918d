"""PEPNet, its ablations and its baselines, built by name from one config with the same features and towers."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional

from papers.pepnet.baselines import PLE, STAR, MMoE, SharedBottom, SingleTaskDNNs
from papers.pepnet.data import DOMAIN_FEATURES, PRIOR_FEATURES, MultiDomainData
from papers.pepnet.pepnet import PEPNet

MODELS = ("pepnet", "epnet", "ppnet", "dnn", "shared_bottom", "mmoe", "ple", "star")


@dataclass
class PEPNetModelConfig:
    name: str = "pepnet"  # one of MODELS; epnet / ppnet: PEPNet with only that half (ablations)
    embedding_dim: int = 16  # the paper's width could not be read; our choice
    tower_dims: list[int] = field(default_factory=lambda: [128, 64])  # every model's task towers
    gamma: float = 2.0  # Gate NU's scale: delta in (0, gamma); the paper tried 1, 2, 3 and kept 2
    stop_gradient: bool = True  # on E in EPNet's gate input and on O_ep in PPNet's
    gate_hidden_dim: int = 128  # width of x' in Gate NU (not given in what we could read)
    bottom_dims: list[int] = field(default_factory=lambda: [256])  # SharedBottom
    expert_dims: list[int] = field(default_factory=lambda: [256])  # MMoE and PLE experts
    experts: int = 4  # MMoE
    shared_experts: int = 2  # PLE
    task_experts: int = 1  # PLE, per task
    ple_levels: int = 2
    star_dims: list[int] = field(default_factory=lambda: [256])  # STAR's star-topology layers


def build_model(config: PEPNetModelConfig, data: MultiDomainData) -> nn.Module:
    tasks, dim, towers = len(data.task_names), config.embedding_dim, config.tower_dims
    every = list(range(len(data.feature_names)))
    if config.name in ("pepnet", "epnet", "ppnet"):
        general = data.columns(data.general_features)
        if config.name == "ppnet":  # without EPNet's gate, the domain-side features join E, as in every baseline
            general += data.columns(DOMAIN_FEATURES)
        return PEPNet(
            data.vocabulary,
            general=general,
            domain=data.columns(DOMAIN_FEATURES),
            prior=data.columns(PRIOR_FEATURES),
            tasks=tasks,
            embedding_dim=dim,
            tower_dims=towers,
            gate_hidden_dim=config.gate_hidden_dim,
            gamma=config.gamma,
            stop_gradient=config.stop_gradient,
            use_epnet=config.name != "ppnet",
            use_ppnet=config.name != "epnet",
        )
    if config.name == "dnn":
        return SingleTaskDNNs(data.vocabulary, every, tasks, dim, towers)
    if config.name == "shared_bottom":
        return SharedBottom(data.vocabulary, every, tasks, dim, towers, config.bottom_dims)
    if config.name == "mmoe":
        return MMoE(data.vocabulary, every, tasks, dim, towers, config.expert_dims, config.experts)
    if config.name == "ple":
        return PLE(
            data.vocabulary, every, tasks, dim, towers, config.expert_dims, config.shared_experts,
            config.task_experts, config.ple_levels,
        )  # fmt: skip
    domains = len(data.domain_names)
    return STAR(data.vocabulary, every, data.columns(DOMAIN_FEATURES), tasks, domains, dim, towers, config.star_dims)


def multitask_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over tasks of the mean binary cross-entropy."""
    per_task = functional.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none").mean(0)
    return per_task.sum(), {"bce_mean": float(per_task.mean().detach())}
