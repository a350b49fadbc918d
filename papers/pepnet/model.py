"""PEPNet, its ablations and its baselines, built by name from one config with the same features and towers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from common.config import bounded
from common.errors import ConfigError
from papers.pepnet.baselines import PLE, STAR, MMoE, SharedBottom
from papers.pepnet.ctr_baselines import DCNv2MultiTask, SingleTaskModels
from papers.pepnet.data import DOMAIN_FEATURES, PRIOR_FEATURES, MultiDomainData
from papers.pepnet.domain_baselines import DomainSplitModel, PLEMultiDomain
from papers.pepnet.pepnet import PEPNet

SINGLE_TASK = {"dnn": "none", "deepfm": "fm", "dcn": "cross", "xdeepfm": "cin", "dcn_v2": "cross_v2"}  # interaction
DOMAIN_SPLITS = {"shared_top": "bottom", "specific_top": "top", "specific_all": "all"}  # the half per domain
MODELS = (
    "pepnet", "epnet", "ppnet", *SINGLE_TASK, "dcn_v2_mt", "shared_bottom", "mmoe", "ple", "ple_md", *DOMAIN_SPLITS,
    "star",
)  # fmt: skip
LAYER_LISTS = ("bottom_dims", "expert_dims", "star_dims")  # the layers whose last width the towers read


@dataclass
class PEPNetModelConfig:
    name: str = bounded("pepnet", choices=MODELS)  # epnet / ppnet: PEPNet with only that half (ablations)
    embedding_dim: int = bounded(16, minimum=1)  # the paper's width could not be read; our choice
    tower_dims: list[int] = bounded(default_factory=lambda: [128, 64], minimum=1)  # every model's task towers
    # Gate NU's scale: delta in (0, gamma), so gamma > 0 (at or below 0 no gate passes anything, or flips the
    # sign of what it scales); the paper tried 1, 2, 3 and kept 2
    gamma: float = bounded(2.0, above=0.0)
    stop_gradient: bool = True  # on E in EPNet's gate input and on O_ep in PPNet's
    # PPNet's gates on every hidden layer's output (false, the paper) or on every tower layer's input (true, ours)
    gate_inputs: bool = False
    gate_hidden_dim: int = bounded(128, minimum=1)  # width of x' in Gate NU (not given in what we could read)
    bottom_dims: list[int] = bounded(default_factory=lambda: [256], minimum=1)  # SharedBottom, SharedTop, Specific*
    expert_dims: list[int] = bounded(default_factory=lambda: [256], minimum=1)  # MMoE and PLE experts
    experts: int = bounded(4, minimum=1)  # MMoE
    shared_experts: int = bounded(2, minimum=1)  # PLE, PLE-MD
    task_experts: int = bounded(1, minimum=1)  # PLE: per task; PLE-MD: per domain
    ple_levels: int = bounded(2, minimum=1)  # PLE, PLE-MD
    star_dims: list[int] = bounded(default_factory=lambda: [256], minimum=1)  # STAR's star-topology layers
    cross_layers: int = bounded(3, minimum=1)  # DCN, DCNv2, DCNv2-MT
    cin_dims: list[int] = bounded(default_factory=lambda: [64, 64], minimum=2)  # xDeepFM's CIN feature maps

    def __post_init__(self) -> None:
        empty = [name for name in LAYER_LISTS if not getattr(self, name)]
        if empty:
            raise ConfigError(f"Bad config value model.{empty[0]}=[]: it must hold at least one layer width.")


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
            gate_inputs=config.gate_inputs,
        )
    domains = len(data.domain_names)
    if config.name in SINGLE_TASK:
        interaction = SINGLE_TASK[config.name]
        return SingleTaskModels(
            data.vocabulary, every, tasks, dim, towers, interaction, config.cross_layers, config.cin_dims
        )
    if config.name == "dcn_v2_mt":
        return DCNv2MultiTask(data.vocabulary, every, tasks, dim, towers, config.cross_layers)
    if config.name in DOMAIN_SPLITS:
        split = DOMAIN_SPLITS[config.name]
        return DomainSplitModel(data.vocabulary, every, tasks, domains, dim, towers, config.bottom_dims, split)
    if config.name == "ple_md":
        return PLEMultiDomain(
            data.vocabulary, every, tasks, domains, dim, towers, config.expert_dims, config.shared_experts,
            config.task_experts, config.ple_levels,
        )  # fmt: skip
    if config.name == "shared_bottom":
        return SharedBottom(data.vocabulary, every, tasks, dim, towers, config.bottom_dims)
    if config.name == "mmoe":
        return MMoE(data.vocabulary, every, tasks, dim, towers, config.expert_dims, config.experts)
    if config.name == "ple":
        return PLE(
            data.vocabulary, every, tasks, dim, towers, config.expert_dims, config.shared_experts,
            config.task_experts, config.ple_levels,
        )  # fmt: skip
    return STAR(data.vocabulary, every, data.columns(DOMAIN_FEATURES), tasks, domains, dim, towers, config.star_dims)


def multitask_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over tasks of the mean binary cross-entropy."""
    per_task = functional.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none").mean(0)
    return per_task.sum(), {"bce_mean": float(per_task.mean().detach())}
