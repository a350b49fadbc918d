"""Two-shot VOS's no-learning rows (the oracle, the first frame's mask copied) and the per-video contributions of
J, F and J&F: their logic on tiny videos with known answers, and each scorer through run.py on smoke data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import ConfigError
from common.metrics.segmentation import j_and_f
from common.units import load_units
from papers.two_shot_vos.data import Video
from papers.two_shot_vos.no_learning import SCORERS, copy_first_frame, ground_truth_masks, no_learning_segmenter
from papers.two_shot_vos.sampling import VideoSource
from papers.two_shot_vos.scoring import score_batch, video_units

SMOKE = ("paper=two_shot_vos", "debug=smoke", "logger=none", "trainer.device=cpu")
UNIT_METRICS = ("jaccard", "boundary_f", "j_and_f")


def square_video(name: str, columns: list[int], size: int = 16, side: int = 4) -> Video:
    """A `side` x `side` square (object 1) whose left column is columns[t] in frame t, on an empty background."""
    masks = {}
    for t, left in enumerate(columns):
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[6 : 6 + side, left : left + side] = 1
        masks[t] = mask
    frames = np.zeros((len(columns), size, size, 3), dtype=np.uint8)
    return Video(name, frames, [f"{t:05d}" for t in range(len(columns))], masks)


def scored(videos: list[Video], scorer: str) -> dict[str, np.ndarray]:
    source = VideoSource(videos)
    segment = no_learning_segmenter(scorer, videos)
    pieces = [score_batch(source.batch(np.array([index])), segment) for index in range(len(videos))]
    return {key: np.concatenate([piece[key].numpy() for piece in pieces]) for key in pieces[0]}


def test_copy_first_frame_repeats_the_given_mask_without_reading_the_video():
    first = np.array([[0, 1], [2, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(copy_first_frame(first, 3), np.stack([first] * 3))
    segment = no_learning_segmenter("trivial_copy_first_frame", videos=[])  # no video to read from
    np.testing.assert_array_equal(segment(0, np.zeros((2, 3, 2, 2)), first), np.stack([first] * 2))


def test_copying_the_first_frame_scores_the_overlap_with_the_moving_object():
    # the square moves 2 columns a frame; the protocol scores frames 1 and 2 (not the first nor the last):
    # frame 1 overlaps the copied square in 2 of its 4 columns (J = 8 / 24), frame 2 not at all (J = 0)
    outputs = scored([square_video("moving", [2, 4, 6, 8])], "trivial_copy_first_frame")
    assert outputs["jaccard"] == pytest.approx([1 / 6])
    assert outputs["boundary_f"][0] < 1
    static = scored([square_video("static", [5, 5, 5, 5])], "trivial_copy_first_frame")
    assert static["jaccard"] == pytest.approx([1.0]) and static["boundary_f"] == pytest.approx([1.0])


def test_the_oracle_predicts_the_ground_truth_and_reaches_the_ceiling():
    video = square_video("moving", [2, 4, 6, 8])
    np.testing.assert_array_equal(ground_truth_masks(video), np.stack([video.masks[t] for t in range(4)]))
    outputs = scored([video], "oracle")
    assert outputs["jaccard"] == pytest.approx([1.0]) and outputs["boundary_f"] == pytest.approx([1.0])
    np.testing.assert_array_equal(outputs["video_index"], [0])


def test_per_video_units_weight_each_video_by_its_objects_and_give_back_the_object_means():
    outputs = {
        "jaccard": np.array([0.2, 0.4, 0.9], dtype=np.float32),
        "boundary_f": np.array([0.1, 0.5, 0.6], dtype=np.float32),
        "video_index": np.array([1, 1, 0], dtype=np.float32),
    }
    units = video_units(outputs, ["val000", "val001"])
    assert units.unit == "video" and list(units.ids) == ["val000", "val001"]
    np.testing.assert_allclose(units.metrics["jaccard"].first, [0.9, 0.3], rtol=1e-6)
    np.testing.assert_array_equal(units.metrics["j_and_f"].second, [1, 2])
    expected = j_and_f(outputs["jaccard"], outputs["boundary_f"])
    for name in UNIT_METRICS:
        assert units.value(name) == pytest.approx(expected[name], rel=1e-6)
    assert video_units({name: np.zeros(0) for name in outputs}, []) is None


def test_an_unknown_scorer_is_refused_with_the_allowed_names():
    with pytest.raises(ConfigError, match="trivial_copy_first_frame"):
        no_learning_segmenter("trivial_copy_nearest_labeled", [])


@pytest.mark.slow
@pytest.mark.parametrize("scorer", SCORERS)
def test_each_scorer_runs_through_the_runner_trains_nothing_and_writes_its_units(run_cli, tmp_path, scorer):
    completed = run_cli(*SMOKE, f"experiment={scorer}", f"hydra.run.dir={tmp_path}", timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["model"] == scorer and record["data_seed"] == 0
    metrics = record["metrics"]
    units = load_units(tmp_path / "units.npz")
    assert units.unit == "video" and len(units.ids) == 2  # the smoke data's validation videos
    for name in UNIT_METRICS:
        assert units.value(name) == pytest.approx(metrics[name], rel=1e-6)
    assert not any((tmp_path / folder).exists() for folder in ("checkpoints", "phase1", "bank"))
    if scorer == "oracle":
        assert metrics["j_and_f"] == metrics["jaccard"] == metrics["boundary_f"] == 1.0
    else:
        assert 0 < metrics["j_and_f"] < 1
