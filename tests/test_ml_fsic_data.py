"""COCO and VOC 2007 readers on fixtures in their exact formats, the label-split rule, GloVe vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gensim.models import KeyedVectors

from common.errors import DatasetError
from papers.ml_fsic.data import label_vectors, read_coco, read_voc, split_by_labels
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


def test_label_vectors_average_the_words_of_a_name():
    vectors = KeyedVectors.load_word2vec_format(str(GLOVE), binary=False, no_header=True)
    table = label_vectors(GLOVE, ["dog", "stop sign", "stop_sign"], "data_cards/glove.md")
    assert table.shape == (3, 300)
    np.testing.assert_allclose(table[0], vectors["dog"])
    np.testing.assert_allclose(table[1], (vectors["stop"] + vectors["sign"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(table[2], table[1])
    with pytest.raises(DatasetError, match=r"label 'hair drier': words \['hair', 'drier'\] are not in"):
        label_vectors(GLOVE, ["hair drier"], "data_cards/glove.md")


def test_coco_split_is_the_spec_s_52_12_16_over_the_80_labels():
    split = json.loads((ROOT / "papers/ml_fsic/splits/coco2014.json").read_text())
    assert [len(split[name]) for name in ("train", "val", "test")] == [52, 12, 16]
    assert len(set().union(*split.values())) == 80
    assert set(split["test"]) == {
        "bicycle", "boat", "stop sign", "bird", "backpack", "frisbee", "snowboard", "surfboard", "cup", "fork",
        "spoon", "broccoli", "chair", "keyboard", "microwave", "vase",
    }  # fmt: skip
