"""TWIN-V2's life-cycle sequence end to end on generated KuaiRand-format data: behaviors before the cut-off,
clustered by the job, fed as virtual items to the long-term module."""

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
from papers.twin.virtual_items import VirtualItemHistory, VirtualItemSplit, life_cycle_behaviors

SMALL = SyntheticLifelongConfig(num_users=8, num_items=600, min_history=300, max_history=900, sample_days=4)


@pytest.fixture(scope="module")
def life_cycle(tmp_path_factory):
    folder = ensure_dataset(SMALL, tmp_path_factory.mktemp("data"), progress=False)
    data = build_lifelong_data(
        read_kuairand(folder, "synthetic", "x"), sample_period_start(SMALL), ["user_active_degree"]
    )
    cutoff = int(data.samples["time_ms"].min())
    embeddings = np.random.default_rng(0).normal(size=(data.vocabulary.items, 16)).astype(np.float32)
    job = ClusteringJob(tmp_path_factory.mktemp("clusters"), ClusteringConfig(), "serial", progress=False)
    tables = read_virtual_items(job.run(life_cycle_behaviors(data, cutoff), embeddings))
    return data, cutoff, VirtualItemHistory.from_tables(tables, data.vocabulary.users, cutoff)


def test_every_behavior_before_the_cutoff_is_in_exactly_one_virtual_item(life_cycle):
    data, cutoff, history = life_cycle
    before = data.behavior_time < cutoff
    assert history.columns["size"].sum() == before.sum()
    for user in np.unique(data.behavior_user):
        rows = slice(history.start[user], history.end[user])
        assert history.columns["size"][rows].sum() == (before & (data.behavior_user == user)).sum()
        assert (np.diff(history.columns["time_ms"][rows]) >= 0).all()
    assert 0.02 < history.compression() < 0.3 and history.cluster_distance() > 0


def test_window_holds_the_users_virtual_items_with_sizes(life_cycle):
    data, _, history = life_cycle
    rows = split_by_day(data.samples["date"].to_numpy(), 1, 1)["train"]
    split = VirtualItemSplit(data, rows, history_length=200, recent_length=20, history=history)
    batch = split.batch(np.arange(16))
    users = data.samples["user"].to_numpy()[rows][:16]
    counts = np.minimum(history.end[users] - history.start[users], 200)
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
    data, cutoff, history = life_cycle
    late = VirtualItemHistory(history.start, history.end, history.columns, cutoff + 10**9)
    with pytest.raises(DatasetError, match="leak"):
        VirtualItemSplit(data, np.arange(len(data.samples)), 200, 20, late)
