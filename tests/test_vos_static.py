"""STCN's stage 0 on pseudo videos of static scenes: the triplet transforms, the batch layout the trainer reads,
and the cache that lets every recipe of a seed start from one stage-0 model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from common.trainer import TrainerConfig
from papers.two_shot_vos.sampling import SamplingConfig
from papers.two_shot_vos.static import (
    StaticPretrainingConfig,
    StaticTripletSource,
    cached_stage_zero,
    stage_zero_key,
    static_triplet,
)
from papers.two_shot_vos.stcn import STCNConfig
from papers.two_shot_vos.synthetic import SyntheticVOSConfig
from papers.two_shot_vos.task import stage_names
from papers.two_shot_vos.training import RecipeConfig

GENERATOR = SyntheticVOSConfig(height=64, width=96)


def source(seed: int = 0) -> StaticTripletSource:
    config = StaticPretrainingConfig(steps=4, images=5)
    return StaticTripletSource(config, GENERATOR, SamplingConfig(crop=[48, 48]), lambda: 0, seed)


def test_a_triplet_is_three_crops_of_one_scene_with_its_object_in_the_reference_frame():
    batch = source().batch(np.arange(4))
    assert batch["frames"].shape == (4, 3, 3, 48, 48)
    assert batch["target"].shape == (4, 3, 48, 48) and set(batch["target"].unique().tolist()) <= {0, 1}
    assert (batch["first_masks"][:, 0] == (batch["target"][:, 0] == 1)).all()  # the reference's given mask
    assert batch["first_masks"][:, 0].flatten(1).sum(1).min() > 0
    assert (batch["selector"] == torch.tensor([1.0, 0.0])).all()  # single-object, as STCN's static data
    assert (batch["labeled"] == 1).all()


def test_triplets_are_a_function_of_seed_index_and_step():
    first, again, other = (source(seed).batch(np.array([2, 7])) for seed in (0, 0, 1))
    assert torch.equal(first["frames"], again["frames"]) and torch.equal(first["target"], again["target"])
    assert not torch.equal(first["frames"], other["frames"])


def test_the_frames_differ_by_the_per_frame_transform_and_the_masks_move_with_them():
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    mask = np.zeros((64, 96), dtype=np.uint8)
    mask[20:40, 30:60] = 1
    image[mask == 1] = 200
    frames, masks = static_triplet(image, mask, (48, 48), StaticPretrainingConfig(), np.random.default_rng(3))
    assert frames.shape == (3, 48, 48, 3) and masks.shape == (3, 48, 48)
    assert not np.array_equal(masks[0], masks[1])
    bright = frames.mean(axis=3) > 100
    assert (bright == masks.astype(bool)).mean() > 0.95  # image and mask warped alike


def test_stage_zero_is_trained_once_and_shared_by_every_recipe_of_a_seed(tmp_path):
    calls = []

    def train():
        calls.append(1)
        return {"weight": torch.ones(2)}, {"j_and_f": 0.5}

    def key(mode: str, seed: int = 0):
        return stage_zero_key(STCNConfig(), StaticPretrainingConfig(steps=4), GENERATOR, SamplingConfig(),
                              RecipeConfig(mode=mode), TrainerConfig(), seed)  # fmt: skip

    state, metrics, cached = cached_stage_zero(key("two_shot"), tmp_path, train)
    assert not cached and metrics == {"j_and_f": 0.5} and torch.equal(state["weight"], torch.ones(2))
    assert cached_stage_zero(key("full"), tmp_path, train)[2] and len(calls) == 1
    cached_stage_zero(key("full", seed=1), tmp_path, train)
    longer = replace(key("full"), static={**key("full").static, "steps": 8})
    cached_stage_zero(longer, tmp_path, train)
    assert len(calls) == 3  # another seed or another stage-0 setting trains again


def test_stage_zero_comes_first_unless_an_official_checkpoint_is_the_start():
    assert stage_names("two_shot", 300, None) == ("static", "phase1", "bank", "phase2")
    assert stage_names("full", 300, None) == ("static", "full")
    assert stage_names("full", 300, "/weights/stcn_s0.pth") == ("full",)
    assert stage_names("naive", 0, None) == ("naive",)
