"""TWIN's score (Eq. 6), CP-GSU selection, cache and ESU."""

import math

import pytest
import torch

from papers.twin.attention import masked_softmax, scores_by_item, union_of_heads_top_k
from papers.twin.retrieval import ConsistencyPreservedGSU
from tests.twin_helpers import random_batch, tiny_model


def reference_alpha(model, batch):
    """Eq. 6 computed the naive way: project every behavior's K_h, add (K_c W^c) beta per behavior."""
    scorer = model.esu.scorer
    features = model.features
    inherent = features.inherent(batch["history_item"])  # [B, L, H]
    keys = scorer.key_projection(inherent).unflatten(-1, (scorer.num_heads, scorer.key_dim))
    query = scorer.query_projection(features.inherent(batch["target_item"])).unflatten(-1, (scorer.num_heads, -1))
    first = torch.einsum("blhd,bhd->bhl", keys, query) / math.sqrt(scorer.key_dim)
    cross = features.cross_embeddings(batch["history_cross"])  # [B, L, J, 8]
    projected = torch.einsum("bljd,jd->blj", cross, scorer.cross_projection)  # K_{c,j} w^c_j
    return first + torch.einsum("blj,jh->bhl", projected, scorer.cross_head_weight)


def test_gsu_scores_equal_eq6_computed_naively():
    model = tiny_model()
    torch.nn.init.normal_(model.esu.scorer.cross_head_weight)
    batch = random_batch()
    gsu = model.retriever
    target = model.features.inherent(batch["target_item"])
    with torch.no_grad():
        scores = gsu.scores(model.features, batch, target)
        expected = reference_alpha(model, batch)
    mask = batch["history_mask"].unsqueeze(1).expand_as(expected)
    torch.testing.assert_close(scores[mask], expected[mask], rtol=1e-5, atol=1e-5)
    assert torch.isneginf(scores[~mask]).all()


def cached_gsu():
    """A tiny TWIN whose GSU reads a freshly refreshed projection cache, a batch and its targets' K_h."""
    model = tiny_model(gsu_cache=True)
    batch = random_batch()
    model.retriever.refresh_cache(model.features)
    return model, batch, model.retriever, model.features.inherent(batch["target_item"])


def test_cached_and_uncached_gsu_scores_are_equal():
    model, batch, gsu, target = cached_gsu()
    with torch.no_grad():
        cached = gsu.scores(model.features, batch, target)
        gsu.use_cache = False
        fresh = gsu.scores(model.features, batch, target)
    torch.testing.assert_close(cached, fresh)


def test_stale_cache_differs_until_refreshed():
    model, batch, gsu, target = cached_gsu()
    with torch.no_grad():
        model.esu.scorer.key_projection.weight.mul_(2.0)
        stale = gsu.scores(model.features, batch, target)
        gsu.refresh_cache(model.features)
        refreshed = gsu.scores(model.features, batch, target)
        gsu.use_cache = False
        fresh = gsu.scores(model.features, batch, target)
    mask = torch.isfinite(fresh)
    assert not torch.allclose(stale[mask], fresh[mask])
    torch.testing.assert_close(refreshed, fresh)


def test_gsu_shares_every_scoring_parameter_with_the_esu():
    model = tiny_model()
    assert isinstance(model.retriever, ConsistencyPreservedGSU)
    assert model.retriever.scorer is model.esu.scorer
    separate = tiny_model(separate_gsu_params=True)
    shared = {id(p) for p in separate.esu.scorer.parameters()}
    assert not shared & {id(p) for p in separate.retriever.scorer.parameters()}


def test_cross_feature_bias_changes_the_selection():
    model = tiny_model()
    batch = random_batch(short_histories=False)
    target = model.features.inherent(batch["target_item"])
    with torch.no_grad():
        model.esu.scorer.cross_head_weight.zero_()
        without_bias = model.retriever.select(model.features, batch, target).positions
        model.esu.scorer.cross_head_weight.fill_(3.0)
        with_bias = model.retriever.select(model.features, batch, target).positions
    changed = [set(a.tolist()) != set(b.tolist()) for a, b in zip(without_bias, with_bias, strict=True)]
    assert all(changed)


def test_bias_is_per_behavior_not_per_sample():
    model = tiny_model()
    torch.nn.init.normal_(model.esu.scorer.cross_head_weight)
    batch = random_batch()
    bias = model.esu.scorer.cross_bias(model.features, batch["history_cross"])
    assert bias.shape == (6, 4, 400)
    assert bias[2, 0].std() > 0  # varies along the behaviors of one sample


def test_union_of_heads_returns_k_unique_behaviors():
    model = tiny_model()
    batch = random_batch(short_histories=False)
    target = model.features.inherent(batch["target_item"])
    selection = model.retriever.select(model.features, batch, target)
    assert selection.positions.shape == (6, 100)
    for row, picked in zip(selection.positions, selection.mask, strict=True):
        assert len(set(row.tolist())) == 100
        assert picked.all()


def naive_union(scores, k):
    """The traversal written as a loop: rank 1 of head 1..n, rank 2 of head 1..n, ... until k distinct."""
    rankings = [torch.argsort(head, descending=True, stable=True).tolist() for head in scores]
    chosen = []
    for rank in range(len(rankings[0])):
        for ranking in rankings:
            if ranking[rank] not in chosen:
                chosen.append(ranking[rank])
            if len(chosen) == k:
                return chosen
    return chosen


def test_union_of_heads_matches_the_traversal_written_as_a_loop():
    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(5, 4, 300, generator=generator)
    positions, picked = union_of_heads_top_k(scores, 100)
    assert picked.all()
    for sample in range(5):
        assert positions[sample].tolist() == naive_union(scores[sample], 100)


def test_union_of_heads_differs_from_one_top_k_per_head():
    scores = torch.zeros(1, 4, 300)
    scores[0, 0, :200] = torch.linspace(2, 1, 200)  # head 0 alone would fill all 100 slots
    scores[0, 1:, 200:] = torch.linspace(2, 1, 100)
    positions, _ = union_of_heads_top_k(scores, 100)
    assert (positions < 200).sum() == 50 and (positions >= 200).sum() == 50


def test_user_with_fewer_than_k_behaviors_gets_only_real_picks_masked_in():
    model = tiny_model()
    batch = random_batch()
    target = model.features.inherent(batch["target_item"])
    selection = model.retriever.select(model.features, batch, target)
    assert selection.mask[0].sum() == 30
    assert batch["history_mask"][0].gather(0, selection.positions[0][selection.mask[0]]).all()


@pytest.mark.parametrize("budget", [1 << 26, 5_000])
def test_scores_by_item_equals_per_behavior_scores_in_both_paths(budget):
    generator = torch.Generator().manual_seed(4)
    vectors = torch.randn(50, 3, 8, generator=generator)
    items = torch.randint(0, 50, (7, 40), generator=generator)
    queries = torch.randn(7, 3, 8, generator=generator)
    result = scores_by_item(items, lambda index: vectors[index], queries, num_items=50, budget=budget)
    expected = torch.einsum("blhd,bhd->bhl", vectors[items], queries)
    torch.testing.assert_close(result, expected)


def test_masked_softmax_ignores_padding_and_zeroes_empty_rows():
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    expected = torch.cat([torch.softmax(torch.tensor([1.0, 2.0]), 0), torch.zeros(1)])
    torch.testing.assert_close(weights[0], expected)
    assert weights[1].eq(0).all()


def test_esu_gradient_reaches_the_shared_scorer_but_not_through_the_selection():
    model = tiny_model()
    batch = random_batch()
    logits, _ = model(batch)
    logits.sum().backward()
    assert model.esu.scorer.key_projection.weight.grad.abs().sum() > 0
    assert model.esu.scorer.cross_head_weight.grad.abs().sum() > 0


def test_overlap_is_one_for_fresh_twin_and_lower_for_a_stale_cache_or_another_retriever():
    batch = random_batch(short_histories=False)
    fresh = tiny_model().eval()
    torch.nn.init.normal_(fresh.esu.scorer.cross_head_weight)
    assert fresh.gsu_esu_overlap(batch, fresh.score(batch)[2]).eq(1).all()

    cached = tiny_model(gsu_cache=True).eval()
    cached.retriever.refresh_cache(cached.features)
    with torch.no_grad():
        cached.esu.scorer.key_projection.weight.add_(0.5 * torch.randn_like(cached.esu.scorer.key_projection.weight))
    stale = cached.gsu_esu_overlap(batch, cached.score(batch)[2])
    assert (stale < 1).all() and (stale > 0).all()

    sim_hard = tiny_model(name="sim_hard").eval()
    overlap = sim_hard.gsu_esu_overlap(batch, sim_hard.score(batch)[2])
    assert (overlap < 0.5).all()
    din = tiny_model(name="din").eval()
    assert din.gsu_esu_overlap(batch, din.score(batch)[2]).isnan().all()


def test_per_head_top_k_lets_each_head_attend_only_to_its_own_picks():
    model = tiny_model(gsu_selection="per_head")
    batch = random_batch()
    target = model.features.inherent(batch["target_item"])
    selection = model.retriever.select(model.features, batch, target)
    assert selection.positions.shape == (6, 4, 100)
    scores = model.retriever.scores(model.features, batch, target)
    for head in range(4):
        expected = scores[:, head].topk(100).indices
        torch.testing.assert_close(selection.positions[:, head], expected)
    assert selection.mask[0].sum(1).tolist() == [30] * 4  # a user with 30 behaviors: 30 real picks per head
    logits, _ = model(batch)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    # the ESU's head a sees head a's picks only: changing another head's picks leaves its weights alone
    from papers.twin.attention import head_block_mask

    block = head_block_mask(selection.mask)
    assert block.shape == (6, 4, 400) and not block[:, 0, 100:].any() and block[1, 0, :100].all()
    assert model.gsu_esu_overlap(batch, selection).eq(1).all()  # fresh scores: the ESU's own per-head choice
