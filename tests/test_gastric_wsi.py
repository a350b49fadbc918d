"""Gastric WSI pieces: pyramidal TIFFs in OpenSlide, tiling, annotations, tissue masks, the patch and slide
networks, and the slide table."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from common.config import typed_config
from common.errors import ConfigError, DatasetError
from papers.gastric_wsi.annotations import (
    AnnotationClasses,
    Region,
    rasterize,
    read_annotations,
    write_geojson,
)
from papers.gastric_wsi.data import read_slide_table
from papers.gastric_wsi.patch_network import MultiTaskPatchNet, PatchNetConfig, patch_loss
from papers.gastric_wsi.pyramid import write_pyramid
from papers.gastric_wsi.slide_network import SlideNetConfig, slide_features, slide_scores, train_slide_net
from papers.gastric_wsi.slides import (
    Resolution,
    SlideInfo,
    SlideReadError,
    open_slide,
    read_region,
    read_thumbnail,
    slide_mpp,
)
from papers.gastric_wsi.tiling import TilingConfig, read_tiles, stitch, tile_grid
from papers.gastric_wsi.tissue import OtsuConfig, artifact_mask, otsu_tissue_mask
from tests.conftest import FIXTURES

SLIDES = FIXTURES / "slides"  # slides and annotations other tools wrote (tests/fixtures/slides/README.md)
CLASSES = AnnotationClasses()


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    """A 1024 x 1024 slide at 0.5 µm/px: white glass, a pink tissue square over x, y in [256, 768)."""
    image = np.full((1024, 1024, 3), 242, dtype=np.uint8)
    image[256:768, 256:768] = (215, 120, 190)
    path = tmp_path_factory.mktemp("slides") / "square.tiff"
    write_pyramid(path, image, mpp=0.5, tile=256, levels=3)
    return path


def test_the_written_pyramid_opens_in_openslide_with_its_levels_and_mpp(slide_file):
    slide, info = open_slide(slide_file, Resolution())
    assert info.level_dimensions == ((1024, 1024), (512, 512), (256, 256))
    assert info.level_downsamples == (1.0, 2.0, 4.0) and info.mpp == pytest.approx(0.5)
    assert slide.properties["openslide.vendor"] == "generic-tiff" and info.mpp_source == "metadata"
    assert [info.level_mpp(level) for level in range(3)] == pytest.approx([0.5, 1.0, 2.0])
    assert [info.level_for_mpp(mpp, 0.1) for mpp in (1.0, 1.5, 4.0)] == [1, 1, 2]
    pink = read_region(slide, info, (400, 400), 1, (8, 8))
    assert pink.shape == (8, 8, 3) and abs(int(pink[..., 1].mean()) - 120) < 12  # JPEG is lossy
    with pytest.raises(SlideReadError, match=r"0.5.*0.25 µm/px"):
        info.level_for_mpp(0.25, 0.1)


def test_a_40x_scanners_4x_level_is_read_for_1_micron_tiles():
    aperio = SlideInfo(SLIDES / "x.svs", ((40000, 30000), (10000, 7500), (2500, 1875)), (1.0, 4.0, 16.0), 0.2527, "")
    assert aperio.level_mpp(1) == pytest.approx(1.0108)
    assert aperio.level_for_mpp(1.0, 0.1) == 1  # not level 0, 16 times the pixels
    assert aperio.level_for_mpp(1.0, 0.01) == 0


def test_resolution_override_metadata_objective_power_default_and_implausible_values():
    properties = {"openslide.mpp-x": "0.2527", "openslide.objective-power": "40"}
    assert slide_mpp(SLIDES, properties, Resolution()) == (0.2527, "metadata")
    assert slide_mpp(SLIDES, properties, Resolution(override=0.25)) == (0.25, "override")
    assert slide_mpp(SLIDES, {"openslide.objective-power": "20"}, Resolution()) == (0.5, "objective power")
    assert slide_mpp(SLIDES, {}, Resolution(default=0.3)) == (0.3, "default")
    with pytest.raises(
        SlideReadError, match=r"slides has neither microns-per-pixel .* nor objective power .*; set its mpp column"
    ):
        slide_mpp(SLIDES, {}, Resolution())
    with pytest.raises(SlideReadError, match=r"boxes\.tiff reports 352\.8 µm/px.*outside the plausible 0\.1-20"):
        open_slide(SLIDES / "boxes.tiff", Resolution())  # libtiff's default 72 dpi
    _, info = open_slide(SLIDES / "boxes.tiff", Resolution(override=0.5))
    assert (info.mpp, info.mpp_source) == (0.5, "override")
    slide, info = open_slide(SLIDES / "small.svs", Resolution())  # Aperio's own MPP
    assert (info.mpp, info.mpp_source, slide.properties["openslide.vendor"]) == (0.499, "metadata", "aperio")


def test_the_thumbnail_is_read_in_strips_within_the_pixel_budget(slide_file, monkeypatch):
    from papers.gastric_wsi import slides

    slide, info = open_slide(slide_file, Resolution())
    whole = read_thumbnail(slide, info, 2.0, 0.1, 10**9)
    reads = []
    original = slides.read_region
    monkeypatch.setattr(slides, "read_region", lambda *a: reads.append(a[4]) or original(*a))
    strips = read_thumbnail(slide, info, 2.0, 0.1, 256 * 40)
    assert whole.shape == strips.shape == (256, 256, 3)  # exactly 2 µm/px: level 2 of the 0.5 µm/px slide
    assert len(reads) == 7 and all(w * h <= 256 * 40 for w, h in reads)
    assert np.abs(whole.astype(int) - strips).max() <= 2
    enlarged = read_thumbnail(slide, info, 16.0, 0.1, 10**9)  # coarser than every level: the coarsest, resized
    assert enlarged.shape == (32, 32, 3)


def test_unreadable_and_truncated_slides_get_a_clear_error(slide_file, tmp_path):
    truncated = tmp_path / "truncated.tiff"
    truncated.write_bytes(slide_file.read_bytes()[: slide_file.stat().st_size // 2])
    with pytest.raises(SlideReadError, match=r"truncated\.tiff is not a slide OpenSlide can open.*generic tiled TIFF"):
        open_slide(truncated, Resolution())
    with pytest.raises(SlideReadError, match="does not exist"):
        open_slide(tmp_path / "missing.svs", Resolution())
    with pytest.raises(SlideReadError, match=r"unopenable\.tiff is not a slide OpenSlide can open.*compression"):
        open_slide(SLIDES / "unopenable.tiff", Resolution())
    slide, info = open_slide(SLIDES / "unreadable.svs", Resolution())
    with pytest.raises(SlideReadError, match=r"unreadable\.svs could not be read at \(0, 0\), level 0"):
        read_region(slide, info, (0, 0), 0, (16, 16))


def test_tiling_covers_tissue_and_skips_background(slide_file):
    slide, info = open_slide(slide_file, Resolution())
    tissue = np.zeros((256, 256), np.uint8)  # at level 2 (downsample 4): the square is [64, 192)
    tissue[64:192, 64:192] = 1
    config = TilingConfig(mpp=1.0, size=64, min_tissue=0.5, workers=2, chunk=5)
    grid = tile_grid(info, tissue, 4.0, config)
    assert grid.footprint == 128 and len(grid) == 16  # the region's 512 level-0 pixels are 4 x 4 tiles exactly
    assert sorted(map(tuple, grid.origins)) == [(x, y) for x in range(256, 768, 128) for y in range(256, 768, 128)]
    chunks = list(read_tiles(slide, info, grid, config))
    assert [len(chunk) for chunk in chunks] == [5, 5, 5, 1]
    tiles = np.concatenate(chunks)
    assert tiles.shape == (16, 64, 64, 3) and (tiles[..., 1] < 150).all()  # every tile is pink tissue
    off_grid = np.zeros_like(tissue)
    off_grid[60:100, 60:90] = 1  # level-0 x [240, 360), y [240, 400): 1 x 2 tiles centred on it, overhanging
    grid = tile_grid(info, off_grid, 4.0, TilingConfig(size=64, min_tissue=0.0))
    assert sorted(map(tuple, grid.origins)) == [(236, 192), (236, 320)]
    tiles = stitch(grid, np.ones((2, 4, 4), np.float32), 4)  # 32 level-0 pixels per map pixel
    assert tiles.shape == (32, 32) and tiles.sum() == 32 and tiles[6:14, 7:11].all()


def test_tiling_of_a_libvips_pyramid_covers_its_annotated_tissue_and_lesion():
    """Per-region grids with padding on a slide libvips wrote, Otsu's mask at 8 µm/px, the default 10% tissue
    rule: the share of the annotated tissue and lesion area inside a tile (measured: 98.6% and 100%)."""
    slide, info = open_slide(SLIDES / "libvips_pyramid.tiff", Resolution())
    thumbnail = read_thumbnail(slide, info, 8.0, 0.1, 10**6)
    regions = read_annotations(SLIDES / "libvips_pyramid.geojson", CLASSES).regions
    grid = tile_grid(info, otsu_tissue_mask(thumbnail, OtsuConfig(), 8.0), 16.0, TilingConfig(size=64))
    tiled = stitch(grid, np.ones((len(grid), 16, 16), np.float32), 16) > 0
    coverage = {}
    for label in ("tissue", "lesion"):
        truth = rasterize(regions, {label}, tiled.shape, grid.footprint / 16)
        coverage[label] = (truth & tiled).sum() / truth.sum()
    assert coverage["tissue"] >= 0.98 and coverage["lesion"] >= 0.99, coverage


def test_otsu_finds_the_tissue_square_with_kernels_in_microns(slide_file):
    slide, info = open_slide(slide_file, Resolution())
    thumbnail = read_region(slide, info, (0, 0), 2, (256, 256))
    expected = np.zeros((256, 256), np.uint8)
    expected[64:192, 64:192] = 1
    assert (otsu_tissue_mask(thumbnail, OtsuConfig(), 2.0) != expected).mean() < 0.01
    small = OtsuConfig(min_area_um2=300_000.0)  # the square is 256 µm wide: 65,536 µm² at 2 µm/px
    assert otsu_tissue_mask(thumbnail, small, 2.0).sum() == 0 and otsu_tissue_mask(thumbnail, small, 8.0).any()


def test_artifact_filters_remove_glass_ink_and_pen_but_not_stained_tissue():
    pixels = np.array([[[240, 240, 240], [20, 25, 30], [40, 90, 200], [60, 160, 80], [215, 120, 190], [90, 40, 150]]],
                      np.uint8)  # fmt: skip
    # glass, black ink, blue pen, green pen, eosin, hematoxylin
    assert artifact_mask(pixels, OtsuConfig()).tolist() == [[True, True, True, True, False, False]]


def test_rasterization_of_hand_made_polygons_with_a_hole_a_window_and_an_excluded_area(tmp_path):
    square = Region("lesion", np.array([[0.0, 0.0], [8.0, 0.0], [8.0, 8.0], [0.0, 8.0]]))
    framed = Region("lesion", np.array([[16.0, 0.0], [32.0, 0.0], [32.0, 16.0], [16.0, 16.0]]),
                    (np.array([[20.0, 4.0], [28.0, 4.0], [28.0, 12.0], [20.0, 12.0]]),))  # fmt: skip
    tissue = Region("tissue", np.array([[0.0, 0.0], [32.0, 0.0], [32.0, 16.0]]))
    mask = rasterize([square, framed, tissue], {"lesion"}, (8, 16), downsample=2.0)
    expected = np.zeros((8, 16), np.uint8)
    expected[0:4, 0:4] = 1  # the square: level-0 [0, 8) is pixels 0..3 at downsample 2
    expected[0:8, 8:16] = 1
    expected[2:6, 10:14] = 0  # the hole
    np.testing.assert_array_equal(mask, expected)
    window = rasterize([square, framed], {"lesion"}, (4, 4), 2.0, origin=(16.0, 4.0))  # level-0 x, y from 16, 4
    np.testing.assert_array_equal(window, expected[2:6, 8:12])
    cut = Region("exclude", np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 8.0], [0.0, 8.0]]))
    assert rasterize([square, cut], {"lesion"}, (8, 16), 2.0)[0:4, 0:4].sum() == 8  # its left half cut out
    path = tmp_path / "regions.geojson"
    write_geojson(path, [square, framed, tissue])
    again = read_annotations(path, CLASSES).regions
    assert [r.label for r in again] == ["lesion", "lesion", "tissue"] and len(again[1].holes) == 1
    np.testing.assert_array_equal(rasterize(again, {"lesion"}, (8, 16), 2.0), expected)


def test_qupath_geojson_export_classes_holes_and_counted_skips():
    annotations = read_annotations(SLIDES / "libvips_pyramid.geojson", CLASSES)
    assert [r.label for r in annotations.regions] == ["tissue", "tissue", "lesion"]  # Region* and Tumor
    assert len(annotations.regions[2].holes) == 1
    assert annotations.warning() == (
        "1 x LineString geometry (not an area); 1 x MultiPoint geometry (not an area); 1 x unclassified feature ignored"
    )
    as_lesion = read_annotations(SLIDES / "libvips_pyramid.geojson", AnnotationClasses(unclassified="lesion"))
    assert [r.label for r in as_lesion.regions][-1] == "lesion" and "unclassified" not in as_lesion.warning()
    renamed = AnnotationClasses(lesion=["carcinoma"], unknown="ignore")
    assert [r.label for r in read_annotations(SLIDES / "libvips_pyramid.geojson", renamed).regions] == [
        "tissue",
        "tissue",
    ]


def test_qupath_array_export_derived_classes_and_geometry_collections(tmp_path):
    square = [[[0, 0], [8, 0], [8, 8], [0, 8], [0, 0]]]
    features = [  # QuPath 0.2 exported a plain array of Features, classification with colorRGB
        {"type": "Feature", "id": "PathAnnotationObject", "geometry": {"type": "Polygon", "coordinates": square},
         "properties": {"classification": {"name": "Tumor: Positive", "colorRGB": -3670016}, "isLocked": False}},
        {"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "coordinates": square}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}]},
         "properties": {"classification": {"names": ["Tumor", "Negative"], "color": [1, 2, 3]}}},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [square, square]},
         "properties": {"classification": {"name": "Stroma"}}},
    ]  # fmt: skip
    path = tmp_path / "qupath02.json"
    path.write_text(json.dumps(features))
    annotations = read_annotations(path, CLASSES)
    assert [r.label for r in annotations.regions] == ["lesion", "lesion"]
    assert annotations.warning() == "1 x LineString geometry (not an area); 1 x class 'Stroma' ignored"
    path.write_text(json.dumps([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1]]]},
                                 "properties": {"classification": {"name": "Tumor"}}}]))  # fmt: skip
    with pytest.raises(DatasetError, match=r"qupath02\.json: feature 0 has malformed polygon coordinates"):
        read_annotations(path, CLASSES)


def test_asap_xml_groups_rectangles_comma_decimals_and_counted_skips(tmp_path):
    annotations = read_annotations(SLIDES / "libvips_pyramid.xml", CLASSES)
    assert [r.label for r in annotations.regions] == ["tissue", "tissue", "lesion"]  # "tumor core" is in "Tumor"
    assert annotations.warning() == (
        "1 x Dot annotation (not an area); 1 x PointSet annotation (not an area); 1 x unclassified feature ignored"
    )
    qupath = read_annotations(SLIDES / "libvips_pyramid.geojson", CLASSES).regions
    for xml, geojson in zip(annotations.regions, qupath, strict=True):  # the same outlines, read from "918,5000"
        np.testing.assert_allclose(xml.exterior, geojson.exterior[:-1], atol=0.05)
    rectangle = read_annotations(SLIDES / "libvips_pyramid.xml", AnnotationClasses(unclassified="tissue"))
    np.testing.assert_array_equal(rectangle.regions[-1].exterior, [[900, 40], [980, 40], [980, 100], [900, 100]])
    camelyon = AnnotationClasses(lesion=["_0"], exclude=["_2"])  # Camelyon16's tumour and exclusion groups
    path = tmp_path / "camelyon.xml"
    path.write_text(
        '<?xml version="1.0"?><ASAP_Annotations><Annotations>'
        '<Annotation Name="A" Type="Polygon" PartOfGroup="_0"><Coordinates><Coordinate Order="0" X="0" Y="0"/>'
        '<Coordinate Order="1" X="8" Y="0"/><Coordinate Order="2" X="8" Y="8"/><Coordinate Order="3" X="0" Y="8"/>'
        '</Coordinates></Annotation><Annotation Name="B" Type="Rectangle" PartOfGroup="_2"><Coordinates>'
        '<Coordinate Order="0" X="2" Y="2"/><Coordinate Order="1" X="6" Y="2"/><Coordinate Order="2" X="6" Y="6"/>'
        '<Coordinate Order="3" X="2" Y="6"/></Coordinates></Annotation></Annotations><AnnotationGroups>'
        '<Group Name="_0" PartOfGroup="None"/><Group Name="_2" PartOfGroup="None"/></AnnotationGroups>'
        "</ASAP_Annotations>"
    )
    regions = read_annotations(path, camelyon).regions
    assert rasterize(regions, {"lesion"}, (8, 8), 1.0).sum() == 64 - 16  # the exclusion is a hole
    path.write_text(path.read_text().replace('X="6" Y="6"', 'X="6;5" Y="6"'))
    with pytest.raises(DatasetError, match=r"camelyon\.xml: annotation 'B' has the coordinate '6;5', not a number"):
        read_annotations(path, camelyon)
    with pytest.raises(DatasetError, match="not readable ASAP XML"):
        (tmp_path / "bad.xml").write_text("<ASAP")
        read_annotations(tmp_path / "bad.xml", CLASSES)


def test_patch_network_outputs_and_losses():
    torch.manual_seed(0)
    tiles, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    masks = torch.zeros(2, 64, 64)
    masks[1, :32] = 1
    multitask = MultiTaskPatchNet(PatchNetConfig(encoder="resnet10t"))
    output = multitask(tiles)
    assert output["class_logits"].shape == (2, 2) and output["mask_logits"].shape == (2, 16, 16)
    loss, terms = patch_loss(output, labels, masks, PatchNetConfig())
    assert set(terms) == {"classification", "mask_bce", "mask_dice"}
    assert loss.item() == pytest.approx(terms["classification"] + terms["mask_bce"] + terms["mask_dice"], rel=1e-5)
    classifier = MultiTaskPatchNet(PatchNetConfig(encoder="resnet10t", segmentation=False))
    only = classifier(tiles)
    assert set(only) == {"class_logits"}
    assert set(patch_loss(only, labels, masks, PatchNetConfig())[1]) == {"classification"}


def test_the_patch_networks_speed_options_keep_its_outputs_and_weights():
    tiles = torch.randn(2, 3, 64, 64)
    outputs, weights = [], []
    for channels_last, bfloat16 in ((False, False), (True, False), (True, True)):
        torch.manual_seed(0)
        config = PatchNetConfig(encoder="resnet10t", channels_last=channels_last, cpu_bfloat16=bfloat16)
        network = MultiTaskPatchNet(config).eval()
        with torch.no_grad():
            outputs.append(network(tiles))
        weights.append(network.state_dict())
    for name in ("class_logits", "mask_logits"):
        torch.testing.assert_close(outputs[1][name], outputs[0][name], atol=1e-4, rtol=1e-4)  # memory format only
        assert outputs[2][name].dtype == torch.float32
        assert (outputs[2][name] - outputs[0][name]).abs().max() < 0.5  # bfloat16: close
    assert weights[0].keys() == weights[2].keys()  # a network saved with one setting loads under the other
    torch.testing.assert_close(weights[2], weights[0])


def test_the_slide_network_takes_exactly_two_hidden_widths():
    assert typed_config(SlideNetConfig, {"hidden": [8, 4]}, "pipeline.slide_net").hidden == [8, 4]
    with pytest.raises(ConfigError, match=r"slide_net\.hidden=\[8, 4, 2\]: network 3 is a 3-layer MLP.*not 3"):
        typed_config(SlideNetConfig, {"hidden": [8, 4, 2]}, "pipeline.slide_net")


def test_slide_features_and_the_slide_network():
    config = SlideNetConfig(bins=4, top_k=3, epochs=200)
    features = slide_features(np.array([0.1, 0.9, 0.6]), 0.25, config)
    np.testing.assert_allclose(features, [1 / 3, 0, 1 / 3, 1 / 3, 0.9, 0.6, 0.1, 0.25], rtol=1e-6)
    assert slide_features(np.zeros(0), 0.0, config).shape == (8,)
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 10)
    table = np.stack([slide_features(rng.uniform(0, 0.3 + 0.6 * y, 20), 0.1 * y, config) for y in labels])
    net = train_slide_net(table, labels, config, seed=0)
    scores = slide_scores(net, table)
    assert scores[labels == 1].min() > scores[labels == 0].max()


def test_slide_table_reads_labels_splits_centers_and_finds_annotations(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "b.xml").write_text("<ASAP_Annotations/>")
    table = tmp_path / "labels.csv"
    table.write_text("slide,label,split,center,mpp\na.svs,0,train,x,\nb.ndpi,1,test,y,0.25\n")
    records = read_slide_table(table, tmp_path / "slides", tmp_path / "annotations", "data_cards/slides.md")
    assert [(r.path.name, r.label, r.split, r.center, r.mpp) for r in records] == [
        ("a.svs", 0, "train", "x", None),
        ("b.ndpi", 1, "test", "y", 0.25),
    ]
    assert records[0].annotations is None and records[1].annotations.name == "b.xml"
    table.write_text("slide,label,split\na.svs,2,train\n")
    with pytest.raises(DatasetError, match=r"line 2: label '2' is not 0 or 1"):
        read_slide_table(table, tmp_path, None, "data_cards/slides.md")
    table.write_text("slide,label,split,mpp\na.svs,1,test,72dpi\n")
    with pytest.raises(DatasetError, match=r"line 2: mpp '72dpi' is not a positive number"):
        read_slide_table(table, tmp_path, None, "data_cards/slides.md")
    table.write_text("slide,label\na.svs,1\n")
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) \['split'\]"):
        read_slide_table(table, tmp_path, None, "data_cards/slides.md")


def test_a_training_folder_gives_every_slide_a_status_and_counts_the_unscreened_test_slides(tmp_path, monkeypatch):
    """Readable slides in every split beside a 72-dpi TIFF, a 16-pixel SVS and a missing file in the test split:
    each gets its slides.csv row, and the test metrics (and their per-slide units) count the three as missed."""
    from hydra import compose, initialize_config_dir

    from common.distributed import DistributedContext
    from common.hydra_setup import register_configs
    from papers.gastric_wsi.slide_evaluation import screening_metrics, slide_units
    from papers.gastric_wsi.task import GastricWSITask
    from tests.conftest import ROOT

    (tmp_path / "slides").mkdir()
    (tmp_path / "annotations").mkdir()
    table = [("train_pos", 1, "train"), ("train_neg", 0, "train"), ("val_pos", 1, "val"), ("val_neg", 0, "val"),
             ("test_pos", 1, "test"), ("test_neg", 0, "test")]  # fmt: skip
    for name, label, _ in table:
        shutil.copy(SLIDES / "libvips_pyramid.tiff", tmp_path / "slides" / f"{name}.tiff")
        if label and name != "val_pos":
            shutil.copy(SLIDES / "libvips_pyramid.geojson", tmp_path / "annotations" / f"{name}.geojson")
    shutil.copy(SLIDES / "boxes.tiff", tmp_path / "slides" / "boxes.tiff")
    shutil.copy(SLIDES / "small.svs", tmp_path / "slides" / "small.svs")
    lines = [f"{name}.tiff,{label},{split}" for name, label, split in table]
    lines += ["boxes.tiff,1,test", "small.svs,1,test", "missing.svs,0,test"]
    (tmp_path / "labels.csv").write_text("slide,label,split\n" + "\n".join(lines) + "\n")
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("run", overrides=["paper=gastric_wsi", "debug=smoke", "data=slides", f"data.root={tmp_path}",
                                        "pipeline.tissue=otsu", "pipeline.tiling.thumbnail_mpp=4.0"])  # fmt: skip
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    task = GastricWSITask(cfg, context, tmp_path / "run")
    task.load_data()
    rows = task.rows
    assert list(rows) == [line.split(",")[0] for line in lines]
    assert [rows[name].status for name in ("boxes.tiff", "small.svs", "missing.svs")] == ["skipped", "no_tissue",
                                                                                          "skipped"]  # fmt: skip
    assert "352.8 µm/px" in rows["boxes.tiff"].reason and "no tile has tissue" in rows["small.svs"].reason
    assert "no tiles of it in patch training" in rows["val_pos.tiff"].warnings
    assert "MultiPoint" in rows["train_pos.tiff"].warnings and len(task.views) == 6
    scores = {"": np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])}  # in the screened slides' order
    task.evaluation = task._evaluation(
        scores, [np.zeros(tiles.grid.map_shape(16), np.float32) for tiles in task.slide_tiles]
    )
    metrics = screening_metrics(task.evaluation)
    assert metrics["sensitivity"] == 1.0 and metrics["test_share_not_screened"] == pytest.approx(3 / 5)
    assert metrics["sensitivity_counting_unscreened"] == pytest.approx(1 / 3)  # 1 of the 3 positive test slides
    units = slide_units(task.evaluation, {})
    for name in ("sensitivity", "specificity", "auc", "test_share_not_screened", "sensitivity_counting_unscreened"):
        assert units.value(name) == pytest.approx(metrics[name]), name
    task.write_outputs(None, tmp_path)
    written = (tmp_path / "slides.csv").read_text().splitlines()
    assert written[0] == "slide,split,label,status,reason,warnings,score,prediction" and len(written) == 10
    assert written[5].startswith("test_pos.tiff,test,1,screened,,") and written[5].endswith(",0.7000,positive")


def he_tiles(hematoxylin: np.ndarray, eosin: np.ndarray, seed: int) -> np.ndarray:
    """Four 32-pixel H&E tiles by Beer-Lambert from stain vectors (optical density per unit stain) and random
    concentrations: nuclei (hematoxylin up to 1.5) in eosin-stained stroma."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.0, 1.5, (4, 32, 32, 1)) * (rng.uniform(size=(4, 32, 32, 1)) < 0.3)
    e = rng.uniform(0.3, 1.0, (4, 32, 32, 1))
    return np.clip(240 * np.exp(-(h * hematoxylin + e * eosin)), 0, 255).astype(np.uint8)


def test_stain_normalization_moves_tiles_to_the_reference_and_augmentation_varies_them(tmp_path):
    pytest.importorskip("torchstain")
    from papers.gastric_wsi.stain import StainAugmenter, StainConfig, StainNormalizer

    reference = he_tiles(np.array([0.65, 0.70, 0.29]), np.array([0.07, 0.99, 0.11]), seed=0)  # Ruifrok & Johnston
    other_lab = he_tiles(np.array([0.45, 0.80, 0.40]), np.array([0.20, 0.90, 0.30]), seed=0)  # same tissue
    glass = np.full((1, 32, 32, 3), 245, np.uint8)
    normalizer = StainNormalizer.fit(np.concatenate([reference, glass]), count=8, seed=0)
    normalizer.save(tmp_path)
    loaded = StainNormalizer.load(tmp_path)

    def distance(tiles):
        return np.abs(tiles.astype(int) - reference).mean()

    assert distance(loaded(other_lab)) < distance(other_lab) and distance(loaded(reference)) < 5
    assert (loaded(glass) == glass).all()  # no stain: unchanged
    np.random.seed(0)
    augmented = StainAugmenter(StainConfig(augment=True, sigma1=0.3, sigma2=0.3))(reference)
    assert augmented.shape == reference.shape and not (augmented == reference).all()
    with pytest.raises(DatasetError, match="needs stained training tiles"):
        StainNormalizer.fit(glass, count=8, seed=0)


def test_patch_dice_is_left_out_without_annotated_lesion_pixels():
    from papers.gastric_wsi.patch_trainee import patch_metrics

    outputs = {"known": np.ones(2), "label": np.array([0.0, 1.0]), "probability": np.array([0.2, 0.9]),
               "lesion_map": np.zeros((2, 4)), "truth_map": np.zeros((2, 4))}  # fmt: skip
    assert patch_metrics(outputs, 0.5) == {"patch_auc": 1.0}
    outputs["truth_map"][1] = 1
    assert patch_metrics(outputs, 0.5) == {"patch_auc": 1.0, "patch_dice": 0.0}


def test_dihedral_augmentation_turns_each_tile_with_its_mask_through_all_eight_symmetries():
    from papers.gastric_wsi.patch_trainee import dihedral

    np.random.seed(0)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, :3], mask[1, 0] = 1, 1  # no symmetry of the square maps this shape onto itself
    tiles = np.repeat(np.repeat(mask[None, :, :, None], 3, axis=3), 64, axis=0) * 200
    turned_tiles, turned_masks = dihedral(tiles, np.repeat(mask[None], 64, axis=0))
    assert (turned_tiles[..., 1] == turned_masks * 200).all()  # every tile moved exactly as its mask
    assert len({m.tobytes() for m in turned_masks}) == 8
    assert (tiles[..., 0] == mask * 200).all()  # the source batch is left as it was
