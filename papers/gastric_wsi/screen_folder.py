"""mode=predict: a folder of slides screened by a trained run's three networks, one slide at a time.

Per slide, its tiles are streamed chunk by chunk through network 2 (only the tiles' patch probabilities and small
lesion maps are kept, never the tiles of a whole slide, let alone of every slide); network 3 (or max-pooling,
as the run was trained) scores the slide and the run's validation operating point decides it. Written into
`<output dir>/screening/`: `<slide>_heatmap.png`, `<slide>_overlay.png`, `<slide>_lesion_mask.png`, and
`<slide>_lesions.geojson`, the predicted lesions as a QuPath-readable FeatureCollection of Polygon features
(level-0 pixels, classification "lesion"); `<slide>.json`, the slide's row, is written last, so a slide that has
it and its files is not screened again on resume. `<output dir>/slides.csv` lists every slide (slide_status.py):
a slide that cannot be screened is a skipped or no_tissue row saying why; the others run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from common.atomic_files import write_json_atomic
from common.errors import DatasetError
from common.metrics.screening import screening_metrics
from common.metrics.segmentation import dice
from papers.gastric_wsi.annotations import AnnotationClasses, Region, rasterize, write_geojson
from papers.gastric_wsi.data import SlideRecord
from papers.gastric_wsi.patch_network import MASK_STRIDE, MultiTaskPatchNet, PatchNetConfig, tile_tensor
from papers.gastric_wsi.patch_trainee import patch_predictions
from papers.gastric_wsi.screening import on_thumbnail, view_slide, write_slide_outputs
from papers.gastric_wsi.slide_evaluation import (
    AGGREGATOR_PREFIXES,
    SlideSummary,
    sensitivity_counting_unscreened,
    summarize_slide,
)
from papers.gastric_wsi.slide_network import SlideNet, slide_scores
from papers.gastric_wsi.slide_status import NO_TISSUE, SCREENED, SKIPPED, SlideRow, write_slides_csv
from papers.gastric_wsi.slides import Resolution, open_slide
from papers.gastric_wsi.stain import StainNormalizer
from papers.gastric_wsi.stored_networks import load_operating_points, load_weights
from papers.gastric_wsi.tiling import NoTissueError, check_tiled, read_tiles, tile_grid
from papers.gastric_wsi.tissue import TissueNet, clean_tissue, network_tissue_mask, otsu_tissue_mask

SLIDES_CSV = "slides.csv"
OUTPUT_FOLDER = "screening"
if TYPE_CHECKING:
    from papers.gastric_wsi.task import PipelineConfig

LESION_CLASS = "lesion"  # the classification name of the predicted lesions, as the annotations name them


@dataclass
class TrainedNetworks:
    """The three networks of a finished run, its pipeline config and its decision threshold."""

    pipeline: PipelineConfig
    tissue: TissueNet | None  # None: Otsu's mask, as the run was trained
    patch: MultiTaskPatchNet
    slide: SlideNet | None  # None: max-pooling decides, as the run was trained
    threshold: float
    device: torch.device
    normalizer: StainNormalizer | None  # the run's stain reference, when it normalized stain

    @classmethod
    def load(cls, run: Path, pipeline: PipelineConfig, model: PatchNetConfig, device: torch.device) -> TrainedNetworks:
        """Network 1 from <run>/tissue (when the run used it), 2 (and the stain reference) from <run>/patch, 3 and
        the operating point from <run>/slide."""
        tissue = None
        if pipeline.tissue == "network":
            tissue = load_weights(TissueNet(pipeline.tissue_net.width), run / "tissue")
        patch = load_weights(MultiTaskPatchNet(replace(model, encoder_weights=None)), run / "patch").to(device)
        slide = None
        if pipeline.aggregator == "mlp":
            config = pipeline.slide_net
            slide = load_weights(SlideNet(config.bins + config.top_k + 1, config.hidden), run / "slide")
        threshold = load_operating_points(run / "slide")[AGGREGATOR_PREFIXES[pipeline.aggregator]]
        normalizer = StainNormalizer.load(run / "patch") if pipeline.stain.normalize else None
        return cls(pipeline, tissue, patch, slide, float(threshold), device, normalizer)

    def tissue_mask(self, thumbnail: np.ndarray, mpp: float) -> np.ndarray:
        otsu = self.pipeline.otsu
        if self.tissue is None:
            return otsu_tissue_mask(thumbnail, otsu, mpp)
        return clean_tissue(network_tissue_mask(self.tissue, thumbnail), thumbnail, otsu, mpp)

    def score(self, summary: SlideSummary) -> float:
        if self.slide is None:
            return summary.max_score
        return float(slide_scores(self.slide, summary.features[None])[0])


def lesion_regions(lesion: np.ndarray, scale: float, label: str = LESION_CLASS) -> list[Region]:
    """Polygons (with holes) of a 0/1 map whose pixel (r, c) covers level-0 [c, c + 1) x [r, r + 1) times
    `scale`. Each connected component is traced at twice the map's resolution, so that a polygon runs a quarter
    of a map pixel inside the component's edge: rasterizing it at the map's resolution (pixel centres) gives the
    map back."""
    count, components, stats, _ = cv2.connectedComponentsWithStats(lesion.astype(np.uint8), connectivity=4)
    regions = []
    for index in range(1, count):
        x, y, width, height = stats[index, :4]
        crop = (components[y : y + height, x : x + width] == index).astype(np.uint8)
        fine = np.pad(cv2.resize(crop, (2 * width, 2 * height), interpolation=cv2.INTER_NEAREST), 1)
        contours, hierarchy = cv2.findContours(fine, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)

        def level0(contour: np.ndarray, x: int = x, y: int = y) -> np.ndarray:
            return ((contour[:, 0, :] - 1 + 0.5) / 2 + (x, y)) * scale

        parents = hierarchy[0][:, 3]
        for outer in np.flatnonzero(parents == -1):
            holes = tuple(level0(contours[hole]) for hole in np.flatnonzero(parents == outer))
            regions.append(Region(label, level0(contours[outer]), holes))
    return regions


@dataclass
class FolderSettings:
    """How the slides of a folder are read: their resolution and their annotations' classes."""

    resolution: Resolution
    classes: AnnotationClasses


@torch.no_grad()
def screen_slide(record: SlideRecord, networks: TrainedNetworks, settings: FolderSettings, folder: Path) -> SlideRow:
    """One slide through the three networks, its files written into `folder`."""
    pipeline, tiling = networks.pipeline, networks.pipeline.tiling
    view = view_slide(record, tiling, settings.resolution, settings.classes)
    grid = tile_grid(view.info, networks.tissue_mask(view.thumbnail, view.thumbnail_mpp), view.downsample, tiling)
    check_tiled(grid, record.path)
    side = tiling.size // MASK_STRIDE
    probabilities, maps = [], []
    slide, info = open_slide(record.path, view.resolution)
    try:
        for chunk in read_tiles(slide, info, grid, tiling):
            if networks.normalizer is not None:
                chunk = networks.normalizer(chunk)
            probability, lesion_map = patch_predictions(networks.patch, tile_tensor(chunk).to(networks.device))
            probabilities.append(probability.float().cpu().numpy())
            maps.append(lesion_map.float().cpu().numpy())
    finally:
        slide.close()
    summary = summarize_slide(np.concatenate(probabilities), np.concatenate(maps), grid, pipeline.lesion_threshold,
                              pipeline.slide_net)  # fmt: skip
    score = networks.score(summary)
    prediction = "positive" if score >= networks.threshold else "negative"
    stem = record.path.stem
    caption = f"{stem}: {score:.2f} {prediction}"
    write_slide_outputs(folder, view, on_thumbnail(view, grid, summary.lesion_map), pipeline.lesion_threshold, caption)
    lesion = summary.lesion_map >= pipeline.lesion_threshold
    scale = grid.footprint / side  # level-0 pixels per lesion-map pixel
    write_geojson(folder / f"{stem}_lesions.geojson", lesion_regions(lesion, scale))
    lesion_dice = None
    if record.label == 1 and view.annotated("lesion"):
        lesion_dice = dice(rasterize(view.regions, {"lesion"}, lesion.shape, scale), lesion)
    return SlideRow(record.path.name, record.split, record.label, SCREENED, "", view.annotations.warning(), score,
                    prediction, lesion_dice)  # fmt: skip


def output_files(folder: Path, stem: str) -> list[Path]:
    """The files a screened slide has; its row (<stem>.json) is written after the others."""
    names = ("heatmap.png", "overlay.png", "lesion_mask.png", "lesions.geojson")
    return [folder / f"{stem}_{name}" for name in names] + [folder / f"{stem}.json"]


def _finished(folder: Path, stem: str) -> SlideRow | None:
    files = output_files(folder, stem)
    if not all(path.is_file() for path in files):
        return None
    return SlideRow(**json.loads(files[-1].read_text(encoding="utf-8")))


def _write_row(folder: Path, stem: str, row: SlideRow) -> None:
    write_json_atomic(output_files(folder, stem)[-1], asdict(row), indent=None)


def screen_folder(records: list[SlideRecord], networks: TrainedNetworks, settings: FolderSettings,
                  output_dir: Path, resume: bool, progress: bool = True) -> list[SlideRow]:  # fmt: skip
    """Every slide of `records` screened (on resume, a slide with all its files is read back instead), a slide
    that cannot be screened a skipped or no_tissue row naming why; slides.csv written after each slide, so it is
    always current."""
    folder = Path(output_dir) / OUTPUT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in tqdm(records, desc="screening slides", disable=not progress):
        stem = record.path.stem
        row = _finished(folder, stem) if resume else None
        if row is None:
            try:
                row = screen_slide(record, networks, settings, folder)
                _write_row(folder, stem, row)
            except DatasetError as error:
                status = NO_TISSUE if isinstance(error, NoTissueError) else SKIPPED
                row = SlideRow(record.path.name, record.split, record.label, status, str(error))
                tqdm.write(f"{status} slide {record.path}: {error}", file=sys.stderr)
        rows.append(row)
        write_slides_csv(Path(output_dir) / SLIDES_CSV, rows)
    return rows


def folder_metrics(rows: list[SlideRow], threshold: float) -> dict[str, float]:
    """AUC, sensitivity and specificity (at the trained run's operating point) over the screened slides with
    labels, where their classes allow; the mean lesion Dice over the annotated positive ones; how many labelled
    slides were not screened, and the sensitivity counting a positive one not screened as missed; {} without
    labels."""
    labelled = [row for row in rows if row.status == SCREENED and row.label is not None]
    unscreened = [row for row in rows if row.status != SCREENED and row.label is not None]
    if not labelled:
        return {}
    labels = np.array([row.label for row in labelled])
    scores = np.array([row.score for row in labelled])
    metrics = {name: value for name, value in screening_metrics(labels, scores, threshold).items() if value == value}
    dices = [row.lesion_dice for row in labelled if row.lesion_dice is not None]
    if dices:
        metrics["lesion_dice"] = float(np.mean(dices))
    metrics["slides_not_screened"] = float(len(unscreened))
    counted = sensitivity_counting_unscreened(labels, scores >= threshold, [row.label for row in unscreened])
    if counted is not None:
        metrics["sensitivity_counting_unscreened"] = counted
    return metrics
