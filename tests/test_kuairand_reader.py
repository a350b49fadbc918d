"""The KuaiRand reader on a small fixture in the real file names and columns, and its errors."""

import shutil

import numpy as np
import pytest

from common.data.kuairand import LOG_COLUMNS, read_kuairand, split_by_day
from common.errors import DatasetError
from papers.twin.data import (
    CROSS_FEATURES,
    TIME_SINCE_BUCKETS,
    LifelongSplit,
    build_lifelong_data,
    latest_rows,
    latest_window,
    time_since_bucket,
)
from tests.conftest import FIXTURES

CARD = "data_cards/kuairand.md"
KUAIRAND = FIXTURES / "kuairand_1k"


def test_reads_real_file_layout_sorted_by_user_and_time():
    tables = read_kuairand(KUAIRAND, "1k", CARD)
    assert list(tables.logs.columns) == list(LOG_COLUMNS)
    assert len(tables.logs) == 3 * 12 + 3 * 10
    keys = tables.logs[["user_id", "time_ms"]].to_numpy()
    assert (np.diff(keys[:, 0]) >= 0).all()
    same_user = np.diff(keys[:, 0]) == 0
    assert (np.diff(keys[:, 1])[same_user] >= 0).all()
    assert {"video_id", "author_id", "tag"} <= set(tables.videos.columns)


def test_random_logs_are_included_only_when_asked():
    with_random = read_kuairand(KUAIRAND, "1k", CARD, include_random=True)
    assert len(with_random.logs) == 3 * 12 + 3 * 10 + 3 * 2
    assert with_random.logs["is_rand"].sum() == 6


def test_27k_part_files_are_found(tmp_path):
    for path in KUAIRAND.iterdir():
        name = path.name.replace("_1k", "_27k")
        if name.startswith("log_standard_4_08"):
            name = name.replace(".csv", "_part1.csv")
        shutil.copy(path, tmp_path / name)
    assert len(read_kuairand(tmp_path, "27k", CARD).logs) == 66


def test_samples_see_exactly_the_users_strictly_earlier_clicked_behaviors():
    tables = read_kuairand(KUAIRAND, "1k", CARD)
    data = build_lifelong_data(tables, 20220422, ["user_active_degree"])
    logs = tables.logs
    samples = data.samples
    assert len(samples) == 30 and samples["date"].min() >= 20220422
    sample_logs = logs[logs["date"] >= 20220422].reset_index(drop=True)
    for row, log in zip(samples.itertuples(), sample_logs.itertuples(), strict=True):
        earlier = logs[(logs["user_id"] == log.user_id) & (logs["is_click"] == 1) & (logs["time_ms"] < log.time_ms)]
        assert row.history_end - row.history_start == len(earlier)
        assert (data.behavior_time[row.history_start : row.history_end] == earlier["time_ms"].to_numpy()).all()


def test_batch_window_is_left_padded_with_the_latest_behaviors_last():
    data = build_lifelong_data(read_kuairand(KUAIRAND, "1k", CARD), 20220422, ["user_active_degree"])
    split = LifelongSplit(data, np.arange(len(data.samples)), history_length=40, recent_length=5)
    batch = split.batch(np.arange(len(split)))
    counts = data.samples["history_end"].to_numpy() - data.samples["history_start"].to_numpy()
    assert batch["history_mask"].sum(1).tolist() == np.minimum(counts, 40).tolist()
    assert batch["history_cross"].shape == (30, 40, len(CROSS_FEATURES))
    last = data.samples["history_end"].to_numpy() - 1
    has_history = counts > 0
    assert (batch["history_item"][has_history, -1].numpy() == data.behavior_item[last[has_history]]).all()
    assert (batch["history_item"][~batch["history_mask"]] == 0).all()
    assert (batch["recent_item"] == batch["history_item"][:, -5:]).all()
    assert (batch["recent_cross"] == batch["history_cross"][:, -5:]).all()


def test_latest_rows_through_window_views_equal_the_gathered_positions():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 100, (50, 3))
    end = rng.integers(0, 51, 20)
    start = np.maximum(end - rng.integers(0, 12, 20), 0)
    for ends in (end, np.maximum(end, 8)):  # with and without windows starting before row 0
        positions, valid = latest_window(np.minimum(start, ends), ends, 8)
        np.testing.assert_array_equal(latest_rows(values, ends, 8)[valid], values[positions][valid])


def test_time_since_bucket_is_one_plus_the_floored_log2_of_hours_plus_one():
    hour = 3_600_000
    edges = (2 ** np.arange(20) - 1) * hour  # where floor(log2(h + 1)) steps up
    milliseconds = np.concatenate([edges, edges - 1, [-5, 0, 10**13]])
    expected = np.clip(np.floor(np.log2(np.maximum(milliseconds, 0) / hour + 1)), 0, TIME_SINCE_BUCKETS - 2) + 1
    np.testing.assert_array_equal(time_since_bucket(milliseconds), expected.astype(np.int64))


def test_split_by_day_puts_the_last_days_in_test():
    data = build_lifelong_data(read_kuairand(KUAIRAND, "1k", CARD), 20220422, ["user_active_degree"])
    rows = split_by_day(data.samples["date"].to_numpy(), valid_days=1, test_days=2)
    dates = data.samples["date"].to_numpy()
    assert dates[rows["train"]].max() < dates[rows["valid"]].min() <= dates[rows["valid"]].max()
    assert dates[rows["valid"]].max() < dates[rows["test"]].min()
    assert sum(len(r) for r in rows.values()) == len(dates)


def test_missing_folder_names_the_data_card(tmp_path):
    with pytest.raises(DatasetError, match="data_cards/kuairand.md"):
        read_kuairand(tmp_path / "nowhere", "1k", CARD)


def test_missing_file_names_what_is_missing(tmp_path):
    shutil.copytree(KUAIRAND, tmp_path / "k")
    (tmp_path / "k" / "user_features_1k.csv").unlink()
    with pytest.raises(DatasetError, match="user features.*data_cards/kuairand.md"):
        read_kuairand(tmp_path / "k", "1k", CARD)


def test_corrupt_file_is_named(tmp_path):
    shutil.copytree(KUAIRAND, tmp_path / "k")
    broken = tmp_path / "k" / "log_standard_4_22_to_5_08_1k.csv"
    broken.write_bytes(b"user_id,video_id\n\x00\xff\xfe garbage")
    with pytest.raises(DatasetError, match=str(broken)):
        read_kuairand(tmp_path / "k", "1k", CARD)


def test_file_missing_columns_is_named(tmp_path):
    shutil.copytree(KUAIRAND, tmp_path / "k")
    videos = tmp_path / "k" / "video_features_basic_1k.csv"
    videos.write_text("video_id,tag\n1,2\n")
    with pytest.raises(DatasetError, match="video_features_basic_1k.csv lacks the columns author_id"):
        read_kuairand(tmp_path / "k", "1k", CARD)
