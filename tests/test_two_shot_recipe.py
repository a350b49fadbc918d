"""The two-shot recipe's parts: STCN's affinity and top-k read, the bank's merge rule and its passes (only the
seed's objects), pseudo-label thresholds, the EMA teacher, the per-sample bootstrapped loss, the triplet samplers
and several training datasets (repeat factors, YouTube-VOS's max-skip divisor)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from papers.two_shot_vos.data import Video
from papers.two_shot_vos.inference import InferenceConfig, Propagation, bank_sources
from papers.two_shot_vos.interface import soft_aggregate
from papers.two_shot_vos.sampling import SamplingConfig, TripletSource, labeled_triplet, semi_triplet, standard_triplet
from papers.two_shot_vos.sources import TrainingSet
from papers.two_shot_vos.stcn import STCN, STCNConfig, affinity, memory_softmax
from papers.two_shot_vos.training import (
    IGNORE,
    TwoShotModel,
    bootstrap_fraction,
    bootstrapped_cross_entropy,
    confident_relabel,
    three_way_pseudo_labels,
    triplet_loss,
)


def test_affinity_is_the_negative_squared_distance_up_to_a_per_query_constant():
    torch.manual_seed(0)
    memory, query = torch.randn(2, 8, 5), torch.randn(2, 8, 3)
    scores = affinity(memory, query)
    distance = ((memory[:, :, :, None] - query[:, :, None, :]) ** 2).sum(1)  # [B, N_memory, N_query]
    expected = (-distance + (query**2).sum(1)[:, None, :]) / math.sqrt(8)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(torch.softmax(scores, 1), torch.softmax(-distance / math.sqrt(8), 1))


def test_top_k_read_keeps_the_k_best_memory_entries():
    scores = torch.tensor([[[3.0], [1.0], [2.0], [0.0]]])
    weights = memory_softmax(scores, top_k=2)
    expected = torch.softmax(torch.tensor([3.0, 2.0]), 0)
    torch.testing.assert_close(weights[0, :, 0], torch.tensor([expected[0], 0.0, expected[1], 0.0]))
    torch.testing.assert_close(memory_softmax(scores, None), torch.softmax(scores, 1))


def test_soft_aggregation_gives_background_the_product_of_the_complements():
    probabilities = torch.tensor([0.8, 0.5]).view(1, 2, 1, 1)
    joint = torch.softmax(soft_aggregate(probabilities), dim=1).flatten()
    odds = torch.tensor([0.2 * 0.5 / (1 - 0.1), 0.8 / 0.2, 0.5 / 0.5])  # background 0.1
    torch.testing.assert_close(joint, odds / odds.sum())


def test_bank_merge_rule_on_a_hand_made_sequence():
    # 12 frames, labeled 3 and 8: frames 0-2 from the backward pass from 3; 3..5 from the forward pass from 3
    # (first half of 4..7 plus 3 itself), 6-7 from the backward pass from 8; 8-11 from the forward pass from 8.
    sources = bank_sources(12, 3, 8)
    supplied = {name: list(frames) for name, (_, _, frames) in sources.items()}
    assert supplied == {
        "backward_from_first": [0, 1, 2],
        "forward_from_first": [3, 4, 5],
        "backward_from_second": [6, 7],
        "forward_from_second": [8, 9, 10, 11],
    }
    assert sources["backward_from_first"][:2] == ([3, 2, 1, 0], 3)
    assert sources["backward_from_second"][:2] == ([8, 7, 6], 8)
    every = sorted(t for frames in supplied.values() for t in frames)
    assert every == list(range(12))  # each frame exactly once
    adjacent = {name: list(frames) for name, (_, _, frames) in bank_sources(5, 0, 1).items()}
    assert adjacent["forward_from_first"] == [0] and adjacent["backward_from_second"] == []


def test_three_way_pseudo_labels_need_ninety_percent():
    masks = torch.tensor([[0.95, 0.02], [0.05, 0.92], [0.5, 0.45], [0.03, 0.04], [0.85, 0.1]])  # 5 pixels
    masks = masks.T.reshape(1, 2, 1, 5)
    labels = three_way_pseudo_labels(masks, torch.tensor([[1.0, 1.0]]), 0.9)
    assert labels.flatten().tolist() == [1, 2, IGNORE, 0, IGNORE]
    no_second = three_way_pseudo_labels(masks, torch.tensor([[1.0, 0.0]]), 0.9)
    assert no_second.flatten().tolist() == [1, IGNORE, IGNORE, 0, IGNORE]


def test_phase_two_relabels_only_where_ninety_nine_percent_sure():
    masks = torch.tensor([[0.995, 0.001], [0.98, 0.01], [0.002, 0.003]]).T.reshape(1, 2, 1, 3)
    bank = torch.tensor([[[2, 2, 1]]])
    relabeled = confident_relabel(bank.clone(), masks, torch.tensor([[1.0, 1.0]]), 0.99)
    assert relabeled.flatten().tolist() == [1, 2, 0]  # sure: object 1; unsure: the bank's 2; sure: background


def test_ema_teacher_follows_the_student_with_alpha_capped():
    model = TwoShotModel(STCN(STCNConfig(key_backbone="resnet10t", value_backbone="resnet10t", value_dim=16,
                                         decoder_dims=[16, 8, 8])), teacher=True)  # fmt: skip
    student, teacher = model.student.key_projection.weight, model.teacher.key_projection.weight
    assert not teacher.requires_grad
    with torch.no_grad():
        student.add_(1.0)
    model.after_step(0.995)  # step 0: alpha = min(1 - 1/1, 0.995) = 0, the teacher becomes the student
    torch.testing.assert_close(teacher, student)
    for _ in range(3):
        model.after_step(0.995)
    before = teacher.clone()
    with torch.no_grad():
        student.add_(1.0)
    model.after_step(0.995)  # step 4: alpha = min(1 - 1/5, 0.995) = 0.8
    torch.testing.assert_close(teacher, 0.8 * before + 0.2 * student)
    assert int(model.step) == 5


def test_bootstrapped_cross_entropy_keeps_the_hardest_pixels_and_skips_ignored():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [0.0, 0.0], [9.0, 0.0]]).T.reshape(1, 2, 1, 4)
    target = torch.tensor([[[0, 0, 1, IGNORE]]])
    losses = torch.nn.functional.cross_entropy(logits[0, :, 0, :3].T, target[0, 0, :3], reduction="none")
    assert bootstrapped_cross_entropy(logits, target, 1.0) == pytest.approx(float(losses.mean()))
    hardest = float(losses.max())  # top third of 3 valid pixels = 1 pixel
    assert bootstrapped_cross_entropy(logits, target, 1 / 3) == pytest.approx(hardest)
    assert bootstrap_fraction(5, 10, 20) == 1.0 and bootstrap_fraction(25, 10, 20) == 0.15
    assert bootstrap_fraction(15, 10, 20) == pytest.approx(0.575)


def test_samplers_follow_the_official_rules():
    rng = np.random.default_rng(0)
    for _ in range(200):
        first, second, third = standard_triplet(30, 5, rng)
        assert abs(second - first) <= 6 and abs(third - second) <= 6
        assert sorted(labeled_triplet([4, 17], 5, rng)) in ([4, 4, 17], [4, 17, 17])
        triplet = semi_triplet(30, [4, 17], 5, rng, both_probability=1.0)
        assert triplet[0] in (4, 17) and {4, 17} <= set(triplet)  # forced: both labeled frames present
    starts = {semi_triplet(30, [4, 17], 5, rng, both_probability=0.0)[0] for _ in range(100)}
    assert starts == {4, 17}  # a triplet always starts at a labeled frame


def test_bootstrapped_loss_is_per_sample_over_the_objects_it_has():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 3, 4, 4)  # [B, frames 1-2, background + 2 objects, H, W]
    target = torch.randint(0, 3, (2, 3, 4, 4))
    target[1, 1:] = target[1, 1:].clamp(max=1)  # the second sample has one object
    selector = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    expected = 0
    for row, classes in ((0, 3), (1, 2)):  # the official LossComputer: each sample alone, then / B
        for t in range(2):
            sample = logits[row : row + 1, t, :classes]
            expected += bootstrapped_cross_entropy(sample, target[row : row + 1, t + 1], 0.5)
    loss = triplet_loss({"logits": logits}, target, selector, 0.5)
    torch.testing.assert_close(loss, expected / 2)
    pooled = sum(bootstrapped_cross_entropy(logits[:, t], target[:, t + 1], 0.5) for t in range(2))
    assert not torch.isclose(loss, pooled)  # one top-k over the whole batch would differ


def test_a_pass_segments_only_the_objects_its_seed_labels():
    torch.manual_seed(0)
    config = STCNConfig(key_backbone="resnet10t", value_backbone="resnet10t", value_dim=16, decoder_dims=[16, 8, 8])
    model = STCN(config).eval()
    frames = torch.randn(5, 3, 32, 32)
    seed = np.zeros((32, 32), dtype=np.uint8)
    seed[4:12, 4:12] = 1  # object 2 is labeled at the other labeled frame only
    objects, outputs = Propagation(model, frames, InferenceConfig()).run([2, 3, 4], {2: seed})
    assert objects == [1] and sorted(outputs) == [2, 3, 4] and outputs[3].shape == (2, 32, 32)
    later = np.zeros((32, 32), dtype=np.uint8)
    later[20:28, 20:28] = 2  # YouTube-VOS: object 2 first appears at frame 3
    objects, outputs = Propagation(model, frames, InferenceConfig()).run(list(range(5)), {0: seed, 3: later})
    assert objects == [1, 2] and sorted(outputs) == list(range(5))
    assert outputs[1][2].abs().sum() == 0  # not segmented before its seed
    assert (outputs[3].argmax(0)[20:28, 20:28] == 2).all() and outputs[4][2].abs().sum() > 0


def test_training_sets_repeat_and_divide_max_skip():
    video = Video("v", np.zeros((40, 8, 8, 3), dtype=np.uint8), [f"{t:05d}" for t in range(40)],
                  {t: np.ones((8, 8), dtype=np.uint8) for t in range(40)})  # fmt: skip
    davis, youtube = TrainingSet("davis", [video], repeat=5), TrainingSet("youtube_vos", [video], max_skip_divisor=5)
    settings = SamplingConfig(crop=[8, 8], samples_per_video=1, max_skip_start=25, max_skip_at=[1.0] * 5)
    source = TripletSource([davis, youtube], "full", settings, lambda: 0, 100, 0, seed=0)
    assert len(source) == 6 and [divisor for _, divisor in source.entries] == [1] * 5 + [5]
    rng = np.random.default_rng(0)
    gaps = [np.diff(sorted(source._frames(video, 5, 0, rng))).max() for _ in range(200)]
    assert max(gaps) <= 6  # max-skip 25 // 5 = 5: at most 5 + 1 frames apart
    gaps = [np.diff(sorted(source._frames(video, 1, 0, rng))).max() for _ in range(200)]
    assert max(gaps) > 6
