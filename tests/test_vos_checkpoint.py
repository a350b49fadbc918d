"""Official STCN weights load onto our modules: a state dict in STCN's layout (model/network.py, modules.py,
cbam.py, mod_resnet.py; rebuilt here from those module trees) lands tensor by tensor, a single-object
stcn_s0.pth gains an orthogonal other-objects channel, a reduced model is refused with the reason, and ImageNet
backbones keep their RGB filters with orthogonal mask channels (load_weights_sequential); and the GPU check
script (papers/two_shot_vos/gpu_check.py) runs end to end on the CPU at a small size."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from common.errors import ConfigError
from papers.two_shot_vos import gpu_check
from papers.two_shot_vos.checkpoint import official_to_ours
from papers.two_shot_vos.stcn import STCN, STCNConfig
from tests.conftest import FIXTURES

FULL = {"key_backbone": "resnet50", "value_backbone": "resnet18", "value_dim": 512, "decoder_dims": [512, 256, 256]}


def module(**children: nn.Module) -> nn.Module:
    node = nn.Module()
    for name, child in children.items():
        setattr(node, name, child)
    return node


def conv(in_dim: int, out_dim: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(in_dim, out_dim, kernel, padding=kernel // 2)


def res_block(in_dim: int, out_dim: int) -> nn.Module:
    block = module(conv1=conv(in_dim, out_dim), conv2=conv(out_dim, out_dim))
    if in_dim != out_dim:
        block.downsample = conv(in_dim, out_dim)
    return block


def biased(resnet: nn.Module, in_channels: int) -> nn.Module:
    """torchvision's ResNet-18 as mod_resnet builds it: biased convolutions, extra input channels."""
    resnet.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3)
    for child in list(resnet.modules()):
        if isinstance(child, nn.Conv2d) and child.bias is None:
            child.bias = nn.Parameter(torch.zeros(child.out_channels))
    return resnet


def official_state() -> dict[str, torch.Tensor]:
    """Random tensors under STCN's names and shapes (its training and evaluation networks share them)."""
    torch.manual_seed(1)
    key, value = torchvision.models.resnet50(), biased(torchvision.models.resnet18(), 5)
    gate = module(mlp=nn.Sequential(nn.Flatten(), nn.Linear(512, 512 // 16), nn.ReLU(), nn.Linear(512 // 16, 512)))
    attention = module(ChannelGate=gate, SpatialGate=module(spatial=module(conv=conv(2, 1, 7))))
    network = module(
        key_encoder=module(conv1=key.conv1, bn1=key.bn1, res2=key.layer1, layer2=key.layer2, layer3=key.layer3),
        value_encoder=module(
            conv1=value.conv1, bn1=value.bn1, layer1=value.layer1, layer2=value.layer2, layer3=value.layer3,
            fuser=module(block1=res_block(1024 + 256, 512), attention=attention, block2=res_block(512, 512)),
        ),
        key_proj=module(key_proj=conv(1024, 64)),
        key_comp=conv(1024, 512),
        decoder=module(
            compress=res_block(1024, 512),
            up_16_8=module(skip_conv=conv(512, 512), out_conv=res_block(512, 256)),
            up_8_4=module(skip_conv=conv(256, 256), out_conv=res_block(256, 256)),
            pred=conv(256, 1),
        ),
    )  # fmt: skip
    state = network.state_dict()
    return {name: torch.randn_like(tensor.float()).to(tensor.dtype) for name, tensor in state.items()}


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[dict[str, torch.Tensor], str]:
    state, path = official_state(), tmp_path_factory.mktemp("stcn") / "stcn.pth"
    torch.save(state, path)
    return state, str(path)


def test_every_tensor_of_an_official_checkpoint_lands(official):
    state, path = official
    model = STCN(STCNConfig(**FULL, checkpoint=path))
    ours = model.state_dict()
    assert len(ours) == len(state)
    for name, tensor in state.items():
        torch.testing.assert_close(ours[official_to_ours(name)], tensor, msg=name)


def test_stage_zero_gains_an_orthogonal_other_objects_channel(official, tmp_path):
    state = {**official[0], "value_encoder.conv1.weight": official[0]["value_encoder.conv1.weight"][:, :4]}
    torch.save({"network": state}, tmp_path / "stcn_s0.pth")  # a training checkpoint's layout is read too
    loaded = STCN(STCNConfig(**FULL, checkpoint=str(tmp_path / "stcn_s0.pth"))).value_encoder.conv1.weight
    torch.testing.assert_close(loaded[:, :4], state["value_encoder.conv1.weight"])
    extra = loaded[:, 4].flatten(1).detach()
    assert extra.abs().sum() > 0
    torch.testing.assert_close(extra.T @ extra, torch.eye(49), atol=1e-5, rtol=0)  # 64 x 49: orthonormal columns


def test_a_reduced_model_refuses_an_official_checkpoint(official):
    with pytest.raises(ConfigError, match="does not fit this STCN .* need the full configuration"):
        STCN(STCNConfig(checkpoint=official[1]))


def test_imagenet_backbones_keep_rgb_filters_and_add_orthogonal_mask_channels(tmp_path):
    torch.manual_seed(2)
    imagenet = torchvision.models.resnet18()
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    config = STCNConfig(key_weights=str(tmp_path / "resnet18.pth"), value_weights=str(tmp_path / "resnet18.pth"))
    model = STCN(config)
    torch.testing.assert_close(model.key_encoder.conv1.weight, imagenet.conv1.weight)
    torch.testing.assert_close(model.key_encoder.layer3[0].conv1.weight, imagenet.layer3[0].conv1.weight)
    value = model.value_encoder.conv1.weight.detach()
    torch.testing.assert_close(value[:, :3], imagenet.conv1.weight)  # not rescaled
    extra = value[:, 3:].flatten(1)
    torch.testing.assert_close(extra @ extra.T, torch.eye(64), atol=1e-5, rtol=0)
    assert model.value_encoder.layer1[0].conv1.bias.abs().sum() == 0  # biases start at zero
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="value_weights=.*junk.pth is not a readable checkpoint"):
        STCN(STCNConfig(value_weights=str(tmp_path / "junk.pth")))


def test_the_gpu_check_runs_on_the_cpu_at_a_small_size(official, tmp_path):
    figures = gpu_check.main(
        ["--device", "cpu", "--frames", "3", "--size", "40", "72", "--steps", "1", "--warmup", "0", "--batch", "1",
         "--crop", "32",
         "--davis", str(FIXTURES / "davis2017"), "--checkpoint", official[1], "--out", str(tmp_path / "gpu.json")]
    )  # fmt: skip
    assert figures["inference_fps_float32"] > 0 and figures["training_amp"]["steps_per_s"] > 0
    assert 0 <= figures["davis2017_val"]["j_and_f"] <= 1  # official-layout weights through DAVIS val
    assert json.loads((tmp_path / "gpu.json").read_text()) == figures
