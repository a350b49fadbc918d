"""PEPNet's no-learning rows (oracle, trivial_*) and the per-user contributions of its GAUC metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.metrics.multitask import domain_task_metrics
from common.no_learning import smoothed_positive_rates
from common.units import load_units
from papers.pepnet.gauc_units import domain_task_gauc_units
from papers.pepnet.no_learning import oracle_probabilities, rate_lookup

SCORERS = ("oracle", "trivial_item_popularity", "trivial_user_prior")
SMOKE = ("paper=pepnet", "debug=smoke", "logger=none", "trainer.device=cpu")


@pytest.mark.parametrize("scorer", SCORERS)
def test_scorer_runs_through_the_runner_and_its_units_give_every_gauc(run_cli, tmp_path, scorer):
    completed = run_cli(*SMOKE, f"experiment={scorer}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["model"] == scorer and record["experiment"] == scorer
    assert "train pepnet" not in completed.stderr and not (tmp_path / "checkpoints").exists()  # nothing trained
    units = load_units(tmp_path / "units.npz")
    assert units.unit == "user"
    gauc_names = [name for name in record["metrics"] if name.startswith("gauc_")]
    assert "gauc_mean" in gauc_names and set(gauc_names) == set(units.metrics)
    for name in gauc_names:
        assert units.value(name) == pytest.approx(record["metrics"][name], abs=1e-9), name
    if scorer == "trivial_user_prior":  # one score per user and task: every within-user ranking is a tie
        assert record["metrics"]["gauc_mean"] == pytest.approx(0.5)


def test_smoothed_positive_rates_shrink_towards_the_task_rate():
    keys = np.array([0, 0, 1])
    labels = np.array([[1.0], [0.0], [1.0]])  # task rate 2/3
    rates = smoothed_positive_rates(keys, labels, num_keys=3, smoothing=2.0)
    expected = [(1 + 4 / 3) / 4, (1 + 4 / 3) / 3, 2 / 3]  # (positives + 2 * 2/3) / (impressions + 2)
    np.testing.assert_allclose(rates[:, 0], expected)


def test_rate_lookup_gives_an_unseen_key_the_task_rate():
    train_keys, train_labels = np.array([1, 1, 2, 2]), np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    looked_up = rate_lookup(train_keys, train_labels, np.array([1, 5]), smoothing=2.0)  # task rates 0.5, 0.25
    np.testing.assert_allclose(looked_up, [[(2 + 1) / 4, (0 + 0.5) / 4], [0.5, 0.25]])  # key 5: never trained on


def test_per_user_gauc_contributions_of_cells_and_their_mean():
    # tab0: user 1 ranks right (AUC 1, 2 impressions), user 2 wrong (AUC 0, 3): GAUC 0.4;
    # tab1: user 1 has positives only (left out), user 2 ranks right: GAUC 1.0; the mean of the two cells 0.7
    users = np.array([1, 1, 2, 2, 2, 1, 1, 2, 2])
    domains = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    labels = np.array([1, 0, 1, 0, 0, 1, 1, 0, 1], dtype=float)[:, None]
    scores = np.array([0.9, 0.1, 0.1, 0.5, 0.9, 0.3, 0.6, 0.2, 0.8])[:, None]
    units = domain_task_gauc_units(labels, scores, users, domains, ["tab0", "tab1"], ["is_click"])
    metrics = domain_task_metrics(labels, scores, users, domains, ["tab0", "tab1"], ["is_click"])
    np.testing.assert_array_equal(units.ids, [1, 2])
    np.testing.assert_array_equal(units.metrics["gauc_tab1_is_click"].second, [0, 2])  # user 1 weighs 0 there
    for name, value in {"gauc_tab0_is_click": 0.4, "gauc_tab1_is_click": 1.0, "gauc_mean": 0.7}.items():
        assert units.value(name) == pytest.approx(value) == pytest.approx(metrics[name])


def test_per_user_gauc_contributions_match_the_metrics_on_random_scores():
    rng = np.random.default_rng(0)
    samples, domain_names, task_names = 3000, ["tab0", "tab1", "tab2"], ["is_click", "is_like", "is_follow"]
    users, domains = rng.integers(0, 60, samples), rng.integers(0, 3, samples)
    labels = (rng.random((samples, 3)) < [0.3, 0.1, 0.004]).astype(float)
    scores = rng.random((samples, 3))
    metrics = domain_task_metrics(labels, scores, users, domains, domain_names, task_names)
    units = domain_task_gauc_units(labels, scores, users, domains, domain_names, task_names)
    gauc_names = {name for name in metrics if name.startswith("gauc_")}
    assert gauc_names == set(units.metrics)
    for name in gauc_names:
        assert units.value(name) == pytest.approx(metrics[name], abs=1e-12), name


def test_oracle_rebuilds_the_draws_world_from_the_generator_seed(cache_dir, monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir

    from common.distributed import DistributedContext
    from common.hydra_setup import register_configs
    from papers.pepnet.task import PEPNetTask
    from tests.conftest import ROOT

    monkeypatch.setenv("REPROZOO_CACHE_DIR", str(cache_dir))
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("run", overrides=["paper=pepnet", "debug=smoke", "experiment=oracle"])
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    task = PEPNetTask(cfg, context, Path(tmp_path))
    task.prepare_data()
    test = task.load_data()[2]
    labels = test.labels.numpy()
    oracle = task.score_without_learning("oracle", test)["probability"]
    ids = {column: values[test.rows] for column, values in task.data.log_ids.items()}
    generator = task.data_config.generator
    generator.seed += 1  # another draw's world, scored on the same impressions
    other_world = oracle_probabilities(generator, ids["user_id"], ids["video_id"], ids["tab"])

    def log_likelihood(probabilities):
        probabilities = np.clip(probabilities, 1e-7, 1 - 1e-7)
        return float(np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities)))

    popularity = task.score_without_learning("trivial_item_popularity", test)["probability"]
    assert log_likelihood(oracle) > log_likelihood(popularity) > log_likelihood(other_world)
    np.testing.assert_allclose(oracle.mean(axis=0), labels.mean(axis=0), rtol=0.25, atol=2e-3)  # calibrated
