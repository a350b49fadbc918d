"""Speed options for convolutional networks on CPU: channels-last memory (the same arithmetic, reordered) and
bfloat16 autocast (lower-precision matrix products; only on CPU, where the trainer's AMP does not apply)."""

from __future__ import annotations

import contextlib

import torch


def cpu_speed(tensor: torch.Tensor, channels_last: bool, bfloat16: bool):
    """`tensor` in the chosen memory format and the autocast context to run the network under: bfloat16 on CPU
    when asked, a no-op otherwise (CUDA runs use the trainer's AMP)."""
    if channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    if bfloat16 and tensor.device.type == "cpu":
        return tensor, torch.autocast("cpu", dtype=torch.bfloat16)
    return tensor, contextlib.nullcontext()
