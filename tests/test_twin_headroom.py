"""TWIN's and TWIN-V2's no-learning rows and per-user contributions: every scorer through the runner on smoke data
(a record, units that give back each metric, nothing trained), and each scorer's logic on tiny constructed input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from common.errors import ConfigError
from common.metrics import gauc, logloss
from common.no_learning import smoothed_positive_rates
from common.units import load_units
from papers.twin import no_learning
from papers.twin.data import LifelongData, LifelongSplit, Vocabulary
from papers.twin.task import user_units
from papers.twin.task_v2 import TwinV2Task

PAPERS = ("twin", "twin_v2")


def test_every_scorer_runs_through_the_runner_and_trains_nothing(run_cli, tmp_path):
    completed = run_cli(
        "-m", f"paper={','.join(PAPERS)}", f"experiment={','.join(no_learning.SCORERS)}", "debug=smoke",
        "logger=none", "trainer.device=cpu", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${paper}_${experiment}",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    for paper in PAPERS:
        for scorer in no_learning.SCORERS:
            run_dir = tmp_path / f"{paper}_{scorer}"
            record = json.loads((run_dir / "results.json").read_text())
            assert record["paper"] == paper and record["model"] == scorer and record["data_seed"] == 0
            units = load_units(run_dir / "units.npz")
            assert units.unit == "user" and set(units.metrics) == {"gauc", "logloss"}
            for name in units.metrics:
                assert units.value(name) == pytest.approx(record["metrics"][name], rel=1e-9)
            assert {"auc", "gauc", "logloss"} <= set(record["metrics"]) and "gsu_esu_overlap" not in record["metrics"]
            trained = ("checkpoints", "training_curves.png", "embeddings", "clustering", "twin_v2")
            assert not any((run_dir / name).exists() for name in trained)


def tiny_split() -> LifelongSplit:
    """Items 1-4 (tags 1, 1, 2, 2). User 1 watched items 1, 3, 3, 2 (completion 0.2, 1.0, 0.6, 0.4); their
    samples target item 4 after all four behaviors and item 1 after the first; user 2 has no behaviors."""
    vocabulary = Vocabulary(items=5, authors=2, tags=3, durations=2, users=3, user_features=(), tabs=2)
    samples = pd.DataFrame(
        {
            "user": [1, 1, 2],
            "item": [4, 1, 3],
            "time_ms": [500, 150, 500],
            "label": [1.0, 0.0, 1.0],
            "tab": [1, 1, 1],
            "hour": [1, 1, 1],
            "date": [1, 1, 1],
            "history_end": [4, 1, 4],
            "history_start": [0, 0, 4],
        }
    )
    data = LifelongData(
        vocabulary=vocabulary,
        item_author=np.ones(5, dtype=np.int64),
        item_tag=np.array([0, 1, 1, 2, 2]),
        item_duration=np.ones(5, dtype=np.int64),
        behavior_item=np.array([1, 3, 3, 2], dtype=np.int32),
        behavior_time=np.array([100, 200, 300, 400]),
        behavior_cross=np.ones((4, 4), dtype=np.int32),
        behavior_user=np.array([1, 1, 1, 1]),
        behavior_completion=np.array([0.2, 1.0, 0.6, 0.4]),
        samples=samples,
        user_features=np.zeros((3, 0), dtype=np.int64),
    )
    return LifelongSplit(data, np.arange(3), history_length=4, recent_length=2)


def test_recent_topic_is_the_share_of_the_latest_behaviors_with_the_targets_tag():
    # latest 3 of user 1: items 3, 3, 2 -> tags 2, 2, 1; the second sample sees only item 1; user 2 sees nothing
    np.testing.assert_allclose(no_learning.recent_topic_share(tiny_split(), 3), [2 / 3, 1.0, 0.0])


def test_tag_completion_averages_the_latest_behaviors_of_the_targets_tag():
    split = tiny_split()
    np.testing.assert_allclose(no_learning.tag_completion(split, window=4, length=1), [0.6, 0.2, 0.0])
    np.testing.assert_allclose(no_learning.tag_completion(split, window=4, length=2), [0.8, 0.2, 0.0])
    np.testing.assert_allclose(no_learning.tag_completion(split, window=2, length=2), [0.6, 0.2, 0.0])


def test_popularity_smooths_the_training_click_rate_toward_the_overall_rate():
    rate = smoothed_positive_rates(np.array([1, 1, 2]), np.array([1.0, 0.0, 1.0]), num_keys=5, smoothing=2.0)
    np.testing.assert_allclose(rate[1:4], [7 / 12, 7 / 9, 2 / 3])  # overall rate 2/3; item 3 was never shown
    scores = no_learning.popularity(tiny_split(), train_rows=np.array([0, 1]), prior=1.0)  # item 4 clicked, 1 not
    np.testing.assert_allclose(scores, [0.75, 0.25, 0.5])  # samples of items 4, 1 and the unseen 3


def test_oracle_matches_each_sample_to_the_generators_probability():
    probabilities = pd.DataFrame(
        {"user_id": [1, 0, 0], "video_id": [2, 0, 3], "time_ms": [500, 150, 500], "click_probability": [0.3, 0.1, 0.9]}
    )
    np.testing.assert_allclose(no_learning.oracle(tiny_split(), probabilities), [0.9, 0.1, 0.3])
    with pytest.raises(ConfigError, match="no click probability"):
        no_learning.oracle(tiny_split(), probabilities.iloc[:2])


def outputs(probability, label, user, overlap=None) -> dict[str, np.ndarray]:
    """Concatenated predict outputs; no overlap: a model without a search unit."""
    overlap = np.full(len(label), np.nan) if overlap is None else overlap
    arrays = {"probability": probability, "label": label, "user": user, "gsu_esu_overlap": overlap}
    return {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}


def test_user_units_give_back_gauc_logloss_and_overlap_with_one_class_users_left_out_of_gauc():
    run = outputs([0.9, 0.2, 0.6, 0.4, 0.3, 0.7], [1, 0, 0, 1, 1, 1], [5, 5, 5, 7, 9, 9], [1, 0.5, np.nan, 1, 0, 0])
    units = user_units(run)
    assert list(units.ids) == [5, 7, 9] and list(units.metrics["gauc"].second) == [3, 0, 0]
    assert units.value("gauc") == pytest.approx(gauc(run["label"], run["probability"], run["user"]))
    assert units.value("logloss") == pytest.approx(logloss(run["label"], run["probability"]))
    assert units.value("gsu_esu_overlap") == pytest.approx(np.nanmean(run["gsu_esu_overlap"]))


def test_twin_v2_units_carry_twins_gauc_and_the_per_user_gain():
    users, labels = [1, 1, 1, 2, 2, 2], [1, 0, 0, 1, 1, 0]
    twin_v2 = outputs([0.9, 0.2, 0.3, 0.8, 0.7, 0.1], labels, users)
    twin = outputs([0.1, 0.2, 0.3, 0.8, 0.2, 0.5], labels, users)
    task = TwinV2Task.__new__(TwinV2Task)  # only the stage-1 outputs are needed, no config
    task.baseline_outputs = twin
    units = task.test_units(twin_v2)
    twin_gauc = gauc(twin["label"], twin["probability"], twin["user"])
    assert units.value("twin_gauc") == pytest.approx(twin_gauc)
    gain = gauc(twin_v2["label"], twin_v2["probability"], twin_v2["user"]) - twin_gauc
    assert units.value("gauc_gain") == pytest.approx(gain)
