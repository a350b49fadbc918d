"""STCN (Cheng et al., NeurIPS 2021) behind the VOS interface: a key encoder (ResNet-50 up to stride 16 in
the full configuration) projected to 64-d keys, a value encoder (ResNet-18 taking the frame, the object's
mask and the other objects' mask; its convolutions carry biases, as STCN's model/mod_resnet.py) fused with
the key encoder's stride-16 features, the negative squared L2 affinity read over the memory (top-k at
inference), and a decoder with stride-8 and stride-4 skips.

Weights: ImageNet backbones from local files adapted as STCN's `load_weights_sequential` (the RGB filters
kept, the mask channels initialised orthogonally), or a whole STCN checkpoint in the official state-dict
layout (stcn_s0.pth after static-image pretraining, stcn.pth after video training; checkpoint.py maps it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional

from common.backbones import feature_backbone
from common.config import bounded
from common.cpu_speed import cpu_speed
from papers.two_shot_vos.checkpoint import load_backbone_weights, load_stcn_checkpoint
from papers.two_shot_vos.interface import KeyFeatures, VOSModel


@dataclass
class STCNConfig:
    key_backbone: str = "resnet18"  # full STCN: resnet50
    value_backbone: str = "resnet18"  # full STCN: resnet18
    key_dim: int = bounded(64, minimum=1)
    value_dim: int = bounded(128, minimum=1)  # full STCN: 512
    decoder_dims: list[int] = bounded(default_factory=lambda: [128, 64, 64], minimum=1)  # full: [512, 256, 256]
    key_weights: str | None = None  # a local ImageNet checkpoint of the key backbone (nothing is downloaded)
    value_weights: str | None = None
    checkpoint: str | None = None  # an official STCN state dict (stcn_s0.pth, stcn.pth): the full configuration
    freeze_batchnorm: bool = True  # STCN trains with BatchNorm frozen
    channels_last: bool = False  # convolutions in channels-last memory format (speed on CPU; same numbers)
    cpu_bfloat16: bool = False  # encoders and decoder under bfloat16 autocast on CPU (speed; not the official's)


@dataclass
class VOSModelConfig:
    """The model node: the VOS model behind the interface (STCN)."""

    stcn: STCNConfig = field(default_factory=STCNConfig)


def with_conv_biases(module: nn.Module) -> nn.Module:
    """`module` with a zero bias added to every convolution that lacks one (STCN's value encoder, built from
    model/mod_resnet.py, has biased convolutions; their biases start at zero, ImageNet weights having none)."""
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d) and conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
    return module


class ResBlock(nn.Module):
    """Pre-activation residual block without normalization (STCN's), 3x3 convolutions."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1)
        self.shortcut = nn.Conv2d(in_dim, out_dim, 3, padding=1) if in_dim != out_dim else nn.Identity()

    def forward(self, x):
        return self.shortcut(x) + self.conv2(functional.relu(self.conv1(functional.relu(x))))


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al., 2018), as in STCN's value fusion."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.channel = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x):
        pooled = self.channel(x.mean((2, 3))) + self.channel(x.amax((2, 3)))
        x = x * torch.sigmoid(pooled)[:, :, None, None]
        spatial = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(spatial))


class UpsampleBlock(nn.Module):
    def __init__(self, skip_dim: int, up_dim: int, out_dim: int):
        super().__init__()
        self.skip = nn.Conv2d(skip_dim, up_dim, 3, padding=1)
        self.out = ResBlock(up_dim, out_dim)

    def forward(self, skip, up):
        x = self.skip(skip) + functional.interpolate(up, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(x)


def affinity(memory_keys: torch.Tensor, query_keys: torch.Tensor) -> torch.Tensor:
    """STCN's negative squared L2 affinity up to a per-query constant: (2 k_m·q − ||k_m||²) / sqrt(C_k),
    [B, N_memory, N_query] (the ||q||² term cancels in the softmax over the memory)."""
    squared = memory_keys.pow(2).sum(1).unsqueeze(2)
    return (2 * memory_keys.transpose(1, 2) @ query_keys - squared) / math.sqrt(memory_keys.shape[1])


def memory_softmax(scores: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Softmax over the memory (dim 1); with `top_k`, over the k highest scores only, the rest zero."""
    if top_k is None or top_k >= scores.shape[1]:
        return torch.softmax(scores, dim=1)
    values, indices = torch.topk(scores, k=top_k, dim=1)
    return torch.zeros_like(scores).scatter_(1, indices, torch.softmax(values, dim=1))


class STCN(VOSModel):
    def __init__(self, config: STCNConfig):
        super().__init__()
        self.config = config
        self.key_encoder = feature_backbone(config.key_backbone, None, (1, 2, 3))
        if config.key_weights:
            load_backbone_weights(self.key_encoder, config.key_weights, "model.stcn.key_weights")
        skip4, skip8, key16 = self.key_encoder.feature_info.channels()
        self.key_projection = nn.Conv2d(key16, config.key_dim, 3, padding=1)
        nn.init.orthogonal_(self.key_projection.weight)
        nn.init.zeros_(self.key_projection.bias)
        self.key_compression = nn.Conv2d(key16, config.value_dim, 3, padding=1)
        self.value_encoder = with_conv_biases(feature_backbone(config.value_backbone, None, (3,), in_chans=5))
        if config.value_weights:
            load_backbone_weights(self.value_encoder, config.value_weights, "model.stcn.value_weights")
        value16 = self.value_encoder.feature_info.channels()[-1]
        self.fuse_in = ResBlock(value16 + key16, config.value_dim)
        self.fuse_attention = CBAM(config.value_dim)
        self.fuse_out = ResBlock(config.value_dim, config.value_dim)
        d16, d8, d4 = config.decoder_dims
        self.compress = ResBlock(2 * config.value_dim, d16)
        self.up_16_8 = UpsampleBlock(skip8, d16, d8)
        self.up_8_4 = UpsampleBlock(skip4, d8, d4)
        self.predict = nn.Conv2d(d4, 1, 3, padding=1)
        if config.checkpoint:
            load_stcn_checkpoint(self, config.checkpoint)
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_batchnorm:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def _fast(self, tensor: torch.Tensor):
        """The memory format and autocast of the speed options; every output is float32 again."""
        return cpu_speed(tensor, self.config.channels_last, self.config.cpu_bfloat16)

    def encode_key(self, frames):
        frames, autocast = self._fast(frames)
        with autocast:
            f4, f8, f16 = self.key_encoder(frames)
            features = {"f16": f16, "f16_thin": self.key_compression(f16), "f8": f8, "f4": f4}
            key = self.key_projection(f16)
        return KeyFeatures(key=key.float(), features={name: value.float() for name, value in features.items()})

    def encode_value(self, frames, keys, mask, others):
        inputs, autocast = self._fast(torch.cat([frames, mask, others], dim=1))
        with autocast:
            (value16,) = self.value_encoder(inputs)
            x = self.fuse_in(torch.cat([value16, keys.features["f16"]], dim=1))
            return self.fuse_out(x + self.fuse_attention(x)).float()

    def read_memory(self, memory_keys, memory_values, query, top_k):
        height, width = query.key.shape[-2:]
        weights = memory_softmax(affinity(memory_keys, query.key.flatten(2)), top_k)  # [B or 1, N, HW]
        readout = (memory_values @ weights).view(len(memory_values), -1, height, width)
        return torch.cat([readout, query.features["f16_thin"].expand(len(readout), -1, -1, -1)], dim=1)

    def decode(self, readout, query):
        readout, autocast = self._fast(readout)
        with autocast:
            x = self.compress(readout)
            x = self.up_16_8(query.features["f8"], x)
            x = self.up_8_4(query.features["f4"], x)
            logits = self.predict(functional.relu(x)).float()
        return functional.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
