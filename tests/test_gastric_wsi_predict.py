"""Gastric WSI's three stages and mode=predict: predicted lesions as GeoJSON that reads back as the map it came
from, the slide list of a folder, resuming per slide, and through the runner a smoke run (stages, weights) screened
on another generated draw and on a folder holding a broken slide."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from papers.gastric_wsi import screen_folder as screening
from papers.gastric_wsi.annotations import AnnotationClasses, rasterize, read_annotations, write_geojson
from papers.gastric_wsi.data import SlideRecord, screening_records
from papers.gastric_wsi.screen_folder import folder_metrics, lesion_regions, output_files
from papers.gastric_wsi.slide_status import SlideRow
from tests.conftest import FIXTURES, ROOT

SMOKE = ("paper=gastric_wsi", "debug=smoke", "logger=none", "trainer.device=cpu")
TIMEOUT = 900  # the machine may be shared; a smoke run takes 1-2 minutes


def read_csv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_predicted_lesions_read_back_as_the_map_they_came_from(tmp_path):
    lesion = np.zeros((12, 16), np.uint8)
    lesion[2:9, 3:10] = 1
    lesion[4:7, 5:8] = 0  # a hole
    lesion[10:12, 12:15] = 1  # a second component
    lesion[0, 15] = 1  # a single pixel
    path = tmp_path / "slide_lesions.geojson"
    write_geojson(path, lesion_regions(lesion, scale=8.0))
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 3
    assert {f["geometry"]["type"] for f in data["features"]} == {"Polygon"}
    assert {f["properties"]["classification"]["name"] for f in data["features"]} == {"lesion"}
    regions = read_annotations(path, AnnotationClasses()).regions
    assert sorted(len(region.holes) for region in regions) == [0, 0, 1]
    np.testing.assert_array_equal(rasterize(regions, {"lesion"}, lesion.shape, 8.0), lesion)
    assert lesion_regions(np.zeros((4, 4), np.uint8), 8.0) == []


def test_the_slides_to_screen_come_from_the_label_table_or_else_the_folder(tmp_path):
    (tmp_path / "slides").mkdir()
    (tmp_path / "annotations").mkdir()
    for name in ("b.svs", "a.tiff"):
        (tmp_path / "slides" / name).write_bytes(b"")
    (tmp_path / "annotations" / "a.geojson").write_text("{}")
    found = screening_records(tmp_path / "labels.csv", tmp_path / "slides", tmp_path / "annotations")
    assert [(r.path.name, r.label, r.annotations is not None) for r in found] == [("a.tiff", None, True),
                                                                                  ("b.svs", None, False)]  # fmt: skip
    (tmp_path / "labels.csv").write_text("slide,label\nb.svs,1\na.tiff,\n")
    found = screening_records(tmp_path / "labels.csv", tmp_path / "slides", None)
    assert [(r.path.name, r.label) for r in found] == [("b.svs", 1), ("a.tiff", None)]
    (tmp_path / "labels.csv").write_text("slide,label\nb.svs,yes\n")
    with pytest.raises(Exception, match=r"line 2: label 'yes' is not 0, 1 or empty"):
        screening_records(tmp_path / "labels.csv", tmp_path / "slides", None)


def test_metrics_come_from_the_labelled_screened_slides_only():
    rows = [
        SlideRow("a", "test", 1, "screened", score=0.9, prediction="positive", lesion_dice=0.5),
        SlideRow("b", "test", 0, "screened", score=0.2, prediction="negative"),
        SlideRow("c", "test", 1, "screened", score=0.4, prediction="negative", lesion_dice=0.7),
        SlideRow("d", "test", 0, "skipped", "unreadable"),
        SlideRow("f", "test", 1, "no_tissue", "no tile has tissue"),
        SlideRow("e", "test", None, "screened", score=0.8, prediction="positive"),
    ]
    metrics = folder_metrics(rows, threshold=0.5)
    assert metrics == pytest.approx({"sensitivity": 0.5, "specificity": 1.0, "auc": 1.0, "lesion_dice": 0.6,
                                     "slides_not_screened": 2.0, "sensitivity_counting_unscreened": 1 / 3})  # fmt: skip
    assert folder_metrics(rows[5:], threshold=0.5) == {}


def test_resume_reads_back_finished_slides_and_screens_the_rest(tmp_path, monkeypatch):
    records = [SlideRecord(tmp_path / f"{name}.tiff", 1, "all", "test", None) for name in ("done", "new")]
    folder = tmp_path / "out" / "screening"
    folder.mkdir(parents=True)
    finished = SlideRow("done.tiff", "test", 1, "screened", score=0.7, prediction="positive")
    for path in output_files(folder, "done")[:-1]:
        path.write_bytes(b"x")
    output_files(folder, "done")[-1].write_text(json.dumps(finished.__dict__))
    screened = []

    def screen(record, networks, settings, into):
        screened.append(record.path.stem)
        return SlideRow(record.path.name, "test", 1, "screened", score=0.1, prediction="negative")

    monkeypatch.setattr(screening, "screen_slide", screen)
    rows = screening.screen_folder(records, None, None, tmp_path / "out", resume=True, progress=False)
    assert screened == ["new"] and rows[0] == finished
    assert [row["score"] for row in read_csv(tmp_path / "out" / "slides.csv")] == ["0.7000", "0.1000"]
    screening.screen_folder(records, None, None, tmp_path / "out", resume=False, progress=False)
    assert screened == ["new", "done", "new"]


def run_cli(cache_dir, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "REPROZOO_CACHE_DIR": str(cache_dir), "WANDB_MODE": "disabled"}
    command = [sys.executable, "run.py", *args]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A smoke run of the three stages; its generated data stays in the module's cache."""
    cache_dir, run_dir = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("run")
    completed = run_cli(cache_dir, *SMOKE, f"hydra.run.dir={run_dir}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    return cache_dir, run_dir


@pytest.mark.slow
def test_a_smoke_run_trains_three_stages_and_keeps_each_networks_weights(trained_run):
    _, run_dir = trained_run
    record = json.loads((run_dir / "results.json").read_text())
    assert [stage["name"] for stage in record["stages"]] == ["tissue", "patch", "slide"]
    metrics = {name: set(stage["metrics"]) for name, stage in ((s["name"], s) for s in record["stages"])}
    assert metrics["tissue"] == {"tissue_dice_network", "tissue_dice_otsu"} and "patch_auc" in metrics["patch"]
    assert {"auc", "sensitivity", "specificity", "lesion_dice"} <= metrics["slide"] <= set(record["metrics"])
    for stage in ("tissue", "patch", "slide"):
        assert (run_dir / stage / "checkpoints" / "last.pt").is_file() and (run_dir / stage / "stage.json").is_file()
    thresholds = json.loads((run_dir / "slide" / "operating_points.json").read_text())
    assert thresholds[""] == record["metrics"]["threshold"]
    assert (run_dir / "tissue" / "tissue_masks.npz").is_file() and (run_dir / "screening" / "screening.csv").is_file()


@pytest.mark.slow
def test_predict_screens_another_generated_draw(trained_run, tmp_path):
    cache_dir, run_dir = trained_run
    completed = run_cli(cache_dir, *SMOKE, "mode=predict", f"from_run={run_dir}", "data_seed=5",
                        f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = read_csv(tmp_path / "slides.csv")
    assert len(rows) == 10 and {row["status"] for row in rows} == {"screened"}
    assert {row["prediction"] for row in rows} <= {"positive", "negative"}
    assert all(0 <= float(row["score"]) <= 1 and row["reason"] == "" for row in rows)
    for row in rows:
        stem = row["slide"].removesuffix(".tiff")
        for name in ("heatmap", "overlay"):
            assert (tmp_path / "screening" / f"{stem}_{name}.png").stat().st_size > 0
        regions = read_annotations(tmp_path / "screening" / f"{stem}_lesions.geojson", AnnotationClasses()).regions
        assert {region.label for region in regions} <= {"lesion"}
    record = json.loads((tmp_path / "predictions.json").read_text())
    assert record["from_run"] == str(run_dir) and record["config"]["data"]["generator"]["seed"] == 5
    assert {"auc", "sensitivity", "specificity", "lesion_dice"} <= set(record["metrics"])


@pytest.mark.slow
def test_predict_screens_a_mixed_folder_of_real_writers_slides_to_the_end(trained_run, tmp_path):
    """An Aperio SVS, a generic TIFF with 72-dpi tags, a libvips pyramid with QuPath and ASAP annotations, broken,
    truncated and missing files beside slides the trained run screened: exit 0, a row for each, the scores of the
    trained run where it screened the same slides."""
    cache_dir, run_dir = trained_run
    drawn = {json.loads((path / "generator.json").read_text())["seed"]: path for path in cache_dir.glob("synthetic_*")}
    generated = drawn[0]  # the trained run's draw
    folder = tmp_path / "folder"
    (folder / "annotations").mkdir(parents=True)
    shutil.copytree(generated / "slides", folder / "slides")
    slides = FIXTURES / "slides"
    for name in ("small.svs", "boxes.tiff", "unreadable.svs", "unopenable.tiff", "libvips_pyramid.tiff"):
        shutil.copy(slides / name, folder / "slides" / name)
    shutil.copy(slides / "libvips_pyramid.tiff", folder / "slides" / "asap_annotated.tiff")
    shutil.copy(slides / "libvips_pyramid.geojson", folder / "annotations" / "libvips_pyramid.geojson")
    shutil.copy(slides / "libvips_pyramid.xml", folder / "annotations" / "asap_annotated.xml")
    truncated = folder / "slides" / "center1_slide00.tiff"
    truncated.write_bytes(truncated.read_bytes()[:2000])
    shutil.copy(slides / "boxes.tiff", folder / "slides" / "boxes_at_override.tiff")
    trained = {row["slide"]: row for row in read_csv(run_dir / "screening" / "screening.csv")}
    kept = ["center1_slide01.tiff", "center1_slide02.tiff"]
    table = [(name, trained[name]["label"], "") for name in kept] + [
        ("center1_slide00.tiff", "1", ""), ("small.svs", "", ""), ("boxes.tiff", "", ""), ("unreadable.svs", "0", ""),
        ("unopenable.tiff", "", ""), ("missing.svs", "1", ""), ("libvips_pyramid.tiff", "1", ""),
        ("asap_annotated.tiff", "1", ""), ("boxes_at_override.tiff", "", "0.25"),
    ]  # fmt: skip
    (folder / "labels.csv").write_text("slide,label,mpp\n" + "".join(",".join(row) + "\n" for row in table))
    output = tmp_path / "output"
    completed = run_cli(cache_dir, *SMOKE, "mode=predict", f"from_run={run_dir}", "data=slides",
                        f"data.root={folder}", f"hydra.run.dir={output}")  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = {row["slide"]: row for row in read_csv(output / "slides.csv")}
    assert list(rows) == [name for name, _, _ in table]
    statuses = {name: (row["status"], row["reason"]) for name, row in rows.items()}
    assert statuses["center1_slide00.tiff"][0] == "skipped" and "truncated" in statuses["center1_slide00.tiff"][1]
    assert statuses["boxes.tiff"][0] == "skipped" and "352.8 µm/px" in statuses["boxes.tiff"][1]
    assert statuses["unreadable.svs"][0] == "skipped" and "could not be read" in statuses["unreadable.svs"][1]
    assert statuses["unopenable.tiff"][0] == "skipped" and "compression" in statuses["unopenable.tiff"][1]
    assert statuses["missing.svs"][0] == "skipped" and "does not exist" in statuses["missing.svs"][1]
    assert statuses["small.svs"][0] == "no_tissue"  # 16 x 16 pixels of a real SVS: no tissue tile
    assert statuses["boxes_at_override.tiff"][0] == "no_tissue"  # readable at its mpp override: 75 x 62 µm, no tissue
    for name in kept + ["libvips_pyramid.tiff", "asap_annotated.tiff"]:
        assert rows[name]["status"] == "screened" and rows[name]["reason"] == "", rows[name]
    assert "MultiPoint" in rows["libvips_pyramid.tiff"]["warnings"] and "Dot" in rows["asap_annotated.tiff"]["warnings"]
    for name in kept:
        assert float(rows[name]["score"]) == pytest.approx(float(trained[name]["score"]), abs=2e-4)
        assert rows[name]["prediction"] == trained[name]["decision"]
    regions = read_annotations(output / "screening" / "libvips_pyramid_lesions.geojson", AnnotationClasses())
    assert {region.label for region in regions.regions} <= {"lesion"}
    record = json.loads((output / "predictions.json").read_text())
    assert record["metrics"]["slides_not_screened"] == 3.0  # the labelled ones: truncated, unreadable, missing
