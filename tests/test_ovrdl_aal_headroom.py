"""OVRDL + AAL's no-learning rows (oracle, trivial_*) and the per-sample contributions of its test metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.metrics.verification import authentication_metrics
from common.units import aggregate, load_units
from papers.ovrdl_aal.cmnist import COLOURS, CMNISTConfig, build_cmnist
from papers.ovrdl_aal.contributions import add_authentication_contributions, sample_units
from papers.ovrdl_aal.no_learning import (
    SCORERS,
    chance_scores,
    colour_identity_frequencies,
    colour_scores,
    oracle_scores,
    stroke_colour,
)

SMOKE = ("paper=ovrdl_aal", "debug=smoke", "logger=none", "trainer.device=cpu")
DECOMPOSED = ("auc", "far", "frr", "accuracy")  # TAR at FAR = 1% sets its threshold on the test scores


@pytest.mark.parametrize("scorer", SCORERS)
def test_scorer_runs_through_the_runner_and_its_units_give_every_decomposable_metric(run_cli, tmp_path, scorer):
    completed = run_cli(*SMOKE, f"experiment={scorer}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["model"] == scorer and record["experiment"] == scorer and record["data_seed"] == 0
    assert not any((tmp_path / name).exists() for name in ("checkpoints", "ovrdl", "aal"))  # nothing trained
    units = load_units(tmp_path / "units.npz")
    assert units.unit == "sample" and set(units.metrics) == set(DECOMPOSED)
    assert len(units.strata) == len(units.ids) and set(np.unique(units.strata)) == set(range(10))  # identities
    for name in DECOMPOSED:
        assert units.value(name) == pytest.approx(record["metrics"][name], abs=1e-9), name
    if scorer == "oracle":
        assert record["metrics"]["auc"] == record["metrics"]["accuracy"] == 1.0
        assert record["metrics"]["far"] == record["metrics"]["frr"] == 0.0


def swapped_colour_images(identities: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """4 x 4 images on a grey background with a two-pixel stroke in each row's palette colour."""
    images = np.full((len(identities), 3, 4, 4), 0.08, dtype=np.float32)
    images[:, :, 1, 1:3] = COLOURS[colours][:, :, None]
    return images


def test_oracle_scores_are_the_true_identities_one_hot():
    np.testing.assert_array_equal(oracle_scores(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_chance_scores_are_uniform_and_seeded():
    scores = chance_scores(2000, 10, seed=3)
    assert scores.shape == (2000, 10) and 0 <= scores.min() and scores.max() < 1
    assert scores.mean() == pytest.approx(0.5, abs=0.01)
    np.testing.assert_array_equal(scores, chance_scores(2000, 10, seed=3))
    assert not np.array_equal(scores, chance_scores(2000, 10, seed=4))


def test_stroke_colour_is_read_from_the_pixels_of_protocol_images():
    rng = np.random.default_rng(0)
    gray, digits = rng.random((40, 8, 8)), np.arange(40) % 10
    data = build_cmnist(gray, digits, CMNISTConfig(size=8))
    np.testing.assert_array_equal(stroke_colour(data.images), data.attributes[:, 1])
    np.testing.assert_array_equal(stroke_colour(swapped_colour_images(np.arange(2), np.array([1, 0]))), [1, 0])


def test_colour_scorer_ranks_the_swapped_test_colours_below_chance():
    # training: identities 0, 1 in colour 0, identities 2, 3 in colour 1; test: each identity in the other colour
    frequencies = colour_identity_frequencies(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 2, 3, 3]), classes=4)
    np.testing.assert_allclose(frequencies, [[0.5, 0.5, 0, 0], [0, 0, 1 / 3, 2 / 3]])
    identities = np.arange(4)
    scores = colour_scores(swapped_colour_images(identities, np.array([1, 1, 0, 0])), frequencies)
    np.testing.assert_allclose(scores, [[0, 0, 1 / 3, 2 / 3]] * 2 + [[0.5, 0.5, 0, 0]] * 2)
    metrics = authentication_metrics(scores, identities, scores, identities)
    # identity 0's genuine score 0 ties identity 1's and is below identities 2's and 3's: AUC (1/2) / 3
    assert metrics["auc"] == pytest.approx(1 / 6) and metrics["accuracy"] == 0.0


def tied_scores(rng: np.random.Generator, samples: int, identities: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(samples) % identities
    return rng.integers(0, 5, (samples, identities)) / 4, labels  # coarse scores: many ties


def test_contributions_give_the_authentication_metrics_and_follow_a_stratified_resample():
    rng = np.random.default_rng(0)
    (scores, labels), (val_scores, val_labels) = tied_scores(rng, 60, 5), tied_scores(rng, 40, 5)
    units = add_authentication_contributions(sample_units(labels), scores, labels, val_scores, val_labels)
    metrics = authentication_metrics(scores, labels, val_scores, val_labels)
    counts = np.ones(len(labels), dtype=int)
    counts[[0, 10]], counts[[5, 15]] = 2, 0  # identity 0 draws sample 0 twice, not 5 (and 10, not 15)
    resampled = np.repeat(np.arange(len(labels)), counts)
    drawn = authentication_metrics(scores[resampled], labels[resampled], val_scores, val_labels)
    np.testing.assert_array_equal(units.strata, labels)
    for name in DECOMPOSED:
        assert units.value(name) == pytest.approx(metrics[name], abs=1e-12), name
        assert aggregate(units.metrics[name], counts[None])[0] == pytest.approx(drawn[name], abs=1e-12), name


def test_a_two_stage_runs_units_carry_stage_one_metrics_beside_stage_two(tmp_path):
    from hydra import compose, initialize_config_dir

    from common.distributed import DistributedContext
    from common.hydra_setup import register_configs
    from papers.ovrdl_aal.task import OVRDLAALTask
    from tests.conftest import ROOT

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("run", overrides=["paper=ovrdl_aal", "experiment=main"])
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    task = OVRDLAALTask(cfg, context, Path(tmp_path))
    rng = np.random.default_rng(1)
    (scores, labels), (stage1_scores, _) = tied_scores(rng, 80, 4), tied_scores(rng, 80, 4)
    split = np.where(np.arange(80) < 30, 1.0, 2.0)  # validation rows, then test rows

    def outputs(identity_scores):
        return {"scores": identity_scores, "label": labels.astype(float), "split": split}

    task.stage1_outputs = outputs(stage1_scores)
    units = task.test_units(outputs(scores))
    expected = {
        **task.metrics(outputs(scores)),
        **{f"ovrdl_{k}": v for k, v in task.metrics(outputs(stage1_scores)).items()},
    }
    assert set(units.metrics) == {*DECOMPOSED, *(f"ovrdl_{name}" for name in DECOMPOSED)}
    assert len(units.ids) == 50
    for name in units.metrics:
        assert units.value(name) == pytest.approx(expected[name], abs=1e-12), name
