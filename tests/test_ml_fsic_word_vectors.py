"""Label word vectors from vector files in their real variants: GloVe text (no header), word2vec text (a header),
tokens with spaces (glove.840B.300d has them), the authors' JSON lines; aliases; and the inputs refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import DatasetError
from papers.ml_fsic.word_vectors import label_vectors
from tests.conftest import FIXTURES

GLOVE = FIXTURES / "glove_tiny.300d.txt"
CARD = "data_cards/glove.md"


def fixture_vectors() -> dict[str, np.ndarray]:
    rows = [line.split(" ") for line in GLOVE.read_text().splitlines()]
    return {row[0]: np.array(row[1:], dtype=np.float32) for row in rows}


def test_glove_vectors_average_the_words_of_a_name():
    vectors = fixture_vectors()
    table = label_vectors(GLOVE, ["dog", "stop sign", "stop_sign"], CARD)
    assert table.shape == (3, 300)
    np.testing.assert_allclose(table[0], vectors["dog"])
    np.testing.assert_allclose(table[1], (vectors["stop"] + vectors["sign"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(table[2], table[1])
    with pytest.raises(DatasetError, match=r"label 'hair drier': words \['hair', 'drier'\] are not in"):
        label_vectors(GLOVE, ["hair drier"], CARD)


def test_a_word2vec_header_and_tokens_with_spaces_read_as_glove(tmp_path):
    lines = GLOVE.read_text().splitlines()
    odd = "at&t . com " + " ".join(["0.5"] * 300)  # a token with spaces, as in glove.840B.300d
    with_header = tmp_path / "vectors.w2v.txt"
    with_header.write_text(f"{len(lines) + 1} 300\n" + "\n".join([odd, *lines]) + "\n")
    expected = label_vectors(GLOVE, ["dog", "stop sign"], CARD)
    np.testing.assert_array_equal(label_vectors(with_header, ["dog", "stop sign"], CARD), expected)
    np.testing.assert_array_equal(label_vectors(with_header, ["at&t . com"], CARD)[0], np.full(300, 0.5))


def test_the_authors_json_lines_give_each_label_its_own_vector(tmp_path):
    path = tmp_path / "coco_glove_300.json"
    path.write_text(json.dumps({"stop sign": [1.0, 2.0]}) + "\n" + json.dumps({"dog": "[3.0, 4.0]"}) + "\n")
    np.testing.assert_array_equal(label_vectors(path, ["stop sign", "dog"], CARD), [[1.0, 2.0], [3.0, 4.0]])


def test_aliases_give_the_words_of_joined_names():
    table = label_vectors(GLOVE, ["stopsign"], CARD, aliases={"stopsign": "stop sign"})
    np.testing.assert_allclose(table[0], label_vectors(GLOVE, ["stop sign"], CARD)[0])
    with pytest.raises(DatasetError, match=r"label 'pottedplant': words \['pottedplant'\] .* data.aliases"):
        label_vectors(GLOVE, ["pottedplant"], CARD)


def test_bad_vector_files_are_refused_naming_the_file_and_line(tmp_path):
    with pytest.raises(DatasetError, match=r"word vector file .*missing.txt does not exist"):
        label_vectors(tmp_path / "missing.txt", ["dog"], CARD)
    short = tmp_path / "short.txt"
    short.write_text("dog 0.1 0.2 0.3\ncat 0.1 0.2\n")
    with pytest.raises(DatasetError, match=r"short.txt, line 2: 3 fields, expected a token and 3 numbers"):
        label_vectors(short, ["cat"], CARD)
    bad = tmp_path / "bad.txt"
    bad.write_text("dog 0.1 x 0.3\n")
    with pytest.raises(DatasetError, match=r"bad.txt, line 1: 'dog' has a non-number"):
        label_vectors(bad, ["dog"], CARD)
    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"dog": [0.1, 0.2]}\n{"cat": [0.1, ')
    with pytest.raises(DatasetError, match=r"truncated.json, line 2: not a JSON object"):
        label_vectors(truncated, ["cat"], CARD)
