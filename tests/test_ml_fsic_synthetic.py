"""synthetic_multilabel: COCO-format annotations read by pycocotools, GloVe-format vectors read by the package's
reader, and the premise the benchmark needs: the word vectors name a label's family, never its texture."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from common.errors import ConfigError
from common.metrics.multilabel import mean_average_precision
from papers.ml_fsic.synthetic import TEXTURES, SyntheticMultiLabelConfig, check_generator, ensure_dataset
from papers.ml_fsic.word_vectors import label_vectors, read_vectors

SMALL = SyntheticMultiLabelConfig(labels=12, split=[6, 3, 3], images=120, image_size=48, filler_words=5)


def read(folder):
    coco = COCO(str(folder / "annotations" / "instances.json"))
    names = {category["id"]: category["name"] for category in coco.loadCats(coco.getCatIds())}
    label_sets = [{names[a["category_id"]] for a in coco.loadAnns(coco.getAnnIds(imgIds=i))} for i in coco.getImgIds()]
    return coco, names, label_sets


def test_generated_set_reads_with_the_real_tools_and_mirrors_the_premise(tmp_path):
    folder = ensure_dataset(SMALL, tmp_path, progress=False)
    coco, names, label_sets = read(folder)
    assert len(coco.getImgIds()) == 120 and len(coco.getCatIds()) == 12
    split = json.loads((folder / "label_split.json").read_text())
    assert sorted(sum(split.values(), [])) == sorted(names.values())
    within_one_split = [any(labels <= set(part) for part in split.values()) for labels in label_sets]
    assert 0.7 < np.mean(within_one_split) < 1.0  # most images keep to one split; a few mix (and get filtered)
    assert max(len(labels) for labels in label_sets) > 1  # multi-label
    families = {name: " ".join(name.split()[:2]) for name in names.values()}
    for part in split.values():  # whole families per split, one label per texture
        assert all(list(families.values()).count(families[name]) == len(TEXTURES) for name in part)
        assert len({families[name] for name in part}) == len(part) // len(TEXTURES)
    words = read_vectors(folder / "word_vectors.txt", {"red", "green", "circle"})
    cosine = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cosine(words["red"], words["green"]) > cosine(words["red"], words["circle"])  # kinds share a direction
    again = ensure_dataset(SMALL, tmp_path / "again", progress=False)
    assert (again / "word_vectors.txt").read_text() == (folder / "word_vectors.txt").read_text()


def test_word_vectors_cannot_tell_siblings_apart_so_the_support_images_must(tmp_path):
    """A scorer that knows each query's families exactly (all the word vectors can say) ranks a label's siblings
    level with it: its macro mAP stays well below the oracle's 1, which only the support images can close; with
    named textures the same knowledge would be complete."""
    folder = ensure_dataset(SMALL, tmp_path, progress=False)
    _, names, label_sets = read(folder)
    labels = sorted(names.values())
    family = {name: " ".join(name.split()[:2]) for name in labels}
    truth = np.array([[name in present for name in labels] for present in label_sets], dtype=float)
    knows_families = np.array(
        [[family[name] in {family[p] for p in present} for name in labels] for present in label_sets]
    )
    assert mean_average_precision(truth, knows_families.astype(float))["macro_map"] < 0.85
    vectors = label_vectors(folder / "word_vectors.txt", labels, "data_cards/synthetic_multilabel.md")
    siblings = [(a, b) for a in range(len(labels)) for b in range(a) if family[labels[a]] == family[labels[b]]]
    gaps = [np.linalg.norm(vectors[a] - vectors[b]) for a, b in siblings]
    assert min(gaps) > 0  # distinct vectors (the labels' own tokens) that say nothing of the texture


def test_labels_and_splits_come_in_whole_families():
    with pytest.raises(ConfigError, match=r"labels come in families of 3"):
        check_generator(SyntheticMultiLabelConfig(labels=12, split=[6, 4, 2]))
