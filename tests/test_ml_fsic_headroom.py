"""ML-FSIC's no-learning rows (oracle, random scores, untrained word-vector prototypes) and the per-episode
contributions of its test metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.units import load_units
from papers.ml_fsic.evaluation import episode_units, metrics_by_shots
from papers.ml_fsic.model import PrototypeModelConfig, WordGuidedPrototypes
from papers.ml_fsic.no_learning import SCORERS, build_scorer, chance_scorer, oracle_scorer, score_episodes

SMALL = PrototypeModelConfig(backbone="resnet10t", dim=32, heads=4, mlp_dim=64, dropout=0.0)
TARGETS = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=torch.float32)


def episode(index: int, shots: int, support: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(index)  # the queries and word vectors do not depend on `support`
    return {
        "query": torch.randn(len(TARGETS), 3, 32, 32, generator=generator),
        "query_targets": TARGETS,
        "word_vectors": torch.randn(2, 6, generator=generator),
        "support": torch.randn(support, 3, 32, 32, generator=generator),
        "support_targets": torch.ones(support, 2),
        "shots": torch.tensor([shots]),
        "episode": torch.tensor([index]),
    }


class Episodes:
    """A test split of constructed episodes, shot counts 1, 5, 0 in turn."""

    def __init__(self, count: int):
        self.count = count

    def __len__(self) -> int:
        return self.count

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        index = int(indices[0])
        shots = (1, 5, 0)[index % 3]
        return episode(index, shots, support=2 * shots)


def test_the_oracle_ranks_every_positive_first_and_thresholds_exactly():
    metrics = metrics_by_shots(score_episodes(Episodes(3), oracle_scorer()))
    for shots in (0, 1, 5):
        assert metrics[f"macro_map_{shots}shot"] == metrics[f"micro_map_{shots}shot"] == 1.0
        assert metrics[f"macro_f1_{shots}shot"] == metrics[f"micro_f1_{shots}shot"] == pytest.approx(1.0)


def test_random_scores_are_uniform_fixed_per_episode_and_never_read_the_targets():
    scorer = chance_scorer(seed=3)
    blind = {name: value for name, value in episode(7, shots=1).items() if name != "query_targets"}
    scores = scorer(blind)
    assert scores.shape == (4, 2) and ((0 <= scores) & (scores < 1)).all()
    np.testing.assert_array_equal(scores, scorer(blind))
    assert not np.array_equal(scores, scorer(episode(8, shots=1)))
    assert not np.array_equal(scores, chance_scorer(seed=4)(blind))


def test_word_vector_prototypes_are_the_untrained_models_zero_shot_scores_whatever_the_support():
    scorer = build_scorer("trivial_word_vectors", SMALL, word_dim=6, seed=5)
    with_support = episode(0, shots=1, support=2)
    blind = {name: value for name, value in with_support.items() if name != "query_targets"}
    scores = scorer(blind)
    torch.manual_seed(5)
    untrained = WordGuidedPrototypes(SMALL, word_dim=6).eval()
    with torch.no_grad():
        expected = torch.sigmoid(untrained(episode(0, shots=0))["query_scores"]).double().numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-6)  # the support images are ignored, p_l = W_t t_l
    assert scores.shape == (4, 2) and not np.allclose(scores, scores[0, 0])


def test_episode_units_recompute_every_metric_and_keep_shot_counts_as_strata():
    outputs = score_episodes(Episodes(6), chance_scorer(seed=0))
    metrics = metrics_by_shots(outputs)
    units = episode_units(outputs, episode_seed=10_000)
    assert units.unit == "episode" and list(units.ids[:2]) == ["10000:0", "10000:1"]
    np.testing.assert_array_equal(units.strata, [1, 5, 0, 1, 5, 0])
    assert set(units.metrics) == set(metrics)
    for name, value in metrics.items():
        assert units.value(name) == pytest.approx(value, rel=1e-12, abs=1e-12)
    first_one_shot, second_one_shot = outputs["macro_map"][[0, 3]]
    assert metrics["macro_map_1shot"] == pytest.approx((first_one_shot + second_one_shot) / 2)


@pytest.mark.slow
def test_every_scorer_runs_through_the_runner_and_trains_nothing(run_cli, tmp_path):
    completed = run_cli(
        "-m", "paper=ml_fsic", f"experiment={','.join(SCORERS)}", "debug=smoke", "logger=none",
        f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${experiment}",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    for name in SCORERS:
        run_dir = tmp_path / name
        record = json.loads((run_dir / "results.json").read_text())
        assert record["model"] == name and record["experiment"] == name
        units = load_units(run_dir / "units.npz")
        assert units.unit == "episode" and set(units.metrics) == set(record["metrics"])
        for metric, value in record["metrics"].items():
            assert units.value(metric) == pytest.approx(value, rel=1e-12, abs=1e-12)
        assert not (run_dir / "checkpoints").exists() and not (run_dir / "training_curves.png").exists()
    assert "train " not in completed.stderr
