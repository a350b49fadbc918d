"""PEPNet's gates, stop-gradients and towers, and every baseline's output shape."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from papers.pepnet.layers import GateNU, TaskTowers
from papers.pepnet.model import MODELS, PEPNetModelConfig, build_model, multitask_loss
from papers.pepnet.pepnet import PEPNet

VOCABULARY = [50, 40, 10, 6, 5, 17, 12]  # user, item, author, tag, domain, two domain statistics
GENERAL, DOMAIN, PRIOR = [0, 1, 2, 3], [4, 5, 6], [0, 1, 2]
TASKS = 3


def batch(size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.stack([torch.randint(0, n, (size,), generator=generator) for n in VOCABULARY], dim=1)
    return {
        "features": features,
        "domain": features[:, 4] % 4,
        "labels": torch.randint(0, 2, (size, TASKS), generator=generator).float(),
    }


def pepnet(**options) -> PEPNet:
    torch.manual_seed(0)
    settings = dict(tasks=TASKS, embedding_dim=8, tower_dims=[16, 8], gate_hidden_dim=12, gamma=2.0)
    return PEPNet(VOCABULARY, GENERAL, DOMAIN, PRIOR, **{**settings, **options})


@pytest.mark.parametrize("gamma", [1.0, 2.0, 3.0])
def test_gate_nu_stays_inside_zero_and_gamma(gamma):
    gate = GateNU(6, 10, 8, gamma)
    with torch.no_grad():
        for layer in (gate.hidden, gate.output):
            layer.weight.mul_(50)
        values = gate(torch.randn(1000, 6) * 100)
    assert values.min() >= 0 and values.max() <= gamma
    assert values.min() < 0.05 * gamma and values.max() > 0.95 * gamma  # the saturated ends are reached


def test_gate_nu_is_centred_on_one_for_gamma_two_at_zero_logits():
    gate = GateNU(4, 3, 5, 2.0)
    with torch.no_grad():
        gate.output.weight.zero_()
        gate.output.bias.zero_()
    assert torch.allclose(gate(torch.randn(7, 4)), torch.ones(7, 3))


def test_ppnet_gates_every_hidden_layer_output_as_the_paper_draws_it():
    model = pepnet()
    data = batch()
    o_ep = model.epnet(data["features"])
    gates = model.ppnet_gates(data["features"], o_ep)
    assert [tuple(g.shape) for g in gates] == [(16, TASKS, 16), (16, TASKS, 8)]  # the hidden layers 16, 8 only
    towers = model.towers
    # by hand: H1 = ReLU(O_ep W0 + b0); O1 = d1 ⊗ H1; H2 = ReLU(O1 W1 + b1); O2 = d2 ⊗ H2; y = O2 W2 + b2
    for task in range(TASKS):
        hidden = o_ep
        for layer in range(2):
            hidden = torch.relu(hidden @ towers.weights[layer][task] + towers.biases[layer][task])
            hidden = gates[layer][:, task] * hidden
        logit = (hidden @ towers.weights[2][task] + towers.biases[2][task]).squeeze(-1)
        assert torch.allclose(model({"features": data["features"]})[:, task], logit, atol=1e-6)
    ones = [torch.ones_like(g) for g in gates]
    assert torch.allclose(towers(o_ep, ones), towers(o_ep))  # a gate of 1 leaves the layer as is
    doubled = [g.clone() for g in ones]
    doubled[0][:, 2] = 2.0  # scaling task 2's first hidden layer changes task 2 only
    changed = towers(o_ep, doubled) != towers(o_ep, ones)
    assert changed[:, 2].all() and not changed[:, :2].any()


def test_input_gating_ablation_gates_every_linear_layers_input_o_ep_included():
    model = pepnet(gate_inputs=True)
    data = batch()
    o_ep = model.epnet(data["features"])
    gates = model.ppnet_gates(data["features"], o_ep)
    assert [tuple(g.shape) for g in gates] == [(16, TASKS, 32), (16, TASKS, 16), (16, TASKS, 8)]  # 4 features × 8
    towers = model.towers
    hidden = gates[0][:, 1] * o_ep  # task 1, by hand: every layer's input scaled before its product
    for layer in range(2):
        hidden = gates[layer + 1][:, 1] * torch.relu(hidden @ towers.weights[layer][1] + towers.biases[layer][1])
    logit = (hidden @ towers.weights[2][1] + towers.biases[2][1]).squeeze(-1)
    assert torch.allclose(model({"features": data["features"]})[:, 1], logit, atol=1e-6)


def test_epnet_scales_the_shared_embeddings_by_the_domain_gate():
    model = pepnet()
    features = batch()["features"]
    shared = model.embedding(features, GENERAL)
    delta = model.domain_gate(torch.cat([model.embedding(features, DOMAIN), shared], dim=-1))
    assert torch.allclose(model.epnet(features), delta * shared)


def gradient(output: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(output.sum(), parameter, retain_graph=True, allow_unused=True)
    return torch.zeros_like(parameter) if grad is None else grad


def gate_outputs(model: PEPNet, features: torch.Tensor):
    """EPNet's delta and PPNet's deltas, captured from a real forward pass."""
    captured = {}
    handle = model.domain_gate.register_forward_hook(lambda module, args, out: captured.update(domain=out))
    logits = model({"features": features})
    handle.remove()
    o_ep = model.epnet(features)
    return captured["domain"], model.ppnet_gates(features, o_ep), logits


@pytest.mark.parametrize("stop_gradient", [True, False])
def test_stop_gradients_cut_the_gate_paths_and_only_them(stop_gradient):
    model = pepnet(stop_gradient=stop_gradient)
    features = batch()["features"]
    domain_delta, task_deltas, logits = gate_outputs(model, features)
    tag_table = model.embedding.tables[3].weight  # a general feature, in E only (not a prior, not domain-side)
    domain_table = model.embedding.tables[5].weight  # a domain-side feature: F_d
    user_table = model.embedding.tables[0].weight  # a prior: F_u
    # EPNet: delta_domain = GateNU(E(F_d) ⊕ stop_grad(E)): nothing flows from the gate back into E ...
    assert (gradient(domain_delta, tag_table).abs().sum() == 0) == stop_gradient
    assert gradient(domain_delta, domain_table).abs().sum() > 0  # ... while E(F_d) is trained through it
    # PPNet: delta_task = GateNU(O_prior ⊕ stop_grad(O_ep)): nothing flows back into O_ep (EPNet, E) ...
    task_delta = torch.cat([delta.flatten(1) for delta in task_deltas], dim=1)
    assert (gradient(task_delta, model.domain_gate.output.weight).abs().sum() == 0) == stop_gradient
    assert (gradient(task_delta, tag_table).abs().sum() == 0) == stop_gradient
    assert gradient(task_delta, user_table).abs().sum() > 0  # ... while the priors are trained through it
    # the main path is never stopped: the logits reach E, EPNet's gate and PPNet's gates
    for parameter in (tag_table, model.domain_gate.output.weight, model.task_gates[0].output.weight):
        assert gradient(logits, parameter).abs().sum() > 0


def test_ablations_drop_one_half():
    epnet_only, ppnet_only = pepnet(use_ppnet=False), pepnet(use_epnet=False)
    assert not hasattr(epnet_only, "task_gates") and not hasattr(ppnet_only, "domain_gate")
    features = batch()["features"]
    assert torch.equal(ppnet_only.epnet(features), ppnet_only.embedding(features, GENERAL))  # E, not O_ep
    for model in (epnet_only, ppnet_only):
        assert model({"features": features}).shape == (16, TASKS)


class _Data:
    """The part of MultiDomainData that build_model reads."""

    vocabulary = VOCABULARY
    feature_names = ["user", "item", "author", "tag", "domain", "user_domain_exposures", "user_domain_ctr"]
    general_features = ["user", "item", "author", "tag"]
    task_names = ["is_click", "is_like", "is_follow"]
    domain_names = ["A", "B", "C", "D"]

    def columns(self, names):
        return [self.feature_names.index(name) for name in names if name in self.feature_names]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_gives_one_logit_per_task_and_trains_every_parameter(name):
    torch.manual_seed(0)
    config = PEPNetModelConfig(
        name=name, embedding_dim=4, tower_dims=[8], expert_dims=[8], bottom_dims=[8], cin_dims=[8, 8], cross_layers=2
    )
    model = build_model(config, _Data())
    data = batch(64)  # every domain present, so every domain's parameters take part
    logits = model(data)
    assert logits.shape == (64, TASKS)
    loss, logs = multitask_loss(logits, data["labels"])
    loss.backward()
    assert torch.isfinite(loss) and logs["bce_mean"] > 0
    untrained = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not untrained, untrained


def test_domain_models_answer_from_their_own_domains_parameters():
    torch.manual_seed(0)
    config = PEPNetModelConfig(name="specific_all", embedding_dim=4, tower_dims=[8], bottom_dims=[8])
    model = build_model(config, _Data())
    data = batch(64)
    before = model(data)
    with torch.no_grad():
        model.bottom.bottoms[1][0].weight.mul_(3.0)  # domain 1's bottom only
    changed = (model(data) != before).any(dim=1)
    assert torch.equal(changed, data["domain"] == 1)


def test_single_task_models_share_nothing_across_tasks():
    torch.manual_seed(0)
    model = build_model(PEPNetModelConfig(name="deepfm", embedding_dim=4, tower_dims=[8]), _Data())
    data = batch(32)
    loss = functional.binary_cross_entropy_with_logits(model(data)[:, 0], data["labels"][:, 0])
    loss.backward()  # task 0's loss reaches task 0's model only
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.models[1].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.models[0].parameters())


def test_task_towers_accept_per_task_inputs():
    towers = TaskTowers(6, [5], tasks=2)
    shared = torch.randn(3, 6)
    assert torch.allclose(towers(shared), towers(shared.unsqueeze(1).expand(-1, 2, -1)))
