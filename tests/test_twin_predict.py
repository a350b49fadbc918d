"""TWIN and TWIN-V2 as a user runs them: declared stages, mode=predict on another data draw, kill and resume
across TWIN-V2's stage boundary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.data.kuairand import read_kuairand
from common.errors import DatasetError
from papers.twin.data import LifelongData, Vocabulary
from papers.twin.ids import DataIds, TrainedIds, align_to_trained, index_translation
from papers.twin.synthetic import SyntheticLifelongConfig, ensure_dataset, sample_period_start
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
SMOKE = ("debug=smoke", "logger=none", "trainer.device=cpu")
V2_STAGES = ["embeddings", "clustering", "twin_v2"]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, cache_dir) -> dict[str, Path]:
    """One smoke run of each paper (data draw 0), shared by the tests of this module."""
    runs = {}
    for paper in ("twin", "twin_v2"):
        run_dir = tmp_path_factory.mktemp(paper)
        completed = run_smoke(cache_dir, f"paper={paper}", f"hydra.run.dir={run_dir}")
        assert completed.returncode == 0, completed.stderr[-3000:]
        runs[paper] = run_dir
    return runs


def run_smoke(cache_dir: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}
    command = [sys.executable, "run.py", *SMOKE, *arguments]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=400)


def test_twin_v2_record_lists_its_three_stages(trained_runs):
    record = read_json(trained_runs["twin_v2"] / "results.json")
    assert [stage["name"] for stage in record["stages"]] == V2_STAGES
    embeddings, clustering, twin_v2 = record["stages"]
    assert embeddings["config"]["model"]["gsu_length"] == embeddings["config"]["life_cycle"]["embedding_length"]
    assert clustering["config"]["method"] == "hierarchical" and twin_v2["config"]["model"]["cluster_size_bias"]
    assert embeddings["metrics"]["gauc"] == record["metrics"]["twin_gauc"]  # the baseline is stage 1's TWIN
    assert clustering["metrics"]["compression"] == record["metrics"]["compression"]
    assert twin_v2["metrics"]["gauc"] == record["metrics"]["gauc"]
    assert all(stage["duration_s"] >= 0 for stage in record["stages"])
    for stage in V2_STAGES:
        assert read_json(trained_runs["twin_v2"] / stage / "stage.json")["name"] == stage


def test_twin_record_has_no_stages(trained_runs):
    assert "stages" not in read_json(trained_runs["twin"] / "results.json")


def test_unbounded_head_count_is_refused(cache_dir, tmp_path):
    completed = run_smoke(cache_dir, "paper=twin", "model.num_heads=0", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "model.num_heads=0" in completed.stderr and "≥ 1" in completed.stderr


def test_unknown_users_are_refused_unknown_videos_get_the_unknown_index():
    assert list(index_translation(np.array([7, 3, 9]), np.array([3, 7]))) == [0, 2, 1, 0]
    with pytest.raises(DatasetError, match="not in the trained run's data"):
        align_to_trained(*tiny_data_with_a_new_user())


def tiny_data_with_a_new_user() -> tuple[LifelongData, DataIds, TrainedIds]:
    """Users 10 and 11 have samples; the trained run knew user 10 only."""
    vocabulary = Vocabulary(items=3, authors=2, tags=2, durations=2, users=3, user_features=(), tabs=2)
    samples = pd.DataFrame({"user": [1, 2], "item": [1, 2], "tab": [1, 1]})
    data = LifelongData(
        vocabulary, *(np.zeros(3, dtype=np.int64),) * 3, np.array([1], dtype=np.int32), np.array([0]),
        np.ones((1, 4), dtype=np.int32), np.array([1]), np.array([1.0]), samples, np.zeros((3, 0), dtype=np.int64),
    )  # fmt: skip
    new = DataIds(np.array([10, 11]), np.array([5, 6]), np.array([0]), [])
    trained = TrainedIds(DataIds(np.array([10]), np.array([5]), np.array([0]), []), vocabulary, *(np.zeros(3),) * 3)
    return data, new, trained


def test_twin_predict_on_its_own_draw_reproduces_the_runs_test_metrics(trained_runs, cache_dir, tmp_path):
    run_dir = trained_runs["twin"]
    completed = run_smoke(cache_dir, "paper=twin", "mode=predict", f"from_run={run_dir}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    predicted = read_json(tmp_path / "predictions.json")["metrics"]
    trained = read_json(run_dir / "results.json")["metrics"]
    for name in ("auc", "gauc", "logloss"):
        assert predicted[name] == pytest.approx(trained[name], abs=1e-6), name


@pytest.mark.parametrize("paper", ["twin", "twin_v2"])
def test_predict_on_another_data_draw_writes_one_row_per_test_impression(trained_runs, cache_dir, tmp_path, paper):
    arguments = (f"paper={paper}", "mode=predict", f"from_run={trained_runs[paper]}", "data_seed=5")
    completed = run_smoke(cache_dir, *arguments, f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = read_json(tmp_path / "predictions.json")
    assert record["from_run"] == str(trained_runs[paper]) and record["config"]["data"]["generator"]["seed"] == 5
    assert {"auc", "gauc", "logloss"} <= set(record["metrics"]) and "gauc" in completed.stdout
    assert paper == "twin" or 0 < record["metrics"]["compression"] < 1
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert list(predictions.columns) == ["user_id", "video_id", "score"]
    assert predictions["score"].between(0, 1).all()
    expected = impressions_of_test_days(record["config"]["data"], cache_dir)
    assert len(predictions) == len(expected)
    pairs = predictions[["user_id", "video_id"]].to_numpy()
    assert np.array_equal(pairs, expected[["user_id", "video_id"]].to_numpy())


def impressions_of_test_days(data: dict, cache_dir: Path) -> pd.DataFrame:
    """The log rows of the last `test_days` sample days of the generated draw `data` describes."""
    generator = SyntheticLifelongConfig(**data["generator"])
    folder = ensure_dataset(generator, cache_dir, progress=False)
    logs = read_kuairand(folder, "synthetic", data["data_card"]).logs
    dates = logs["date"].to_numpy()
    days = np.unique(dates[dates >= sample_period_start(generator)])
    return logs[dates >= days[-data["test_days"]]]


def test_twin_v2_killed_after_a_stage_resumes_without_retraining_it(trained_runs, cache_dir, tmp_path):
    environment = {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}
    arguments = [sys.executable, "run.py", "paper=twin_v2", *SMOKE, f"hydra.run.dir={tmp_path}"]
    process = subprocess.Popen(
        arguments, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # the clustering job's workers die with it
    )  # fmt: skip
    finished_stage = tmp_path / "embeddings" / "stage.json"
    deadline = time.monotonic() + 300
    while not finished_stage.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert finished_stage.exists() and not (tmp_path / "twin_v2" / "stage.json").exists()
    checkpoint = tmp_path / "embeddings" / "checkpoints" / "last.pt"
    trained_at = checkpoint.stat().st_mtime_ns

    resumed = run_smoke(cache_dir, "paper=twin_v2", f"hydra.run.dir={tmp_path}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage 1/3 embeddings: finished earlier, restored" in resumed.stderr + resumed.stdout
    assert checkpoint.stat().st_mtime_ns == trained_at  # restored, not retrained
    reference = read_json(trained_runs["twin_v2"] / "results.json")
    record = read_json(tmp_path / "results.json")
    assert record["metrics"] == reference["metrics"]
    assert [stage["metrics"] for stage in record["stages"]] == [stage["metrics"] for stage in reference["stages"]]
