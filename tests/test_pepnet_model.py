"""PEPNet's gates, stop-gradients and towers, and every baseline's output shape."""

from __future__ import annotations

import pytest
import torch

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


def test_ppnet_gates_one_per_task_per_tower_layer_scaling_that_layers_input():
    model = pepnet()
    data = batch()
    o_ep = model.epnet(data["features"])
    gates = model.ppnet_gates(data["features"], o_ep)
    assert [tuple(g.shape) for g in gates] == [(16, TASKS, 32), (16, TASKS, 16), (16, TASKS, 8)]  # 4 features × 8
    ones = [torch.ones_like(g) for g in gates]
    assert torch.allclose(model.towers(o_ep, ones), model.towers(o_ep))  # a gate of 1 leaves the layer as is
    doubled = [g.clone() for g in ones]
    doubled[1][:, 2] = 2.0  # scaling task 2's second layer changes task 2 only
    changed = model.towers(o_ep, doubled) != model.towers(o_ep, ones)
    assert changed[:, 2].all() and not changed[:, :2].any()


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
    domain_names = ["tab0", "tab1", "tab2", "tab3"]

    def columns(self, names):
        return [self.feature_names.index(name) for name in names if name in self.feature_names]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_gives_one_logit_per_task_and_trains(name):
    torch.manual_seed(0)
    config = PEPNetModelConfig(name=name, embedding_dim=4, tower_dims=[8], expert_dims=[8], bottom_dims=[8])
    model = build_model(config, _Data())
    data = batch(32)
    logits = model(data)
    assert logits.shape == (32, TASKS)
    loss, logs = multitask_loss(logits, data["labels"])
    loss.backward()
    assert torch.isfinite(loss) and logs["bce_mean"] > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_task_towers_accept_per_task_inputs():
    towers = TaskTowers(6, [5], tasks=2)
    shared = torch.randn(3, 6)
    assert torch.allclose(towers(shared), towers(shared.unsqueeze(1).expand(-1, 2, -1)))
