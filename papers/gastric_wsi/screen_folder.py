"""mode=predict: a folder of slides screened by a trained run's three networks, one slide at a time.

Per slide, its tiles are streamed chunk by chunk through network 2 (only the tiles' patch probabilities and small
lesion maps are kept, never the tiles of a whole slide, let alone of every slide); network 3 (or max-pooling,
as the run was trained) scores the slide and the run's validation operating point decides it. Written into
`<output dir>/screening/`: `<slide>_heatmap.png`, `<slide>_overlay.png`, `<slide>_lesion_mask.png`, and
`<slide>_lesions.geojson`, the predicted lesions as a QuPath-readable FeatureCollection of Polygon features
(level-0 pixels, classification "lesion"); `<slide>.json`, the slide's row, is written last, so a slide that has
it and its files is not screened again on resume. `<output dir>/slides.csv` lists every slide: slide, score,
prediction, status (screened | skipped) and reason (why a slide was skipped: the read error). A slide that cannot
be read is a skipped row; the others run.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from common.errors import DatasetError
from common.metrics.screening import screening_metrics
from common.metrics.segmentation import dice
from papers.gastric_wsi.annotations import Region, rasterize, write_geojson
from papers.gastric_wsi.data import SlideRecord
from papers.gastric_wsi.patch_network import MASK_STRIDE, MultiTaskPatchNet, PatchNetConfig, tile_tensor
from papers.gastric_wsi.patch_trainee import patch_predictions
from papers.gastric_wsi.screening import on_thumbnail, view_slide, write_slide_outputs
from papers.gastric_wsi.slide_evaluation import AGGREGATOR_PREFIXES, SlideSummary, summarize_slide
from papers.gastric_wsi.slide_network import SlideNet, slide_scores
from papers.gastric_wsi.slides import open_slide
from papers.gastric_wsi.stored_networks import load_operating_points, load_weights
from papers.gastric_wsi.tiling import read_tiles, tile_grid
from papers.gastric_wsi.tissue import TissueNet, network_tissue_mask, otsu_tissue_mask

SLIDES_CSV = "slides.csv"
OUTPUT_FOLDER = "screening"
SCREENED, SKIPPED = "screened", "skipped"
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

    @classmethod
    def load(cls, run: Path, pipeline: PipelineConfig, model: PatchNetConfig, device: torch.device) -> TrainedNetworks:
        """Network 1 from <run>/tissue (when the run used it), 2 from <run>/patch, 3 and the operating point
        from <run>/slide."""
        tissue = None
        if pipeline.tissue == "network":
            tissue = load_weights(TissueNet(pipeline.tissue_net.width), run / "tissue")
        patch = load_weights(MultiTaskPatchNet(replace(model, encoder_weights=None)), run / "patch").to(device)
        slide = None
        if pipeline.aggregator == "mlp":
            config = pipeline.slide_net
            slide = load_weights(SlideNet(config.bins + config.top_k + 1, config.hidden), run / "slide")
        threshold = load_operating_points(run / "slide")[AGGREGATOR_PREFIXES[pipeline.aggregator]]
        return cls(pipeline, tissue, patch, slide, float(threshold), device)

    def tissue_mask(self, thumbnail: np.ndarray) -> np.ndarray:
        if self.tissue is None:
            return otsu_tissue_mask(thumbnail, self.pipeline.otsu)
        return network_tissue_mask(self.tissue, thumbnail)

    def score(self, summary: SlideSummary) -> float:
        if self.slide is None:
            return summary.max_score
        return float(slide_scores(self.slide, summary.features[None])[0])


@dataclass
class ScreenedSlide:
    """One row of slides.csv, with what the metrics need (label, lesion Dice where annotated)."""

    slide: str
    score: float | None
    prediction: str  # positive | negative | "" (skipped)
    status: str  # screened | skipped
    reason: str
    label: int | None = None
    lesion_dice: float | None = None


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


@torch.no_grad()
def screen_slide(record: SlideRecord, networks: TrainedNetworks, default_mpp: float | None,
                 folder: Path) -> ScreenedSlide:  # fmt: skip
    """One slide through the three networks, its files written into `folder`."""
    pipeline, tiling = networks.pipeline, networks.pipeline.tiling
    view = view_slide(record, tiling, default_mpp)
    grid = tile_grid(view.info, networks.tissue_mask(view.thumbnail), view.downsample, tiling)
    side = tiling.size // MASK_STRIDE
    probabilities, maps = [np.zeros(0, np.float32)], [np.zeros((0, side, side), np.float32)]
    slide, info = open_slide(record.path, default_mpp)
    try:
        for chunk in read_tiles(slide, info, grid, tiling):
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
    return ScreenedSlide(record.path.name, score, prediction, SCREENED, "", record.label, lesion_dice)


def output_files(folder: Path, stem: str) -> list[Path]:
    """The files a screened slide has; its row (<stem>.json) is written after the others."""
    names = ("heatmap.png", "overlay.png", "lesion_mask.png", "lesions.geojson")
    return [folder / f"{stem}_{name}" for name in names] + [folder / f"{stem}.json"]


def _finished(folder: Path, stem: str) -> ScreenedSlide | None:
    files = output_files(folder, stem)
    if not all(path.is_file() for path in files):
        return None
    return ScreenedSlide(**json.loads(files[-1].read_text(encoding="utf-8")))


def _write_row(folder: Path, stem: str, row: ScreenedSlide) -> None:
    path = output_files(folder, stem)[-1]
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(asdict(row)) + "\n", encoding="utf-8")
    temporary.replace(path)


def screen_folder(records: list[SlideRecord], networks: TrainedNetworks, default_mpp: float | None,
                  output_dir: Path, resume: bool, progress: bool = True) -> list[ScreenedSlide]:  # fmt: skip
    """Every slide of `records` screened (on resume, a slide with all its files is read back instead), a slide
    that cannot be read a skipped row naming why; slides.csv written after each slide, so it is always current."""
    folder = Path(output_dir) / OUTPUT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in tqdm(records, desc="screening slides", disable=not progress):
        stem = record.path.stem
        row = _finished(folder, stem) if resume else None
        if row is None:
            try:
                row = screen_slide(record, networks, default_mpp, folder)
                _write_row(folder, stem, row)
            except DatasetError as error:
                row = ScreenedSlide(record.path.name, None, "", SKIPPED, str(error), record.label)
                tqdm.write(f"skipped slide {record.path}: {error}", file=sys.stderr)
        rows.append(row)
        write_slides_csv(Path(output_dir) / SLIDES_CSV, rows)
    return rows


def write_slides_csv(path: Path, rows: list[ScreenedSlide]) -> None:
    temporary = path.with_suffix(".csv.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide", "score", "prediction", "status", "reason"])
        for row in rows:
            score = "" if row.score is None else f"{row.score:.4f}"
            writer.writerow([row.slide, score, row.prediction, row.status, row.reason])
    temporary.replace(path)


def folder_metrics(rows: list[ScreenedSlide], threshold: float) -> dict[str, float]:
    """AUC, sensitivity and specificity (at the trained run's operating point) over the screened slides with
    labels, where their classes allow; the mean lesion Dice over the annotated positive ones; {} without labels."""
    labelled = [row for row in rows if row.status == SCREENED and row.label is not None]
    if not labelled:
        return {}
    labels = np.array([row.label for row in labelled])
    scores = np.array([row.score for row in labelled])
    metrics = {name: value for name, value in screening_metrics(labels, scores, threshold).items() if value == value}
    dices = [row.lesion_dice for row in labelled if row.lesion_dice is not None]
    if dices:
        metrics["lesion_dice"] = float(np.mean(dices))
    return metrics
