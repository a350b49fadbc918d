"""Tissue foreground on a slide's low-resolution level: network 1 (a small fully convolutional segmenter
trained on annotated tissue masks), and Otsu's threshold on saturation with morphology (OpenCV), the
fallback where no tissue annotation exists and the baseline network 1 is compared with."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional

from common.config import bounded


@dataclass
class OtsuConfig:
    blur_um: float = bounded(56.0, minimum=0.0)  # median filter width
    close_um: float = bounded(40.0, minimum=0.0)  # morphological closing, then opening, kernel width
    open_um: float = bounded(40.0, minimum=0.0)
    min_area_um2: float = bounded(5_000.0, minimum=0.0)  # smaller tissue components are dropped (~70 µm square)
    white: int = bounded(225, minimum=0, maximum=255)  # a pixel brighter than this in every channel is glass
    black: int = bounded(40, minimum=0, maximum=255)  # one darker than this in every channel is ink or debris
    pen_margin: int = bounded(12, minimum=0, maximum=255)  # green above red by more: blue or green pen (H&E's
    # green is always its darkest channel: both stains absorb it most)


def pixels(microns: float, mpp: float) -> int:
    """An odd kernel width of at least 1 pixel for `microns` at `mpp` µm/px."""
    return max(int(round(microns / mpp)), 1) | 1


def artifact_mask(rgb: np.ndarray, config: OtsuConfig) -> np.ndarray:
    """bool [h, w]: glass (white), ink and debris (black) and blue or green pen marks."""
    channels = rgb.astype(np.int16)
    white = (channels > config.white).all(axis=2)
    black = (channels < config.black).all(axis=2)
    pen = channels[:, :, 1] - channels[:, :, 0] > config.pen_margin
    return white | black | pen


def clean_tissue(mask: np.ndarray, rgb: np.ndarray, config: OtsuConfig, mpp: float) -> np.ndarray:
    """uint8 0/1: `mask` without artifacts (artifact_mask) and without components under min_area_um2."""
    mask = (mask > 0) & ~artifact_mask(rgb, config)
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] * mpp**2 >= config.min_area_um2
    keep[0] = False  # background
    return keep[components].astype(np.uint8)


def otsu_tissue_mask(rgb: np.ndarray, config: OtsuConfig, mpp: float) -> np.ndarray:
    """uint8 0/1 mask of a thumbnail at `mpp` µm/px: saturation (tissue is stained, glass is grey-white)
    thresholded by Otsu's method, smoothed and cleaned with kernels of the configured µm sizes."""
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 1]
    saturation = cv2.medianBlur(saturation, pixels(config.blur_um, mpp))
    _, mask = cv2.threshold(saturation, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    for operation, microns in ((cv2.MORPH_CLOSE, config.close_um), (cv2.MORPH_OPEN, config.open_um)):
        width = pixels(microns, mpp)
        mask = cv2.morphologyEx(mask, operation, np.ones((width, width), np.uint8))
    return clean_tissue(mask, rgb, config, mpp)


@dataclass
class TissueNetConfig:
    width: int = bounded(16, minimum=1)
    steps: int = bounded(150, minimum=1)
    batch_size: int = bounded(4, minimum=1)
    crop: int = bounded(96, minimum=4)  # training crops of the thumbnails (two 2x poolings)
    lr: float = bounded(0.003, above=0.0)


class TissueNet(nn.Module):
    """Network 1: an encoder-decoder over the thumbnail (two poolings, skip connections), one logit per pixel."""

    def __init__(self, width: int):
        super().__init__()

        def block(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True),
                nn.Conv2d(outputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True),
            )  # fmt: skip

        self.down1, self.down2, self.bottom = block(3, width), block(width, 2 * width), block(2 * width, 4 * width)
        self.up2, self.up1 = block(6 * width, 2 * width), block(3 * width, width)
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        first = self.down1(images)
        second = self.down2(functional.max_pool2d(first, 2))
        bottom = self.bottom(functional.max_pool2d(second, 2))
        up = functional.interpolate(bottom, size=second.shape[-2:], mode="bilinear", align_corners=False)
        up = self.up2(torch.cat([up, second], 1))
        up = functional.interpolate(up, size=first.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.up1(torch.cat([up, first], 1)))[:, 0]


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).sub(0.5).div(0.25)


def train_tissue_net(thumbnails: list[np.ndarray], masks: list[np.ndarray], config: TissueNetConfig,
                     seed: int) -> TissueNet:  # fmt: skip
    """Fit network 1 on random crops of (thumbnail, annotated tissue mask) pairs with BCE."""
    generator = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = TissueNet(config.width)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    for _ in range(config.steps):
        images, targets = [], []
        for _ in range(config.batch_size):
            index = generator.integers(len(thumbnails))
            image, mask = thumbnails[index], masks[index]
            crop = min(config.crop, *image.shape[:2])
            y, x = (generator.integers(0, side - crop + 1) for side in image.shape[:2])
            images.append(to_tensor(np.ascontiguousarray(image[y : y + crop, x : x + crop])))
            targets.append(torch.from_numpy(mask[y : y + crop, x : x + crop].astype(np.float32)))
        loss = functional.binary_cross_entropy_with_logits(net(torch.stack(images)), torch.stack(targets))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@torch.no_grad()
def network_tissue_mask(net: TissueNet, rgb: np.ndarray) -> np.ndarray:
    return (net(to_tensor(rgb)[None])[0] > 0).numpy().astype(np.uint8)
