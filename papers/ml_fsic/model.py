"""Word-vector guided prototypes for multi-label few-shot classification (Yan et al., AAAI 2022), as the authors'
code builds them (yk-pku/TOMM-FSIC, models/atten_purify.py: Model, CrossModalAtten, Block, Attention, Mlp).

- v_i = W_v · GAP(F_i): an image's global vector from its local features F_i (backbone's last stage);
- t_l = W_t · e_l: a label's vector from its frozen word vector e_l;
- s(a, b) = 20 · (1 − ||â − b̂||) on L2-normalized vectors;
- z_{i,l}: the cross-modal block, with t_l as the only query over the locations of dropout(conv1×1(F_i)), one
  LayerNorm shared by the query and the locations, no residual from the query, x + FFN(LN(x)), a final LayerNorm;
- p_l = Σ_{i: y_il = 1} softmax_i(s(v_i, t_l)) · z_{i,l}, and p_l = t_l if no support image has label l;
- loss: BCE(σ(s(v_i, t_l)), y_il) on the support set + BCE(σ(s(v_q, p_l)), y_ql) on the queries, both over every
  label of the episode (all training labels in the authors' training episodes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from common.backbones import feature_backbone
from common.config import bounded

SCALE = 20.0  # atten_purify.py: query_scores = (-dist + 1) * 20
NORM_EPS = 1e-6  # atten_purify.py: LayerNorm(hidden_size, eps=1e-6)
ATTENTIONS = ("label_query", "uniform", "global_vector")
BLOCKS = ("authors", "query_residual")


@dataclass
class PrototypeModelConfig:
    backbone: str = "resnet50"  # timm name; the reduced default is set in the paper config
    backbone_weights: str | None = None  # a local timm checkpoint (nothing is downloaded)
    feature_stage: int = -1  # the backbone stage whose output is F (timm's out_indices); the authors: the last
    # True: the backbone keeps its initial (or given) weights, and each image's local features are computed once
    # per run and cached (the authors fine-tune it: finetune=True)
    freeze_backbone: bool = False
    dim: int = bounded(512, minimum=1)  # model_train.yaml: embed_size 512, hidden_size 512
    heads: int = bounded(8, minimum=1)  # num_heads 8
    mlp_dim: int = bounded(1024, minimum=1)  # mlp_dim 1024
    dropout: float = bounded(0.1, minimum=0.0, below=1.0)  # dropout_rate 0.1: the locations and the FFN
    attention_dropout: float = bounded(0.0, minimum=0.0, below=1.0)  # attention_dropout_rate 0.0
    # label_query: the authors' attention with t_l as query; uniform: every location weighted equally (the
    # attention removed, everything else kept); global_vector: z_{i,l} = v_i (no block at all)
    attention: str = bounded("label_query", choices=ATTENTIONS)
    # authors: no residual from the query; query_residual: z_{i,l} = t_l + attention (+ FFN), an ablation
    block: str = bounded("authors", choices=BLOCKS)
    # word_guided: softmax_i s(v_i, t_l); mean: the labeled images' mean (ProtoNet)
    weighting: str = bounded("word_guided", choices=("word_guided", "mean"))


def frozen_or_trained_backbone(config: PrototypeModelConfig) -> nn.Module:
    """The timm backbone's last stage; with `freeze_backbone`, its parameters never train."""
    backbone = feature_backbone(config.backbone, config.backbone_weights, (config.feature_stage,))
    backbone.requires_grad_(not config.freeze_backbone)
    return backbone


class FeatureStandardization(nn.Module):
    """(F - mean) / std per channel, with the statistics of the training images' features when the backbone is
    frozen (set by the task, saved with the model); the identity otherwise."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels, 1, 1))
        self.register_buffer("std", torch.ones(channels, 1, 1))

    def fit(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean((0, 2, 3))[:, None, None])
        self.std.copy_(features.std((0, 2, 3))[:, None, None].clamp(min=1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """s(a, b) = 20 (1 - ||â - b̂||) for every pair: a [..., A, d], b [..., B, d] -> [..., A, B]."""
    return SCALE * (1 - torch.cdist(functional.normalize(a, dim=-1), functional.normalize(b, dim=-1)))


class LabelAttention(nn.Module):
    """Multi-head attention of label queries [N, d] (shared by the images) or [S, N, d] over each image's locations
    [S, L, d] -> [S, N, d] (atten_purify.py: Attention); `uniform` replaces the attention weights by 1/L."""

    def __init__(self, dim: int, heads: int, dropout: float, uniform: bool):
        super().__init__()
        self.heads, self.uniform = heads, uniform
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.attention_dropout, self.output_dropout = nn.Dropout(dropout), nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(-3, -2)  # [..., heads, tokens, d / heads]

    def forward(self, queries: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        values = self._split(self.value(locations))  # [S, heads, L, d/h]
        if self.uniform:
            weights = torch.full((*values.shape[:2], queries.shape[-2], values.shape[2]), 1 / values.shape[2])
            weights = weights.to(values)
        else:
            q, k = self._split(self.query(queries)), self._split(self.key(locations))  # [heads, N, d/h], [S, ...]
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # [S, heads, N, L]
        attended = (self.attention_dropout(weights) @ values).transpose(1, 2).flatten(2)  # [S, N, d]
        return self.output_dropout(self.out(attended))


class FeedForward(nn.Sequential):
    """atten_purify.py: Mlp (fc1, GELU, dropout, fc2, dropout; Xavier weights, biases ~ N(0, 1e-6))."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        for layer in (self[0], self[3]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=1e-6)


class CrossModalBlock(nn.Module):
    """z [S, N, d] of label queries [N, d] over local features [S, C, h, w] (atten_purify.py: CrossModalAtten with
    one Block): x = dropout(conv1×1(F)); x, t = LN(x), LN(t) (one norm); x = attention(t over x); x = x + FFN(LN'(x));
    z = LN''(x). `query_residual` adds t to the attention's output, as a pre-LN transformer layer would."""

    def __init__(self, feature_dim: int, config: PrototypeModelConfig):
        super().__init__()
        dim = config.dim
        self.project = nn.Conv2d(feature_dim, dim, 1)  # dimension_fc
        self.dropout = nn.Dropout(config.dropout)
        self.attention_norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.attention = LabelAttention(dim, config.heads, config.attention_dropout, config.attention == "uniform")
        self.ffn_norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.ffn = FeedForward(dim, config.mlp_dim, config.dropout)
        self.encoder_norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.query_residual = config.block == "query_residual"

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        locations = self.dropout(self.project(features).flatten(2).transpose(1, 2))  # [S, hw, d]
        x = self.attention(self.attention_norm(queries), self.attention_norm(locations))  # [S, N, d]
        if self.query_residual:
            x = x + queries
        x = x + self.ffn(self.ffn_norm(x))
        return self.encoder_norm(x)


class WordGuidedPrototypes(nn.Module):
    def __init__(self, config: PrototypeModelConfig, word_dim: int):
        super().__init__()
        self.backbone = frozen_or_trained_backbone(config)
        self.takes_features = config.freeze_backbone  # inputs are cached local features, not images
        feature_dim = self.backbone.feature_info.channels()[-1]
        self.standardize = FeatureStandardization(feature_dim)
        self.image_projection = nn.Linear(feature_dim, config.dim)  # W_v (vis_fc)
        self.word_projection = nn.Linear(word_dim, config.dim)  # W_t (tex_fc)
        self.weighting = config.weighting
        self.attend = CrossModalBlock(feature_dim, config) if config.attention != "global_vector" else None

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local features F [B, C, h, w] and global vectors v [B, d]; computed once per image per episode."""
        local = self.standardize(images if self.takes_features else self.backbone(images)[0])
        return local, self.image_projection(local.mean((2, 3)))

    def prototypes(self, local: torch.Tensor, global_: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor):
        """p [N, d] from the support set (local [S, C, h, w], v [S, d], targets [S, N]) and t [N, d]; also the
        support scores s(v_i, t_l) [S, N] that weight the images and feed the support loss."""
        support_scores = score(global_, labels)  # [S, N]
        if len(targets) == 0:  # no support set at all: every prototype from its word vector
            return labels, support_scores
        has_label = targets > 0.5
        images, label_ids = has_label.nonzero(as_tuple=True)  # the (i, l) pairs with y_il = 1, as the authors
        if self.attend is not None:  # z_{i,l} of those pairs only: [P, d]
            parts = self.attend(labels[label_ids].unsqueeze(1), local[images])[:, 0]
        else:
            parts = global_[images]
        if self.weighting == "mean":
            weights = has_label.float() / has_label.sum(0, keepdim=True).clamp(min=1)
        else:
            weights = torch.softmax(support_scores.masked_fill(~has_label, float("-inf")), dim=0)
        pair_weights = weights[images, label_ids].unsqueeze(1)
        prototypes = torch.zeros_like(labels).index_add(0, label_ids, pair_weights * parts)
        unsupported = ~has_label.any(0)
        return torch.where(unsupported[:, None], labels, prototypes), support_scores

    def label_prototypes(
        self, support: torch.Tensor, support_targets: torch.Tensor, word_vectors: torch.Tensor
    ) -> torch.Tensor:
        """p [N, d] of the labels with word vectors [N, dim] from a support set (images [S, 3, H, W], targets
        [S, N]), to score any number of images against with `image_scores`."""
        labels = self.word_projection(word_vectors)
        if not len(support):
            return labels
        local, global_ = self.features(support)
        return self.prototypes(local, global_, support_targets, labels)[0]

    def image_scores(self, images: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        """s(v_q, p_l) [Q, N] of images [Q, 3, H, W] against prototypes [N, d]."""
        return score(self.features(images)[1], prototypes)

    def forward(self, episode: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """episode: support [S, 3, H, W], support_targets [S, N], query [Q, 3, H, W], word_vectors [N, 300]."""
        labels = self.word_projection(episode["word_vectors"])
        local, global_ = self.features(torch.cat([episode["support"], episode["query"]]))
        support = len(episode["support"])
        targets = episode["support_targets"]
        prototypes, support_scores = self.prototypes(local[:support], global_[:support], targets, labels)
        return {"query_scores": score(global_[support:], prototypes), "support_scores": support_scores}


def episode_loss(output: dict[str, torch.Tensor], episode: dict[str, torch.Tensor], support_loss: bool = True):
    """Query BCE on σ(s(v_q, p_l)) plus, unless ablated, support BCE on σ(s(v_i, t_l)), each the mean over its
    (image, label) pairs (F.binary_cross_entropy_with_logits, as atten_purify.py: Model.forward)."""
    loss = functional.binary_cross_entropy_with_logits(output["query_scores"], episode["query_targets"])
    if support_loss:
        support_targets = episode["support_targets"]
        loss = loss + functional.binary_cross_entropy_with_logits(output["support_scores"], support_targets)
    return loss
