"""TWIN-V2 (Si et al., CIKM 2024) for the shared runner: TWIN's two stages over the user's whole life cycle,
compressed offline into virtual items by hierarchical clustering, with cluster-aware target attention.

A run has three declared stages (common/stages.py), each in its own directory of the run: `embeddings`, the item
embeddings to cluster: TWIN trained first on the latest raw behaviors (the paper clusters "the recommendation
model's item embeddings"), or a TWIN checkpoint given by the user; `clustering`, the offline clustering job,
rebuilt every `life_cycle.rebuild_every_days` days of the sample period from every behavior before its cut-off
(one folder of shards per cut-off in the stage's directory); `twin_v2`, TWIN-V2 trained on the virtual items,
each sample reading the latest clustering built before it. `life_cycle.sequence=raw` has no stages: TWIN alone on
the same data, the paper's baseline.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from common.checkpoint import load_checkpoint
from common.config import bounded, typed_config
from common.seeding import seed_everything
from common.stages import STAGE_FILE, Stage, StageContext, StageOutcome
from common.units import UnitContributions
from papers.twin.clustering import ClusteringConfig
from papers.twin.data import LifelongData, LifelongSplit
from papers.twin.ids import TrainedIds, align_to_trained
from papers.twin.lifecycle import BACKENDS, ClusteringJob, read_virtual_items
from papers.twin.model import TwinModelConfig
from papers.twin.prediction import raw_ids_of_samples
from papers.twin.task import SPLITS, TwinTask, aligned_mean
from papers.twin.trainee import LifelongCTRTrainee, item_embeddings
from papers.twin.virtual_items import VirtualItemHistory, VirtualItemSplit, life_cycle_behaviors, rebuild_cutoffs

SEQUENCES = ("virtual", "raw")
EMBEDDINGS_FILE = "item_embeddings.npy"
BASELINE_OUTPUTS_FILE = "twin_test_outputs.npz"


@dataclass
class LifeCycleConfig:
    sequence: str = bounded("virtual", choices=SEQUENCES)  # virtual: TWIN-V2; raw: TWIN on the latest raw behaviors
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    rebuild_every_days: int | None = bounded(7, minimum=1)  # days between rebuilds (README: why 7); null: once
    backend: str = bounded("process", choices=BACKENDS)
    workers: int = bounded(0, minimum=0)  # 0: all cores
    shard_size: int = bounded(4, minimum=1)  # users per shard file
    embeddings: str = "train"  # train: TWIN first, on the latest embedding_length raw behaviors; or a checkpoint path
    embedding_length: int = bounded(10000, minimum=1)


def clustering_metrics(history: VirtualItemHistory) -> dict[str, float]:
    return {"compression": history.compression(), "cluster_distance": history.cluster_distance()}


class TwinV2Task(TwinTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.life_cycle = typed_config(LifeCycleConfig, cfg.get("life_cycle"), "life_cycle")
        self.clustered_embeddings: np.ndarray | None = None
        self.virtual_items: VirtualItemHistory | None = None
        self.clustering_metrics: dict[str, float] = {}
        self.baseline_metrics: dict[str, float] = {}
        self.baseline_outputs: dict[str, np.ndarray] = {}

    @property
    def model_name(self) -> str:
        return "twin_v2" if self.life_cycle.sequence == "virtual" else "twin"

    def stages(self) -> list[Stage] | None:
        """TWIN-V2's three stages; None for `life_cycle.sequence=raw` (TWIN alone, trained like TWIN's task)."""
        if self.life_cycle.sequence == "raw":
            return None
        return [
            Stage(
                "embeddings",
                "TWIN on the latest raw behaviors, whose item embeddings K_h are clustered",
                self.train_embeddings,
                restore=self.restore_embeddings,
                config=lambda: {"model": asdict(self.embedding_model_config()), "life_cycle": asdict(self.life_cycle)},
            ),
            Stage(
                "clustering",
                "the clustering job at each cut-off, over every user's behaviors before it",
                self.run_clustering,
                restore=self.restore_clustering,
                config=lambda: {
                    **asdict(self.life_cycle.clustering),
                    "rebuild_every_days": self.life_cycle.rebuild_every_days,
                },
            ),
            Stage(
                "twin_v2",
                "TWIN-V2 on the virtual items",
                self.train_twin_v2,
                config=lambda: {"model": asdict(self.model_config)},
            ),
        ]

    def sample_rows(self) -> dict[str, np.ndarray]:
        """The split rows, the logs loaded on first use."""
        if self.data is None:
            self.load_training_samples()
        return self.split_rows

    def embedding_model_config(self) -> TwinModelConfig:
        """TWIN on the latest `embedding_length` raw behaviors: the model whose K_h are clustered."""
        return replace(
            self.model_config, name="twin", gsu_length=self.life_cycle.embedding_length, cluster_size_bias=False
        )

    def train_embeddings(self, context: StageContext) -> StageOutcome:
        """Stage 1: K_h of every item from TWIN trained here (the paper's baseline, kept as twin_auc / twin_gauc),
        or from the checkpoint life_cycle.embeddings names; saved as item_embeddings.npy."""
        rows = self.sample_rows()
        trainee = LifelongCTRTrainee(self.context, self.embedding_model_config(), self.data)
        outcome = StageOutcome()
        if self.life_cycle.embeddings == "train":
            seed_everything(context.seed)  # the same initialisation as a run of TWIN alone
            lengths = (self.life_cycle.embedding_length, self.model_config.short_length)
            result = context.fit(trainee, tuple(LifelongSplit(self.data, rows[name], *lengths) for name in SPLITS))
            self.baseline_metrics, self.baseline_outputs = result.metrics, result.test_outputs
            model, outcome = result.model, StageOutcome(result.metrics, result)
        else:
            model = trainee.build_model()
            model.load_state_dict(load_checkpoint(Path(self.life_cycle.embeddings))["model"])
        self.clustered_embeddings = item_embeddings(model)
        if self.context.is_main:
            np.save(context.directory / EMBEDDINGS_FILE, self.clustered_embeddings)
            np.savez(context.directory / BASELINE_OUTPUTS_FILE, **self.baseline_outputs)
        return outcome

    def restore_embeddings(self, context: StageContext) -> StageOutcome:
        """Stage 1 finished earlier: its K_h, and its TWIN's test metrics and outputs, read back."""
        self.sample_rows()
        self.clustered_embeddings = np.load(context.directory / EMBEDDINGS_FILE)
        self.baseline_metrics = json.loads((context.directory / STAGE_FILE).read_text(encoding="utf-8"))["metrics"]
        with np.load(context.directory / BASELINE_OUTPUTS_FILE) as outputs:
            self.baseline_outputs = {name: outputs[name] for name in outputs.files}
        return StageOutcome(self.baseline_metrics)

    def run_clustering(self, context: StageContext) -> StageOutcome:
        """Stage 2: the clustering job on rank 0 (resuming from the shards already in the stage directory)."""
        self.cluster(self.data, self.clustered_embeddings, context.directory)
        return self.restore_clustering(context)

    def restore_clustering(self, context: StageContext) -> StageOutcome:
        """Every clustering's virtual items, read back from the job's shards."""
        self.virtual_items = self.read_history(self.data, context.directory)
        self.clustering_metrics = clustering_metrics(self.virtual_items)
        return StageOutcome(self.clustering_metrics)

    def train_twin_v2(self, context: StageContext) -> StageOutcome:
        """Stage 3: TWIN-V2 on the virtual items, initialised from the run's seed whatever ran before."""
        trainee = LifelongCTRTrainee(self.context, self.model_config, self.data, self.clustering_metrics, "twin_v2")
        seed_everything(context.seed)
        result = context.fit(trainee, self.virtual_item_splits(self.sample_rows(), self.virtual_items))
        return StageOutcome(result.metrics, result)

    def cluster(self, data: LifelongData, embeddings: np.ndarray, output: Path) -> None:
        """Run the clustering job of `data`'s users at every cut-off on rank 0, into `output`/cutoff_<c>/; every
        rank waits for it. Finished cut-offs and shards are skipped (resume)."""
        if self.context.is_main:
            settings = self.life_cycle
            cutoffs = rebuild_cutoffs(data, settings.rebuild_every_days)
            for index, cutoff in enumerate(cutoffs):
                job = ClusteringJob(
                    output / f"cutoff_{index:03d}", settings.clustering, settings.backend, settings.workers,
                    settings.shard_size, label=f"cut-off {index + 1}/{len(cutoffs)}",
                )  # fmt: skip
                users = len(np.unique(data.behavior_user[data.behavior_time < cutoff]))
                job.run(life_cycle_behaviors(data, int(cutoff)), embeddings, total=users)
        self.context.barrier()

    def read_history(self, data: LifelongData, output: Path) -> VirtualItemHistory:
        """The clusterings `cluster` wrote into `output`, as one history."""
        cutoffs = rebuild_cutoffs(data, self.life_cycle.rebuild_every_days)
        shards = [sorted((output / f"cutoff_{index:03d}").glob("shard_*.npz")) for index in range(len(cutoffs))]
        return VirtualItemHistory.from_tables(
            [read_virtual_items(files) for files in shards], data.vocabulary.users, cutoffs
        )

    def virtual_item_splits(self, rows: dict[str, np.ndarray], history: VirtualItemHistory) -> tuple:
        lengths = (self.model_config.gsu_length, self.model_config.short_length)
        return tuple(VirtualItemSplit(self.data, rows[name], *lengths, history=history) for name in SPLITS)

    def predict_new_data(self, trained_run: Path, output_dir: Path) -> dict[str, float]:
        """TWIN-V2 on new data: its users' life cycles clustered again (into output_dir/clusters/) with the trained
        run's item embeddings, then scored by the trained TWIN-V2; a `sequence=raw` run predicts as TWIN."""
        if self.life_cycle.sequence == "raw":
            return super().predict_new_data(trained_run, output_dir)
        trained = TrainedIds.load(trained_run)
        rows = self.load_samples()["test"]
        raw_ids = raw_ids_of_samples(self.data.samples, rows, self.data_ids)
        self.data = align_to_trained(self.data, self.data_ids, trained)
        clusters = output_dir / "clusters"
        self.cluster(self.data, np.load(trained_run / "embeddings" / EMBEDDINGS_FILE), clusters)
        history = self.read_history(self.data, clusters)
        metrics = clustering_metrics(history)
        trainee = LifelongCTRTrainee(self.context, self.model_config, self.data, metrics, "twin_v2")
        split = self.virtual_item_splits({name: rows for name in SPLITS}, history)[2]
        return self.score_and_write(trainee, trained_run / "twin_v2", split, raw_ids, output_dir)

    def bench(self):
        from papers.twin.bench_v2 import TwinV2BenchConfig, run_benchmarks
        from papers.twin.data import COMPLETION_BUCKETS, TIME_SINCE_BUCKETS

        settings = typed_config(TwinV2BenchConfig, self.cfg.get("bench_v2"), "bench_v2")
        cross_sizes = (TIME_SINCE_BUCKETS, COMPLETION_BUCKETS, 7, 3, 3)  # the default data's vocabularies
        return run_benchmarks(settings, self.life_cycle.clustering, self.model_config, cross_sizes)

    def test_units(self, outputs: dict[str, np.ndarray]) -> UnitContributions:
        """TWIN's per-user contributions, plus, when stage (1) trained TWIN in this run, that TWIN's GAUC and the
        GAUC gain over the same users with the same weights (per user: TWIN-V2's AUC minus TWIN's)."""
        units = super().test_units(outputs)
        if not self.baseline_outputs:
            return units
        baseline = super().test_units(self.baseline_outputs)
        twin_values, twin_weights = aligned_mean(baseline, "gauc", units.ids)
        units.add_mean("twin_gauc", twin_values, twin_weights)
        units.add_mean("gauc_gain", units.metrics["gauc"].first - twin_values, twin_weights)
        return units

    def record_metrics(self, test_metrics):
        """Adds, when stage (1) trained TWIN in this run, that TWIN's test AUC and GAUC (the paper's baseline:
        TWIN on the latest raw behaviors, same data and seed) and TWIN-V2's gain over it."""
        if not self.baseline_metrics:
            return test_metrics
        baseline = {f"twin_{name}": self.baseline_metrics[name] for name in ("auc", "gauc")}
        gains = {f"{name}_gain": test_metrics[name] - self.baseline_metrics[name] for name in ("auc", "gauc")}
        return {**test_metrics, **baseline, **gains}
