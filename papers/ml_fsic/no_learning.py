"""No-learning rows of ML-FSIC: the test episodes scored with nothing trained.

- `oracle`: the label presence the generator drew for each query image (its annotation) as the scores, so
  every positive ranks above every negative: the ceiling of every metric.
- `trivial_chance`: uniformly random scores, one draw per episode.
- `trivial_word_vectors`: every prototype from its label's word vector alone (p_l = W_t t_l, no support image,
  at every shot count), scored as the model scores, s(v_q, p_l), in the model as initialized with the run's
  seed and never trained. The word vectors and the backbone's features live in unrelated spaces and nothing
  maps one onto the other without learning, so W_t and W_v are fixed random projections (and the backbone
  keeps its random or given weights): what the word vectors give before any training.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from common.task import BatchSource
from papers.ml_fsic.evaluation import episode_metrics
from papers.ml_fsic.model import PrototypeModelConfig, WordGuidedPrototypes

SCORERS = ("oracle", "trivial_word_vectors", "trivial_chance")
EpisodeScorer = Callable[[dict[str, torch.Tensor]], np.ndarray]  # episode batch -> probabilities [Q, N]


def oracle_scorer() -> EpisodeScorer:
    def score(batch: dict[str, torch.Tensor]) -> np.ndarray:
        return batch["query_targets"].numpy().astype(np.float64)

    return score


def chance_scorer(seed: int) -> EpisodeScorer:
    def score(batch: dict[str, torch.Tensor]) -> np.ndarray:
        rng = np.random.default_rng([seed, int(batch["episode"])])
        return rng.random((len(batch["query"]), len(batch["word_vectors"])))

    return score


def untrained_word_vector_scorer(config: PrototypeModelConfig, word_dim: int, seed: int) -> EpisodeScorer:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WordGuidedPrototypes(config, word_dim).eval()

    @torch.no_grad()
    def score(batch: dict[str, torch.Tensor]) -> np.ndarray:
        no_support = {**batch, "support": batch["support"][:0], "support_targets": batch["support_targets"][:0]}
        return torch.sigmoid(model(no_support)["query_scores"]).double().numpy()

    return score


def build_scorer(name: str, model_config: PrototypeModelConfig, word_dim: int, seed: int) -> EpisodeScorer:
    builders = {
        "oracle": oracle_scorer,
        "trivial_word_vectors": partial(untrained_word_vector_scorer, model_config, word_dim, seed),
        "trivial_chance": partial(chance_scorer, seed),
    }
    return builders[name]()


def score_episodes(split: BatchSource, scorer: EpisodeScorer) -> dict[str, np.ndarray]:
    """Every episode of `split` scored by `scorer`, as the rows `MLFSICTask.predict` gives a trained model."""
    rows = []
    for index in range(len(split)):
        batch = split.batch(np.array([index]))
        metrics = episode_metrics(batch["query_targets"].numpy(), scorer(batch))
        rows.append({**metrics, "shots": int(batch["shots"]), "episode": int(batch["episode"])})
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}
