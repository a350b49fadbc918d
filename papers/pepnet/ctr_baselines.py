"""Table 2's single-task baselines (arXiv 2302.01115): DNN, DeepFM (Guo et al., IJCAI 2017), DCN (Wang et al.,
ADKDD 2017), xDeepFM (Lian et al., KDD 2018), DCNv2 (Wang et al., WWW 2021); and DCNv2-MT, DCNv2's cross network
under the multi-task towers. The FM, CIN and cross layers are torch-rechub's (torch_rechub.basic.layers).

A single-task model is one independent model per task, own embeddings included, trained side by side on the summed
loss (which, with nothing shared, trains each model on its own task's loss). Every model's deep part is the task
tower every other model ends in; the interaction part adds its logit:
    DNN:     y = tower(x)
    DeepFM:  y = tower(x) + sum_f w_f + FM(e_1..e_F),   FM = 1/2 sum_k ((sum_f e_fk)^2 - sum_f e_fk^2)
    DCN:     y = tower(x) + w^T x_L,   x_{l+1} = x_0 (x_l^T w_l) + b_l + x_l
    xDeepFM: y = tower(x) + sum_f w_f + CIN(e_1..e_F)
    DCNv2:   y = tower(x) + w^T x_L,   x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l
(the towers and cross networks side by side, so one linear layer over both outputs is the sum of two logits).
"""

from __future__ import annotations

import torch
from torch import nn

from papers.pepnet.layers import FeatureEmbedding, TaskTowers

INTERACTIONS = ("none", "fm", "cross", "cin", "cross_v2")


def rechub_layers():
    """torch-rechub's layers module, imported when a model first needs it: the package's __init__ also loads its
    trainers and scikit-learn (about 1.4 s), which every run.py start, a config error's included, would pay."""
    from torch_rechub.basic import layers

    return layers


class SingleTaskCTR(nn.Module):
    """One task's model: embeddings of `columns`, the task tower, and the interaction part (INTERACTIONS)."""

    def __init__(self, vocabulary, columns, embedding_dim, tower_dims, interaction, cross_layers, cin_dims):
        super().__init__()
        self.columns, self.interaction, self.dim = columns, interaction, embedding_dim
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        self.deep = TaskTowers(width, tower_dims, 1)
        if interaction in ("fm", "cin"):
            self.first_order = FeatureEmbedding(vocabulary, 1)  # w_f of the feature's value
        layers = rechub_layers()
        if interaction == "fm":
            self.fm = layers.FM()
        elif interaction == "cin":
            self.cin = layers.CIN(len(columns), cin_dims)
        elif interaction in ("cross", "cross_v2"):
            self.cross = (layers.CrossNetwork if interaction == "cross" else layers.CrossNetV2)(width, cross_layers)
            self.cross_logit = nn.Linear(width, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.embedding(features, self.columns)  # [B, F * D]
        logit = self.deep(x)  # [B, 1]
        if self.interaction in ("fm", "cin"):
            fields = x.view(len(x), len(self.columns), self.dim)  # [B, F, D]
            pairwise = self.fm(fields) if self.interaction == "fm" else self.cin(fields)
            logit = logit + self.first_order(features, self.columns).sum(1, keepdim=True) + pairwise
        elif self.interaction in ("cross", "cross_v2"):
            logit = logit + self.cross_logit(self.cross(x))
        return logit


class SingleTaskModels(nn.Module):
    """One SingleTaskCTR per task, side by side: [B, tasks] logits."""

    def __init__(self, vocabulary, columns, tasks, embedding_dim, tower_dims, interaction, cross_layers, cin_dims):
        super().__init__()
        self.models = nn.ModuleList(
            SingleTaskCTR(vocabulary, columns, embedding_dim, tower_dims, interaction, cross_layers, cin_dims)
            for _ in range(tasks)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([model(batch["features"]) for model in self.models], dim=1)


class DCNv2MultiTask(nn.Module):
    """DCNv2-MT: shared embeddings and DCNv2 cross network, then the task towers on its output (stacked)."""

    def __init__(self, vocabulary, columns, tasks, embedding_dim, tower_dims, cross_layers):
        super().__init__()
        self.columns = columns
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        width = len(columns) * embedding_dim
        self.cross = rechub_layers().CrossNetV2(width, cross_layers)
        self.towers = TaskTowers(width, tower_dims, tasks)

    def forward(self, batch):
        return self.towers(self.cross(self.embedding(batch["features"], self.columns)))
