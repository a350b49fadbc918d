"""timm feature extractors, from random weights or from a local weights file the user gives (no model hub
download ever happens). timm is imported on first use: with torchvision it costs seconds at start-up, which
every run and configuration check of a paper without a backbone would otherwise pay."""

from __future__ import annotations

from torch import nn


def feature_backbone(name: str, weights: str | None, out_indices: tuple[int, ...], in_chans: int = 3) -> nn.Module:
    """`timm.create_model(name, features_only=True)` returning the stages in `out_indices`; with `weights`, the
    pretrained weights are read from that local file."""
    import timm

    options = {"features_only": True, "out_indices": out_indices, "in_chans": in_chans}
    if weights:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": weights}, **options)
    return timm.create_model(name, pretrained=False, **options)
