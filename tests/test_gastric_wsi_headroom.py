"""Gastric WSI's no-learning rows (oracle, trivial_thumbnail_od, trivial_otsu_tissue) and per-slide units: each
scorer's logic on hand-made inputs, the units against the screening metrics, and every scorer through the runner."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from common.metrics.screening import per_group
from common.units import UnitContributions, load_units
from papers.gastric_wsi.no_learning import (
    OD_MAX,
    SCORERS,
    od_lesion_mask,
    on_tiles,
    optical_density,
    oracle_tiles,
    otsu_tissue_tiles,
    thumbnail_od_score,
    thumbnail_od_tiles,
)
from papers.gastric_wsi.slide_evaluation import add_screening_units
from papers.gastric_wsi.tiling import TileGrid
from papers.gastric_wsi.tissue import OtsuConfig

SMOKE = ("paper=gastric_wsi", "debug=smoke", "logger=none", "trainer.device=cpu")
NO_UNITS = {"patch_auc", "patch_dice", "threshold"}  # patch metrics pool every split's tiles; the threshold is val's


def pink_slide(dark: slice | None = None) -> np.ndarray:
    """A 32 x 32 thumbnail: white glass, a pink tissue square over [8, 24), optionally a dark-purple band."""
    image = np.full((32, 32, 3), 245, np.uint8)
    image[8:24, 8:24] = (215, 120, 190)
    if dark is not None:
        image[8:24, dark] = (70, 30, 110)
    return image


def two_tile_grid() -> TileGrid:
    """Two tiles side by side on the tissue, over columns [8, 16) and [16, 24) of rows [8, 16) (downsample 1)."""
    return TileGrid(np.array([[8, 8], [16, 8]]), 8, (32, 32))


def test_optical_density_is_zero_for_white_and_largest_for_black():
    density = optical_density(np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8))
    assert density == pytest.approx(np.array([[0.0, OD_MAX]]), abs=1e-6)


def test_thumbnail_od_score_is_the_99th_percentile_over_tissue_only():
    thumbnail = np.full((10, 10, 3), 200, np.uint8)
    thumbnail[0, :2] = 50  # 2 of the 100 tissue pixels are dark: the 99th percentile is dark
    tissue = np.ones((10, 10), np.uint8)
    dark = optical_density(thumbnail)[0, 0]
    assert thumbnail_od_score(thumbnail, tissue) == pytest.approx(dark)
    tissue[0, :2] = 0  # outside the tissue, the dark pixels do not count
    assert thumbnail_od_score(thumbnail, tissue) == pytest.approx(optical_density(thumbnail)[5, 5])
    assert thumbnail_od_score(thumbnail, np.zeros_like(tissue)) == 0.0


def test_od_lesion_mask_keeps_the_dark_tissue():
    thumbnail = pink_slide(dark=slice(16, 24))
    tissue = np.zeros((32, 32), np.uint8)
    tissue[8:24, 8:24] = 1
    expected = np.zeros_like(tissue)
    expected[8:24, 16:24] = 1
    assert (od_lesion_mask(thumbnail, tissue, blur=1) == expected).all()
    assert not od_lesion_mask(thumbnail, np.zeros_like(tissue), blur=1).any()


def test_on_tiles_reads_each_cell_centre_of_the_thumbnail_map():
    thumbnail_map = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    grid = TileGrid(np.array([[0, 0], [8, 16]]), 8, (16, 24))
    tiles = on_tiles(thumbnail_map, downsample=4.0, grid=grid, side=2)  # cell centres at level-0 offsets 2 and 6
    assert tiles.shape == (2, 2, 2)
    assert (tiles[0] == thumbnail_map[[[0], [1]], [[0, 1]]]).all()
    assert (tiles[1] == thumbnail_map[[[4], [5]], [[2, 3]]]).all()


def test_oracle_ranks_positive_slides_and_lesion_tiles_first_and_returns_the_truth():
    truth = np.zeros((3, 2, 2), np.float32)
    truth[1] = 1
    scores, maps = oracle_tiles(1, np.array([0, 1, 0]), truth)
    assert scores.tolist() == [0.5, 1.0, 0.5] and (maps == truth).all()
    scores, _ = oracle_tiles(0, np.zeros(3), np.zeros((3, 2, 2)))
    assert scores.tolist() == [0.0, 0.0, 0.0]


def test_trivial_scorers_on_a_hand_made_slide():
    thumbnail, grid = pink_slide(dark=slice(16, 24)), two_tile_grid()
    otsu = OtsuConfig(blur_um=1.0, close_um=1.0, open_um=1.0, min_area_um2=0.0)
    view = SimpleNamespace(thumbnail=thumbnail, downsample=1.0, thumbnail_mpp=1.0)
    scores, maps = thumbnail_od_tiles(view, grid, 4, otsu)
    assert scores.tolist() == pytest.approx([optical_density(thumbnail)[10, 20]] * 2)  # the slide's dark band
    assert not maps[0].any() and maps[1].all()  # the right tile is the dark band
    scores, maps = otsu_tissue_tiles(SimpleNamespace(thumbnail=pink_slide(), downsample=1.0, thumbnail_mpp=1.0), grid,
                                     4, otsu)  # fmt: skip
    assert scores.tolist() == [1.0, 1.0] and maps.all()  # both tiles lie on the tissue


def test_screening_units_reproduce_the_grouped_screening_metrics():
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.2, 0.4, 0.6, 0.8, 0.1])
    groups = np.array(["a_", "a_", "a_", "b_", "b_", "b_"])
    units = UnitContributions(unit="slide", ids=np.arange(6), strata=labels)
    add_screening_units(units, "", scores, labels, 0.5, [np.full(6, ""), groups])
    for group in ("", "a_", "b_"):
        member = np.ones(6, bool) if group == "" else groups == group
        expected = per_group(labels[member], scores[member], np.full(member.sum(), "all"), 0.5)["all"]
        for name, value in expected.items():
            assert units.value(f"{group}{name}") == pytest.approx(value)


def read_run(folder):
    return json.loads((folder / "results.json").read_text()), load_units(folder / "units.npz")


@pytest.mark.parametrize("scorer", SCORERS)
def test_each_scorer_runs_through_the_runner_trains_nothing_and_writes_units(run_cli, tmp_path, scorer):
    completed = run_cli(*SMOKE, f"experiment={scorer}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    record, units = read_run(tmp_path)
    metrics = record["metrics"]
    assert record["model"] == scorer and record["data_seed"] == 0
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "training_curves.png").exists()
    assert "tissue_dice_network" not in metrics and "max_pool_auc" not in metrics  # networks 1 and 3 untrained
    assert units.unit == "slide" and set(units.metrics) == set(metrics) - NO_UNITS
    for name in units.metrics:
        assert units.value(name) == pytest.approx(metrics[name], abs=1e-12), name
    if scorer == "oracle":
        assert metrics["auc"] == metrics["sensitivity"] == metrics["specificity"] == 1.0
        assert metrics["patch_auc"] == metrics["patch_dice"] == 1.0
    if scorer == "trivial_otsu_tissue":
        assert metrics["auc"] == 0.5 and metrics["sensitivity"] == 1.0 and metrics["specificity"] == 0.0
