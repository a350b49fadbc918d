"""Gastric WSI screening (Yu et al., arXiv 1910.03729) for the shared runner.

Before training (load_data): every slide's thumbnail and annotations are read; network 1 is fitted on the
training slides' annotated tissue (or Otsu's mask is used) and gives each slide's tissue mask; the tissue
tiles are read at the configured magnification, each labelled lesion when enough of it is. The shared trainer
fits network 2, the multi-task patch network, on the training slides' tiles (validation: the validation
slides' tiles, patch AUC and Dice). The test evaluation runs network 2 over every slide's tiles, fits network 3
on the training slides' features, picks the operating point on the validation slides and reports sensitivity,
specificity and AUC on the test slides (also per center, and for max-pooling of the patch scores), and lesion
Dice on the annotated positive test slides. A slide OpenSlide cannot read is reported and left out; the rest run.
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
from papers.gastric_wsi.annotations import rasterize
from papers.gastric_wsi.data import SPLITS, read_slide_table
from papers.gastric_wsi.patch_network import MultiTaskPatchNet, PatchNetConfig, patch_loss, tile_tensor
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
        self.views: list[SlideView] = []
        self.slide_tiles: list[SlideTiles] = []
        self.skipped: dict[str, str] = {}
        self.extra_metrics: dict[str, float] = {}
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
        """Each slide's tissue mask at its thumbnail level: network 1's or Otsu's. Where annotated tissue exists
        on test slides, both methods' Dice against it is recorded."""
        otsu = [otsu_tissue_mask(view.thumbnail, self.pipeline.otsu) for view in views]
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
        if tested:
            truth = {i: views[i].mask("tissue") for i in tested}
            self.extra_metrics["tissue_dice_otsu"] = float(np.mean([dice(truth[i], otsu[i]) for i in tested]))
            if network is not None:
                self.extra_metrics["tissue_dice_network"] = float(np.mean([dice(truth[i], network[i]) for i in tested]))
        return network if self.pipeline.tissue == "network" else otsu

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
        side = batch["tiles"].shape[-1] // 4
        if "mask_logits" in output:
            lesion_map = torch.sigmoid(output["mask_logits"].float())
        else:  # classification only: the patch's probability over the whole patch
            lesion_map = probability[:, None, None].expand(-1, side, side)
        truth = torch.nn.functional.adaptive_avg_pool2d(batch["masks"][:, None], (side, side))[:, 0].round()
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
        """Patch AUC and pixel Dice over the tiles whose masks are known; with every split present (the test
        pass), the slide-level screening metrics too."""
        known = outputs["known"] > 0.5
        labels, lesion = outputs["label"][known], outputs["lesion_map"][known] >= self.pipeline.lesion_threshold
        result = {"patch_dice": dice(outputs["truth_map"][known], lesion)}
        if 0 < labels.sum() < len(labels):
            result["patch_auc"] = auc(labels, outputs["probability"][known])
        if set(np.unique(outputs["split"]).astype(int)) == set(range(len(SPLITS))):
            result.update(self._screen(outputs))
        return result

    def _screen(self, outputs) -> dict[str, float]:
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
        features = np.stack(features)
        labels = np.array([view.record.label for view in self.views])
        split = np.array([view.record.split for view in self.views])
        train = split == "train"
        net = train_slide_net(features[train], labels[train], self.pipeline.slide_net, self.seed)  # network 3
        scores = {"mlp": slide_scores(net, features), "max": np.array(max_scores)}
        result = {}
        for name, prefix in (("mlp", ""), ("max", "max_pool_")):
            result.update(self._slide_metrics(scores[name], labels, split, prefix))
        result.update(self._lesion_dice(maps, labels, split, side))
        decision_scores = scores[self.pipeline.aggregator]
        decision = operating_point(labels[split == "val"], decision_scores[split == "val"],
                                   self.pipeline.operating_rule, self.pipeline.min_sensitivity)  # fmt: skip
        self.screened = [
            {
                "index": i,
                "score": float(decision_scores[i]),
                "positive": bool(decision_scores[i] >= decision),
                "map": maps[i],
            }  # fmt: skip
            for i in np.flatnonzero(split == "test")
        ]
        return result

    def _slide_metrics(self, scores: np.ndarray, labels: np.ndarray, split: np.ndarray, prefix: str):
        """Test sensitivity and specificity at the validation operating point, and AUC: over all test slides,
        per center, and for the centers seen in training against the held-out ones (a metric a group cannot
        have, e.g. sensitivity without positive slides, is left out)."""
        val, test = split == "val", split == "test"
        threshold = operating_point(
            labels[val], scores[val], self.pipeline.operating_rule, self.pipeline.min_sensitivity
        )
        centers = np.array([view.record.center for view in self.views])
        seen = np.isin(centers, centers[split == "train"])
        groupings = (np.full(len(centers), ""), np.char.add(centers, "_"), np.where(seen, "seen_", "heldout_"))
        result = {f"{prefix}threshold": threshold}
        for names in groupings:
            for group, values in per_group(labels[test], scores[test], names[test], threshold).items():
                result.update({f"{prefix}{group}{k}": v for k, v in values.items() if not np.isnan(v)})
        return result

    def _lesion_dice(self, maps: list[np.ndarray], labels: np.ndarray, split: np.ndarray, side: int):
        """Mean Dice of the predicted lesion map and of the tissue-tile mask (the baseline) against the
        annotated lesions, over the positive test slides with lesion annotations."""
        network, tissue = [], []
        for index, slide_map in enumerate(maps):
            view, grid = self.views[index], self.slide_tiles[index].grid
            if split[index] != "test" or labels[index] != 1 or not view.annotated("lesion"):
                continue
            truth = rasterize(view.regions, {"lesion"}, slide_map.shape, grid.footprint / side)
            tiles = stitch(grid, np.ones((len(grid.cells), side, side), np.float32))
            network.append(dice(truth, slide_map >= self.pipeline.lesion_threshold))
            tissue.append(dice(truth, tiles > 0))
        if not network:
            return {}
        return {"lesion_dice": float(np.mean(network)), "tissue_mask_lesion_dice": float(np.mean(tissue))}

    def record_metrics(self, test_metrics):
        counts = {"slides_screened": float(len(self.views)), "slides_skipped": float(len(self.skipped))}
        return {**test_metrics, **self.extra_metrics, **counts}

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
