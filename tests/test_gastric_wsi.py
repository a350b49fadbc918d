"""Gastric WSI pieces: pyramidal TIFFs in OpenSlide, tiling, annotations, tissue masks, the patch and slide
networks, and the slide table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.errors import DatasetError
from papers.gastric_wsi.annotations import Region, rasterize, read_annotations, write_geojson
from papers.gastric_wsi.data import read_slide_table
from papers.gastric_wsi.patch_network import MultiTaskPatchNet, PatchNetConfig, patch_loss
from papers.gastric_wsi.pyramid import write_pyramid
from papers.gastric_wsi.slide_network import SlideNetConfig, slide_features, slide_scores, train_slide_net
from papers.gastric_wsi.slides import SlideReadError, open_slide, read_region, thumbnail_level
from papers.gastric_wsi.tiling import TilingConfig, read_tiles, tile_grid
from papers.gastric_wsi.tissue import OtsuConfig, otsu_tissue_mask


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    """A 1024 x 1024 slide at 0.5 µm/px: white glass, a pink tissue square over x, y in [256, 768)."""
    image = np.full((1024, 1024, 3), 242, dtype=np.uint8)
    image[256:768, 256:768] = (215, 120, 190)
    path = tmp_path_factory.mktemp("slides") / "square.tiff"
    write_pyramid(path, image, mpp=0.5, tile=256, levels=3)
    return path


def test_the_written_pyramid_opens_in_openslide_with_its_levels_and_mpp(slide_file):
    slide, info = open_slide(slide_file)
    assert info.level_dimensions == ((1024, 1024), (512, 512), (256, 256))
    assert info.level_downsamples == (1.0, 2.0, 4.0) and info.mpp == pytest.approx(0.5)
    assert slide.properties["openslide.vendor"] == "generic-tiff"
    assert [info.level_mpp(level) for level in range(3)] == pytest.approx([0.5, 1.0, 2.0])
    assert info.level_for_mpp(1.0) == 1 and info.level_for_mpp(1.5) == 1 and info.level_for_mpp(4.0) == 2
    assert thumbnail_level(info, 2.0) == 2 and thumbnail_level(info, 8.0) == 2
    pink = read_region(slide, info, (400, 400), 1, (8, 8))
    assert pink.shape == (8, 8, 3) and abs(int(pink[..., 1].mean()) - 120) < 12  # JPEG is lossy
    with pytest.raises(SlideReadError, match=r"0.5.*0.25 µm/px"):
        info.level_for_mpp(0.25)


def test_unreadable_and_truncated_slides_get_a_clear_error(slide_file, tmp_path):
    truncated = tmp_path / "truncated.tiff"
    truncated.write_bytes(slide_file.read_bytes()[: slide_file.stat().st_size // 2])
    with pytest.raises(SlideReadError, match=r"truncated\.tiff is not a slide OpenSlide can open.*generic tiled TIFF"):
        open_slide(truncated)
    with pytest.raises(SlideReadError, match="does not exist"):
        open_slide(tmp_path / "missing.svs")


def test_tiling_covers_tissue_and_skips_background(slide_file):
    slide, info = open_slide(slide_file)
    tissue = np.zeros((256, 256), np.uint8)  # at level 2 (downsample 4): the square is [64, 192)
    tissue[64:192, 64:192] = 1
    config = TilingConfig(mpp=1.0, size=64, min_tissue=0.5, workers=2, chunk=5)
    grid = tile_grid(info, tissue, 4.0, config)
    assert grid.footprint == 128 and grid.shape == (8, 8)
    assert sorted(map(tuple, grid.cells)) == [(r, c) for r in range(2, 6) for c in range(2, 6)]
    np.testing.assert_array_equal(grid.origins, grid.cells[:, ::-1] * 128)
    chunks = list(read_tiles(slide, info, grid, config))
    assert [len(chunk) for chunk in chunks] == [5, 5, 5, 1]
    tiles = np.concatenate(chunks)
    assert tiles.shape == (16, 64, 64, 3) and (tiles[..., 1] < 150).all()  # every tile is pink tissue


def test_otsu_finds_the_tissue_square(slide_file):
    slide, info = open_slide(slide_file)
    thumbnail = read_region(slide, info, (0, 0), 2, (256, 256))
    mask = otsu_tissue_mask(thumbnail, OtsuConfig())
    expected = np.zeros((256, 256), np.uint8)
    expected[64:192, 64:192] = 1
    assert (mask != expected).mean() < 0.01


def test_rasterization_of_hand_made_polygons_with_a_hole(tmp_path):
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
    path = tmp_path / "regions.geojson"
    write_geojson(path, [square, framed, tissue])
    again = read_annotations(path)
    assert [r.label for r in again] == ["lesion", "lesion", "tissue"] and len(again[1].holes) == 1
    np.testing.assert_array_equal(rasterize(again, {"lesion"}, (8, 16), 2.0), expected)


def test_asap_xml_polygons(tmp_path):
    path = tmp_path / "slide.xml"
    path.write_text(
        '<?xml version="1.0"?><ASAP_Annotations><Annotations>'
        '<Annotation Name="A1" Type="Polygon" PartOfGroup="lesion"><Coordinates>'
        '<Coordinate Order="2" X="8" Y="8"/><Coordinate Order="0" X="0" Y="0"/><Coordinate Order="1" X="8" Y="0"/>'
        '<Coordinate Order="3" X="0" Y="8"/></Coordinates></Annotation>'
        '<Annotation Name="D" Type="Dot" PartOfGroup="lesion"><Coordinates><Coordinate Order="0" X="1" Y="1"/>'
        "</Coordinates></Annotation></Annotations></ASAP_Annotations>"
    )
    (region,) = read_annotations(path)
    np.testing.assert_array_equal(region.exterior, [[0, 0], [8, 0], [8, 8], [0, 8]])
    assert rasterize([region], {"lesion"}, (4, 4), 1.0)[:, :4].sum() == 16
    with pytest.raises(DatasetError, match="not readable ASAP XML"):
        (tmp_path / "bad.xml").write_text("<ASAP")
        read_annotations(tmp_path / "bad.xml")
    with pytest.raises(DatasetError, match=r"geometry type 'Point'"):
        (tmp_path / "point.geojson").write_text(json.dumps({"type": "Feature", "geometry": {"type": "Point"}}))
        read_annotations(tmp_path / "point.geojson")


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
    table.write_text("slide,label,split,center\na.svs,0,train,x\nb.ndpi,1,test,y\n")
    records = read_slide_table(table, tmp_path / "slides", tmp_path / "annotations", "data_cards/slides.md")
    assert [(r.path.name, r.label, r.split, r.center) for r in records] == [
        ("a.svs", 0, "train", "x"),
        ("b.ndpi", 1, "test", "y"),
    ]
    assert records[0].annotations is None and records[1].annotations.name == "b.xml"
    table.write_text("slide,label,split\na.svs,2,train\n")
    with pytest.raises(DatasetError, match=r"line 2: label '2' is not 0 or 1"):
        read_slide_table(table, tmp_path, None, "data_cards/slides.md")
    table.write_text("slide,label\na.svs,1\n")
    with pytest.raises(DatasetError, match=r"lacks the column\(s\) \['split'\]"):
        read_slide_table(table, tmp_path, None, "data_cards/slides.md")
