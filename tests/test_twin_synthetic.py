"""The synthetic_lifelong generator: deterministic, KuaiRand-readable, and built on TWIN's premise."""

import numpy as np
import pandas as pd
import pytest

from common.data.kuairand import LOG_COLUMNS, read_kuairand
from papers.twin.synthetic import SyntheticLifelongConfig, ensure_dataset, sample_period_start

SMALL = SyntheticLifelongConfig(num_users=12, num_items=800, min_history=200, max_history=600, sample_days=5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return ensure_dataset(SMALL, tmp_path_factory.mktemp("synthetic"), progress=False)


def test_written_in_kuairand_format_and_read_by_the_same_reader(folder):
    tables = read_kuairand(folder, "synthetic", "data_cards/synthetic_lifelong.md")
    assert list(tables.logs.columns) == list(LOG_COLUMNS)
    assert tables.logs["user_id"].nunique() == 12
    assert set(tables.logs["video_id"]) <= set(tables.videos["video_id"])
    sample_days = tables.logs.loc[tables.logs["date"] >= sample_period_start(SMALL), "date"].nunique()
    assert sample_days == 5


def test_deterministic_under_the_seed(folder, tmp_path):
    again = ensure_dataset(SMALL, tmp_path, progress=False)
    for path in folder.glob("*.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(path), pd.read_csv(again / path.name))
    other = ensure_dataset(SyntheticLifelongConfig(**{**SMALL.__dict__, "seed": 1}), tmp_path, progress=False)
    assert other != again


def test_cached_by_parameters(folder):
    marker = folder / "generator.json"
    stamp = marker.stat().st_mtime_ns
    assert ensure_dataset(SMALL, folder.parent, progress=False) == folder
    assert marker.stat().st_mtime_ns == stamp


def test_history_lengths_and_engagement_follow_the_design(folder):
    logs = read_kuairand(folder, "synthetic", "x").logs
    history = logs[logs["date"] < sample_period_start(SMALL)]
    per_user = history.groupby("user_id").size()
    assert per_user.min() >= SMALL.min_history - 1 and per_user.max() <= SMALL.max_history
    clicked = history[history["is_click"] == 1]
    completion = clicked["play_time_ms"] / clicked["duration_ms"]
    # liked behaviors were watched longer: cross features carry the user's affinity
    assert completion[clicked["is_like"] == 1].mean() > completion[clicked["is_like"] == 0].mean()


def test_dormant_interests_resurface():
    """Over a user's history, the most frequent topic of one month is often absent in the recent months."""
    from papers.twin.synthetic import _user_logs, make_catalogue

    config = SyntheticLifelongConfig(num_items=2000)
    rng = np.random.default_rng(0)
    catalogue = make_catalogue(config, rng)
    resurfacing = 0
    for user in range(20):
        rows = _user_logs(user, config, catalogue, rng)
        history = rows["is_click"][: len(rows["seconds"]) - config.sample_days * config.impressions_per_day] == 1
        topics = catalogue.topic[rows["video"][: len(history)][history]]
        months = (rows["seconds"][: len(history)][history] // (30 * 86_400)).astype(int)
        early = set(np.unique(topics[months < 3], return_counts=True)[0][:3])
        late = set(topics[months == months.max()])
        resurfacing += bool(early - late)
    assert resurfacing >= 10
