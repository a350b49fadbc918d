"""Gastric WSI screening (Yu et al., arXiv 1910.03729) for the shared runner.

Before training (load_data): every slide's thumbnail and annotations are read; network 1 is fitted on the
training slides' annotated tissue (or Otsu's mask is used) and gives each slide's tissue mask; the tissue
tiles are read at the configured magnification, each labelled lesion when enough of it is. The shared trainer
fits network 2, the multi-task patch network, on the training slides' tiles (validation: the validation
slides' tiles, patch AUC and Dice). The test evaluation runs network 2 over every slide's tiles, fits network 3
on the training slides' features, picks the operating point on the validation slides and reports sensitivity,
specificity and AUC on the test slides (also per center, and for max-pooling of the patch scores), and lesion
Dice on the annotated positive test slides; their per-slide contributions go to the run's units file. A slide
OpenSlide cannot read is reported and left out; the rest run. A no-learning row (`scorer=`, no_learning.py)
tiles Otsu's tissue and trains none of the three networks: its slide score is its highest patch score.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.config import require_choice, typed_config
from common.errors import ConfigError, DatasetError
from common.metrics.ranking import auc
from common.metrics.screening import OPERATING_RULES, operating_point, per_group
from common.metrics.segmentation import dice
from common.task import PaperTask
from common.units import UnitContributions
from papers.gastric_wsi.annotations import rasterize
from papers.gastric_wsi.data import SPLITS, read_slide_table
from papers.gastric_wsi.no_learning import ORACLE, SCORERS, TRIVIAL_SCORERS, oracle_tiles
from papers.gastric_wsi.patch_network import (
    MASK_STRIDE,
    MultiTaskPatchNet,
    PatchNetConfig,
    lesion_targets,
    patch_loss,
    tile_tensor,
)
from papers.gastric_wsi.screening import (
    SlideTiles,
    SlideView,
    on_thumbnail,
    stitch,
    tile_slide,
    view_slide,
    write_slide_outputs,
)
from papers.gastric_wsi.slide_network import SlideNetConfig, slide_features, slide_scores, train_slide_net
from papers.gastric_wsi.slides import SlideReadError
from papers.gastric_wsi.synthetic import SyntheticGastricConfig, ensure_dataset
from papers.gastric_wsi.tiling import TilingConfig
from papers.gastric_wsi.tissue import (
    OtsuConfig,
    TissueNetConfig,
    network_tissue_mask,
    otsu_tissue_mask,
    train_tissue_net,
)

DATASETS = ("synthetic_gastric", "slides")
TISSUE_METHODS = ("network", "otsu")
AGGREGATORS = ("mlp", "max")
AGGREGATOR_PREFIXES = {"mlp": "", "max": "max_pool_"}  # the metric names' prefix of each aggregator's scores


@dataclass
class GastricDataConfig:
    name: str = "synthetic_gastric"
    root: str | None = None  # a slide folder with a label CSV; never downloaded
    labels: str = "labels.csv"  # under root: slide, label (0/1), split (train/val/test)[, center]
    slides: str = "slides"  # folder under root holding the slide files
    annotations: str | None = "annotations"  # folder under root with <slide stem>.geojson / .xml, or null
    default_mpp: float | None = None  # µm/px for slides without resolution metadata
    cache_dir: str = ".cache/reprozoo"
    data_card: str = "data_cards/synthetic_gastric.md"
    generator: SyntheticGastricConfig = field(default_factory=SyntheticGastricConfig)


@dataclass
class PipelineConfig:
    tissue: str = "network"  # network (network 1, trained on annotated tissue) | otsu
    tissue_net: TissueNetConfig = field(default_factory=TissueNetConfig)
    otsu: OtsuConfig = field(default_factory=OtsuConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)
    positive_tile_fraction: float = 0.1  # a tile is a lesion tile when this share of its pixels is lesion
    aggregator: str = "mlp"  # the decision's score: mlp (network 3) | max (highest patch probability)
    slide_net: SlideNetConfig = field(default_factory=SlideNetConfig)
    operating_rule: str = "youden"  # youden | sensitivity (highest threshold keeping min_sensitivity)
    min_sensitivity: float = 0.95
    lesion_threshold: float = 0.5  # lesion probability a heatmap pixel is called lesion at


class TileSource:
    """Tiles of a set of slides with their patch labels and lesion masks; `slide` indexes the task's slides,
    `known` marks the tiles whose masks are known (negative slides, annotated positive ones)."""

    def __init__(self, tiles: np.ndarray, masks: np.ndarray, labels: np.ndarray, slide: np.ndarray, split: np.ndarray,
                 known: np.ndarray):  # fmt: skip
        self.tiles, self.masks, self.labels, self.slide, self.split = tiles, masks, labels, slide, split
        self.known = known

    def __len__(self) -> int:
        return len(self.tiles)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "tiles": tile_tensor(self.tiles[indices]),
            "masks": torch.from_numpy(self.masks[indices].astype(np.float32)),
            "labels": torch.from_numpy(self.labels[indices]).long(),
            "slide": torch.from_numpy(self.slide[indices]),
            "split": torch.from_numpy(self.split[indices]),
            "known": torch.from_numpy(self.known[indices]),
        }


@dataclass
class SlideEvaluation:
    """The test pass at the slide level, one entry per screened slide: its scores by metric prefix ("" for
    network 3's or a no-learning row's, "max_pool_" for max-pooling) with each one's validation operating point,
    label, split, group names (all slides, per center, seen or held-out center) and stitched lesion map; and per
    annotated positive test slide (by name) the Dice of its lesion map and of its tissue tiles."""

    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]
    labels: np.ndarray
    split: np.ndarray
    groupings: tuple[np.ndarray, ...]
    maps: list[np.ndarray]
    lesion_dice: dict[str, float]
    tissue_mask_lesion_dice: dict[str, float]


def add_screening_units(units: UnitContributions, prefix: str, scores: np.ndarray, labels: np.ndarray,
                        threshold: float, groupings: list[np.ndarray]) -> None:  # fmt: skip
    """Per group of test slides (as the task's metrics name them), the contributions of sensitivity (a detected
    positive slide scores 1), specificity (a cleared negative slide scores 1) and AUC, where the group has the
    slides they need; for a group's AUC, the slides outside it have no label (NaN: neither class)."""
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


class GastricWSITask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(PatchNetConfig, cfg.model.patch, "model.patch")
        self.data_config = typed_config(GastricDataConfig, cfg.data, "data")
        self.pipeline = typed_config(PipelineConfig, cfg.pipeline, "pipeline")
        require_choice(self.data_config.name, DATASETS, "data.name")
        require_choice(self.pipeline.tissue, TISSUE_METHODS, "pipeline.tissue")
        require_choice(self.pipeline.aggregator, AGGREGATORS, "pipeline.aggregator")
        require_choice(self.pipeline.operating_rule, OPERATING_RULES, "pipeline.operating_rule")
        self.seed = int(cfg.seed)
        self.no_learning = bool(cfg.get("scorer"))
        self.views: list[SlideView] = []
        self.slide_tiles: list[SlideTiles] = []
        self.skipped: dict[str, str] = {}
        self.tissue_dice: dict[str, dict[str, float]] = {}  # tissue_dice_<method> -> slide name -> Dice
        self.screened: list[dict] = []

    @property
    def model_name(self) -> str:
        return "multitask_patch_net" if self.model_config.segmentation else "classification_patch_net"

    def _root(self) -> Path:
        return self.generated_or_given_root("synthetic_gastric", ensure_dataset)

    def prepare_data(self) -> None:
        self._root()

    def _skip(self, path: Path, error: DatasetError) -> None:
        self.skipped[str(path)] = str(error)
        if self.context.is_main:
            tqdm.write(f"skipped slide {path}: {error}", file=sys.stderr)

    def load_data(self):
        config, root = self.data_config, self._root()
        annotations = root / config.annotations if config.annotations else None
        records = read_slide_table(root / config.labels, root / config.slides, annotations, config.data_card)
        views = []
        for record in tqdm(records, desc="thumbnails", disable=not self.context.is_main):
            try:
                views.append(view_slide(record, self.pipeline.tiling, config.default_mpp))
            except SlideReadError as error:
                self._skip(record.path, error)
        tissue = self._tissue_masks(views)
        for view, mask in tqdm(list(zip(views, tissue, strict=True)), desc="tiles", disable=not self.context.is_main):
            try:
                tiles = tile_slide(view, mask, self.pipeline.tiling, config.default_mpp)
            except SlideReadError as error:
                self._skip(view.record.path, error)
                continue
            self.views.append(view)
            self.slide_tiles.append(tiles)
        for split in SPLITS:
            if not any(view.record.split == split for view in self.views):
                raise DatasetError(f"no readable slide is in the {split} split of {root / config.labels}.")
        return self._source({"train"}, True), self._source({"val"}, True), self._source(set(SPLITS), False)

    def _tissue_masks(self, views: list[SlideView]) -> list[np.ndarray]:
        """Each slide's tissue mask at its thumbnail level: network 1's or Otsu's (always Otsu's on a no-learning
        row, which trains nothing). Where annotated tissue exists on test slides, both methods' Dice against it
        is kept per slide."""
        otsu = [otsu_tissue_mask(view.thumbnail, self.pipeline.otsu) for view in views]
        if self.no_learning:
            return otsu
        network = None
        annotated = [v for v in views if v.record.split == "train" and v.annotated("tissue")]
        if self.pipeline.tissue == "network" and not annotated:
            raise ConfigError(
                "pipeline.tissue=network needs training slides with 'tissue' annotations to fit network 1; none "
                "has any. Set pipeline.tissue=otsu."
            )
        if annotated:
            net = train_tissue_net([v.thumbnail for v in annotated], [v.mask("tissue") for v in annotated],
                                   self.pipeline.tissue_net, self.seed)  # fmt: skip
            network = [network_tissue_mask(net, view.thumbnail) for view in views]
        tested = [i for i, v in enumerate(views) if v.record.split == "test" and v.annotated("tissue")]
        truth = {i: views[i].mask("tissue") for i in tested}
        for method, masks in (("otsu", otsu), ("network", network)):
            if masks is not None and tested:
                dices = {views[i].record.path.stem: dice(truth[i], masks[i]) for i in tested}
                self.tissue_dice[f"tissue_dice_{method}"] = dices
        return network if self.pipeline.tissue == "network" else otsu

    def _screened_tissue_dice(self) -> dict[str, dict[str, float]]:
        """The per-slide tissue Dice of each method over the slides that were screened (read in full)."""
        screened = {view.record.path.stem for view in self.views}
        kept = {name: {s: d for s, d in dices.items() if s in screened} for name, dices in self.tissue_dice.items()}
        return {name: dices for name, dices in kept.items() if dices}

    def _source(self, splits: set[str], labelled_only: bool) -> TileSource:
        """Tiles of the slides in `splits`; for training, only those whose lesion masks are known (negative
        slides, or positive slides with lesion annotations)."""
        parts = {"tiles": [], "masks": [], "labels": [], "slide": [], "split": [], "known": []}
        for index, (view, tiles) in enumerate(zip(self.views, self.slide_tiles, strict=True)):
            known = view.record.label == 0 or view.annotated("lesion")
            if view.record.split not in splits or (labelled_only and not known):
                continue
            fraction = tiles.lesion.reshape(len(tiles.lesion), -1).mean(1) if len(tiles.lesion) else np.zeros(0)
            parts["tiles"].append(tiles.tiles)
            parts["masks"].append(tiles.lesion)
            parts["labels"].append((fraction >= self.pipeline.positive_tile_fraction).astype(np.int64))
            parts["slide"].append(np.full(len(tiles.tiles), index, dtype=np.int64))
            parts["split"].append(np.full(len(tiles.tiles), SPLITS.index(view.record.split), dtype=np.int64))
            parts["known"].append(np.full(len(tiles.tiles), known))
        if not parts["tiles"]:
            raise DatasetError(
                f"no tissue tile in the {'/'.join(sorted(splits))} slides; lower pipeline.tiling.min_tissue."
            )
        return TileSource(**{name: np.concatenate(values) for name, values in parts.items()})

    def build_model(self):
        return MultiTaskPatchNet(self.model_config)

    def loss(self, model, batch):
        return patch_loss(model(batch["tiles"]), batch["labels"], batch["masks"], self.model_config)

    def predict(self, model, batch):
        output = model(batch["tiles"])
        probability = torch.softmax(output["class_logits"].float(), dim=1)[:, 1]
        side = batch["tiles"].shape[-1] // MASK_STRIDE
        if "mask_logits" in output:
            lesion_map = torch.sigmoid(output["mask_logits"].float())
        else:  # classification only: the patch's probability over the whole patch
            lesion_map = probability[:, None, None].expand(-1, side, side)
        truth = lesion_targets(batch["masks"], side)
        return {
            "probability": probability,
            "lesion_map": lesion_map.reshape(len(probability), -1),
            "truth_map": truth.reshape(len(probability), -1),
            "label": batch["labels"].float(),
            "slide": batch["slide"].float(),
            "split": batch["split"].float(),
            "known": batch["known"].float(),
        }

    def metrics(self, outputs):
        """Patch AUC and pixel Dice over the tiles whose masks are known; in the test pass (every split
        present), the slide-level screening metrics too."""
        known = outputs["known"] > 0.5
        labels, lesion = outputs["label"][known], outputs["lesion_map"][known] >= self.pipeline.lesion_threshold
        result = {"patch_dice": dice(outputs["truth_map"][known], lesion)}
        if 0 < labels.sum() < len(labels):
            result["patch_auc"] = auc(labels, outputs["probability"][known])
        if self._is_test_pass(outputs):
            result.update(self._screen(self._evaluate(outputs)))
        return result

    @staticmethod
    def _is_test_pass(outputs) -> bool:
        return set(np.unique(outputs["split"]).astype(int)) == set(range(len(SPLITS)))

    def _evaluate(self, outputs) -> SlideEvaluation:
        """Every slide's features, max-pooled score and stitched lesion map from its tiles' outputs; the slide
        scores and their validation operating points; the lesion Dice of the annotated positive test slides."""
        slides = outputs["slide"].astype(int)
        side = int(round(np.sqrt(outputs["lesion_map"].shape[1])))
        threshold = self.pipeline.lesion_threshold
        features, max_scores, maps = [], [], []
        for index in range(len(self.views)):
            rows = slides == index
            tile_maps = outputs["lesion_map"][rows].reshape(-1, side, side)
            probabilities = outputs["probability"][rows]
            lesion_fraction = float((tile_maps >= threshold).mean()) if len(tile_maps) else 0.0
            features.append(slide_features(probabilities, lesion_fraction, self.pipeline.slide_net))
            max_scores.append(float(probabilities.max()) if len(probabilities) else 0.0)
            maps.append(stitch(self.slide_tiles[index].grid, tile_maps))
        labels = np.array([view.record.label for view in self.views])
        split = np.array([view.record.split for view in self.views])
        scores = self._slide_scores(np.stack(features), np.array(max_scores), labels, split == "train")
        val = split == "val"
        rule, minimum = self.pipeline.operating_rule, self.pipeline.min_sensitivity
        thresholds = {prefix: operating_point(labels[val], s[val], rule, minimum) for prefix, s in scores.items()}
        centers = np.array([view.record.center for view in self.views])
        seen = np.isin(centers, centers[split == "train"])
        groupings = (np.full(len(centers), ""), np.char.add(centers, "_"), np.where(seen, "seen_", "heldout_"))
        network, tissue = self._lesion_dice(maps, labels, split, side)
        return SlideEvaluation(scores, thresholds, labels, split, groupings, maps, network, tissue)

    def _slide_scores(self, features: np.ndarray, max_scores: np.ndarray, labels: np.ndarray,
                      train: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
        """Slide scores by metric prefix: network 3's (fitted on the training slides) and max-pooling's; on a
        no-learning row, which trains nothing, its max-pooled patch scores alone."""
        if self.no_learning:
            return {"": max_scores}
        net = train_slide_net(features[train], labels[train], self.pipeline.slide_net, self.seed)  # network 3
        return {"": slide_scores(net, features), AGGREGATOR_PREFIXES["max"]: max_scores}

    def _screen(self, evaluation: SlideEvaluation) -> dict[str, float]:
        """The screening metrics; keeps the test slides' decisions for the overlays."""
        result = {}
        for prefix, scores in evaluation.scores.items():
            result.update(self._slide_metrics(evaluation, scores, evaluation.thresholds[prefix], prefix))
        for name in ("lesion_dice", "tissue_mask_lesion_dice"):
            if getattr(evaluation, name):
                result[name] = float(np.mean(list(getattr(evaluation, name).values())))
        decision = "" if self.no_learning else AGGREGATOR_PREFIXES[self.pipeline.aggregator]
        scores, threshold = evaluation.scores[decision], evaluation.thresholds[decision]
        self.screened = [
            {"index": i, "score": float(scores[i]), "positive": bool(scores[i] >= threshold), "map": evaluation.maps[i]}
            for i in np.flatnonzero(evaluation.split == "test")
        ]
        return result

    @staticmethod
    def _slide_metrics(evaluation: SlideEvaluation, scores: np.ndarray, threshold: float, prefix: str):
        """Test sensitivity and specificity at the validation operating point, and AUC: over all test slides,
        per center, and for the centers seen in training against the held-out ones (a metric a group cannot
        have, e.g. sensitivity without positive slides, is left out)."""
        test, labels = evaluation.split == "test", evaluation.labels
        result = {f"{prefix}threshold": threshold}
        for names in evaluation.groupings:
            for group, values in per_group(labels[test], scores[test], names[test], threshold).items():
                result.update({f"{prefix}{group}{k}": v for k, v in values.items() if not np.isnan(v)})
        return result

    def _lesion_dice(self, maps: list[np.ndarray], labels: np.ndarray, split: np.ndarray, side: int):
        """Per positive test slide with lesion annotations (by name), the Dice of the predicted lesion map and
        of the tissue-tile mask (the baseline) against the annotated lesions."""
        network, tissue = {}, {}
        for index, slide_map in enumerate(maps):
            view, grid = self.views[index], self.slide_tiles[index].grid
            if split[index] != "test" or labels[index] != 1 or not view.annotated("lesion"):
                continue
            truth = rasterize(view.regions, {"lesion"}, slide_map.shape, grid.footprint / side)
            tiles = stitch(grid, np.ones((len(grid.cells), side, side), np.float32))
            network[view.record.path.stem] = dice(truth, slide_map >= self.pipeline.lesion_threshold)
            tissue[view.record.path.stem] = dice(truth, tiles > 0)
        return network, tissue

    def test_units(self, outputs) -> UnitContributions | None:
        """Per test slide (strata: its label), the contributions of the screening metrics of every group (AUC over
        the group's slides; sensitivity and specificity as means over its positive and negative slides, at the
        validation operating point) and of the per-slide means (lesion and tissue Dice). Patch AUC and patch Dice
        pool the tiles of every split, so they have none."""
        if not self._is_test_pass(outputs):
            return None
        evaluation = self._evaluate(outputs)
        test = np.flatnonzero(evaluation.split == "test")
        labels = evaluation.labels[test]
        names = np.array([self.views[i].record.path.stem for i in test])
        units = UnitContributions(unit="slide", ids=names, strata=labels)
        groupings = [names_of_group[test] for names_of_group in evaluation.groupings]
        for prefix, scores in evaluation.scores.items():
            add_screening_units(units, prefix, scores[test], labels, evaluation.thresholds[prefix], groupings)
        per_slide = {
            "lesion_dice": evaluation.lesion_dice,
            "tissue_mask_lesion_dice": evaluation.tissue_mask_lesion_dice,
            **self._screened_tissue_dice(),
        }
        for name, values in per_slide.items():
            if values:
                units.add_mean(name, [values.get(n, 0.0) for n in names], [n in values for n in names])
        return units

    def no_learning_scorers(self) -> tuple[str, ...]:
        return SCORERS

    def score_without_learning(self, name: str, split: TileSource) -> dict[str, np.ndarray]:
        """Scorer `name`'s patch scores and lesion maps (no_learning.py) for every tile of `split`, beside the
        tiles' ground truth and bookkeeping as `predict` gives them."""
        require_choice(name, SCORERS, "scorer")
        side = self.pipeline.tiling.size // MASK_STRIDE
        probability = np.zeros(len(split), np.float32)
        lesion = np.zeros((len(split), side, side), np.float32)
        truth = np.zeros_like(lesion)
        for index, view in enumerate(self.views):
            rows = np.flatnonzero(split.slide == index)
            truth[rows] = lesion_targets(torch.from_numpy(split.masks[rows]), side).numpy()
            if name == ORACLE:
                probability[rows], lesion[rows] = oracle_tiles(view.record.label, split.labels[rows], truth[rows])
                continue
            grid = self.slide_tiles[index].grid
            scorer = TRIVIAL_SCORERS[name]
            probability[rows], lesion[rows] = scorer(view.thumbnail, view.downsample, grid, side, self.pipeline.otsu)
        bookkeeping = {key: getattr(split, key).astype(np.float32) for key in ("slide", "split", "known")}
        return {
            "probability": probability,
            "lesion_map": lesion.reshape(len(split), -1),
            "truth_map": truth.reshape(len(split), -1),
            "label": split.labels.astype(np.float32),
            **bookkeeping,
        }

    def record_metrics(self, test_metrics):
        counts = {"slides_screened": float(len(self.views)), "slides_skipped": float(len(self.skipped))}
        tissue = {name: float(np.mean(list(dices.values()))) for name, dices in self._screened_tissue_dice().items()}
        return {**test_metrics, **tissue, **counts}

    def write_outputs(self, model, run_dir: Path) -> dict[str, Path]:
        """Per test slide: heatmap, overlay and lesion-mask PNGs in <run>/screening, and screening.csv."""
        folder = run_dir / "screening"
        images, lines = {}, ["slide,center,label,score,decision"]
        for entry in self.screened:
            view = self.views[entry["index"]]
            probability = on_thumbnail(view, self.slide_tiles[entry["index"]].grid, entry["map"])
            decision = "positive" if entry["positive"] else "negative"
            caption = f"{view.record.path.stem}: {entry['score']:.2f} {decision} (label {view.record.label})"
            paths = write_slide_outputs(folder, view, probability, self.pipeline.lesion_threshold, caption)
            if len(images) < 4:
                images[f"screening/{view.record.path.stem}"] = paths["overlay"]
            lines.append(
                f"{view.record.path.name},{view.record.center},{view.record.label},{entry['score']:.4f},{decision}"
            )
        if self.screened:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "screening.csv").write_text("\n".join(lines) + "\n")
        return images

    def bench(self):
        from papers.gastric_wsi.bench import GastricBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(GastricBenchConfig, self.cfg.get("bench"), "bench"))
