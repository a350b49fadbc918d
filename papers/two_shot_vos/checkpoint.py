"""Loading official weights into our STCN: ImageNet backbones adapted to extra input channels as STCN's
`load_weights_sequential` (model/mod_resnet.py), and whole STCN checkpoints in the official state-dict layout
(model/network.py, model/modules.py, model/cbam.py), every tensor mapped onto our modules by name."""

from __future__ import annotations

import torch
from torch import nn

from common.errors import ConfigError

# official state-dict prefixes -> ours (the first that matches is used)
PREFIXES = (
    ("key_encoder.res2.", "key_encoder.layer1."),
    ("key_proj.key_proj.", "key_projection."),
    ("key_comp.", "key_compression."),
    ("value_encoder.fuser.block1.", "fuse_in."),
    ("value_encoder.fuser.attention.ChannelGate.mlp.1.", "fuse_attention.channel.0."),
    ("value_encoder.fuser.attention.ChannelGate.mlp.3.", "fuse_attention.channel.2."),
    ("value_encoder.fuser.attention.SpatialGate.spatial.conv.", "fuse_attention.spatial."),
    ("value_encoder.fuser.block2.", "fuse_out."),
    ("decoder.pred.", "predict."),
    ("decoder.", ""),
)
# inside the fusion and decoder blocks (not the ResNets, whose `downsample` keeps its name)
PARTS = ((".downsample.", ".shortcut."), (".skip_conv.", ".skip."), (".out_conv.", ".out."))
VALUE_INPUT = "value_encoder.conv1.weight"


def official_to_ours(name: str) -> str:
    """Our parameter name of an official STCN state-dict entry."""
    for official, ours in PREFIXES:
        if name.startswith(official):
            name = ours + name[len(official) :]
            break
    if not name.startswith(("key_encoder.", "value_encoder.")):
        for official, ours in PARTS:
            name = name.replace(official, ours)
    return name


def with_extra_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A first convolution's weight [C_out, C_in, k, k] with `channels` more inputs, initialised orthogonally
    (STCN's load_weights_sequential and load_network: nn.init.orthogonal_ on the padded part)."""
    pads = torch.zeros((weight.shape[0], channels, *weight.shape[2:]), dtype=weight.dtype)
    nn.init.orthogonal_(pads)
    return torch.cat([weight, pads], dim=1)


def _fitted(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], first: str) -> dict:
    """`source` with the first convolution widened where the target takes more input channels."""
    fitted = dict(source)
    if first in source and first in target and source[first].shape[1] < target[first].shape[1]:
        fitted[first] = with_extra_channels(source[first], target[first].shape[1] - source[first].shape[1])
    return fitted


def load_backbone_weights(backbone: nn.Module, path: str, key: str) -> None:
    """ImageNet weights (a local timm / torchvision checkpoint) into a feature backbone: every tensor of the
    backbone that the file has, the RGB filters of the first convolution kept and its extra (mask) channels
    orthogonal; the rest (the value encoder's added biases) keeps its initialisation, as the official code."""
    from timm.models import load_state_dict  # imported on use: common/backbones.py says why

    try:
        source = load_state_dict(path)
    except (OSError, RuntimeError, KeyError) as error:
        raise ConfigError(f"{key}={path} is not a readable checkpoint ({error}).") from None
    target = backbone.state_dict()
    fitted = _fitted(target, source, "conv1.weight")
    found = {name: value for name, value in fitted.items() if name in target and value.shape == target[name].shape}
    if not any(name.endswith("weight") for name in found):
        raise ConfigError(f"{key}={path} holds none of the backbone's tensors (e.g. {next(iter(target))}).")
    backbone.load_state_dict(found, strict=False)


def load_stcn_checkpoint(model: nn.Module, path: str) -> None:
    """An official STCN state dict (or a training checkpoint's 'network') into `model`; a single-object
    stcn_s0.pth gets the other-objects channel of the value encoder initialised orthogonally (load_network).
    Every tensor must land: a missing, unknown or differently shaped one is a ConfigError naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise ConfigError(f"model.stcn.checkpoint={path} is not a readable STCN checkpoint ({error}).") from None
    state = state.get("network", state)
    target = model.state_dict()
    mapped = _fitted(target, {official_to_ours(name): value for name, value in state.items()}, VALUE_INPUT)
    counted = {name for name in target if not name.endswith("num_batches_tracked")}
    given = {name for name in mapped if not name.endswith("num_batches_tracked")}
    problems = [f"unknown {name}" for name in sorted(given - counted)[:3]]
    problems += [f"missing {name}" for name in sorted(counted - given)[:3]]
    problems += [
        f"{name} is {tuple(mapped[name].shape)} here {tuple(target[name].shape)}"
        for name in sorted(given & counted)
        if mapped[name].shape != target[name].shape
    ][:3]
    if problems:
        raise ConfigError(
            f"model.stcn.checkpoint={path} does not fit this STCN ({'; '.join(problems)}): official checkpoints "
            f"need the full configuration (key_backbone=resnet50 value_backbone=resnet18 key_dim=64 value_dim=512 "
            f"decoder_dims=[512,256,256])."
        )
    model.load_state_dict({name: value for name, value in mapped.items() if name in target}, strict=False)
