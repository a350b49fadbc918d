"""synthetic_multidomain's design, checked before any model is trained: on a draw of impressions straight from the
generator's world, the generator's own probabilities (the oracle) rank far better within a user than the rows a
practitioner tries first, the personal priors change rankings within a user, and the tasks rank a user's items
differently, so GAUC can see task-specific personalization."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from common.metrics.multitask import domain_task_metrics
from common.no_learning import smoothed_positive_rates
from papers.pepnet.synthetic import (
    SyntheticMultiDomainConfig,
    _draw_domains,
    _draw_items,
    engagement,
    make_world,
    task_logits,
)

CONFIG = SyntheticMultiDomainConfig()  # the frozen defaults
DOMAINS, TASKS = [f"tab{tab}" for tab in CONFIG.domains], CONFIG.tasks


@pytest.fixture(scope="module")
def draw():
    """Impressions of 300 users (70 each, as in the train split), labels from the world's probabilities."""
    rng = np.random.default_rng(0)
    world = make_world(CONFIG, rng)
    users = np.repeat(np.arange(300), 140)
    domains = _draw_domains(world, users, rng)
    items = _draw_items(world, domains, rng)
    logits = task_logits(world, CONFIG, users, items, domains)
    labels = (rng.random(logits.shape) < 1 / (1 + np.exp(-logits))).astype(float)
    train = np.arange(len(users)) % 2 == 0  # every other impression trains the trivial rows
    return world, users, items, domains, logits, labels, train


def gauc_mean(draw, scores) -> dict[str, float]:
    _, users, _, domains, _, labels, train = draw
    test = ~train
    return domain_task_metrics(labels[test], scores[test], users[test], domains[test], DOMAINS, TASKS)


def test_oracle_ranks_far_better_than_item_popularity(draw):
    _, _, items, _, logits, labels, train = draw
    popularity = smoothed_positive_rates(items[train], labels[train], CONFIG.num_items, 20.0)[items]
    oracle, trivial = gauc_mean(draw, logits)["gauc_mean"], gauc_mean(draw, popularity)["gauc_mean"]
    assert oracle > trivial + 0.08, (oracle, trivial)


def test_personal_priors_change_rankings_within_a_user(draw):
    world, users, items, domains, logits, _, _ = draw
    impersonal = copy.copy(world)
    impersonal.personal_weights = np.ones_like(world.personal_weights)  # every user follows the signals alike
    without = task_logits(impersonal, CONFIG, users, items, domains)
    assert gauc_mean(draw, logits)["gauc_mean"] > gauc_mean(draw, without)["gauc_mean"] + 0.01


def test_tasks_rank_a_users_items_differently(draw):
    world, users, items, domains, logits, _, _ = draw
    shared = np.repeat(engagement(world, users, items, domains)[:, None], len(TASKS), axis=1)  # one score, every task
    oracle, one_score = gauc_mean(draw, logits), gauc_mean(draw, shared)
    assert one_score["gauc_mean"] < oracle["gauc_mean"] - 0.08
    assert one_score["gauc_is_hate"] < 0.5 < oracle["gauc_is_hate"]  # hate goes against engagement


def test_domains_differ_in_size_and_in_which_signals_matter():
    world = make_world(CONFIG, np.random.default_rng(0))
    assert max(CONFIG.domain_shares) > 5 * min(CONFIG.domain_shares)  # a small domain borrows from a large one
    weights = world.domain_signal_weights
    assert np.all(weights.max(0) - weights.min(0) > 0.2)


def test_a_users_dense_tasks_reveal_the_priors_of_their_sparse_ones(draw):
    world, users, items, domains, logits, _, _ = draw
    logs = np.log(world.personal_weights)  # [users, tasks, signals]
    across_tasks = np.corrcoef(logs[:, TASKS.index("is_click"), 0], logs[:, TASKS.index("is_hate"), 0])[0, 1]
    assert across_tasks == pytest.approx(CONFIG.personal_weight_sharing**2, abs=0.1)
    borrowed = copy.copy(world)  # every task follows the signals with the user's click weights
    borrowed.personal_weights = np.repeat(world.personal_weights[:, [TASKS.index("is_click")]], len(TASKS), axis=1)
    impersonal = copy.copy(world)
    impersonal.personal_weights = np.ones_like(world.personal_weights)
    sparse = ("gauc_is_follow", "gauc_is_forward", "gauc_is_hate")
    with_click_priors = gauc_mean(draw, task_logits(borrowed, CONFIG, users, items, domains))
    without_priors = gauc_mean(draw, task_logits(impersonal, CONFIG, users, items, domains))
    assert np.mean([with_click_priors[name] - without_priors[name] for name in sparse]) > 0.01
