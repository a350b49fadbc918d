"""ML-FSIC's mode=predict (a smoke run applied to another data draw, with a drawn and with a named support set),
scoring in batches as an episode scores, unannotated images left out of the metrics, its errors (a label without
a word vector, fewer than K support images), and the bounds of its configs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from common.errors import DatasetError
from papers.ml_fsic.baselines import FineTunedClassifier
from papers.ml_fsic.data import MultiLabelImages, read_coco
from papers.ml_fsic.evaluation import episode_metrics
from papers.ml_fsic.model import WordGuidedPrototypes
from papers.ml_fsic.prediction import drawn_support, label_scorer, labeled_metrics, named_support, support_set
from papers.ml_fsic.synthetic import SyntheticMultiLabelConfig, ensure_dataset
from tests.conftest import FIXTURES
from tests.test_ml_fsic_model import SMALL

SMOKE = ("paper=ml_fsic", "debug=smoke", "logger=none", "trainer.device=cpu")
SMOKE_GENERATOR = SyntheticMultiLabelConfig(labels=18, split=[9, 3, 6], images=400, image_size=64, filler_words=5)
TIMEOUT = 1200  # the machine is shared: a smoke run takes a minute or two


def draw_config(seed: int) -> SyntheticMultiLabelConfig:
    return replace(SMOKE_GENERATOR, seed=seed)


def draw(cache_dir, seed: int) -> tuple[MultiLabelImages, dict]:
    folder = ensure_dataset(draw_config(seed), cache_dir, False)
    images = read_coco([folder / "annotations" / "instances.json"], [folder / "images"], "card")
    return images, json.loads((folder / "label_split.json").read_text())


def check_scores(folder, images: MultiLabelImages, labels: list[str], shots: int) -> dict[str, list[str]]:
    """scores.csv holds every image but the support ones, a probability per label; the metrics are those of
    the annotations; returns the support set the run used."""
    scores = pd.read_csv(folder / "scores.csv")
    support = json.loads((folder / "support.json").read_text())
    assert list(scores.columns) == ["file_name", *labels] and list(support) == labels
    assert all(len(names) == shots for names in support.values())
    support_names = {name for names in support.values() for name in names}
    names = [path.name for path in images.paths]
    assert scores["file_name"].tolist() == [name for name in names if name not in support_names]
    probabilities = scores[labels].to_numpy()
    assert probabilities.shape == (len(images.paths) - len(support_names), len(labels))
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    rows = [names.index(name) for name in scores["file_name"]]
    targets = images.labels[np.ix_(rows, [images.label_names.index(label) for label in labels])]
    metrics = json.loads((folder / "predictions.json").read_text())["metrics"]
    assert metrics == pytest.approx(episode_metrics(targets.astype(np.float32), probabilities))
    assert {"macro_map", "micro_map", "macro_f1", "micro_precision", "micro_recall"} <= set(metrics)
    return support


def test_predict_scores_another_draw_from_a_drawn_and_from_a_named_support_set(run_cli, tmp_path, cache_dir):
    trained = tmp_path / "trained"
    completed = run_cli(*SMOKE, f"hydra.run.dir={trained}", timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    images, split = draw(cache_dir, seed=5)
    predict = (*SMOKE, "mode=predict", f"from_run={trained}", "data_seed=5")

    drawn = tmp_path / "drawn"
    completed = run_cli(*predict, "data.support.shots=3", f"hydra.run.dir={drawn}", timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    support = check_scores(drawn, images, split["test"], shots=3)
    for label, names in support.items():  # each drawn support image shows its label
        column = images.label_names.index(label)
        assert all(images.labels[[path.name for path in images.paths].index(name), column] for name in names)
    record = json.loads((drawn / "predictions.json").read_text())
    assert record["from_run"] == str(trained) and record["config"]["data"]["generator"]["seed"] == 5
    assert "macro_map" in completed.stdout

    labels = split["train"][:2]  # any categories of the file can be scored, with the images the user names
    named = {}
    for offset, label in enumerate(labels):  # two distinct images showing the label
        showing = np.flatnonzero(images.labels[:, images.label_names.index(label)])
        named[label] = [images.paths[row].name for row in showing[2 * offset : 2 * offset + 2]]
    (tmp_path / "support.json").write_text(json.dumps(named))
    arguments = ("data.support.shots=2", f"data.support.file={tmp_path / 'support.json'}")
    completed = run_cli(*predict, *arguments, f"hydra.run.dir={tmp_path / 'named'}", timeout=TIMEOUT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert check_scores(tmp_path / "named", images, labels, shots=2) == named

    word = split["test"][0].split()[-1]
    vectors = (ensure_dataset(draw_config(5), cache_dir, False) / "word_vectors.txt").read_text().splitlines()
    (tmp_path / "vectors.txt").write_text("\n".join(line for line in vectors if line.split()[0] != word) + "\n")
    without_word = (*predict, f"data.word_vectors={tmp_path / 'vectors.txt'}", f"hydra.run.dir={tmp_path / 'w'}")
    completed = run_cli(*without_word, timeout=TIMEOUT)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert f"label {split['test'][0]!r}: words ['{word}'] are not in the word vectors" in completed.stderr

    completed = run_cli(*predict, "data.support.shots=200", f"hydra.run.dir={tmp_path / 'k'}", timeout=TIMEOUT)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "fewer than data.support.shots=200" in completed.stderr


def toy_episode() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "support": torch.randn(3, 3, 64, 64, generator=generator),
        "support_targets": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "query": torch.randn(5, 3, 64, 64, generator=generator),
        "query_targets": torch.zeros(5, 2),
        "word_vectors": torch.randn(2, 300, generator=generator),
    }


def test_scoring_images_in_batches_gives_the_scores_of_an_episode():
    episode = toy_episode()
    support = (episode["support"], episode["support_targets"], episode["word_vectors"])
    torch.manual_seed(0)
    prototypes = WordGuidedPrototypes(SMALL, word_dim=300).eval()
    classifier = FineTunedClassifier(SMALL, labels=4).eval()
    with torch.no_grad():
        scorer = label_scorer(prototypes, *support)
        batched = torch.cat([scorer(episode["query"][:2]), scorer(episode["query"][2:])])
        torch.testing.assert_close(batched, prototypes(episode)["query_scores"])
        torch.manual_seed(1)
        scorer = label_scorer(classifier, *support)
        batched = torch.cat([scorer(episode["query"][:2]), scorer(episode["query"][2:])])
    torch.manual_seed(1)  # the same initial head, fitted on the same support set
    torch.testing.assert_close(batched, classifier.fit_and_score(episode))


def test_unannotated_images_are_scored_but_left_out_of_the_metrics():
    files = [FIXTURES / "coco2014" / "annotations" / f"instances_{split}.json" for split in ("train2014", "val2014")]
    folders = [FIXTURES / "coco2014" / "train2014", FIXTURES / "coco2014" / "val2014"]
    images = read_coco(files, folders, "data_cards/coco.md", keep_unannotated=True)
    unannotated = [row for row, labels in enumerate(images.labels) if not labels.any()]
    assert len(images.paths) == 5 and [images.paths[row].name[-6:] for row in unannotated] == ["30.jpg"]
    rows, labels = np.arange(5), ["dog", "bicycle"]
    probabilities = np.random.default_rng(0).random((5, 2))
    annotated = np.setdiff1d(rows, unannotated)
    targets = images.labels[np.ix_(annotated, [images.label_names.index(label) for label in labels])]
    expected = episode_metrics(targets.astype(np.float32), probabilities[annotated])
    assert labeled_metrics(images, labels, rows, probabilities) == pytest.approx(expected)
    assert labeled_metrics(images, labels, np.array(unannotated), probabilities[unannotated]) == {}


def toy_images(folder) -> MultiLabelImages:
    labels = np.array([[1, 0], [1, 1], [0, 1], [1, 0], [0, 0]], dtype=bool)  # the last image has no annotation
    return MultiLabelImages([folder / f"{i}.jpg" for i in range(5)], labels, ["cat", "dog"])


def test_a_drawn_support_set_takes_distinct_annotated_images_and_refuses_too_few(tmp_path):
    images = toy_images(tmp_path)
    chosen = drawn_support(images, ["cat", "dog"], shots=1, seed=0)
    assert len({*chosen["cat"], *chosen["dog"]}) == 2
    with pytest.raises(DatasetError, match=r"label 'cat' has 3 annotated images left .* fewer than data.support"):
        drawn_support(images, ["cat"], shots=4, seed=0)


def test_support_targets_are_the_annotations_plus_the_label_an_image_is_named_for(tmp_path):
    images = toy_images(tmp_path)
    support = support_set(images, ["cat", "dog"], {"cat": ["1.jpg", "4.jpg"], "dog": ["4.jpg"]})
    assert support.rows.tolist() == [1, 4]  # 4.jpg, named twice, is one support image
    assert support.targets.tolist() == [[1, 1], [1, 1]]
    with pytest.raises(DatasetError, match="support image '9.jpg' of label 'dog' is not an image"):
        support_set(images, ["dog"], {"dog": ["9.jpg"]})


def test_a_named_support_set_must_give_k_images_per_label(tmp_path):
    path = tmp_path / "support.json"
    path.write_text(json.dumps({"cat": ["0.jpg", "1.jpg"], "dog": ["2.jpg"]}))
    assert named_support(path, ["cat"], shots=2) == {"cat": ["0.jpg", "1.jpg"]}
    with pytest.raises(DatasetError, match="lists 1 support images for label 'dog', not data.support.shots=2"):
        named_support(path, None, shots=2)
    with pytest.raises(DatasetError, match="lists 0 support images for label 'bird'"):
        named_support(path, ["bird"], shots=2)


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("episodes.ways.test=0", "episodes.ways.test=0: it must be ≥ 1"),
        ("data.generator.split=[9,4,5]", "labels come in families of 3"),
        ("model.prototypes.dropout=1.0", "model.prototypes.dropout=1.0: it must be ≥ 0.0 and < 1.0"),
        ("model.prototypes.dim=30", "model.prototypes.dim=30 is not a multiple of model.prototypes.heads=8"),
        ("data.generator.split=[10,5]", "data.generator.split=[10, 5]: it must give the train, val and test"),
        ("data.support.shots=0", "data.support.shots=0: it must be ≥ 1"),
    ],
)
def test_bad_values_are_refused_before_any_data_is_made(run_cli, tmp_path, argument, expected):
    completed = run_cli(*SMOKE, argument, f"hydra.run.dir={tmp_path}", env={"REPROZOO_CACHE_DIR": str(tmp_path)})
    assert completed.returncode == 2 and expected in completed.stderr, completed.stderr[-2000:]
    assert not any(tmp_path.glob("synthetic_multilabel_*"))  # nothing generated
