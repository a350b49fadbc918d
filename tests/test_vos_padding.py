"""Frames of any size go through STCN: padded to a multiple of 16 as the official pad_divide_by (evenly, the
extra pixel bottom / right) and cropped back, in propagation (DAVIS's native 480 x 854 and an odd size) and in
the training pass; predictions come out at the annotations' size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from papers.two_shot_vos.inference import InferenceConfig, segment_video
from papers.two_shot_vos.padding import pad_to_stride, padding_for, unpad
from papers.two_shot_vos.sampling import normalize
from papers.two_shot_vos.stcn import STCN, STCNConfig
from papers.two_shot_vos.training import triplet_forward


def tiny_stcn() -> STCN:
    torch.manual_seed(0)
    config = STCNConfig(key_backbone="resnet10t", value_backbone="resnet10t", value_dim=16, decoder_dims=[16, 8, 8])
    return STCN(config).eval()


def test_padding_splits_evenly_and_unpads_exactly():
    assert padding_for(480, 854, 16) == (5, 5, 0, 0)  # 854 -> 864
    assert padding_for(37, 53, 16) == (5, 6, 5, 6)  # 37 -> 48, 53 -> 64
    tensor = torch.randn(2, 3, 37, 53)
    padded, padding = pad_to_stride(tensor, 16)
    assert padded.shape[-2:] == (48, 64) and padded[..., :5, :].abs().sum() == 0
    torch.testing.assert_close(unpad(padded, padding), tensor)


@pytest.mark.parametrize("shape", [(480, 854), (37, 53)])
def test_propagation_at_any_size_keeps_the_annotations_size(shape):
    frames = np.random.default_rng(0).integers(0, 255, (2, *shape, 3), dtype=np.uint8)
    first = np.zeros(shape, dtype=np.uint8)
    first[10:30, 20:50] = 2
    masks = segment_video(tiny_stcn(), normalize(frames), {0: first}, InferenceConfig())
    assert masks.shape == (2, *shape)
    np.testing.assert_array_equal(masks[0], first)
    assert set(np.unique(masks).tolist()) <= {0, 2}


def test_propagation_at_a_working_size_returns_masks_at_the_native_size():
    frames = np.random.default_rng(0).integers(0, 255, (3, 40, 72, 3), dtype=np.uint8)  # the model's working size
    first = np.zeros((80, 144), dtype=np.uint8)  # annotations at twice that
    first[20:60, 40:100] = 1
    masks = segment_video(tiny_stcn(), normalize(frames), {0: first}, InferenceConfig())
    assert masks.shape == (3, 80, 144)


def test_the_training_pass_takes_crops_of_an_odd_size():
    model = tiny_stcn().train()
    batch = {
        "frames": torch.randn(2, 3, 3, 37, 53),
        "first_masks": torch.zeros(2, 2, 37, 53),
        "selector": torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
    }
    batch["first_masks"][:, 0, 5:20, 5:30] = 1
    output = triplet_forward(model, batch)
    assert output["logits"].shape == (2, 2, 3, 37, 53) and output["masks"].shape == (2, 2, 2, 37, 53)


def test_the_speed_options_keep_the_numbers():
    torch.manual_seed(0)
    frames, first = torch.randn(2, 3, 32, 32), np.zeros((32, 32), dtype=np.uint8)
    first[8:20, 8:20] = 1
    base = STCNConfig(key_backbone="resnet10t", value_backbone="resnet10t", value_dim=16, decoder_dims=[16, 8, 8])
    outputs = []
    for options in ({}, {"channels_last": True}, {"channels_last": True, "cpu_bfloat16": True}):
        torch.manual_seed(0)
        model = STCN(STCNConfig(**{**base.__dict__, **options})).eval()
        keys = model.encode_key(frames)
        outputs.append(model.decode(model.read_memory(keys.key.flatten(2), torch.randn(2, 16, 4), keys, None), keys))
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-4, rtol=1e-4)  # memory format only
    assert outputs[2].dtype == torch.float32 and (outputs[2] - outputs[0]).abs().max() < 0.5  # bfloat16: close
