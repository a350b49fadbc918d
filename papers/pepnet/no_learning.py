"""No-learning scorers of PEPNet's test split, one probability per sample and task:

- `oracle`: the generator's own probabilities, sigmoid(task_logits) of papers/pepnet/synthetic.py, from its
  hidden world rebuilt from the generator's seed (the ceiling of what any model can reach on the draw);
- `trivial_item_popularity`: the item's positive rate per task on the training split;
- `trivial_user_prior`: the user's positive rate per task on the training split. It is constant within a user,
  so its GAUC is 0.5 in every cell by construction: it bounds the across-user AUC, not GAUC.

Both rates are smoothed towards the task's training rate by `smoothing` pseudo-impressions (a Beta prior), so
an item or user seen a few times, or never, scores near the task's rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.config import bounded
from common.no_learning import smoothed_positive_rates
from papers.pepnet.synthetic import SyntheticMultiDomainConfig, make_world, task_logits

ORACLE = "oracle"
TRIVIAL_KEYS = {"trivial_item_popularity": "item", "trivial_user_prior": "user"}  # scorer: the feature rated


@dataclass
class NoLearningConfig:
    # pseudo-impressions at the task's training rate (configs/paper/pepnet.yaml); > 0, so that a key never seen
    # in training scores the task's rate instead of 0 / 0
    smoothing: float = bounded(above=0.0)


def rate_lookup(
    train_keys: np.ndarray, train_labels: np.ndarray, test_keys: np.ndarray, smoothing: float
) -> np.ndarray:
    """[test rows, tasks]: each test row's key's smoothed positive rates on the training rows (a key never seen
    in training gets the task's rate)."""
    num_keys = int(max(train_keys.max(initial=0), test_keys.max(initial=0))) + 1
    return smoothed_positive_rates(train_keys, train_labels, num_keys, smoothing)[test_keys]


def oracle_probabilities(
    config: SyntheticMultiDomainConfig, user_ids: np.ndarray, video_ids: np.ndarray, tabs: np.ndarray
) -> np.ndarray:
    """[rows, tasks]: the probabilities the generator drew each impression's labels from. The world is the first
    draw of the generator's seeded stream (write_dataset), so it is rebuilt exactly."""
    world = make_world(config, np.random.default_rng(config.seed))
    domain_of_tab = {tab: index for index, tab in enumerate(config.domains)}
    domains = np.array([domain_of_tab[tab] for tab in tabs.tolist()], dtype=np.int64)
    logits = task_logits(world, config, user_ids, video_ids, domains)
    return 1 / (1 + np.exp(-logits))
