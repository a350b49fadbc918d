"""Two-shot VOS's declared stages and mode=predict: the given annotations of each layout, predictions at the
annotations' native size, and through run.py a smoke run (phase1, bank, phase2), predictions on another generated
draw and on the DAVIS and YouTube-VOS fixtures (palette PNGs, sizes, object ids, the submission zip's layout),
and a resume after the bank that restores it instead of building it again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import DatasetError
from papers.two_shot_vos.data import Video, save_index_mask
from papers.two_shot_vos.inference import InferenceConfig
from papers.two_shot_vos.prediction import first_appearances, given_annotations, segment_from_annotations
from papers.two_shot_vos.stcn import STCN, STCNConfig
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, ensure_dataset
from tests.conftest import FIXTURES, ROOT

SMOKE = ("paper=two_shot_vos", "debug=smoke", "logger=none", "trainer.device=cpu", "trainer.progress_bar=false")
TIMEOUT = 1500  # the machine is shared: a smoke run of the three stages takes minutes there
STAGES = ["static", "phase1", "bank", "phase2"]


def tiny_stcn() -> STCN:
    torch.manual_seed(0)
    config = STCNConfig(key_backbone="resnet10t", value_backbone="resnet10t", value_dim=16, decoder_dims=[16, 8, 8])
    return STCN(config).eval()


def video_with(masks: dict[int, np.ndarray], length: int, shape=(20, 30)) -> Video:
    frames = np.random.default_rng(0).integers(0, 255, (length, *shape, 3), dtype=np.uint8)
    return Video("clip", frames, [f"{5 * t:05d}" for t in range(length)], masks)


def test_youtube_vos_gives_each_object_where_it_first_appears():
    first = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    later = np.array([[1, 2], [0, 0]], dtype=np.uint8)
    given = first_appearances({0: first, 1: later, 2: later})
    assert sorted(given) == [0, 1]
    np.testing.assert_array_equal(given[0], first)
    np.testing.assert_array_equal(given[1], [[0, 2], [0, 0]])  # object 1 was given before: left out
    video = video_with({0: first, 1: later}, 3, (2, 2))
    assert sorted(given_annotations(video, "youtube_vos", "card")) == [0, 1]
    assert sorted(given_annotations(video, "davis", "card")) == [0]  # DAVIS: the first frame only


def test_a_davis_video_without_its_first_mask_is_named():
    video = video_with({2: np.zeros((2, 2), dtype=np.uint8)}, 3, (2, 2))
    with pytest.raises(DatasetError, match="video clip has no mask of its first frame 00000"):
        given_annotations(video, "davis", "data_cards/davis.md")


@pytest.mark.parametrize("size", [None, (32, 48)])
def test_predictions_come_out_at_the_native_size_with_the_given_objects(size):
    first = np.zeros((20, 30), dtype=np.uint8)
    first[4:10, 5:12], first[12:18, 15:25] = 1, 3
    video = video_with({0: first}, 4)
    masks = segment_from_annotations(tiny_stcn(), video, {0: first}, InferenceConfig(), "cpu", size)
    assert masks.shape == (4, 20, 30) and masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) <= {0, 1, 3}
    if size is None:
        np.testing.assert_array_equal(masks[0], first)  # the given frame keeps its mask


def run_command(cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=TIMEOUT
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, cache_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("two_shot_smoke")
    completed = run_command(cache_dir, *SMOKE, f"hydra.run.dir={run_dir}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    return run_dir


def predict(cache_dir: Path, trained: Path, output: Path, *data: str) -> dict:
    completed = run_command(cache_dir, *SMOKE, "mode=predict", f"from_run={trained}", *data, f"hydra.run.dir={output}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((output / "predictions.json").read_text())


def check_masks(predicted: Path, truth: Path, frames: Path) -> None:
    """One palette PNG per frame, each the size of the frame's annotation, with the video's object ids only."""
    names = sorted(path.stem for path in frames.glob("*.jpg"))
    assert sorted(path.stem for path in predicted.glob("*.png")) == names
    given = Image.open(truth / f"{names[0]}.png")
    objects = set(np.unique(np.array(given)).tolist())
    for name in names:
        with Image.open(predicted / f"{name}.png") as image:
            assert image.mode == "P" and image.size == given.size
            assert set(np.unique(np.array(image)).tolist()) <= objects
    np.testing.assert_array_equal(np.array(Image.open(predicted / f"{names[0]}.png")), np.array(given))


@pytest.mark.slow
def test_the_smoke_run_records_its_four_stages(trained_run):
    record = json.loads((trained_run / "results.json").read_text())
    assert [stage["name"] for stage in record["stages"]] == STAGES
    stages = {stage["name"]: stage for stage in record["stages"]}
    assert stages["bank"]["config"] == {"top_k": 20, "mem_every": {"synthetic_vos": 5}, "amp": False}
    assert stages["phase2"]["config"]["sampler"] == "bank" and stages["phase1"]["config"]["steps"] == 6
    assert record["metrics"]["bank_jaccard"] == stages["bank"]["metrics"]["bank_jaccard"]
    assert record["metrics"]["phase1_j_and_f"] == stages["phase1"]["metrics"]["j_and_f"]
    assert record["metrics"]["stage0_j_and_f"] == stages["static"]["metrics"]["j_and_f"]
    assert stages["static"]["config"]["steps"] == 2 and stages["static"]["config"]["sampler"] == "static"
    for name in STAGES:
        assert (trained_run / name / "stage.json").is_file()
    assert (trained_run / "phase2" / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_predict_on_another_generated_draw_scores_every_video(trained_run, tmp_path, cache_dir):
    record = predict(cache_dir, trained_run, tmp_path, "data_seed=5")
    assert record["from_run"] == str(trained_run) and record["config"]["data"]["generator"]["seed"] == 5
    metrics = record["metrics"]
    assert metrics["videos"] == 2 and 0 <= metrics["j_and_f"] <= 1 and metrics["objects"] >= 2
    source = ensure_dataset(SyntheticVOSConfig(**record["config"]["data"]["generator"]), cache_dir, progress=False)
    assert source != ensure_dataset(SyntheticVOSConfig(**trained_generator(trained_run)), cache_dir, progress=False)
    videos = sorted(path.name for path in (tmp_path / "Annotations" / "480p").iterdir())
    assert videos == sorted((source / "ImageSets" / "2017" / "val.txt").read_text().split())
    for video in videos:
        check_masks(tmp_path / "Annotations/480p" / video, source / "Annotations/480p" / video,
                    source / "JPEGImages/480p" / video)  # fmt: skip


def trained_generator(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())["config"]["data"]["generator"]


@pytest.mark.slow
def test_predict_on_a_davis_folder_writes_its_layout_and_scores_it(trained_run, tmp_path, cache_dir):
    root = FIXTURES / "davis2017"
    record = predict(cache_dir, trained_run, tmp_path, "data=davis", f"data.root={root}")
    assert record["metrics"]["videos"] == 1 and record["metrics"]["objects"] == 2  # dogs: every frame has a mask
    check_masks(tmp_path / "Annotations/480p/dogs", root / "Annotations/480p/dogs", root / "JPEGImages/480p/dogs")


@pytest.mark.slow
def test_predict_on_youtube_vos_writes_its_layout_and_the_submission_zip(trained_run, tmp_path, cache_dir):
    root = FIXTURES / "youtube_vos2019"
    record = predict(cache_dir, trained_run, tmp_path, "data=youtube_vos", f"data.root={root}")
    assert record["metrics"] == {}  # valid: only the first appearances are annotated
    video = "1c0b9c2e1a"
    check_masks(tmp_path / "valid/Annotations" / video, root / "valid/Annotations" / video,
                root / "valid/JPEGImages" / video)  # fmt: skip
    with zipfile.ZipFile(tmp_path / "submission.zip") as archive:
        files = sorted(name for name in archive.namelist() if not name.endswith("/"))
    assert files == [f"Annotations/{video}/{frame:05d}.png" for frame in (0, 5, 10, 15)]


@pytest.mark.slow
def test_resume_after_the_bank_restores_it_and_trains_phase_two(trained_run, tmp_path, cache_dir):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    for finished in ("results.json", "units.npz", "training_curves.png"):
        (run_dir / finished).unlink()
    shutil.rmtree(run_dir / "phase2")  # as if killed between the bank and phase 2
    marked = sorted((run_dir / "bank").rglob("*.png"))[0]
    marker = np.full(np.array(Image.open(marked)).shape, 7, dtype=np.uint8)
    save_index_mask(marked, marker)  # a bank built again would overwrite it
    completed = run_command(cache_dir, *SMOKE, f"hydra.run.dir={run_dir}", "resume=true")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "stage 3/4 bank: finished earlier, restored" in completed.stderr + completed.stdout
    np.testing.assert_array_equal(np.array(Image.open(marked)), marker)
    record = json.loads((run_dir / "results.json").read_text())
    original = json.loads((trained_run / "results.json").read_text())
    assert [stage["name"] for stage in record["stages"]] == STAGES
    assert record["stages"][2] == original["stages"][2]  # the bank's record is the finished one's
    assert (run_dir / "phase2" / "checkpoints" / "last.pt").is_file()
