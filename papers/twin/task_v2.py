"""TWIN-V2 (Si et al., CIKM 2024) for the shared runner: TWIN's two stages over the user's whole life cycle,
compressed offline into virtual items by hierarchical clustering, with cluster-aware target attention.

A run has three stages: (1) the item embeddings to cluster: TWIN trained first on the latest raw behaviors
(the paper clusters "the recommendation model's item embeddings"), or a TWIN checkpoint given by the user;
(2) the clustering job over every user's behaviors before the first sample; (3) TWIN-V2 trained on the
virtual items. `life_cycle.sequence=raw` skips (1) and (2): TWIN on the same data, the paper's baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from common.config import require_choice, typed_config
from common.logging import NullLogger
from common.trainer import Trainer, TrainerConfig
from common.units import UnitContributions
from papers.twin.clustering import METHODS, ClusteringConfig
from papers.twin.lifecycle import BACKENDS, ClusteringJob, read_virtual_items
from papers.twin.task import SPLITS, TwinTask, aligned_mean
from papers.twin.virtual_items import VirtualItemHistory, VirtualItemSplit, life_cycle_behaviors

SEQUENCES = ("virtual", "raw")


@dataclass
class LifeCycleConfig:
    sequence: str = "virtual"  # virtual: TWIN-V2 on clustered virtual items; raw: TWIN on the latest raw behaviors
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    backend: str = "process"  # serial | process | ray
    workers: int = 0  # 0: all cores
    shard_size: int = 4  # users per shard file
    embeddings: str = "train"  # train: TWIN first, on the latest embedding_length raw behaviors; or a checkpoint path
    embedding_length: int = 10000


class TwinV2Task(TwinTask):
    def __init__(self, cfg, context, run_dir: Path):
        super().__init__(cfg, context, run_dir)
        self.life_cycle = typed_config(LifeCycleConfig, cfg.get("life_cycle"), "life_cycle")
        require_choice(self.life_cycle.sequence, SEQUENCES, "life_cycle.sequence")
        require_choice(self.life_cycle.backend, BACKENDS, "life_cycle.backend")
        require_choice(self.life_cycle.clustering.method, METHODS, "life_cycle.clustering.method")
        self.clustering_metrics: dict[str, float] = {}
        self.baseline_metrics: dict[str, float] = {}
        self.baseline_outputs: dict[str, np.ndarray] = {}

    @property
    def model_name(self) -> str:
        return "twin_v2" if self.life_cycle.sequence == "virtual" else "twin"

    def make_splits(self, rows: dict[str, np.ndarray]):
        if self.life_cycle.sequence == "raw" or self.cfg.get("scorer"):  # a no-learning row trains no TWIN first
            return super().make_splits(rows)
        cutoff = int(self.data.samples["time_ms"].min())
        shards = self.cluster(self.item_embeddings(rows), cutoff)
        history = VirtualItemHistory.from_tables(read_virtual_items(shards), self.data.vocabulary.users, cutoff)
        self.clustering_metrics = {"compression": history.compression(), "cluster_distance": history.cluster_distance()}
        lengths = (self.model_config.gsu_length, self.model_config.short_length)
        return tuple(VirtualItemSplit(self.data, rows[name], *lengths, history=history) for name in SPLITS)

    def embedding_task(self) -> TwinTask:
        """TWIN on the latest raw behaviors, whose item embeddings K_h are clustered."""
        task = TwinTask(self.cfg, self.context, self.run_dir / "embedding_model")
        task.model_config = replace(
            self.model_config, name="twin", gsu_length=self.life_cycle.embedding_length, cluster_size_bias=False
        )
        task.data = self.data
        return task

    def item_embeddings(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """K_h of every item from TWIN: trained here first, or loaded from life_cycle.embeddings=<checkpoint>."""
        task = self.embedding_task()
        if self.life_cycle.embeddings == "train":
            settings = typed_config(TrainerConfig, self.cfg.trainer, "trainer")
            trainer = Trainer(task, settings, int(self.cfg.seed), task.run_dir, NullLogger(), bool(self.cfg.resume))
            result = trainer.fit(*task.make_splits(rows))
            self.baseline_metrics, self.baseline_outputs = result.metrics, result.test_outputs
            model = result.model
        else:
            from common.checkpoint import load_checkpoint

            model = task.build_model()
            model.load_state_dict(load_checkpoint(Path(self.life_cycle.embeddings))["model"])
        with torch.no_grad():
            items = torch.arange(self.data.vocabulary.items, device=next(model.parameters()).device)
            return model.features.inherent(items).float().cpu().numpy()

    def cluster(self, embeddings: np.ndarray, cutoff: int) -> list[Path]:
        """Run the clustering job on rank 0 (resuming from its shards on disk), then read them on every rank."""
        output = self.run_dir / "clusters"
        if self.context.is_main:
            settings = self.life_cycle
            job = ClusteringJob(output, settings.clustering, settings.backend, settings.workers, settings.shard_size)
            users = len(np.unique(self.data.behavior_user[self.data.behavior_time < cutoff]))
            job.run(life_cycle_behaviors(self.data, cutoff), embeddings, total=users)
        self.context.barrier()
        return sorted(output.glob("shard_*.npz"))

    def bench(self):
        from papers.twin.bench_v2 import TwinV2BenchConfig, run_benchmarks
        from papers.twin.data import COMPLETION_BUCKETS, TIME_SINCE_BUCKETS

        settings = typed_config(TwinV2BenchConfig, self.cfg.get("bench_v2"), "bench_v2")
        cross_sizes = (TIME_SINCE_BUCKETS, COMPLETION_BUCKETS, 7, 3, 3)  # the default data's vocabularies
        return run_benchmarks(settings, self.life_cycle.clustering, self.model_config, cross_sizes)

    def metrics(self, outputs):
        return {**super().metrics(outputs), **self.clustering_metrics}

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
