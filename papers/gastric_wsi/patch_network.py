"""Network 2: the multi-task patch network. A timm encoder shared by a patch classifier (lesion / no lesion,
cross-entropy) and a lesion decoder (per-pixel BCE + Dice, at a quarter of the tile's resolution), with
skip connections from the encoder's stages; `segmentation: false` is the classification-only baseline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from common.backbones import feature_backbone
from common.config import bounded
from common.cpu_speed import cpu_speed

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet statistics, as timm's encoders expect
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MASK_STRIDE = 4  # the lesion decoder's output is a quarter of the tile's resolution


def tile_tensor(tiles: np.ndarray) -> torch.Tensor:
    """uint8 tiles [n, S, S, 3] -> normalized float [n, 3, S, S]."""
    return torch.from_numpy((tiles.astype(np.float32) / 255 - MEAN) / STD).permute(0, 3, 1, 2).contiguous()


@dataclass
class PatchNetConfig:
    encoder: str = "resnet18"  # timm name (the paper's backbone is not stated)
    encoder_weights: str | None = None  # local timm checkpoint; nothing is downloaded
    segmentation: bool = True  # False: classification-only baseline (no decoder, no mask losses)
    decoder_width: int = bounded(64, minimum=1)
    dice_weight: float = bounded(1.0, minimum=0.0)
    mask_weight: float = bounded(1.0, minimum=0.0)
    channels_last: bool = True  # convolutions in channels-last memory (speed on CPU; the same arithmetic)
    cpu_bfloat16: bool = True  # the network under bfloat16 autocast on CPU (speed; README, deviations)


class MultiTaskPatchNet(nn.Module):
    def __init__(self, config: PatchNetConfig):
        super().__init__()
        self.config = config
        self.encoder = feature_backbone(config.encoder, config.encoder_weights, (1, 2, 3, 4))
        channels = self.encoder.feature_info.channels()
        self.classifier = nn.Linear(channels[-1], 2)
        if config.segmentation:
            width = config.decoder_width
            self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
            self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(True))
            self.mask_head = nn.Conv2d(width, 1, 1)
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, tiles: torch.Tensor) -> dict[str, torch.Tensor]:
        """tiles [B, 3, S, S] -> class logits [B, 2] and, with segmentation, lesion logits [B, S/4, S/4], in
        float32 whatever the speed options."""
        tiles, autocast = cpu_speed(tiles, self.config.channels_last, self.config.cpu_bfloat16)
        with autocast:
            stages = self.encoder(tiles)
            output = {"class_logits": self.classifier(stages[-1].mean((2, 3)))}
            if self.config.segmentation:
                x = self.lateral[-1](stages[-1])
                for lateral, stage in zip(self.lateral[-2::-1], stages[-2::-1], strict=True):  # top-down, FPN-like
                    x = functional.interpolate(x, size=stage.shape[-2:], mode="bilinear", align_corners=False)
                    x = x + lateral(stage)
                output["mask_logits"] = self.mask_head(self.smooth(x))[:, 0]
        return {name: value.float() for name, value in output.items()}


def lesion_targets(masks: torch.Tensor, side: int) -> torch.Tensor:
    """Tile lesion masks [B, S, S] at the decoder's resolution [B, side, side]: a cell is lesion when at least
    half of its pixels are."""
    return functional.adaptive_avg_pool2d(masks[:, None].float(), (side, side))[:, 0].round()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice over the batch's pixels."""
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * targets).sum()
    return 1 - (2 * overlap + eps) / (probabilities.sum() + targets.sum() + eps)


def patch_loss(output: dict[str, torch.Tensor], labels: torch.Tensor, masks: torch.Tensor, config: PatchNetConfig):
    """CE on the patch class + (with the decoder) BCE + Dice on the lesion mask; the terms for logging."""
    classification = functional.cross_entropy(output["class_logits"], labels)
    terms = {"classification": float(classification.detach())}
    if "mask_logits" not in output:
        return classification, terms
    logits = output["mask_logits"]
    targets = lesion_targets(masks, logits.shape[-1])
    bce = functional.binary_cross_entropy_with_logits(logits, targets)
    dice = dice_loss(logits, targets)
    terms.update(mask_bce=float(bce.detach()), mask_dice=float(dice.detach()))
    return classification + config.mask_weight * bce + config.dice_weight * dice, terms
