"""OVRDL + AAL as declared stages and through mode=predict: a smoke run's stages, predictions on another
generated draw and on a folder of PNGs, and a run killed after stage `ovrdl` finished, resumed across the
boundary."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from common.errors import ConfigError
from papers.ovrdl_aal.ovrdl import OVRDLConfig, independence_matrix
from tests.conftest import ROOT

# a smaller network than the smoke config's, and a stage 2 long enough (300 steps) to kill the run in it
RUN = (
    "paper=ovrdl_aal", "debug=smoke", "logger=none", "trainer.device=cpu", "trainer.progress_bar=false",
    "model.ovrdl.filters=4", "model.ovrdl.feature_dim=16", "model.aal.hidden=32",
    "model.aal.mixes_per_loop=9600", "trainer.max_steps=null",
)  # fmt: skip
PREDICT = ("paper=ovrdl_aal", "mode=predict", "logger=none", "trainer.device=cpu")
DRAW = (*PREDICT, "debug=smoke")  # predictions on a generated draw: the smoke config's small one
SCORE_COLUMNS = [f"score_{identity}" for identity in range(10)]
METRICS = {"auc", "far", "frr", "tar_at_far1", "accuracy"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cache_dir) -> Path:
    directory = tmp_path_factory.mktemp("trained")
    completed = subprocess.run(
        [sys.executable, "run.py", *RUN, f"hydra.run.dir={directory}"],
        cwd=ROOT, env=environment(cache_dir), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return directory


def environment(cache_dir: Path) -> dict[str, str]:
    return {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        assert reader.fieldnames == ["file", *SCORE_COLUMNS, "predicted_identity"]
        return list(reader)


def test_a_smoke_run_records_both_stages_with_their_configs_and_metrics(trained_run):
    record = json.loads((trained_run / "results.json").read_text())
    ovrdl, aal = record["stages"]
    assert (ovrdl["name"], aal["name"]) == ("ovrdl", "aal")
    assert ovrdl["config"]["ovrdl"]["filters"] == 4 and ovrdl["config"]["trainer"]["max_steps"] == 2
    assert aal["config"]["aal"]["mixes_per_loop"] == 9600 and aal["config"]["trainer"]["max_epochs"] == 1
    assert {f"ovrdl_{name}": value for name, value in ovrdl["metrics"].items()} == {
        name: value for name, value in record["metrics"].items() if name.startswith("ovrdl_")
    }
    assert aal["metrics"] == {name: value for name, value in record["metrics"].items() if name in METRICS}
    for stage in ("ovrdl", "aal"):
        assert (trained_run / stage / "checkpoints" / "last.pt").is_file()
        assert (trained_run / stage / "stage.json").is_file()
    assert (trained_run / "aal" / "thresholds.json").is_file() and (trained_run / "units.npz").is_file()


def test_predict_on_the_training_draw_reproduces_the_runs_test_metrics(run_cli, trained_run, tmp_path):
    completed = run_cli(*DRAW, f"from_run={trained_run}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    predicted = json.loads((tmp_path / "predictions.json").read_text())["metrics"]
    recorded = json.loads((trained_run / "results.json").read_text())["metrics"]
    assert set(predicted) == METRICS
    for name in METRICS:
        assert predicted[name] == pytest.approx(recorded[name], abs=1e-6), name


def test_predict_scores_another_generated_draw(run_cli, trained_run, tmp_path):
    completed = run_cli(*DRAW, f"from_run={trained_run}", "data_seed=5", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    prediction = json.loads((tmp_path / "predictions.json").read_text())
    assert prediction["from_run"] == str(trained_run) and prediction["config"]["data"]["protocol"]["seed"] == 5
    assert set(prediction["metrics"]) == METRICS and 0 <= prediction["metrics"]["auc"] <= 1
    rows = read_scores(tmp_path / "scores.csv")
    assert rows and all(row["file"].startswith("synthetic_cmnist:") for row in rows)
    scores = np.array([[float(row[column]) for column in SCORE_COLUMNS] for row in rows])
    np.testing.assert_allclose(scores.sum(1), 1, atol=1e-4)  # identity probabilities
    assert [int(row["predicted_identity"]) for row in rows] == scores.argmax(1).tolist()


def write_digit_pngs(folder: Path, identities: list[int], labels: bool) -> None:
    """Digits drawn in red or green on a dark background, of sizes other than the model's, as PNG files."""
    folder.mkdir()
    for index, identity in enumerate(identities):
        image = np.full((24 + index, 24 + index, 3), 12, dtype=np.uint8)
        colour = (40, 40, 255) if identity < 5 else (40, 255, 40)  # BGR: red strokes for 0-4, green for 5-9
        cv2.putText(image, str(identity), (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
        cv2.imwrite(str(folder / f"digit_{index:02d}.png"), image)
    if labels:
        lines = ["file,identity", *(f"digit_{index:02d}.png,{i}" for index, i in enumerate(identities))]
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def test_predict_scores_a_folder_of_pngs_with_and_without_labels(run_cli, trained_run, tmp_path):
    identities = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 7]
    write_digit_pngs(tmp_path / "labelled", identities, labels=True)
    folder = (f"from_run={trained_run}", "data=digit_images", f"data.root={tmp_path / 'labelled'}")
    completed = run_cli(*PREDICT, *folder, f"hydra.run.dir={tmp_path / 'out'}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = read_scores(tmp_path / "out" / "scores.csv")
    assert [row["file"] for row in rows] == [f"digit_{index:02d}.png" for index in range(len(identities))]
    assert set(json.loads((tmp_path / "out" / "predictions.json").read_text())["metrics"]) == METRICS

    write_digit_pngs(tmp_path / "unlabelled", identities[:3], labels=False)
    unlabelled = (f"from_run={trained_run}", "data=digit_images", f"data.root={tmp_path / 'unlabelled'}")
    completed = run_cli(*PREDICT, *unlabelled, f"hydra.run.dir={tmp_path / 'none'}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(read_scores(tmp_path / "none" / "scores.csv")) == 3
    assert json.loads((tmp_path / "none" / "predictions.json").read_text())["metrics"] == {}

    (tmp_path / "labelled" / "labels.csv").write_text("file,identity\ndigit_00.png,0\nmissing.png,4\n")
    completed = run_cli(*PREDICT, *folder, f"hydra.run.dir={tmp_path / 'bad'}")
    assert completed.returncode == 2 and "error:" in completed.stderr
    assert "without a row" in completed.stderr and "missing.png" in completed.stderr


def test_a_run_killed_after_stage_ovrdl_resumes_at_stage_aal_and_ends_as_an_uninterrupted_run(
    run_cli, trained_run, cache_dir, tmp_path
):
    arguments = [sys.executable, "run.py", *RUN, f"hydra.run.dir={tmp_path}"]
    process = subprocess.Popen(
        arguments, cwd=ROOT, env=environment(cache_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while not (tmp_path / "ovrdl" / "stage.json").is_file():
            assert process.poll() is None, "the run ended before stage ovrdl finished"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert not (tmp_path / "results.json").exists(), "the run finished before it was killed"
    stage1_checkpoint = tmp_path / "ovrdl" / "checkpoints" / "last.pt"
    written = stage1_checkpoint.stat().st_mtime_ns

    completed = run_cli(*RUN, f"hydra.run.dir={tmp_path}", "resume=true", timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "stage 1/2 ovrdl: finished earlier, restored" in completed.stdout + completed.stderr
    assert stage1_checkpoint.stat().st_mtime_ns == written  # stage 1 was not trained again
    resumed = json.loads((tmp_path / "results.json").read_text())
    reference = json.loads((trained_run / "results.json").read_text())
    assert resumed["metrics"] == pytest.approx(reference["metrics"], abs=1e-9)
    assert [stage["metrics"] for stage in resumed["stages"]] == [stage["metrics"] for stage in reference["stages"]]


@pytest.mark.parametrize(
    ("independence", "message"),
    [([[0.0, 1.0], [1.0, 0.0]], "λ must be 3 x 3"), ([[0, 1, 1], [1, 0, -1], [1, 1, 0]], "every entry of λ")],
)
def test_the_lambda_matrix_must_match_the_attributes_and_be_non_negative(independence, message):
    with pytest.raises(ConfigError, match=message):
        independence_matrix(OVRDLConfig(independence=independence), attributes=3)


def test_a_bad_lambda_stops_the_run_before_any_data_is_made(run_cli, tmp_path):
    completed = run_cli(
        "paper=ovrdl_aal", "debug=smoke", "logger=none", "model.ovrdl.independence=[[0.0,1.0],[1.0,0.0]]",
        "data.cache_dir=" + str(tmp_path / "cache"), f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert completed.returncode == 2 and "error:" in completed.stderr and "λ must be 3 x 3" in completed.stderr
    assert not (tmp_path / "cache").exists()
