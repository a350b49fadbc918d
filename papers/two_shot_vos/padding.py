"""Padding frames to a multiple of the model's stride and back, as STCN's `pad_divide_by` / `unpad`
(util/tensor_util.py): zeros split evenly between the two sides, the extra pixel on the bottom / right."""

from __future__ import annotations

import torch
from torch.nn import functional

Padding = tuple[int, int, int, int]  # (left, right, top, bottom), as functional.pad takes it


def padding_for(height: int, width: int, stride: int) -> Padding:
    extra_h, extra_w = (-height) % stride, (-width) % stride
    return extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2


def pad_to_stride(tensor: torch.Tensor, stride: int) -> tuple[torch.Tensor, Padding]:
    """`tensor` [..., H, W] zero-padded so that H and W are multiples of `stride`, and the padding used."""
    padding = padding_for(*tensor.shape[-2:], stride)
    if not any(padding):
        return tensor, padding
    return functional.pad(tensor, padding), padding


def unpad(tensor: torch.Tensor, padding: Padding) -> torch.Tensor:
    """The inverse of `pad_to_stride` on [..., H, W]."""
    left, right, top, bottom = padding
    height, width = tensor.shape[-2:]
    return tensor[..., top : height - bottom, left : width - right]
