"""The DAVIS 2017 and YouTube-VOS 2019 readers on fixtures in their exact layouts, and synthetic_vos."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import DatasetError
from papers.two_shot_vos.data import read_davis, read_labeled_frames, read_youtube_vos
from papers.two_shot_vos.synthetic import SyntheticVOSConfig, ensure_dataset
from tests.conftest import FIXTURES

DAVIS, YOUTUBE = FIXTURES / "davis2017", FIXTURES / "youtube_vos2019"
CARD = "data_cards/davis.md"


def test_davis_reads_every_mask_in_full_supervision_and_names_a_missing_one():
    with pytest.raises(DatasetError, match="video camel lacks the masks of 4 of its frames, first .*camel/00000.png"):
        read_davis(DAVIS, "train", CARD)  # full supervision: camel has masks on its two labeled frames only
    videos = read_davis(DAVIS, "train", CARD, require="any")
    assert [video.name for video in videos] == ["bear", "camel"]
    bear = videos[0]
    assert bear.frames.shape == (6, 16, 24, 3) and bear.frames.dtype == np.uint8
    assert bear.labeled == list(range(6)) and bear.objects == [1, 2]
    assert videos[1].labeled == [1, 4]
    with pytest.raises(DatasetError, match="camel lacks the masks of 1 of its frames, first .*: its first"):
        read_davis(DAVIS, "train", CARD, require="first")  # a video to segment from its first frame's mask


def test_two_shot_mode_opens_only_the_labeled_frames_masks():
    labeled = read_labeled_frames(DAVIS / "two_shot_frames.json", CARD)
    videos = read_davis(DAVIS, "train", CARD, labeled)
    assert [video.labeled for video in videos] == [[0, 3], [1, 4]]  # camel needs no dummy masks
    assert len(videos[1].frames) == 6  # every frame is still read


def test_missing_labeled_mask_and_bad_layout_are_named(tmp_path):
    with pytest.raises(DatasetError, match="mask of labeled frame 00002 is missing"):
        read_davis(DAVIS, "train", CARD, {"camel": ["00002.jpg", "00004.jpg"]})
    with pytest.raises(DatasetError, match="lacks ImageSets/2017/train.txt"):
        read_davis(tmp_path, "train", CARD)
    (tmp_path / "split.json").write_text('{"bear": ["00000.jpg"]}')
    with pytest.raises(DatasetError, match="do not list exactly two labeled frames"):
        read_labeled_frames(tmp_path / "split.json", CARD)


def test_resizing_keeps_masks_as_indices():
    (video,) = read_davis(DAVIS, "val", CARD, size=(32, 48))
    assert video.frames.shape == (6, 32, 48, 3)
    assert set(np.unique(video.masks[0]).tolist()) == {0, 1, 2}


def test_youtube_vos_layout_with_every_fifth_frame():
    train = read_youtube_vos(YOUTUBE, "train", "data_cards/youtube_vos.md")
    assert [video.name for video in train] == ["0a2f2bd294", "0b3e0e4a11"]
    assert train[0].frame_names == ["00000", "00005", "00010", "00015"] and train[0].labeled == [0, 1, 2, 3]
    labeled = read_labeled_frames(YOUTUBE / "two_shot_frames.json", "data_cards/youtube_vos.md")
    two_shot = read_youtube_vos(YOUTUBE, "train", "data_cards/youtube_vos.md", labeled)
    assert [video.labeled for video in two_shot] == [[1, 3], [0, 2]]
    (valid,) = read_youtube_vos(YOUTUBE, "valid", "data_cards/youtube_vos.md")
    assert valid.labeled == [0]  # valid: the first frame's annotation only


def test_synthetic_vos_is_deterministic_and_in_davis_layout(tmp_path):
    config = SyntheticVOSConfig(train_videos=3, val_videos=1, min_frames=6, max_frames=8, height=32, width=48)
    folder = ensure_dataset(config, tmp_path, progress=False)
    again = ensure_dataset(config, tmp_path / "again", progress=False)
    labeled = read_labeled_frames(folder / "two_shot_frames.json", "data_cards/synthetic_vos.md")
    assert labeled == read_labeled_frames(again / "two_shot_frames.json", "data_cards/synthetic_vos.md")
    videos = read_davis(folder, "train", "data_cards/synthetic_vos.md")
    assert len(videos) == 3 and all(1 <= len(video.objects) <= 3 for video in videos)
    first = videos[0]
    assert np.array_equal(first.frames, read_davis(again, "train", "data_cards/synthetic_vos.md")[0].frames)
    moved = [np.argwhere(first.masks[t] == first.objects[0]).mean(0) for t in (0, len(first.frames) - 1)]
    assert np.abs(moved[1] - moved[0]).sum() > 1  # objects move
    assert list(labeled) == [video.name for video in videos] and all(len(v) == 2 for v in labeled.values())


def test_two_shot_split_names_misspelt_videos_repeated_frames_and_notes_unlisted_ones(tmp_path, capsys):
    with pytest.raises(DatasetError, match=r"names 1 videos that .* lacks, e.g. \['baer'\]"):
        read_davis(DAVIS, "train", CARD, {"baer": ["00000.jpg", "00003.jpg"], "camel": ["00001.jpg", "00004.jpg"]})
    (tmp_path / "split.json").write_text('{"bear": ["00000.jpg", "00000.jpg"]}')
    with pytest.raises(DatasetError, match=r"videos \['bear'\] list the same frame twice"):
        read_labeled_frames(tmp_path / "split.json", CARD)
    (video,) = read_davis(DAVIS, "train", CARD, {"camel": ["00001.jpg", "00004.jpg"]})
    assert video.name == "camel" and "lists no frames of 1 videos" in capsys.readouterr().out
    with pytest.raises(DatasetError, match=r"names 1 videos that .*train.* lacks, e.g. \['0a2f2bd29'\]"):
        read_youtube_vos(YOUTUBE, "train", "data_cards/youtube_vos.md", {"0a2f2bd29": ["00000.jpg", "00005.jpg"]})
