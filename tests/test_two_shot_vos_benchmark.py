"""The embedded benchmark (synthetic_vos) validated before any model is trained: frames need no padding, the
no-learning rows leave headroom (copying the first frame's mask scores far below the oracle on the
validation videos, copying the nearest labeled frame's mask labels the unlabeled training frames poorly), and
the copy heuristic the bank is measured against follows its rule."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError
from common.metrics.segmentation import j_and_f
from papers.two_shot_vos.data import Video, read_davis, read_labeled_frames
from papers.two_shot_vos.no_learning import (
    copy_first_frame,
    copy_nearest_labeled_frame,
    ground_truth_masks,
    nearest_labeled_bank_jaccard,
    unlabeled_frame_jaccard,
)
from papers.two_shot_vos.scoring import score_video
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, ensure_dataset

CARD = "data_cards/synthetic_vos.md"
DRAW = {"train_videos": 6, "val_videos": 6}  # a small draw of the default generator


def labeled_squares(columns: list[int], labeled: list[int]) -> tuple[Video, Video]:
    """A 4 x 4 square (object 1) at columns[t] in frame t: the video with every mask, and with `labeled` only."""
    masks = {}
    for t, left in enumerate(columns):
        masks[t] = np.zeros((8, 16), dtype=np.uint8)
        masks[t][2:6, left : left + 4] = 1
    frames = np.zeros((len(columns), 8, 16, 3), dtype=np.uint8)
    names = [f"{t:05d}" for t in range(len(columns))]
    return Video("v", frames, names, masks), Video("v", frames, names, {t: masks[t] for t in labeled})


def test_copy_nearest_labeled_frame_takes_the_closest_labeled_mask_and_the_earlier_on_a_tie():
    every, two_shot = labeled_squares([0, 2, 4, 6, 8, 10], labeled=[1, 5])
    copied = copy_nearest_labeled_frame(two_shot)
    sources = {0: 1, 1: 1, 2: 1, 3: 1, 4: 5, 5: 5}  # frame 3 is 2 from both: the earlier labeled frame
    for t, source in sources.items():
        np.testing.assert_array_equal(copied[t], every.masks[source])
    # frames 0 and 2 overlap the copy in 2 of 4 columns (J = 8 / 24), frame 3 and 4 in 0 and 2 columns
    scores = unlabeled_frame_jaccard(every, copied, two_shot.labeled)
    assert scores == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    assert nearest_labeled_bank_jaccard([two_shot], [every]) == pytest.approx(0.25)


def test_a_speed_range_that_is_not_low_then_high_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.generator.speed"):
        ensure_dataset(SyntheticVOSConfig(speed=[0.05, 0.01], **DRAW), tmp_path, progress=False)


@pytest.fixture(scope="module")
def draw(tmp_path_factory):
    root = ensure_dataset(SyntheticVOSConfig(**DRAW), tmp_path_factory.mktemp("vos"), progress=False)
    split = read_labeled_frames(root / "two_shot_frames.json", CARD)
    return {
        "val": read_davis(root, "val", CARD),
        "two_shot": read_davis(root, "train", CARD, split),
        "every_mask": read_davis(root, "train", CARD),
    }


def test_frames_are_a_multiple_of_16_at_least_192_pixels_high(draw):
    height, width = draw["val"][0].frames.shape[1:3]
    assert height >= 192 and height % 16 == 0 and width % 16 == 0


def test_copying_the_first_frame_leaves_most_of_the_headroom_to_the_oracle(draw):
    scores = {"copy": ([], []), "oracle": ([], [])}
    for video in draw["val"]:
        truth = ground_truth_masks(video)
        for name, predicted in (("copy", copy_first_frame(truth[0], len(truth))), ("oracle", truth)):
            j, f = score_video(truth, predicted)
            scores[name][0].extend(j)
            scores[name][1].extend(f)
    copy, oracle = (j_and_f(np.array(j), np.array(f))["j_and_f"] for j, f in scores.values())
    assert oracle == 1.0 and copy < 0.25


def test_copying_the_nearest_labeled_frame_labels_the_unlabeled_training_frames_poorly(draw):
    assert all(len(video.labeled) == 2 for video in draw["two_shot"])
    assert nearest_labeled_bank_jaccard(draw["two_shot"], draw["every_mask"]) < 0.4
