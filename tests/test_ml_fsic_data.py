"""COCO and VOC 2007 readers on fixtures in their exact formats and the files they refuse, the label-split rule, the
split-size check."""

from __future__ import annotations

import json

import pytest

from common.errors import ConfigError, DatasetError
from papers.ml_fsic.data import check_split_size, read_coco, read_voc, split_by_labels
from tests.conftest import FIXTURES, ROOT

COCO, VOC, GLOVE = FIXTURES / "coco2014", FIXTURES / "voc2007", FIXTURES / "glove_tiny.300d.txt"


def read_fixture_coco():
    files = [COCO / "annotations" / f"instances_{split}.json" for split in ("train2014", "val2014")]
    return read_coco(files, [COCO / "train2014", COCO / "val2014"], "data_cards/coco.md")


def test_coco_pools_annotation_files_and_skips_unannotated_images():
    images = read_fixture_coco()
    assert images.label_names == ["bicycle", "chair", "dog", "stop sign"]
    assert [path.name for path in images.paths] == [
        "COCO_train2014_000000000009.jpg",
        "COCO_train2014_000000000025.jpg",
        "COCO_val2014_000000000042.jpg",
        "COCO_val2014_000000000073.jpg",
    ]  # image 30 has no annotation
    assert images.labels.astype(int).tolist() == [[0, 0, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 1, 0]]
    assert all(path.is_file() for path in images.paths)


def test_an_image_belongs_to_a_split_only_if_all_its_labels_do():
    splits = split_by_labels(read_fixture_coco(), {"train": ["dog", "chair"], "test": ["bicycle", "stop sign"]})
    assert [p.name[-8:] for p in splits["train"].paths] == ["0009.jpg", "0025.jpg"]
    assert [p.name[-8:] for p in splits["test"].paths] == ["0042.jpg"]  # 73 mixes bicycle and dog: dropped
    assert splits["test"].labels.astype(int).tolist() == [[1, 1]]
    with pytest.raises(DatasetError, match=r"split labels \['zebra'\] are not labels of the dataset"):
        split_by_labels(read_fixture_coco(), {"train": ["zebra"]})


def test_voc_reads_object_names_from_xml():
    images = read_voc(VOC, ["trainval"], "data_cards/voc2007.md")
    assert images.label_names == ["car", "chair", "horse", "person", "pottedplant"]
    assert images.labels.astype(int).tolist() == [[0, 1, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 1, 1, 0]]
    easy = read_voc(VOC, ["trainval"], "data_cards/voc2007.md", keep_difficult=False)
    assert easy.label_names == ["car", "chair", "horse", "pottedplant"]  # the only person is difficult
    assert easy.labels[2].astype(int).tolist() == [0, 0, 1, 0]
    with pytest.raises(DatasetError, match=r"lacks ImageSets/Main/test.txt"):
        read_voc(VOC, ["trainval", "test"], "data_cards/voc2007.md")


def test_coco_refuses_truncated_json_and_captions_files_naming_the_file(tmp_path):
    truncated = tmp_path / "instances_train2014.json"
    truncated.write_text((COCO / "annotations" / "instances_train2014.json").read_text()[:-20])
    with pytest.raises(DatasetError, match=r"instances_train2014.json is not valid JSON"):
        read_coco([truncated], [COCO / "train2014"], "data_cards/coco.md")
    captions = tmp_path / "captions_train2014.json"
    captions.write_text(json.dumps({"images": [], "annotations": [{"image_id": 9, "caption": "a dog"}]}))
    with pytest.raises(DatasetError, match=r"captions_train2014.json is not a COCO instances file: it lacks"):
        read_coco([captions], [COCO / "train2014"], "data_cards/coco.md")


def test_a_split_too_small_for_its_episodes_is_refused_with_the_numbers():
    splits = split_by_labels(read_fixture_coco(), {"train": ["dog", "chair"], "test": ["bicycle", "stop sign"]})
    with pytest.raises(
        DatasetError, match=r"each label needs 2 images \(1 support, at least 1 query\).*\{'chair': 1\}"
    ):
        check_split_size("train", splits["train"], None, 1, ROOT / "split.json")  # dog: 2 images, chair: 1
    with pytest.raises(DatasetError, match=r"each label needs 6 images \(5 support.*\{'dog': 2, 'chair': 1\}"):
        check_split_size("train", splits["train"], None, 5, ROOT / "split.json")
    with pytest.raises(ConfigError, match=r"episodes.ways.test=3 but the test split has 2 labels"):
        check_split_size("test", splits["test"], 3, 1, ROOT / "split.json")


def test_coco_split_is_the_spec_s_52_12_16_over_the_80_labels():
    split = json.loads((ROOT / "papers/ml_fsic/splits/coco2014.json").read_text())
    assert [len(split[name]) for name in ("train", "val", "test")] == [52, 12, 16]
    assert len(set().union(*split.values())) == 80
    assert set(split["test"]) == {
        "bicycle", "boat", "stop sign", "bird", "backpack", "frisbee", "snowboard", "surfboard", "cup", "fork",
        "spoon", "broccoli", "chair", "keyboard", "microwave", "vase",
    }  # fmt: skip
