"""The offline life-cycle clustering job of TWIN-V2: every user's behaviors become virtual items.

The job streams over users in shards, runs the same per-user function (`cluster_user`) in a process pool on
all cores or, for clusters of machines, as Ray tasks, keeps only a bounded number of shards in flight, and
writes each finished shard atomically, so an interrupted job resumes where it stopped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from common.config import require_choice
from papers.twin.clustering import ClusteringConfig, cluster_behaviors

BACKENDS = ("serial", "process", "ray")


@dataclass
class UserBehaviors:
    """One user's behaviors, oldest first: item index, completion rate, and the features a virtual item keeps
    (numeric ones are averaged over a cluster, categorical ones taken from the member nearest its centroid)."""

    user: int
    items: np.ndarray
    completion: np.ndarray
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]


def cluster_user(
    behaviors: UserBehaviors, item_embeddings: np.ndarray, config: ClusteringConfig
) -> dict[str, np.ndarray]:
    """Alg. 1 for one user, as a table of virtual items: item and categorical features of each cluster's
    representative, the mean of each numeric feature, and the size n."""
    virtual = cluster_behaviors(
        item_embeddings[behaviors.items], behaviors.completion, behaviors.numeric, config, key=behaviors.user
    )
    table = {"item": behaviors.items[virtual.representative], "size": virtual.size, "spread": virtual.spread}
    table.update({name: values[virtual.representative] for name, values in behaviors.categorical.items()})
    table.update(virtual.means)
    return table


def cluster_shard(shard: list[UserBehaviors], item_embeddings: np.ndarray, config: ClusteringConfig) -> dict:
    """Virtual items of a shard of users, concatenated, with `user` and per-user `offsets` into them."""
    tables = [cluster_user(behaviors, item_embeddings, config) for behaviors in shard]
    merged = {name: np.concatenate([table[name] for table in tables]) for name in tables[0]}
    merged["user"] = np.array([behaviors.user for behaviors in shard])
    merged["offsets"] = np.concatenate([[0], np.cumsum([len(table["size"]) for table in tables])])
    return merged


def _write_atomic(path: Path, arrays: dict) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
    with os.fdopen(handle, "wb") as stream:
        np.savez(stream, **arrays)
    os.replace(temporary, path)


_worker_state: dict = {}


def _initialise_worker(item_embeddings: np.ndarray, config: ClusteringConfig) -> None:
    """One BLAS thread per worker process: the job is parallel across users, not inside one."""
    from threadpoolctl import threadpool_limits

    _worker_state.update(embeddings=item_embeddings, config=config, threads=threadpool_limits(1))


def _cluster_shard_in_worker(shard: list[UserBehaviors]) -> dict:
    return cluster_shard(shard, _worker_state["embeddings"], _worker_state["config"])


@dataclass
class ClusteringJob:
    output_dir: Path
    config: ClusteringConfig
    backend: str = "process"
    workers: int = 0  # 0: all cores
    shard_size: int = 16  # users per output file
    progress: bool = True
    label: str = ""  # added to the progress bar's description, e.g. which cut-off

    def shard_path(self, index: int) -> Path:
        return self.output_dir / f"shard_{index:06d}.npz"

    def run(self, users: Iterable[UserBehaviors], item_embeddings: np.ndarray, total: int | None = None) -> list[Path]:
        """Cluster every user; shards already on disk are skipped (resume). Returns the shard files in order."""
        require_choice(self.backend, BACKENDS, "clustering.backend")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        workers = self.workers or os.cpu_count() or 1
        pending = self._pending_shards(users)
        bar = tqdm(
            total=total,
            desc=" ".join(filter(None, (f"cluster users ({self.backend})", self.label))),
            unit="user",
            disable=not self.progress,
        )
        if self.backend == "serial":
            for index, shard in pending:
                self._finish(index, cluster_shard(shard, item_embeddings, self.config), bar, len(shard))
        elif self.backend == "process":
            initargs = (item_embeddings, self.config)
            with ProcessPoolExecutor(workers, initializer=_initialise_worker, initargs=initargs) as pool:
                self._drain(
                    pending,
                    workers,
                    submit=lambda shard: pool.submit(_cluster_shard_in_worker, shard),
                    wait_some=lambda handles: wait(handles, return_when=FIRST_COMPLETED)[0],
                    result=lambda future: future.result(),
                    bar=bar,
                )
        else:
            import ray

            if not ray.is_initialized():
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            embeddings = ray.put(item_embeddings)
            task = ray.remote(cluster_shard)
            self._drain(
                pending,
                workers,
                submit=lambda shard: task.remote(shard, embeddings, self.config),
                wait_some=lambda handles: ray.wait(list(handles), num_returns=1)[0],
                result=ray.get,
                bar=bar,
            )
        bar.close()
        return sorted(self.output_dir.glob("shard_*.npz"))

    def _pending_shards(self, users: Iterable[UserBehaviors]) -> Iterator[tuple[int, list[UserBehaviors]]]:
        iterator, index = iter(users), 0
        while shard := list(islice(iterator, self.shard_size)):
            if not self.shard_path(index).exists():
                yield index, shard
            index += 1

    def _finish(self, index: int, arrays: dict, bar, users: int) -> None:
        _write_atomic(self.shard_path(index), arrays)
        bar.update(users)

    def _drain(self, pending, workers: int, submit, wait_some, result, bar) -> None:
        """Keep at most 2 x `workers` shards in flight, so memory stays bounded however many users stream in;
        write each shard as soon as it is done."""
        in_flight: dict = {}

        def collect(handles) -> None:
            for handle in handles:
                index, users = in_flight.pop(handle)
                self._finish(index, result(handle), bar, users)

        for index, shard in pending:
            in_flight[submit(shard)] = (index, len(shard))
            if len(in_flight) >= 2 * workers:
                collect(wait_some(in_flight))
        while in_flight:
            collect(wait_some(in_flight))


def read_virtual_items(shards: list[Path]) -> dict[int, dict[str, np.ndarray]]:
    """Each user's virtual-item table from the job's shard files."""
    tables = {}
    for path in shards:
        with np.load(path) as shard:
            arrays = {name: shard[name] for name in shard.files}
        offsets = arrays.pop("offsets")
        for position, user in enumerate(arrays.pop("user")):
            rows = slice(offsets[position], offsets[position + 1])
            tables[int(user)] = {name: values[rows] for name, values in arrays.items()}
    return tables
