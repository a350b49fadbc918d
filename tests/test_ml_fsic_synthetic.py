"""synthetic_multilabel: COCO-format annotations read by pycocotools, GloVe-format vectors read by gensim."""

from __future__ import annotations

import json

import numpy as np
from gensim.models import KeyedVectors
from pycocotools.coco import COCO

from papers.ml_fsic.synthetic import SyntheticMultiLabelConfig, ensure_dataset

SMALL = SyntheticMultiLabelConfig(labels=12, split=[6, 3, 3], images=120, image_size=64, filler_words=5)


def test_generated_set_reads_with_the_real_tools_and_mirrors_the_premise(tmp_path):
    folder = ensure_dataset(SMALL, tmp_path, progress=False)
    coco = COCO(str(folder / "annotations" / "instances.json"))
    assert len(coco.getImgIds()) == 120 and len(coco.getCatIds()) == 12
    names = {category["id"]: category["name"] for category in coco.loadCats(coco.getCatIds())}
    split = json.loads((folder / "label_split.json").read_text())
    assert sorted(sum(split.values(), [])) == sorted(names.values())
    label_sets = [{names[a["category_id"]] for a in coco.loadAnns(coco.getAnnIds(imgIds=i))} for i in coco.getImgIds()]
    within_one_split = [any(labels <= set(part) for part in split.values()) for labels in label_sets]
    assert 0.7 < np.mean(within_one_split) < 1.0  # most images keep to one split; a few mix (and get filtered)
    assert max(len(labels) for labels in label_sets) > 1  # multi-label
    vectors = KeyedVectors.load_word2vec_format(str(folder / "word_vectors.txt"), binary=False, no_header=True)
    assert vectors.vector_size == 300 and all(word in vectors for name in names.values() for word in name.split())
    # words of one attribute kind share a direction: colours are closer to each other than to shapes
    assert vectors.similarity("red", "green") > vectors.similarity("red", "circle")
    again = ensure_dataset(SMALL, tmp_path / "again", progress=False)
    assert (again / "word_vectors.txt").read_text() == (folder / "word_vectors.txt").read_text()
