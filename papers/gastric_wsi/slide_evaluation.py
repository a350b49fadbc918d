"""The slide level of screening: a slide's summary from its tiles' patch outputs (network 3's features, the
max-pooled score, the stitched lesion map), the screening metrics of slide scores at the operating point chosen on
the validation slides (overall, per center, seen against held-out centers), the lesion Dice of the annotated
positive test slides, and the per-slide contributions of all of them for the reproduced tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.metrics.screening import operating_point, per_group
from common.metrics.segmentation import dice
from common.units import UnitContributions
from papers.gastric_wsi.annotations import rasterize
from papers.gastric_wsi.screening import SlideView
from papers.gastric_wsi.slide_network import SlideNetConfig, slide_features
from papers.gastric_wsi.tiling import TileGrid, stitch

MAX_POOL_PREFIX = "max_pool_"  # the metric names' prefix of max-pooling's scores; network 3's have none
AGGREGATOR_PREFIXES = {"mlp": "", "max": MAX_POOL_PREFIX}


@dataclass
class SlideSummary:
    """One slide from its tiles' outputs: network 3's input, its highest patch probability, its lesion map."""

    features: np.ndarray
    max_score: float
    lesion_map: np.ndarray


def summarize_slide(probabilities: np.ndarray, tile_maps: np.ndarray, grid: TileGrid, lesion_threshold: float,
                    config: SlideNetConfig) -> SlideSummary:  # fmt: skip
    """The summary of a slide whose tiles (in `grid`'s order, at least one) have patch `probabilities` and lesion
    `tile_maps`."""
    lesion_fraction = float((tile_maps >= lesion_threshold).mean())
    slide_map = stitch(grid, tile_maps, tile_maps.shape[-1])
    return SlideSummary(slide_features(probabilities, lesion_fraction, config), float(probabilities.max()), slide_map)


def summarize_outputs(outputs: dict[str, np.ndarray], grids: list[TileGrid], lesion_threshold: float,
                      config: SlideNetConfig) -> list[SlideSummary]:  # fmt: skip
    """Every slide's summary from the concatenated per-tile outputs of all slides (`slide` indexes `grids`)."""
    slides = outputs["slide"].astype(int)
    side = int(round(np.sqrt(outputs["lesion_map"].shape[1])))
    summaries = []
    for index, grid in enumerate(grids):
        rows = slides == index
        tile_maps = outputs["lesion_map"][rows].reshape(-1, side, side)
        summaries.append(summarize_slide(outputs["probability"][rows], tile_maps, grid, lesion_threshold, config))
    return summaries


@dataclass
class SlideEvaluation:
    """The slides at the slide level, one entry per screened slide: scores by metric prefix ("" for network 3's
    or a no-learning row's, "max_pool_" for max-pooling) with each one's validation operating point, name, label,
    split, group names (all slides, per center, seen or held-out center) and stitched lesion map; and per annotated
    positive test slide (by name) the Dice of its lesion map and of its tissue tiles."""

    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]
    names: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    groupings: tuple[np.ndarray, ...]
    maps: list[np.ndarray]
    lesion_dice: dict[str, float]
    tissue_mask_lesion_dice: dict[str, float]
    unscreened: dict[str, int]  # the test slides that were not screened (skipped, no tissue): name -> label

    def test_rows(self) -> np.ndarray:
        return np.flatnonzero(self.split == "test")


def evaluate_slides(scores: dict[str, np.ndarray], views: list[SlideView], grids: list[TileGrid],
                    maps: list[np.ndarray], side: int, rule: str, min_sensitivity: float,
                    lesion_threshold: float, unscreened: dict[str, int]) -> SlideEvaluation:  # fmt: skip
    """Slide scores of `views` with their operating points on the validation slides (`rule`), groups and lesion
    Dice (stitched `maps` of `side` pixels per tile edge, at `lesion_threshold`)."""
    labels = np.array([view.record.label for view in views])
    split = np.array([view.record.split for view in views])
    val = split == "val"
    thresholds = {prefix: operating_point(labels[val], s[val], rule, min_sensitivity) for prefix, s in scores.items()}
    centers = np.array([view.record.center for view in views])
    seen = np.isin(centers, centers[split == "train"])
    groupings = (np.full(len(centers), ""), np.char.add(centers, "_"), np.where(seen, "seen_", "heldout_"))
    network, tissue = {}, {}
    for view, grid, slide_map, label, part in zip(views, grids, maps, labels, split, strict=True):
        if part != "test" or label != 1 or not view.annotated("lesion"):
            continue
        truth = rasterize(view.regions, {"lesion"}, slide_map.shape, grid.footprint / side)
        tiles = stitch(grid, np.ones((len(grid), side, side), np.float32), side)
        network[view.record.path.stem] = dice(truth, slide_map >= lesion_threshold)
        tissue[view.record.path.stem] = dice(truth, tiles > 0)
    names = np.array([view.record.path.stem for view in views])
    return SlideEvaluation(scores, thresholds, names, labels, split, groupings, maps, network, tissue, unscreened)


def screening_metrics(evaluation: SlideEvaluation) -> dict[str, float]:
    """Test sensitivity and specificity at each score's validation operating point, and AUC: over all test slides,
    per center, and for the centers seen in training against the held-out ones (a metric a group cannot have,
    e.g. sensitivity without positive slides, is left out); the mean lesion Dice of both maps; the share of test
    slides not screened, and each score's sensitivity counting a positive one of them as missed."""
    test, labels = evaluation.split == "test", evaluation.labels
    unscreened = list(evaluation.unscreened.values())
    result = {"test_share_not_screened": len(unscreened) / (int(test.sum()) + len(unscreened))}
    for prefix, scores in evaluation.scores.items():
        threshold = evaluation.thresholds[prefix]
        result[f"{prefix}threshold"] = threshold
        counted = sensitivity_counting_unscreened(labels[test], scores[test] >= threshold, unscreened)
        if counted is not None:
            result[f"{prefix}sensitivity_counting_unscreened"] = counted
        for names in evaluation.groupings:
            for group, values in per_group(labels[test], scores[test], names[test], threshold).items():
                result.update({f"{prefix}{group}{k}": v for k, v in values.items() if not np.isnan(v)})
    for name in ("lesion_dice", "tissue_mask_lesion_dice"):
        if getattr(evaluation, name):
            result[name] = float(np.mean(list(getattr(evaluation, name).values())))
    return result


def add_screening_units(units: UnitContributions, prefix: str, scores: np.ndarray, labels: np.ndarray,
                        threshold: float, groupings: list[np.ndarray]) -> None:  # fmt: skip
    """Per group of test slides (as the task's metrics name them), the contributions of sensitivity (a detected
    positive slide scores 1), specificity (a cleared negative slide scores 1) and AUC, where the group has the
    slides they need; for a group's AUC, the slides outside it have no label (NaN: neither class), as have units
    that are in no metric of these (`labels` NaN)."""
    called = scores >= threshold
    for names in groupings:
        for group in np.unique(names):
            member = names == group
            positive, negative = member & (labels == 1), member & (labels == 0)
            if positive.any():
                units.add_mean(f"{prefix}{group}sensitivity", called, positive)
            if negative.any():
                units.add_mean(f"{prefix}{group}specificity", ~called, negative)
            if positive.any() and negative.any():
                units.add_auc(f"{prefix}{group}auc", np.where(member, labels, np.nan), scores)


def slide_units(evaluation: SlideEvaluation, per_slide: dict[str, dict[str, float]]) -> UnitContributions:
    """Per test slide (strata: its label), screened or not, the contributions of the screening metrics of every
    group (screened slides only), of each score's sensitivity counting the unscreened positive slides as missed and
    of the share not screened, and of the per-slide means: the lesion Dice of both maps and any other `per_slide`
    metric (name -> slide -> value)."""
    test = evaluation.test_rows()
    unscreened = evaluation.unscreened
    labels = np.concatenate([evaluation.labels[test], list(unscreened.values())]).astype(np.float64)
    names = np.concatenate([evaluation.names[test], list(unscreened)]).astype(str)
    screened = np.arange(len(names)) < len(test)
    units = UnitContributions(unit="slide", ids=names, strata=labels.astype(int))
    groupings = [np.concatenate([group[test], np.full(len(unscreened), "")]) for group in evaluation.groupings]
    for prefix, scores in evaluation.scores.items():
        threshold = evaluation.thresholds[prefix]
        padded = np.concatenate([scores[test], np.full(len(unscreened), -np.inf)])
        add_screening_units(units, prefix, padded, np.where(screened, labels, np.nan), threshold, groupings)
        if (labels == 1).any():
            units.add_mean(f"{prefix}sensitivity_counting_unscreened", padded >= threshold, labels == 1)
    units.add_mean("test_share_not_screened", ~screened)
    means = {
        "lesion_dice": evaluation.lesion_dice,
        "tissue_mask_lesion_dice": evaluation.tissue_mask_lesion_dice,
        **per_slide,
    }
    for name, values in means.items():
        if values:
            units.add_mean(name, [values.get(n, 0.0) for n in names], [n in values for n in names])
    return units


def sensitivity_counting_unscreened(labels: np.ndarray, called: np.ndarray, unscreened: list[int]) -> float | None:
    """The sensitivity over the screened slides (`labels`, decisions `called`) and the slides not screened
    (`unscreened`: their labels), each positive one of which counts as missed; None without positive slides."""
    positives = int(np.sum(labels == 1)) + sum(label == 1 for label in unscreened)
    return float(np.sum(called & (labels == 1)) / positives) if positives else None
