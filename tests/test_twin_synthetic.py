"""The synthetic_lifelong generator: deterministic, KuaiRand-readable, and built on TWIN's premise (many dormant
interests whose evidence lies beyond the latest 100 behaviors, coarse and noisy tags, cross features that say how
much a behavior reveals, recency that lifts clicks), with no sample seeing a behavior of its own time or later."""

import numpy as np
import pandas as pd
import pytest

from common.data.kuairand import LOG_COLUMNS, read_kuairand
from common.errors import ConfigError
from papers.twin.data import build_lifelong_data
from papers.twin.synthetic import (
    SyntheticLifelongConfig,
    _generate_rows,
    check_generator,
    ensure_dataset,
    make_catalogue,
    make_user,
    sample_period_start,
)

SMALL = SyntheticLifelongConfig(num_users=12, num_items=800, min_history=200, max_history=600, sample_days=5)
# the default world at a tenth of the users and histories of 10^3 to 3 x 10^3 (the default goes to 10^4)
PREMISE = SyntheticLifelongConfig(num_users=30, max_history=3000)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return ensure_dataset(SMALL, tmp_path_factory.mktemp("synthetic"), progress=False)


@pytest.fixture(scope="module")
def world():
    """The PREMISE draw: every row (with each impression's click probability) and the item catalogue."""
    rows, catalogue, _ = _generate_rows(PREMISE, progress=False)
    return rows, catalogue


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


def test_no_sample_sees_a_behavior_of_its_time_or_later(folder):
    tables = read_kuairand(folder, "synthetic", "x")
    data = build_lifelong_data(tables, sample_period_start(SMALL), ["user_active_degree"])
    samples = data.samples
    start, end = samples["history_start"].to_numpy(), samples["history_end"].to_numpy()
    has_history = end > start
    assert has_history.mean() > 0.99
    last = end[has_history] - 1
    assert (data.behavior_time[last] < samples["time_ms"].to_numpy()[has_history]).all()
    assert (data.behavior_user[last] == samples["user"].to_numpy()[has_history]).all()
    later = end < len(data.behavior_time)
    same_user = data.behavior_user[end[later]] == samples["user"].to_numpy()[later]
    assert (data.behavior_time[end[later]][same_user] >= samples["time_ms"].to_numpy()[later][same_user]).all()


def _per_user_windows(rows, catalogue, length: int = 100):
    """For every impression: whether its target's topic is among the `length` latest clicked rows before it,
    among any earlier clicked row, and its click probability and label."""
    found_recent, found_earlier = [], []
    for user in np.unique(rows["user_id"]):
        mine = rows["user_id"] == user
        seconds, topic = rows["seconds"][mine], catalogue.topic[rows["video"][mine]]
        clicked, impression = rows["is_click"][mine] == 1, ~np.isnan(rows["click_probability"][mine])
        order = np.argsort(seconds, kind="stable")
        behaviors = order[clicked[order]]
        for row in np.flatnonzero(impression):
            before = behaviors[seconds[behaviors] < seconds[row]]
            found_recent.append((topic[before[-length:]] == topic[row]).any())
            found_earlier.append((topic[before[:-length]] == topic[row]).any())
    impression = ~np.isnan(rows["click_probability"])
    return np.array(found_recent), np.array(found_earlier), rows["is_click"][impression]


def test_a_clicked_targets_evidence_often_lies_only_beyond_the_latest_100(world):
    recent, earlier, clicked = _per_user_windows(*world)
    beyond = ~recent & earlier
    assert beyond[clicked == 1].mean() > 0.12  # 18.5% of clicked test targets with the default world
    assert beyond.mean() > 0.2


def test_tags_are_coarse_and_noisy_relative_to_topics(world):
    _, catalogue = world
    topics_per_tag = pd.Series(catalogue.topic).groupby(catalogue.tag).nunique()
    assert topics_per_tag.min() >= 10  # a tag holds many topics
    majority_tag = pd.Series(catalogue.tag).groupby(catalogue.topic).agg(lambda tags: tags.mode()[0])
    off_tag = catalogue.tag != majority_tag.to_numpy()[catalogue.topic]
    assert 0.2 < off_tag.mean() < 0.35  # tag_noise 0.3, a random tag sometimes landing on the topic's own


def test_play_completion_says_which_behaviors_reveal_an_interest():
    """Pushed topics are played about as often as a strong interest but briefly; an interest's plays last longer."""
    rng = np.random.default_rng(0)
    catalogue = make_catalogue(PREMISE, rng)
    from papers.twin.synthetic import _history

    interest_completion, pushed_completion, pushed_share = [], [], []
    for _ in range(10):
        user = make_user(PREMISE, rng)
        history = _history(user, PREMISE, catalogue, rng)
        played = history["is_click"] == 1
        topic = catalogue.topic[history["video"][played]]
        completion = history["play_time_ms"][played] / catalogue.duration_ms[history["video"][played]]
        is_interest, is_pushed = np.isin(topic, user.interests), np.isin(topic, user.pushed)
        interest_completion.append(completion[is_interest].mean())
        pushed_completion.append(completion[is_pushed].mean())
        pushed_share.append(is_pushed.mean())
    assert np.mean(interest_completion) > 2.5 * np.mean(pushed_completion)
    assert 0.2 < np.mean(pushed_share) < 0.4  # what a count of past plays, without completion, is misled by


def test_an_active_interest_is_clicked_more_than_a_dormant_one_and_both_more_than_other_items(world):
    rows, catalogue = world
    impression = ~np.isnan(rows["click_probability"])
    probability = rows["click_probability"][impression]
    assert 0.3 < rows["is_click"][impression].mean() < 0.5
    # the generator replays users in order: recover each user's interests to split the impressions
    rng = np.random.default_rng(PREMISE.seed)
    make_catalogue(PREMISE, rng)
    user = make_user(PREMISE, rng)  # the first user's world is drawn right after the catalogue
    first = rows["user_id"][impression] == 0
    topics = catalogue.topic[rows["video"][impression][first]]
    month = (rows["seconds"][impression][first] // (30 * 86_400)).astype(int)
    active = user.active_at(topics, month)
    dormant = np.isin(topics, user.interests) & ~active
    other = ~np.isin(topics, user.interests)
    p = probability[first]
    assert p[active].mean() > p[dormant].mean() > p[other].mean() + 0.2


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [("min_history", 5000, 100), ("min_interests", 9, 3), ("min_strength", 0.9, 0.5)],
)
def test_contradicting_fields_are_refused(field, low, high):
    bound = field.replace("min_", "max_")
    config = SyntheticLifelongConfig(**{field: low, bound: high})
    with pytest.raises(ConfigError, match=f"data.generator.{field}={low}: it must be at most .*{bound}={high}"):
        check_generator(config)
    with pytest.raises(ConfigError, match="target_mix"):
        check_generator(SyntheticLifelongConfig(target_mix=[1.0, 0.0]))


def test_contradicting_fields_are_refused_before_any_data_is_made(run_cli, tmp_path):
    completed = run_cli(
        "paper=twin", "debug=smoke", "logger=none", "data.generator.min_history=5000",
        "data.generator.max_history=100", f"data.cache_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "data.generator.min_history=5000: it must be at most data.generator.max_history=100" in completed.stderr
    assert not list(tmp_path.glob("synthetic_lifelong*"))
