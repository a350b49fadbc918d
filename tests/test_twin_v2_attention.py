"""TWIN-V2's cluster-aware target attention: alpha' = alpha + ln n in both the GSU and the ESU."""

import pytest
import torch

from papers.twin.attention import masked_softmax
from tests.twin_helpers import random_batch, tiny_model


def with_sizes(batch, seed=5):
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 21, batch["history_item"].shape, generator=generator).float()
    return {**batch, "history_size": sizes * batch["history_mask"]}


def test_esu_weights_each_cluster_by_n_exp_alpha():
    model = tiny_model(cluster_size_bias=True)
    torch.nn.init.normal_(model.esu.scorer.cross_head_weight)
    batch = with_sizes(random_batch())
    esu, features = model.esu, model.features
    items, cross, mask = batch["history_item"][:, :100], batch["history_cross"][:, :100], batch["history_mask"][:, :100]
    sizes = batch["history_size"][:, :100]
    query = esu.scorer.project_query(features.inherent(batch["target_item"]))
    alpha = esu.scorer.dense_scores(features.inherent(items), query) + esu.scorer.cross_bias(features, cross)
    weights = sizes.unsqueeze(1) * alpha.exp() * mask.unsqueeze(1)  # n exp(alpha)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)
    keys = torch.cat([features.inherent(items), features.cross_embeddings(cross).flatten(-2)], dim=-1)
    values = esu.value_projection(keys).unflatten(-1, (esu.scorer.num_heads, esu.value_dim))
    expected = esu.output_projection(torch.einsum("bhk,bkhd->bhd", weights, values).flatten(1))
    torch.testing.assert_close(esu(features, items, cross, mask, query, sizes), expected, rtol=1e-4, atol=1e-5)


def test_size_term_is_ln_n_and_unit_clusters_change_nothing():
    model = tiny_model(cluster_size_bias=True)
    batch = with_sizes(random_batch())
    scorer, features = model.esu.scorer, model.features
    bias = scorer.behavior_bias(features, batch["history_cross"], batch["history_size"])
    plain = scorer.cross_bias(features, batch["history_cross"])
    mask = batch["history_mask"].unsqueeze(1).expand_as(bias)
    expected = batch["history_size"].clamp(min=1).log().unsqueeze(1).expand_as(bias)
    torch.testing.assert_close((bias - plain)[mask], expected[mask])
    ones = torch.ones_like(batch["history_size"])
    torch.testing.assert_close(scorer.behavior_bias(features, batch["history_cross"], ones), plain)


def test_gsu_prefers_a_larger_cluster_when_scores_tie_otherwise():
    model = tiny_model(cluster_size_bias=True)
    batch = random_batch(short_histories=False)
    batch["history_item"][:] = batch["history_item"][:, :1]  # every behavior the same item and cross features
    batch["history_cross"][:] = batch["history_cross"][:, :1]
    sizes = torch.ones_like(batch["history_item"], dtype=torch.float)
    sizes[:, 123] = 7.0
    batch["history_size"] = sizes
    target = model.features.inherent(batch["target_item"])
    selection = model.retriever.select(model.features, batch, target)
    assert (selection.positions[:, 0] == 123).all()


def test_missing_sizes_are_a_clear_error_and_twin_ignores_sizes():
    model = tiny_model(cluster_size_bias=True)
    with pytest.raises(ValueError, match="history_size"):
        model(random_batch())
    twin = tiny_model()
    batch = random_batch()
    torch.testing.assert_close(twin(batch)[0], twin(with_sizes(batch))[0])


def test_masked_softmax_of_alpha_plus_ln_n_equals_size_weighting():
    alpha = torch.tensor([[0.3, -1.0, 2.0]])
    sizes = torch.tensor([[4.0, 1.0, 2.0]])
    mask = torch.ones_like(alpha, dtype=torch.bool)
    expected = sizes * alpha.exp() / (sizes * alpha.exp()).sum()
    torch.testing.assert_close(masked_softmax(alpha + sizes.log(), mask), expected)
