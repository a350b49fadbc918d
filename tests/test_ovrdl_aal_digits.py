"""The embedded digits: rendered at MNIST's scale, coloured under the protocol (and its all-combinations upper
variant), and validated without learning before any model trains on them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from common.metrics.verification import authentication_metrics
from papers.ovrdl_aal.cmnist import CMNISTConfig, build_cmnist, training_colour
from papers.ovrdl_aal.digits import RenderConfig, mnist_normalize, render_digits
from papers.ovrdl_aal.no_learning import chance_scores, colour_identity_frequencies, colour_scores, stroke_colour
from papers.ovrdl_aal.synthetic import RenderedDigitsConfig, rendered_digits

SMALL = RenderConfig(images=600)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return rendered_digits(RenderedDigitsConfig(SMALL, seed=0), tmp_path_factory.mktemp("cache"))


def test_rendered_digits_have_mnists_size_box_and_centring(digits):
    gray, labels = digits
    assert gray.shape == (600, 28, 28) and gray.dtype == np.uint8 and set(labels.tolist()) == set(range(10))
    for image in gray[:50].astype(float):
        rows, columns = np.nonzero(image > 10)
        assert rows.max() - rows.min() < 21 and columns.max() - columns.min() < 21  # fitted into 20 x 20
        centre = np.array([(image.sum(1) * np.arange(28)).sum(), (image.sum(0) * np.arange(28)).sum()]) / image.sum()
        assert np.abs(centre - 14).max() < 1.5  # centred by its centre of mass
    again, _ = render_digits(RenderConfig(images=20), seed=0)
    np.testing.assert_array_equal((again * 255).round().astype(np.uint8), gray[:20])  # the draw is seeded
    assert not np.array_equal(render_digits(RenderConfig(images=20), seed=1)[0], again)


def test_mnist_normalization_keeps_the_aspect_and_an_empty_image_empty():
    bar = np.zeros((64, 64), np.float32)
    bar[10:50, 30:34] = 1  # a 40 x 4 vertical stroke
    image = mnist_normalize(bar)
    rows, columns = np.nonzero(image > 0.05)
    assert rows.max() - rows.min() + 1 == 20 and columns.max() - columns.min() + 1 <= 3
    assert not mnist_normalize(np.zeros((64, 64), np.float32)).any()


def test_the_upper_protocol_sees_every_combination_in_training_and_keeps_the_test_rows(digits):
    gray, labels = digits
    protocol = build_cmnist(gray, labels, CMNISTConfig())
    upper = build_cmnist(gray, labels, replace(CMNISTConfig(), training_colours="random"))
    held_out = protocol.split != "train"
    np.testing.assert_array_equal(upper.split, protocol.split)
    np.testing.assert_array_equal(upper.images[held_out], protocol.images[held_out])
    np.testing.assert_array_equal(upper.attributes[held_out], protocol.attributes[held_out])
    train = ~held_out
    assert (protocol.attributes[train, 1] == training_colour(labels[train])).all()
    seen = {tuple(row) for row in upper.attributes[train, :2].tolist()}
    assert seen == {(digit, colour) for digit in range(10) for colour in (0, 1)}


def test_no_learning_rows_leave_headroom_on_the_rendered_draw(digits):
    """Chance sits at 0.5, the colour shortcut below it (the test colours are swapped) and the oracle at 1: a
    model has room above both trivial rows, and the colour is what the protocol punishes."""
    gray, labels = digits
    data = build_cmnist(gray, labels, CMNISTConfig())
    train, val, test = (data.split == name for name in ("train", "val", "test"))
    identities = data.attributes[:, 0]
    np.testing.assert_array_equal(stroke_colour(data.images), data.attributes[:, 1])
    frequencies = colour_identity_frequencies(stroke_colour(data.images[train]), identities[train], 10)
    colour = colour_scores(data.images, frequencies)
    chance = chance_scores(len(identities), 10, seed=0)

    def auc(scores):
        return authentication_metrics(scores[test], identities[test], scores[val], identities[val])["auc"]

    assert auc(colour) < 0.3 and 0.4 < auc(chance) < 0.6
    assert auc(np.eye(10)[identities]) == 1.0
