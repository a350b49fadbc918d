"""OVRDL + AAL: one-versus-rest targets, the λ matrix, recombination, the CMNIST protocol and the loaders."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from common.errors import ConfigError, DatasetError
from papers.ovrdl_aal.aal import AAL, AALConfig, MixSource, confident_rows
from papers.ovrdl_aal.celeba import CelebAProtocolConfig, build_celeba, kept_people
from papers.ovrdl_aal.cmnist import CMNISTConfig, build_cmnist, training_colour
from papers.ovrdl_aal.data import read_celeba, read_mnist_cmnist
from papers.ovrdl_aal.ovrdl import (
    OVRDL,
    OVRDLConfig,
    adversary_loss,
    discriminator_loss,
    one_versus_rest_targets,
)
from papers.ovrdl_aal.task import intra_op_threads
from papers.ovrdl_aal.trainees import AALTrainee
from tests.conftest import FIXTURES

CLASSES = [10, 2, 2]
PRIORS = [np.full(10, 0.1), np.array([0.25, 0.75]), np.array([0.5, 0.5])]


def model(independence=None, **options) -> OVRDL:
    torch.manual_seed(0)
    config = OVRDLConfig(independence=independence, **options)
    return OVRDL(config, (3, 16, 16), CLASSES, PRIORS)


def test_pair_weights_are_the_official_identity_1_and_domain_0_1_times_lambda():
    lam = [[0, 1, 1], [1, 0, 0], [1, 0.5, 0]]
    weights = model(lam).pair_weights.numpy()
    # w[k, j] = w_j · λ[j, k]: w_0 = 1 for the identity target, 0.1 for the domains
    np.testing.assert_allclose(weights, [[0, 0.1, 0.1], [1, 0, 0.05], [1, 0, 0]])
    assert model(lam).own_weights == [1.0, 0.1, 0.1]
    np.testing.assert_allclose(model(lam, identity_pair_weight=0.1).pair_weights.numpy()[1:, 0], [0.1, 0.1])


def _adversary_gradients(net: OVRDL) -> dict[str, float]:
    images, labels = torch.rand(4, 3, 16, 16), torch.tensor([[3, 1, 0], [7, 0, 1], [1, 1, 1], [9, 0, 0]])
    net.train()
    torch.manual_seed(1)
    adversary_loss(net, images, labels)[0].backward()
    norms = {f"G{k}": generator[0].weight.grad for k, generator in enumerate(net.generators)}
    norms["E"] = net.encoder[0].weight.grad
    return {name: 0.0 if grad is None else float(grad.abs().sum()) for name, grad in norms.items()}


def test_the_adversary_carries_the_own_terms_and_routes_them_as_configured():
    only_own = model([[0, 0, 0], [0, 0, 0], [0, 0, 0]])  # no pair: the own-attribute terms alone
    images, labels = torch.rand(2, 3, 16, 16), torch.zeros(2, 3).long()
    assert only_own.pairs() == [] and adversary_loss(only_own, images, labels)[0] > 0
    paper = _adversary_gradients(only_own)
    assert paper["E"] > 0 and paper["G0"] == paper["G1"] == paper["G2"] == 0  # own terms reach E only
    without = model([[0, 0, 0], [0, 0, 0], [0, 0, 0]], adversary_own_term=False)
    assert adversary_loss(without, images, labels)[0] == 0
    effective = _adversary_gradients(model(routing="effective"))
    assert effective["G0"] > 0 and effective["G1"] > 0 and effective["G2"] == 0  # the last G is not compiled in
    assert _adversary_gradients(model())["G2"] > 0


def test_one_versus_rest_target_puts_prior_mass_on_every_class_but_the_true_one():
    prior = torch.tensor([0.5, 0.25, 0.25])
    targets = one_versus_rest_targets(torch.tensor([0, 2]), prior)
    # C · π ⊙ (1 − onehot): unnormalized, as the official code ends up
    torch.testing.assert_close(targets, torch.tensor([[0.0, 0.75, 0.75], [1.5, 0.75, 0.0]]))


def test_lambda_zero_removes_exactly_those_pairs_loss_terms():
    full, related = model(), model([[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    assert full.pairs() == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert related.pairs() == [(0, 1), (0, 2), (1, 0), (2, 0)]  # colour and thickness are not forced apart
    images, labels = torch.rand(4, 3, 16, 16), torch.tensor([[3, 1, 0], [7, 0, 1], [1, 1, 1], [9, 0, 0]])
    related.train()
    loss, _ = discriminator_loss(related, images, labels)
    loss.backward()
    assert related.discriminators[1][2].weight.grad is None and related.discriminators[2][1].weight.grad is None
    assert related.discriminators[1][0].weight.grad.abs().sum() > 0
    related.zero_grad()
    adversary_loss(related, images, labels)[0].backward()
    assert related.discriminators[1][2].weight.grad is None
    # the same weights with λ = 1 − I: the extra terms make the loss differ
    weights = {name: value for name, value in related.state_dict().items() if name != "pair_weights"}
    full.load_state_dict(weights, strict=False)
    with torch.no_grad():
        full.eval(), related.eval()
        assert discriminator_loss(full, images, labels)[0] > discriminator_loss(related, images, labels)[0]
    with pytest.raises(ConfigError, match="3 x 3"):
        model([[0, 1], [1, 0]])


def test_parameter_groups_separate_the_three_updates():
    groups = model().parameter_groups()
    ids = {name: {id(p) for p in params} for name, params in groups.items()}
    net = model()
    assert ids["adversary"] <= ids["task"] and not ids["discriminator"] & ids["task"]
    assert len(groups["discriminator"]) == 2 * 6  # weight and bias of the 6 cross discriminators
    assert len(groups["task"]) == len(list(net.encoder.parameters())) + 2 * 3 + 2 * 3


def test_recombination_follows_the_official_seen_then_unseen_schedule():
    labels = np.array([[0, 0, 0], [1, 0, 1], [5, 1, 0], [6, 1, 1]])  # training combinations
    features = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    rows = [np.arange(4)] * 3
    source = MixSource(features, labels, rows, AALConfig(mixes_per_loop=2000, loops=2), seed=0, batch_size=8)
    # 4 x 2 x 2 combinations drawn, 4 of them seen: unseen mixes outnumber seen ones about 3 to 1
    assert source.unseen_per_seen == 3
    assert len(source) % 8 == 0 and 2 * 2000 / 4 * 0.8 < len(source) < 2 * 2000 / 4 * 1.2
    batch = source.batch(np.arange(8))
    seen_cells = {tuple(row) for row in labels.tolist()}
    mixed = batch["labels"].numpy()
    assert batch["seen"].numpy().tolist() == [True] * 8 + [False] * 24  # one seen batch, then three unseen
    assert [tuple(row) in seen_cells for row in mixed.tolist()] == batch["seen"].numpy().tolist()
    for mix_features, mix_labels in zip(batch["features"].numpy(), mixed, strict=True):
        for k in range(3):  # attribute k's feature and label come from the same training row
            row = int(mix_features[k, 0] - 2 * k) // 6  # features[r, k, 0] = 6 r + 2 k
            assert labels[row, k] == mix_labels[k] and mix_features[k, 0] == features[row, k, 0]


def test_the_aal_step_makes_one_seen_update_then_one_per_unseen_batch():
    labels = np.array([[0, 0], [1, 0], [2, 1]])
    source = MixSource(np.random.default_rng(0).random((3, 2, 4)), labels, [np.arange(3)] * 2,
                       AALConfig(mixes_per_loop=600), seed=0, batch_size=4)  # fmt: skip
    trainee = AALTrainee(None, AALConfig(hidden=8), feature_dim=4, classes=[3, 2])
    calls = []

    def update(compute, names):
        calls.append(names)
        return {"loss": float(compute()[0].detach())}

    logs = trainee.training_step(trainee.build_model(), source.batch(np.arange(4)), update)
    assert calls == [["aal"]] * (1 + source.unseen_per_seen) and {"seen_loss", "unseen_loss"} <= set(logs)


def gradient(layer) -> float:
    return 0.0 if layer.weight.grad is None else float(layer.weight.grad.abs().sum())


def test_aal_updates_only_the_allowed_generators():
    torch.manual_seed(0)
    aal = AAL(AALConfig(hidden=8), feature_dim=4, classes=[3, 2])
    features, labels = torch.randn(5, 2, 4), torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0], [1, 1]])
    aal.loss(features, labels, seen=True).backward()
    seen_grads = [g[0].weight.grad.clone() for g in aal.generators]
    aal.zero_grad()
    # seen: G'_0 gets only the identity's term and G'_1 only the domain's; unseen: the other way round
    identity_only = AAL(AALConfig(hidden=8, domain_weight=0.0), feature_dim=4, classes=[3, 2])
    identity_only.load_state_dict(aal.state_dict())
    identity_only.loss(features, labels, seen=True).backward()
    assert (
        identity_only.generators[1][0].weight.grad is None
        or identity_only.generators[1][0].weight.grad.abs().sum() == 0
    )
    torch.testing.assert_close(identity_only.generators[0][0].weight.grad, seen_grads[0])
    identity_only.zero_grad()
    identity_only.loss(features, labels, seen=False).backward()
    assert (
        identity_only.generators[0][0].weight.grad is None
        or identity_only.generators[0][0].weight.grad.abs().sum() == 0
    )
    assert identity_only.generators[1][0].weight.grad.abs().sum() > 0


def test_effective_aal_routing_trains_the_last_generator_when_seen_and_the_others_when_unseen():
    torch.manual_seed(0)
    aal = AAL(AALConfig(hidden=8, routing="effective"), feature_dim=4, classes=[3, 2, 2])
    features, labels = torch.randn(5, 3, 4), torch.tensor([[0, 1, 0], [1, 0, 1], [2, 1, 1], [0, 0, 0], [1, 1, 0]])
    for seen, trained in ((True, [False, False, True]), (False, [True, True, False])):
        aal.zero_grad()
        aal.loss(features, labels, seen=seen).backward()
        assert [gradient(g[0]) > 0 for g in aal.generators] == trained
        assert all(gradient(d) > 0 for d in aal.discriminators)


def test_confident_rows_drop_the_least_confident_domain_rows():
    labels = np.array([[0, 0], [1, 1], [2, 0], [3, 1]])
    domain = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])  # true-value probabilities .9 .8 .3 .6
    rows = confident_rows([np.eye(4), domain], labels, percentile=30)
    assert rows[0].tolist() == [0, 1, 2, 3] and rows[1].tolist() == [0, 1, 3]


def test_cmnist_protocol_swaps_colours_and_halves_the_test_cells():
    rng = np.random.default_rng(0)
    gray, digits = rng.random((400, 8, 8)), np.arange(400) % 10
    data = build_cmnist(gray, digits, CMNISTConfig(size=12))
    assert data.images.shape == (400, 3, 12, 12) and data.attribute_names == ["identity", "colour", "thickness"]
    identity, colour = data.attributes[:, 0], data.attributes[:, 1]
    train = data.split == "train"
    assert (colour[train] == training_colour(identity[train])).all()
    assert (colour[~train] == 1 - training_colour(identity[~train])).all()  # every test combination is unseen
    for cell in {tuple(row) for row in data.attributes[~train].tolist()}:
        members = (data.attributes == cell).all(1) & ~train
        assert abs((data.split[members] == "val").sum() - members.sum() // 2) == 0
    causal = build_cmnist(gray, digits, CMNISTConfig(size=12, causal=True, causal_strength=1.0))
    assert (causal.attributes[:, 2] == causal.attributes[:, 1]).all()


def test_mnist_and_celeba_loaders_read_torchvision_layouts():
    data = read_mnist_cmnist(FIXTURES / "mnist", CMNISTConfig(size=28, second_domain="none"), "data_cards/mnist.md")
    assert data.images.shape == (20, 3, 28, 28) and data.attributes[:12, 0].tolist() == [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        0,
        1,
    ]
    with pytest.raises(DatasetError, match="MNIST is not under"):
        read_mnist_cmnist(FIXTURES / "celeba", CMNISTConfig(), "data_cards/mnist.md")
    celeba = read_celeba(FIXTURES / "celeba", ["Eyeglasses", "Smiling"], "data_cards/celeba.md")
    assert celeba.files[:3] == ["000001.jpg", "000002.jpg", "000003.jpg"] and len(celeba.files) == 32
    assert celeba.identity[::8].tolist() == [7, 9, 11, 13] and celeba.partition[:4].tolist() == [0, 1, 2, 0]
    assert celeba.attributes[:4].tolist() == [[0, 1], [1, 1], [0, 0], [1, 0]]
    with pytest.raises(DatasetError, match=r"no attribute\(s\) \['Bald'\]"):
        read_celeba(FIXTURES / "celeba", ["Bald"], "data_cards/celeba.md")


def _trained_weights(threads_outside: int) -> torch.Tensor:
    torch.set_num_threads(threads_outside)
    net = model()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    images, labels = torch.rand(16, 3, 16, 16), torch.tensor([[d, d // 5, d % 2] for d in range(10)] * 2)[:16]
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
        for _ in range(3):
            optimizer.zero_grad()
            adversary_loss(net, images, labels)[0].backward()
            optimizer.step()
    assert torch.get_num_threads() == threads_outside  # restored
    return net.encoder[0].weight.detach().clone()


def test_training_runs_on_a_fixed_thread_count_whatever_the_machines():
    before = torch.get_num_threads()
    try:
        torch.manual_seed(0)
        one = _trained_weights(1)
        torch.manual_seed(0)
        two = _trained_weights(2)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(one, two, rtol=0, atol=0)


def test_celeba_follows_the_official_protocol_of_people_and_swapped_attribute_cells():
    index = read_celeba(FIXTURES / "celeba", ["Eyeglasses"], "data_cards/celeba.md")
    config = CelebAProtocolConfig(size=16, min_images=8)
    data = build_celeba(index, FIXTURES / "celeba", config)
    assert data.images.shape == (32, 3, 16, 16) and data.classes == [4, 2]
    person, glasses = data.attributes[:, 0], data.attributes[:, 1]
    held_out = data.split != "train"
    # people 0 and 1 (below the median) are tested without glasses, people 2 and 3 with them
    np.testing.assert_array_equal(held_out, ((person < 2) & (glasses == 0)) | ((person >= 2) & (glasses == 1)))
    assert ((data.split == "val") & held_out).sum() == held_out.sum() // 2
    assert kept_people(index, replace(config, max_identities=2)).tolist() in ([7, 9], [7, 11], [7, 13], [9, 11],
                                                                              [9, 13], [11, 13])  # fmt: skip
    with pytest.raises(DatasetError, match="keeps 0 people"):
        kept_people(index, replace(config, min_images=9))
