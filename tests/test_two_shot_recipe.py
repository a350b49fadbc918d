"""The two-shot recipe's parts: STCN's affinity and top-k read, the bank's merge rule, pseudo-label thresholds,
the EMA teacher, the bootstrapped loss and the triplet samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from papers.two_shot_vos.inference import bank_sources
from papers.two_shot_vos.interface import soft_aggregate
from papers.two_shot_vos.sampling import labeled_triplet, semi_triplet, standard_triplet
from papers.two_shot_vos.stcn import STCN, STCNConfig, affinity, memory_softmax
from papers.two_shot_vos.training import (
    IGNORE,
    TwoShotModel,
    bootstrap_fraction,
    bootstrapped_cross_entropy,
    confident_relabel,
    three_way_pseudo_labels,
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
