"""synthetic_gastric as a benchmark that can rank: on a small draw of default slides, the no-learning statistics a
practitioner tries first (the thumbnail's optical density, Otsu's tissue) sit far below the ground truth; lesions
are small; single nuclear features of lesions overlap benign mimics; the test split is large and of low
prevalence; artefacts are drawn."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from common.metrics.segmentation import dice
from papers.gastric_wsi import synthetic
from papers.gastric_wsi.no_learning import od_lesion_mask, optical_density, thumbnail_od_score
from papers.gastric_wsi.synthetic import SyntheticGastricConfig, center_stains, render_slide, splits_and_labels
from papers.gastric_wsi.tissue import OtsuConfig, otsu_tissue_mask, pixels

DRAW = 32  # slides, half of them positive
THUMBNAIL_HALVINGS = 4  # the pyramid level at 8 µm/px, the pipeline's thumbnail_mpp
THUMBNAIL_MPP = SyntheticGastricConfig().mpp * 2**THUMBNAIL_HALVINGS


def halved(image: np.ndarray, times: int) -> np.ndarray:
    """The image at the pyramid level `times` halvings down, as the slide writer makes it."""
    for _ in range(times):
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return image


@pytest.fixture(scope="module")
def draw():
    """(label, thumbnail, tissue mask, lesion mask) per slide of a small draw with the default generator."""
    config = SyntheticGastricConfig(seed=11)
    rng = np.random.default_rng(config.seed)
    stains = center_stains(config, rng)
    slides = []
    for index in range(DRAW):
        positive = index % 2 == 0
        image, tissue, lesion = render_slide(config, positive, stains[index % config.centers], rng)
        slides.append((int(positive), halved(image, THUMBNAIL_HALVINGS), tissue, lesion))
    return slides


def test_the_thumbnail_optical_density_does_not_screen_the_slides(draw):
    labels = [label for label, *_ in draw]
    otsu = OtsuConfig()
    scores = [thumbnail_od_score(thumb, otsu_tissue_mask(thumb, otsu, THUMBNAIL_MPP)) for _, thumb, _, _ in draw]
    assert roc_auc_score(labels, scores) < 0.7  # the oracle's AUC is 1


def test_no_learning_lesion_maps_are_far_from_the_annotated_lesions(draw):
    otsu, density = [], []
    for label, thumb, _, lesion in draw:
        if label:
            truth = halved(lesion, THUMBNAIL_HALVINGS) > 0
            tissue = otsu_tissue_mask(thumb, OtsuConfig(), THUMBNAIL_MPP)
            otsu.append(dice(truth, tissue))
            density.append(dice(truth, od_lesion_mask(thumb, tissue, pixels(OtsuConfig().blur_um, THUMBNAIL_MPP))))
    assert np.mean(otsu) < 0.15 and np.mean(density) < 0.3  # the oracle's lesion Dice is about 0.9


def test_lesions_are_small_against_the_tissue(draw):
    """The median lesion is under 1% of its slide's tissue; the smallest are a few cells (under 400 µm², about
    five nuclei of 7 µm with their cytoplasm)."""
    shares, areas = [], []
    for label, _, tissue, lesion in draw:
        count, components = cv2.connectedComponents(lesion)
        pixels = [np.count_nonzero(components == k) for k in range(1, count)]
        shares += [p / tissue.sum() for p in pixels]
        areas += [p * SyntheticGastricConfig().mpp ** 2 for p in pixels]
        assert (count > 1) == bool(label)
    assert np.median(shares) < 0.01 and min(areas) < 400


def test_each_nuclear_feature_of_a_lesion_lies_within_the_span_of_benign_nuclei():
    lesion, normal, reactive = synthetic.LESION, synthetic.NORMAL, synthetic.REACTIVE
    for feature in ("size", "darkness"):
        low, high = getattr(lesion, feature)
        benign = getattr(normal, feature) + getattr(reactive, feature)
        assert min(benign) <= low and high <= max(benign), feature
    assert synthetic.LYMPHOID.darkness[0] > normal.darkness[1]  # lymphoid aggregates: the darkest nuclei
    assert not lesion.polarized and normal.polarized and reactive.polarized


def test_the_default_test_split_is_large_and_of_low_prevalence():
    config = SyntheticGastricConfig()
    rng = np.random.default_rng(0)
    slides = [entry for center in range(config.centers) for entry in splits_and_labels(config, center, rng)]
    test = [positive for split, positive in slides if split == "test"]
    train = [positive for split, positive in slides if split == "train"]
    assert len(test) >= 100 and np.mean(test) <= 0.25 and np.mean(train) == 0.5


def test_artefacts_are_drawn_when_asked():
    """A pen mark stains the glass outside the tissue; a fold doubles the tissue's density along a band."""
    config = SyntheticGastricConfig(size=256, fragments=[2, 2], artefacts=[1.0, 1.0, 0.0], seed=3)
    clean = SyntheticGastricConfig(size=256, fragments=[2, 2], artefacts=[0.0, 0.0, 0.0], seed=3)
    stains = center_stains(config, np.random.default_rng(0))
    (image, tissue, _), (plain, _, _) = (
        render_slide(c, False, stains[0], np.random.default_rng(1)) for c in (config, clean)
    )
    density, plain_density = optical_density(image), optical_density(plain)
    glass = cv2.distanceTransform(1 - tissue, cv2.DIST_L2, 5) > 20  # clear of the tissue's edge nuclei
    assert density[glass].max() > 0.5 and plain_density[glass].max() < 0.2
    doubled = density[tissue > 0] > 1.6 * plain_density[tissue > 0]
    assert doubled.mean() > 0.01
