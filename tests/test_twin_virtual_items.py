"""TWIN-V2's life-cycle sequence end to end on generated KuaiRand-format data: behaviors before each daily
cut-off, clustered by the job, fed as virtual items to the long-term module, each sample reading the latest
clustering built before it."""

import numpy as np
import pytest
import torch

from common.data.kuairand import read_kuairand, split_by_day
from common.errors import DatasetError
from papers.twin.clustering import ClusteringConfig
from papers.twin.data import build_lifelong_data
from papers.twin.lifecycle import ClusteringJob, read_virtual_items
from papers.twin.model import LifelongCTRModel, TwinModelConfig
from papers.twin.synthetic import SyntheticLifelongConfig, ensure_dataset, sample_period_start
from papers.twin.virtual_items import (
    DAY_MS,
    VirtualItemHistory,
    VirtualItemSplit,
    life_cycle_behaviors,
    rebuild_cutoffs,
)

SMALL = SyntheticLifelongConfig(num_users=8, num_items=600, min_history=300, max_history=900, sample_days=4)


@pytest.fixture(scope="module")
def life_cycle(tmp_path_factory):
    folder = ensure_dataset(SMALL, tmp_path_factory.mktemp("data"), progress=False)
    data = build_lifelong_data(
        read_kuairand(folder, "synthetic", "x"), sample_period_start(SMALL), ["user_active_degree"]
    )
    cutoffs = rebuild_cutoffs(data, every_days=1)
    embeddings = np.random.default_rng(0).normal(size=(data.vocabulary.items, 16)).astype(np.float32)
    folder = tmp_path_factory.mktemp("clusters")
    clusterings = []
    for index, cutoff in enumerate(cutoffs):
        job = ClusteringJob(folder / str(index), ClusteringConfig(), "serial", progress=False)
        clusterings.append(read_virtual_items(job.run(life_cycle_behaviors(data, int(cutoff)), embeddings)))
    return data, cutoffs, VirtualItemHistory.from_tables(clusterings, data.vocabulary.users, cutoffs)


def test_cutoffs_start_at_the_first_sample_and_step_by_days(life_cycle):
    data, cutoffs, _ = life_cycle
    times = data.samples["time_ms"]
    assert cutoffs[0] == times.min() and (np.diff(cutoffs) == DAY_MS).all() and cutoffs[-1] <= times.max()
    assert len(cutoffs) == SMALL.sample_days and rebuild_cutoffs(data, every_days=None).tolist() == [times.min()]


def test_each_clustering_holds_every_behavior_before_its_cutoff_once(life_cycle):
    data, cutoffs, history = life_cycle
    for index, cutoff in enumerate(cutoffs):
        before = data.behavior_time < cutoff
        for user in np.unique(data.behavior_user):
            rows = slice(history.start[index, user], history.end[index, user])
            assert history.columns["size"][rows].sum() == (before & (data.behavior_user == user)).sum()
            assert (np.diff(history.columns["time_ms"][rows]) >= 0).all()
            assert (history.columns["time_ms"][rows] < cutoff).all()
    assert 0.02 < history.compression() < 0.3 and history.cluster_distance() > 0


def test_each_sample_reads_the_latest_clustering_built_before_it(life_cycle):
    data, cutoffs, history = life_cycle
    split = VirtualItemSplit(data, np.arange(len(data.samples)), 1000, 20, history)
    times, next_cutoffs = data.samples["time_ms"].to_numpy(), np.append(cutoffs[1:], np.iinfo(np.int64).max)
    assert ((cutoffs[split.clustering] <= times) & (times < next_cutoffs[split.clustering])).all()
    assert len(np.unique(split.clustering)) == len(cutoffs)
    late = np.flatnonzero(split.clustering == len(cutoffs) - 1)[:8]
    batch = split.batch(late)
    users = data.samples["user"].to_numpy()[late]
    behaviors_before = [(data.behavior_user == user) & (data.behavior_time < cutoffs[-1]) for user in users]
    assert batch["history_size"].sum(1).tolist() == [float(rows.sum()) for rows in behaviors_before]


def test_window_holds_the_users_virtual_items_with_sizes(life_cycle):
    data, _, history = life_cycle
    rows = split_by_day(data.samples["date"].to_numpy(), 1, 1)["train"]
    split = VirtualItemSplit(data, rows, history_length=200, recent_length=20, history=history)
    batch = split.batch(np.arange(16))
    users, clustering = data.samples["user"].to_numpy()[rows][:16], split.clustering[:16]
    counts = np.minimum(history.end[clustering, users] - history.start[clustering, users], 200)
    assert batch["history_mask"].sum(1).tolist() == counts.tolist()
    assert (batch["history_size"][batch["history_mask"]] >= 1).all()
    assert (batch["history_size"][~batch["history_mask"]] == 0).all()
    assert batch["recent_mask"].shape == (16, 20)


def test_twin_v2_model_trains_on_virtual_items(life_cycle):
    data, _, history = life_cycle
    split = VirtualItemSplit(data, np.arange(len(data.samples)), 200, 20, history)
    tables = {"item_author": data.item_author, "item_tag": data.item_tag, "item_duration": data.item_duration}
    config = TwinModelConfig(gsu_length=200, esu_length=50, short_length=20, cluster_size_bias=True)
    model = LifelongCTRModel(config, data.vocabulary, tables)
    logits, _ = model(split.batch(np.arange(32)))
    logits.sum().backward()
    assert torch.isfinite(logits).all() and model.esu.scorer.key_projection.weight.grad.abs().sum() > 0


def test_clustering_past_the_first_sample_is_refused(life_cycle):
    data, cutoffs, history = life_cycle
    late = VirtualItemHistory(history.start, history.end, history.columns, cutoffs + 10**9)
    with pytest.raises(DatasetError, match="leak"):
        VirtualItemSplit(data, np.arange(len(data.samples)), 200, 20, late)
