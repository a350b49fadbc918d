"""synthetic_multidomain, its reading through the KuaiRand loader, and the per-cell metrics."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from common.data.kuairand import read_kuairand
from common.errors import DatasetError
from common.metrics.multitask import domain_task_metrics
from papers.pepnet.data import DOMAIN_FEATURES, build_multidomain_data
from papers.pepnet.synthetic import PAPER_TASKS, SyntheticMultiDomainConfig, ensure_dataset, sample_period_start
from tests.conftest import FIXTURES

SMALL = SyntheticMultiDomainConfig(num_users=300, num_items=600, num_authors=60, impressions_per_day=10, sample_days=6)
USER_COLUMNS = ["user_active_degree", "register_days_range"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = ensure_dataset(SMALL, tmp_path_factory.mktemp("multidomain"), progress=False)
    return folder, read_kuairand(folder, "synthetic", "data_cards/synthetic_multidomain.md")


def test_generator_is_deterministic_and_cached(generated, tmp_path):
    folder, _ = generated
    again = ensure_dataset(SMALL, tmp_path, progress=False)
    for path in sorted(folder.glob("*.csv")):
        assert hashlib.md5(path.read_bytes()).digest() == hashlib.md5((again / path.name).read_bytes()).digest()
    assert ensure_dataset(SMALL, tmp_path, progress=False) == again


def test_domains_and_tasks_follow_the_configured_shares_and_rates(generated):
    _, tables = generated
    logs = tables.logs
    shares = logs["tab"].value_counts(normalize=True).sort_index().to_numpy()
    assert np.allclose(shares, SMALL.domain_shares, atol=0.03)
    rates = logs[SMALL.tasks].mean().to_numpy()
    assert np.allclose(rates, SMALL.positive_rates, rtol=0.3, atol=0.002)
    assert rates.max() > 10 * rates.min()  # tasks of very different positive rates


def test_same_pair_is_engaged_differently_across_domains():
    from papers.pepnet.synthetic import domain_signals, make_world

    world = make_world(SMALL, np.random.default_rng(0))
    users, items = np.arange(300), np.arange(300)
    affinity = [domain_signals(world, users, items, np.full(300, d))[:, 0] for d in range(len(SMALL.domains))]
    correlation = np.corrcoef(affinity)[np.triu_indices(len(affinity), 1)]
    assert np.all(correlation < 0.9) and np.all(correlation > 0.1)  # the same interests, seen differently
    weights = world.domain_signal_weights
    assert np.all(weights.max(0) - weights.min(0) > 0.2)  # each signal matters more in some domains


def test_samples_come_from_the_sample_period_with_leak_free_domain_statistics(generated):
    _, tables = generated
    start = sample_period_start(SMALL)
    data = build_multidomain_data(tables, start, SMALL.tasks, None, USER_COLUMNS)
    assert data.date.min() >= start and len(data.date) == (tables.logs["date"] >= start).sum()
    assert data.domain_names == ["tab0", "tab1", "tab2"] and data.task_names == SMALL.tasks == PAPER_TASKS
    assert data.labels.shape == (len(data.date), len(SMALL.tasks))
    changed = tables.logs.copy()
    changed.loc[changed["date"] >= start, "is_click"] = 1  # the sample period's clicks must not matter
    other = build_multidomain_data(
        type(tables)(changed, tables.videos, tables.users, "synthetic"), start, ["is_like"], None, USER_COLUMNS
    )
    statistics = data.columns(DOMAIN_FEATURES)
    assert np.array_equal(other.features[:, statistics], data.features[:, statistics])


def test_kuairand_fixture_reads_with_its_tabs_as_domains():
    tables = read_kuairand(FIXTURES / "kuairand_1k", "1k", "data_cards/kuairand.md")
    data = build_multidomain_data(tables, 20220422, ["is_click", "is_like"], None, USER_COLUMNS)
    sample_tabs = np.unique(tables.logs.loc[tables.logs["date"] >= 20220422, "tab"])
    assert data.domain_names == [f"tab{tab}" for tab in sample_tabs]
    with pytest.raises(DatasetError, match=r"data.tasks=\['is_clik'\]: each task must be one of is_click"):
        build_multidomain_data(tables, 20220422, ["is_clik"], None, USER_COLUMNS)
    with pytest.raises(DatasetError, match=r"data.domains=\[0, 99\]: tabs \[99\] never occur"):
        build_multidomain_data(tables, 20220422, ["is_click"], [0, 99], USER_COLUMNS)


def test_domain_task_metrics_name_every_cell_and_average_the_defined_ones():
    rng = np.random.default_rng(0)
    n = 400
    labels = (rng.random((n, 2)) < 0.3).astype(float)
    labels[:, 1][np.arange(n) % 2 == 1] = 0  # task b never positive in domain 1: that cell is undefined
    scores = labels * 0.5 + rng.random((n, 2))
    users, domains = rng.integers(0, 20, n), np.arange(n) % 2
    metrics = domain_task_metrics(labels, scores, users, domains, ["tab0", "tab1"], ["a", "b"])
    cells = {name for name in metrics if name.startswith("gauc_tab")}
    assert cells == {"gauc_tab0_a", "gauc_tab0_b", "gauc_tab1_a", "gauc_tab1"} | {"gauc_tab0"}
    assert metrics["gauc_mean"] == pytest.approx(
        np.mean([metrics[f"gauc_{c}"] for c in ("tab0_a", "tab0_b", "tab1_a")])
    )
    assert metrics["gauc_b"] == metrics["gauc_tab0_b"]  # a task's mean over its defined domains
    assert metrics["auc_tab1"] == metrics["auc_tab1_a"]
