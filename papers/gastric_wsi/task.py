"""Gastric WSI screening (Yu et al., arXiv 1910.03729) for the shared runner, in three stages, one per network.

1. `tissue`: every slide's thumbnail and annotations are read; network 1 is fitted on the training slides'
   annotated tissue and gives each slide's tissue mask (or Otsu's mask is used, `pipeline.tissue=otsu`). Its
   weights and the masks are kept in the stage directory.
2. `patch`: the tissue tiles are read at the configured magnification, each labelled lesion when enough of it is;
   the shared Trainer fits network 2, the multi-task patch network, on the training slides' tiles (validation: the
   validation slides' tiles, patch AUC and Dice) and runs it over every slide's tiles.
3. `slide`: network 3 is fitted on the training slides' patch summaries; the operating point is chosen on the
   validation slides; sensitivity, specificity and AUC on the test slides (also per center, and for max-pooling of
   the patch scores), and lesion Dice on the annotated positive test slides; their per-slide contributions go to
   the run's units file. Its weights and operating points are kept in the stage directory.

Every slide gets a row in <run>/slides.csv (slide_status.py): a slide that cannot be screened (unreadable, without
a usable resolution, without tissue) is a skipped or no_tissue row saying why, and the test metrics count the test
slides not screened; the rest run. A no-learning row (`scorer=`,
no_learning.py) tiles Otsu's tissue and trains none of the three networks: its slide score is its highest patch
score. mode=predict screens a folder of slides with the three trained networks (screen_folder.py).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.atomic_files import write_json_atomic
from common.config import bounded, require_choice, typed_config
from common.errors import ConfigError, DatasetError
from common.metrics.screening import OPERATING_RULES
from common.metrics.segmentation import dice
from common.stages import STAGE_FILE, Stage, StageContext, StageOutcome
from common.task import PaperTask
from common.trainer import TrainingResult
from common.units import UnitContributions
from papers.gastric_wsi.annotations import AnnotationClasses
from papers.gastric_wsi.data import SPLITS, SlideRecord, read_slide_table, screening_records
from papers.gastric_wsi.no_learning import ORACLE, SCORERS, TRIVIAL_SCORERS, oracle_tiles
from papers.gastric_wsi.patch_network import MASK_STRIDE, PatchNetConfig, lesion_targets
from papers.gastric_wsi.patch_trainee import PatchTrainee, TileSource, patch_metrics
from papers.gastric_wsi.screen_folder import FolderSettings, TrainedNetworks, folder_metrics, screen_folder
from papers.gastric_wsi.screening import (
    SlideTiles,
    SlideView,
    on_thumbnail,
    tile_slide,
    view_slide,
    write_slide_outputs,
)
from papers.gastric_wsi.slide_evaluation import (
    AGGREGATOR_PREFIXES,
    MAX_POOL_PREFIX,
    SlideEvaluation,
    evaluate_slides,
    screening_metrics,
    slide_units,
    summarize_outputs,
)
from papers.gastric_wsi.slide_network import SlideNetConfig, slide_scores, train_slide_net
from papers.gastric_wsi.slide_status import NO_TISSUE, SCREENED, SKIPPED, SlideRow, write_slides_csv
from papers.gastric_wsi.slides import Resolution
from papers.gastric_wsi.stain import StainAugmenter, StainConfig, StainNormalizer
from papers.gastric_wsi.stored_networks import save_operating_points, save_weights
from papers.gastric_wsi.synthetic import SyntheticGastricConfig, ensure_dataset
from papers.gastric_wsi.tile_store import TILES_DIR, StackedRows
from papers.gastric_wsi.tiling import NoTissueError, TilingConfig
from papers.gastric_wsi.tissue import (
    OtsuConfig,
    TissueNetConfig,
    clean_tissue,
    network_tissue_mask,
    otsu_tissue_mask,
    train_tissue_net,
)

DATASETS = ("synthetic_gastric", "slides")
TISSUE_METHODS = ("network", "otsu")
AGGREGATORS = tuple(AGGREGATOR_PREFIXES)
TISSUE_MASKS_FILE = "tissue_masks.npz"  # the tissue stage's masks, by slide name
TISSUE_DICE_FILE = "tissue_dice.json"  # and the per-slide tissue Dice of each method


@dataclass
class GastricModelConfig:
    patch: PatchNetConfig = field(default_factory=PatchNetConfig)  # network 2


@dataclass
class GastricDataConfig:
    name: str = bounded("synthetic_gastric", choices=DATASETS)
    root: str | None = None  # a slide folder with a label CSV; never downloaded
    labels: str = "labels.csv"  # under root: slide, label (0/1), split (train/val/test)[, center]
    slides: str = "slides"  # folder under root holding the slide files
    annotations: str | None = "annotations"  # folder under root with <slide stem>.geojson / .xml, or null
    mpp_override: float | None = bounded(None, above=0.0)  # µm/px of every slide, over its metadata (labels.csv's
    # mpp column wins over this)
    default_mpp: float | None = bounded(None, above=0.0)  # µm/px of slides with neither mpp nor objective power
    mpp_range: list[float] = bounded(default_factory=lambda: [0.1, 20.0], above=0.0)  # plausible metadata µm/px
    classes: AnnotationClasses = field(default_factory=AnnotationClasses)  # annotation class names -> targets
    cache_dir: str = ".cache/reprozoo"
    data_card: str = "data_cards/synthetic_gastric.md"
    generator: SyntheticGastricConfig = field(default_factory=SyntheticGastricConfig)


@dataclass
class PipelineConfig:
    tissue: str = bounded("network", choices=TISSUE_METHODS)  # network 1 (trained on annotated tissue) | otsu
    tissue_net: TissueNetConfig = field(default_factory=TissueNetConfig)
    otsu: OtsuConfig = field(default_factory=OtsuConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)
    stain: StainConfig = field(default_factory=StainConfig)  # Macenko normalization / augmentation (torchstain)
    positive_tile_fraction: float = bounded(0.01, above=0.0, maximum=1.0)  # lesion share making a lesion tile
    dihedral_augment: bool = True  # random 90° turns and mirrors of the training tiles with their masks
    aggregator: str = bounded("mlp", choices=AGGREGATORS)  # the decision's score: mlp (network 3) | max
    slide_net: SlideNetConfig = field(default_factory=SlideNetConfig)
    operating_rule: str = bounded("youden", choices=OPERATING_RULES)  # youden | sensitivity
    min_sensitivity: float = bounded(0.95, minimum=0.0, maximum=1.0)  # for operating_rule=sensitivity
    lesion_threshold: float = bounded(0.5, above=0.0, below=1.0)  # lesion probability a heatmap pixel is lesion at


class GastricWSITask(PaperTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.model_config = typed_config(GastricModelConfig, cfg.model, "model").patch
        self.data_config = typed_config(GastricDataConfig, cfg.data, "data")
        self.pipeline = typed_config(PipelineConfig, cfg.pipeline, "pipeline")
        self.seed = int(cfg.seed)
        self.no_learning = bool(cfg.get("scorer"))
        self.trainee = PatchTrainee(context, self.model_config, self.pipeline.lesion_threshold)
        self.thumbnails: list[SlideView] | None = None  # every slide whose thumbnail could be read
        self.tissue_masks: dict[str, np.ndarray] = {}  # slide name -> its tissue mask, from the tissue stage
        self.views: list[SlideView] = []  # the slides read in full (thumbnail and tiles), screened
        self.slide_tiles: list[SlideTiles] = []
        self.rows: dict[str, SlideRow] = {}  # slide file name -> its slides.csv row, in the label table's order
        self.tissue_dice: dict[str, dict[str, float]] = {}  # tissue_dice_<method> -> slide name -> Dice
        self.patch_result: TrainingResult | None = None
        self.evaluation: SlideEvaluation | None = None
        self.slide_metrics: dict[str, float] = {}
        self.normalizer: StainNormalizer | None = None  # fitted on the training tiles when pipeline.stain.normalize

    @property
    def model_name(self) -> str:
        return self.trainee.model_name

    def _root(self) -> Path:
        return self.generated_or_given_root("synthetic_gastric", ensure_dataset)

    def prepare_data(self) -> None:
        self._root()

    @property
    def resolution(self) -> Resolution:
        config = self.data_config
        if len(config.mpp_range) != 2 or config.mpp_range[0] >= config.mpp_range[1]:
            raise ConfigError(f"Bad config value data.mpp_range={config.mpp_range!r}: it must be [lowest, highest].")
        return Resolution(config.mpp_override, config.default_mpp, tuple(config.mpp_range))

    def _status(self, record: SlideRecord, status: str, reason: str = "", warnings: str = "") -> None:
        self.rows[record.path.name] = SlideRow(record.path.name, record.split, record.label, status, reason, warnings)
        if status != SCREENED and self.context.is_main:
            tqdm.write(f"{status} slide {record.path}: {reason}", file=sys.stderr)

    # the stages

    def stages(self) -> list[Stage]:
        pipeline = self.pipeline
        return [
            Stage("tissue", "network 1: tissue segmentation on the training slides' thumbnails", self._run_tissue,
                  restore=self._restore_tissue,
                  config=lambda: {"tissue": pipeline.tissue, "tissue_net": asdict(pipeline.tissue_net),
                                  "otsu": asdict(pipeline.otsu)}),
            Stage("patch", "network 2: the multi-task patch network on the training slides' tissue tiles",
                  self._run_patch,
                  config=lambda: {"model": asdict(self.model_config), "tiling": asdict(pipeline.tiling),
                                  "stain": asdict(pipeline.stain),
                                  "positive_tile_fraction": pipeline.positive_tile_fraction}),
            Stage("slide", "network 3: the slide MLP on the training slides' patch outputs; the test slides screened",
                  self._run_slide,
                  config=lambda: {"slide_net": asdict(pipeline.slide_net), "aggregator": pipeline.aggregator,
                                  "operating_rule": pipeline.operating_rule,
                                  "min_sensitivity": pipeline.min_sensitivity,
                                  "lesion_threshold": pipeline.lesion_threshold}),
        ]  # fmt: skip

    def _run_tissue(self, context: StageContext) -> StageOutcome:
        """Stage 1: network 1 fitted where training slides have tissue annotations (its weights saved), every
        slide's tissue mask, and both methods' tissue Dice on the annotated test slides."""
        views = self._read_thumbnails()
        masks = self._tissue_masks(views, context.directory)
        self.tissue_masks = {view.record.path.stem: mask for view, mask in zip(views, masks, strict=True)}
        if self.context.is_main:
            np.savez_compressed(context.directory / TISSUE_MASKS_FILE, **self.tissue_masks)
            write_json_atomic(context.directory / TISSUE_DICE_FILE, self.tissue_dice)
        return StageOutcome(self._mean_tissue_dice(self.tissue_dice))

    def _restore_tissue(self, context: StageContext) -> StageOutcome:
        """Stage 1 finished earlier: the masks and tissue Dice it kept."""
        self._read_thumbnails()
        with np.load(context.directory / TISSUE_MASKS_FILE) as saved:
            self.tissue_masks = {name: saved[name] for name in saved.files}
        self.tissue_dice = json.loads((context.directory / TISSUE_DICE_FILE).read_text())
        return StageOutcome(json.loads((context.directory / STAGE_FILE).read_text())["metrics"])

    def _run_patch(self, context: StageContext) -> StageOutcome:
        """Stage 2: network 2 by the shared Trainer; its test pass covers every slide's tiles. With stain
        normalization, its reference is kept beside network 2's weights."""
        splits = self.load_data()
        if self.normalizer is not None and self.context.is_main:
            self.normalizer.save(context.directory)
        self.patch_result = context.fit(self.trainee, splits)
        return StageOutcome(self.patch_result.metrics, self.patch_result)

    def _run_slide(self, context: StageContext) -> StageOutcome:
        """Stage 3: network 3 on the training slides' summaries (weights saved), the operating points on the
        validation slides (saved) and the screening metrics of the test slides."""
        config = self.pipeline.slide_net
        grids = [tiles.grid for tiles in self.slide_tiles]
        summaries = summarize_outputs(self.patch_result.test_outputs, grids, self.pipeline.lesion_threshold, config)
        features = np.stack([summary.features for summary in summaries])
        labels = np.array([view.record.label for view in self.views])
        train = np.array([view.record.split == "train" for view in self.views])
        net = train_slide_net(features[train], labels[train], config, self.seed)
        scores = {"": slide_scores(net, features), MAX_POOL_PREFIX: np.array([s.max_score for s in summaries])}
        self.evaluation = self._evaluation(scores, [summary.lesion_map for summary in summaries])
        self.slide_metrics = screening_metrics(self.evaluation)
        if self.context.is_main:
            save_weights(net, context.directory)
            save_operating_points(self.evaluation.thresholds, context.directory)
        return StageOutcome(self.slide_metrics)

    def _evaluation(self, scores: dict[str, np.ndarray], maps: list[np.ndarray]) -> SlideEvaluation:
        pipeline, grids = self.pipeline, [tiles.grid for tiles in self.slide_tiles]
        side = pipeline.tiling.size // MASK_STRIDE
        unscreened = {Path(row.slide).stem: row.label for row in self.rows.values()
                      if row.split == "test" and row.status != SCREENED}  # fmt: skip
        return evaluate_slides(scores, self.views, grids, maps, side, pipeline.operating_rule,
                               pipeline.min_sensitivity, pipeline.lesion_threshold, unscreened)  # fmt: skip

    # slides, tissue and tiles

    def _read_thumbnails(self) -> list[SlideView]:
        if self.thumbnails is None:
            config, root = self.data_config, self._root()
            annotations = root / config.annotations if config.annotations else None
            records = read_slide_table(root / config.labels, root / config.slides, annotations, config.data_card)
            self.thumbnails = []
            for record in tqdm(records, desc="thumbnails", disable=not self.context.is_main):
                try:
                    view = view_slide(record, self.pipeline.tiling, self.resolution, config.classes)
                except DatasetError as error:
                    self._status(record, SKIPPED, str(error))
                    continue
                self.thumbnails.append(view)
                self._status(record, SCREENED, warnings=self._warnings(view))
        return self.thumbnails

    @staticmethod
    def _warnings(view: SlideView) -> str:
        """What reading the slide left out: skipped annotation features, a positive slide's missing lesions."""
        warnings = [view.annotations.warning()]
        if view.record.label == 1 and view.record.split != "test" and not view.annotated("lesion"):
            warnings.append("positive slide without lesion annotations: no tiles of it in patch training")
        return "; ".join(warning for warning in warnings if warning)

    def load_data(self):
        """The tiles of every readable slide (on tissue from the tissue stage, or Otsu's on a no-learning row):
        the training and validation slides' known tiles, and every slide's for the test pass."""
        views = self._read_thumbnails()
        config = self.data_config
        for view in tqdm(views, desc="tiles", disable=not self.context.is_main):
            name = view.record.path.stem
            tissue = self.tissue_masks.get(name)
            if tissue is None:
                tissue = otsu_tissue_mask(view.thumbnail, self.pipeline.otsu, view.thumbnail_mpp)
            try:
                tiles = tile_slide(view, tissue, self.pipeline.tiling, self.run_dir / TILES_DIR)
            except DatasetError as error:
                self._status(view.record, NO_TISSUE if isinstance(error, NoTissueError) else SKIPPED, str(error))
                continue
            self.views.append(view)
            self.slide_tiles.append(tiles)
        for split in SPLITS:
            if not any(view.record.split == split for view in self.views):
                raise DatasetError(f"no readable slide is in the {split} split of {self._root() / config.labels}.")
        self._normalize_stain()
        augment = StainAugmenter(self.pipeline.stain) if self.pipeline.stain.augment else None
        train = self._source({"train"}, True, augment, self.pipeline.dihedral_augment)
        return train, self._source({"val"}, True), self._source(set(SPLITS), False)

    def _normalize_stain(self) -> None:
        """With pipeline.stain.normalize: fit the reference on the training slides' tiles, re-render every tile."""
        config = self.pipeline.stain
        if not config.normalize:
            return
        train = [tiles.tiles for view, tiles in zip(self.views, self.slide_tiles, strict=True)
                 if view.record.split == "train"]  # fmt: skip
        self.normalizer = StainNormalizer.fit(StackedRows(train), config.reference_tiles, self.seed)
        chunk = self.pipeline.tiling.chunk
        for tiles in tqdm(self.slide_tiles, desc="stain normalization", disable=not self.context.is_main):
            for start in range(0, len(tiles.tiles), chunk):  # re-rendered in place, on disk
                tiles.tiles[start : start + chunk] = self.normalizer(tiles.tiles[start : start + chunk])

    def _tissue_masks(self, views: list[SlideView], directory: Path) -> list[np.ndarray]:
        """Each slide's tissue mask at its thumbnail level: network 1's (its weights saved in `directory`) or
        Otsu's. Where annotated tissue exists on test slides, both methods' Dice against it is kept per slide."""
        config = self.pipeline.otsu
        otsu = [otsu_tissue_mask(view.thumbnail, config, view.thumbnail_mpp) for view in views]
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
            if self.context.is_main:
                save_weights(net, directory)
            network = [clean_tissue(network_tissue_mask(net, v.thumbnail), v.thumbnail, config, v.thumbnail_mpp)
                       for v in views]  # fmt: skip
        tested = [i for i, v in enumerate(views) if v.record.split == "test" and v.annotated("tissue")]
        truth = {i: views[i].mask("tissue") for i in tested}
        for method, masks in (("otsu", otsu), ("network", network)):
            if masks is not None and tested:
                dices = {views[i].record.path.stem: dice(truth[i], masks[i]) for i in tested}
                self.tissue_dice[f"tissue_dice_{method}"] = dices
        return network if self.pipeline.tissue == "network" else otsu

    @staticmethod
    def _mean_tissue_dice(tissue_dice: dict[str, dict[str, float]]) -> dict[str, float]:
        return {name: float(np.mean(list(dices.values()))) for name, dices in tissue_dice.items()}

    def _screened_tissue_dice(self) -> dict[str, dict[str, float]]:
        """The per-slide tissue Dice of each method over the slides that were screened (read in full)."""
        screened = {view.record.path.stem for view in self.views}
        kept = {name: {s: d for s, d in dices.items() if s in screened} for name, dices in self.tissue_dice.items()}
        return {name: dices for name, dices in kept.items() if dices}

    def _source(self, splits: set[str], labelled_only: bool, augment=None, turn: bool = False) -> TileSource:
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
        pixels = {name: StackedRows(parts.pop(name)) for name in ("tiles", "masks")}  # on disk, read per batch
        columns = {name: np.concatenate(values) for name, values in parts.items()}
        return TileSource(**pixels, **columns, augment=augment, turn=turn)

    # network 2's training logic lives in its trainee; the task's own metrics score a no-learning row

    def build_model(self):
        return self.trainee.build_model()

    def loss(self, model, batch):
        return self.trainee.loss(model, batch)

    def predict(self, model, batch):
        return self.trainee.predict(model, batch)

    def metrics(self, outputs):
        """A no-learning row's metrics: patch AUC and Dice, and in the test pass (every split present) the
        screening metrics of its slide scores, the highest patch score of each slide."""
        result = patch_metrics(outputs, self.pipeline.lesion_threshold)
        if set(np.unique(outputs["split"]).astype(int)) == set(range(len(SPLITS))):
            grids = [tiles.grid for tiles in self.slide_tiles]
            summaries = summarize_outputs(outputs, grids, self.pipeline.lesion_threshold, self.pipeline.slide_net)
            scores = {"": np.array([summary.max_score for summary in summaries])}
            self.evaluation = self._evaluation(scores, [summary.lesion_map for summary in summaries])
            result.update(screening_metrics(self.evaluation))
        return result

    def test_units(self, outputs) -> UnitContributions | None:
        """Per test slide (strata: its label), the contributions of the screening metrics of every group (AUC over
        the group's slides; sensitivity and specificity as means over its positive and negative slides, at the
        validation operating point) and of the per-slide means (lesion and tissue Dice). Patch AUC and patch Dice
        pool the tiles of every split, so they have none."""
        if self.evaluation is None:
            return None
        return slide_units(self.evaluation, self._screened_tissue_dice())

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
            probability[rows], lesion[rows] = scorer(view, grid, side, self.pipeline.otsu)
        bookkeeping = {key: getattr(split, key).astype(np.float32) for key in ("slide", "split", "known")}
        return {
            "probability": probability,
            "lesion_map": lesion.reshape(len(split), -1),
            "truth_map": truth.reshape(len(split), -1),
            "label": split.labels.astype(np.float32),
            **bookkeeping,
        }

    def record_metrics(self, test_metrics):
        statuses = [row.status for row in self.rows.values()]
        counts = {f"slides_{status}": float(statuses.count(status)) for status in (SCREENED, SKIPPED, NO_TISSUE)}
        unscreened = [row for row in self.rows.values() if row.split == "test" and row.status != SCREENED]
        counts["test_slides_not_screened"] = float(len(unscreened))
        tissue = self._mean_tissue_dice(self._screened_tissue_dice())
        return {**test_metrics, **self.slide_metrics, **tissue, **counts}

    def write_outputs(self, model, run_dir: Path) -> dict[str, Path]:
        """<run>/slides.csv (every slide's status, and the screened slides' scores and decisions); per test slide
        heatmap, overlay and lesion-mask PNGs in <run>/screening, and screening.csv."""
        if self.evaluation is None:
            write_slides_csv(run_dir / "slides.csv", list(self.rows.values()))
            return {}
        evaluation = self.evaluation
        decision_prefix = "" if self.no_learning else AGGREGATOR_PREFIXES[self.pipeline.aggregator]
        scores, threshold = evaluation.scores[decision_prefix], evaluation.thresholds[decision_prefix]
        for view, score in zip(self.views, scores, strict=True):
            row = self.rows[view.record.path.name]
            row.score, row.prediction = float(score), "positive" if score >= threshold else "negative"
        write_slides_csv(run_dir / "slides.csv", list(self.rows.values()))
        folder = run_dir / "screening"
        images, lines = {}, ["slide,center,label,score,decision"]
        for index in evaluation.test_rows():
            view, row = self.views[index], self.rows[self.views[index].record.path.name]
            probability = on_thumbnail(view, self.slide_tiles[index].grid, evaluation.maps[index])
            caption = f"{view.record.path.stem}: {row.score:.2f} {row.prediction} (label {view.record.label})"
            paths = write_slide_outputs(folder, view, probability, self.pipeline.lesion_threshold, caption)
            if len(images) < 4:
                images[f"screening/{view.record.path.stem}"] = paths["overlay"]
            lines.append(f"{view.record.path.name},{view.record.center},{view.record.label},{row.score:.4f},"
                         f"{row.prediction}")  # fmt: skip
        if len(lines) > 1:
            (folder / "screening.csv").write_text("\n".join(lines) + "\n")
        return images

    # mode=predict

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """Screen every slide of this run's folder (its label table's, or every file in its slides folder) with
        the trained run's three networks: slides.csv, and per slide a heatmap, an overlay and a QuPath GeoJSON of
        the predicted lesions in output_dir/screening; a slide whose outputs exist is not screened again on
        resume=true. Metrics (AUC, sensitivity, specificity, lesion Dice) over the slides with labels."""
        if not self.context.is_main:
            return {}
        config, root = self.data_config, self._root()
        annotations = root / config.annotations if config.annotations else None
        records = screening_records(root / config.labels, root / config.slides, annotations)
        networks = TrainedNetworks.load(Path(trained_run), self.pipeline, self.model_config, self.context.device)
        settings = FolderSettings(self.resolution, config.classes)
        rows = screen_folder(records, networks, settings, output_dir, bool(self.cfg.resume))
        return folder_metrics(rows, networks.threshold)

    def bench(self):
        from papers.gastric_wsi.bench import GastricBenchConfig, run_benchmarks

        return run_benchmarks(self, typed_config(GastricBenchConfig, self.cfg.get("bench"), "bench"))
