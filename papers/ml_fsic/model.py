"""Word-vector guided prototypes for multi-label few-shot classification (Yan et al., AAAI 2022).

- v_i = W_v · GAP(F_i): an image's global vector from its local features F_i (backbone's last stage);
- t_l = W_t · e_l: a label's vector from its frozen word vector e_l;
- s(a, b) = 20 · (1 − ||â − b̂||) on L2-normalized vectors;
- z_{i,l}: a cross-modal attention block (pre-LN, one layer, 8 heads) with t_l as query over the 1×1-conv
  projections of F_i's locations;
- p_l = Σ_{i: y_il = 1} softmax_i(s(v_i, t_l)) · z_{i,l}, and p_l = t_l if no support image has label l;
- loss: BCE(σ(s(v_i, t_l)), y_il) on the support set + BCE(σ(s(v_q, p_l)), y_ql) on the queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from common.backbones import feature_backbone
from common.config import bounded

SCALE = 20.0


@dataclass
class PrototypeModelConfig:
    backbone: str = "resnet50"  # timm name; the reduced default is set in the paper config
    backbone_weights: str | None = None  # a local timm checkpoint (nothing is downloaded)
    dim: int = bounded(512, minimum=1)
    heads: int = bounded(8, minimum=1)
    mlp_dim: int = bounded(1024, minimum=1)
    dropout: float = bounded(0.1, minimum=0.0, below=1.0)
    attention: bool = True  # False: z_{i,l} = v_i (the no-attention ablation)
    # word_guided: softmax_i s(v_i, t_l); mean: the labeled images' mean (ProtoNet)
    weighting: str = bounded("word_guided", choices=("word_guided", "mean"))


def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """s(a, b) = 20 (1 - ||â - b̂||) for every pair: a [..., A, d], b [..., B, d] -> [..., A, B]."""
    return SCALE * (1 - torch.cdist(functional.normalize(a, dim=-1), functional.normalize(b, dim=-1)))


class CrossModalAttention(nn.Module):
    """One pre-LN transformer block whose queries are label vectors and whose keys and values are an image's
    projected local features: [images, labels, d] from queries [labels, d] and features [images, d, h, w]."""

    def __init__(self, feature_dim: int, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.keys = nn.Conv2d(feature_dim, dim, 1)
        self.values = nn.Conv2d(feature_dim, dim, 1)
        self.query_norm, self.key_norm, self.mlp_norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        images = len(features)
        keys = self.key_norm(self.keys(features).flatten(2).transpose(1, 2))  # [images, hw, d]
        values = self.values(features).flatten(2).transpose(1, 2)
        x = queries.unsqueeze(0).expand(images, -1, -1)
        attended, _ = self.attention(self.query_norm(x), keys, values, need_weights=False)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x))


class WordGuidedPrototypes(nn.Module):
    def __init__(self, config: PrototypeModelConfig, word_dim: int):
        super().__init__()
        self.backbone = feature_backbone(config.backbone, config.backbone_weights, (-1,))
        feature_dim = self.backbone.feature_info.channels()[-1]
        self.image_projection = nn.Linear(feature_dim, config.dim)  # W_v
        self.word_projection = nn.Linear(word_dim, config.dim)  # W_t
        self.weighting = config.weighting
        self.attend = (
            CrossModalAttention(feature_dim, config.dim, config.heads, config.mlp_dim, config.dropout)
            if config.attention
            else None
        )

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local features F [B, C, h, w] and global vectors v [B, d]; computed once per image per episode."""
        (local,) = self.backbone(images)
        return local, self.image_projection(local.mean((2, 3)))

    def prototypes(self, local: torch.Tensor, global_: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor):
        """p [N, d] from the support set (local [S, C, h, w], v [S, d], targets [S, N]) and t [N, d]; also the
        support scores s(v_i, t_l) [S, N] that weight the images and feed the support loss."""
        support_scores = score(global_, labels)  # [S, N]
        if len(targets) == 0:  # no support set at all: every prototype from its word vector
            return labels, support_scores
        if self.attend is not None:
            parts = self.attend(labels, local)  # z_{i,l}: [S, N, d]
        else:
            parts = global_.unsqueeze(1).expand(-1, len(labels), -1)
        has_label = targets > 0.5
        if self.weighting == "mean":
            weights = has_label.float() / has_label.sum(0, keepdim=True).clamp(min=1)
        else:
            weights = torch.softmax(support_scores.masked_fill(~has_label, float("-inf")), dim=0)
            weights = torch.nan_to_num(weights)  # a label without support images: all -inf, weights 0
        prototypes = torch.einsum("sn,snd->nd", weights, parts)
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
    """Query BCE on σ(s(v_q, p_l)) plus, unless ablated, support BCE on σ(s(v_i, t_l))."""
    loss = functional.binary_cross_entropy_with_logits(output["query_scores"], episode["query_targets"])
    if support_loss:
        support_targets = episode["support_targets"]
        loss = loss + functional.binary_cross_entropy_with_logits(output["support_scores"], support_targets)
    return loss
