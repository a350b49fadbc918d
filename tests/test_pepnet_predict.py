"""PEPNet's mode=predict (a smoke run applied to another data draw, to its own draw and to the KuaiRand layout),
the vocabulary that translates new data's ids into the run's embedding rows, and the bounds of its configs."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from common.config import typed_config
from common.data.kuairand import read_kuairand
from common.errors import ConfigError, DatasetError
from common.metrics.multitask import domain_task_metrics
from papers.pepnet.data import build_multidomain_data
from papers.pepnet.model import PEPNetModelConfig
from papers.pepnet.predict import unknown_note
from papers.pepnet.synthetic import SyntheticMultiDomainConfig, ensure_dataset, sample_period_start
from papers.pepnet.vocabulary import UNKNOWN, translate, vocabulary_of
from tests.conftest import FIXTURES

SMOKE = ("paper=pepnet", "debug=smoke", "logger=none", "trainer.device=cpu")
SMOKE_GENERATOR = SyntheticMultiDomainConfig(
    num_users=300, num_items=800, num_authors=80, impressions_per_day=12, sample_days=6
)
TASKS = SMOKE_GENERATOR.tasks
COLUMNS = ["user_id", "video_id", "domain", *(f"score_{task}" for task in TASKS)]
USER_COLUMNS = ["user_active_degree", "register_days_range"]


def impressions_of_test_days(logs: pd.DataFrame, start: int, test_days: int, tabs=None) -> pd.DataFrame:
    """The log rows a prediction must score: the last `test_days` days of the sample period (of `tabs`)."""
    rows = logs[(logs["date"] >= start) & (logs["tab"].isin(tabs) if tabs is not None else True)]
    days = np.unique(rows["date"])
    return rows[rows["date"] >= days[-test_days]].rename(columns={"tab": "domain"})


def test_predict_from_a_smoke_run_on_new_draws_and_on_the_kuairand_layout(run_cli, tmp_path, cache_dir):
    trained = tmp_path / "trained"
    completed = run_cli(*SMOKE, f"hydra.run.dir={trained}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    training_metrics = json.loads((trained / "results.json").read_text())["metrics"]

    predicted = tmp_path / "draw5"
    completed = run_cli(*SMOKE, "mode=predict", f"from_run={trained}", "data_seed=5", f"hydra.run.dir={predicted}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    predictions = pd.read_csv(predicted / "predictions.csv")
    assert list(predictions.columns) == COLUMNS
    folder = ensure_dataset(replace(SMOKE_GENERATOR, seed=5), cache_dir, progress=False)
    logs = read_kuairand(folder, "synthetic", "data_cards/synthetic_multidomain.md").logs
    expected = impressions_of_test_days(logs, sample_period_start(SMOKE_GENERATOR), test_days=2)
    pd.testing.assert_frame_equal(predictions[COLUMNS[:3]], expected[COLUMNS[:3]].reset_index(drop=True))
    scores = predictions[COLUMNS[3:]].to_numpy()
    assert np.all((scores > 0) & (scores < 1))
    record = json.loads((predicted / "predictions.json").read_text())
    assert record["from_run"] == str(trained) and record["config"]["data"]["generator"]["seed"] == 5
    metrics = record["metrics"]
    assert {"gauc_mean", "auc_mean", "gauc_tab0_is_click"} <= set(metrics)  # training's names, on this draw's cells
    labels = np.clip(expected[TASKS].to_numpy(), 0, 1).astype(float)
    domains, domain_names = expected["domain"].to_numpy(), [f"tab{tab}" for tab in SMOKE_GENERATOR.domains]
    recomputed = domain_task_metrics(labels, scores, expected["user_id"].to_numpy(), domains, domain_names, TASKS)
    assert metrics == pytest.approx(recomputed, abs=1e-3)  # the same, up to ties of the 6-digit scores
    assert "gauc_mean" in completed.stdout

    own_draw = tmp_path / "draw0"
    completed = run_cli(*SMOKE, "mode=predict", f"from_run={trained}", "data_seed=0", f"hydra.run.dir={own_draw}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "every id was seen in training" in completed.stdout
    assert json.loads((own_draw / "predictions.json").read_text())["metrics"] == pytest.approx(training_metrics)

    kuairand = ("data=kuairand", f"data.root={FIXTURES / 'kuairand_1k'}", "data.valid_days=2", "data.test_days=5")
    every_tab = (*kuairand, "data.domains=null", f"hydra.run.dir={tmp_path / 'k'}")
    completed = run_cli(*SMOKE, "mode=predict", f"from_run={trained}", *every_tab)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert "holds the tabs [4], which the model was not trained on" in completed.stderr
    assert "data.domains=[0, 1, 2]" in completed.stderr
    fixture = tmp_path / "kuairand"
    arguments = (*kuairand, f"hydra.run.dir={fixture}")  # the paper config's data.domains, as in training
    completed = run_cli(*SMOKE, "mode=predict", f"from_run={trained}", *arguments)
    assert completed.returncode == 0, completed.stderr[-3000:]
    predictions = pd.read_csv(fixture / "predictions.csv")
    logs = read_kuairand(FIXTURES / "kuairand_1k", "1k", "data_cards/kuairand.md").logs
    expected = impressions_of_test_days(logs, 20220422, test_days=5, tabs=[0, 1, 2])
    assert list(predictions.columns) == COLUMNS and len(predictions) == len(expected)
    pd.testing.assert_frame_equal(predictions[COLUMNS[:3]], expected[COLUMNS[:3]].reset_index(drop=True))
    assert f"{len(expected)} impressions; every id was seen in training" in completed.stdout  # ids 0-799 overlap

    untranslatable = tmp_path / "before_vocabularies"
    untranslatable.mkdir()
    shutil.copy(trained / "results.json", untranslatable)
    completed = run_cli(*SMOKE, "mode=predict", f"from_run={untranslatable}", f"hydra.run.dir={tmp_path / 'none'}")
    assert completed.returncode == 2 and "has no vocabulary.json" in completed.stderr


@pytest.fixture(scope="module")
def smoke_tables(cache_dir):
    folder = ensure_dataset(SMOKE_GENERATOR, cache_dir, progress=False)
    return read_kuairand(folder, "synthetic", "data_cards/synthetic_multidomain.md")


def _build(tables, domains=None):
    return build_multidomain_data(tables, sample_period_start(SMOKE_GENERATOR), TASKS, domains, USER_COLUMNS)


def test_translation_keeps_known_ids_rows_and_sends_unseen_ids_to_the_unknown_row(smoke_tables):
    trained = _build(smoke_tables)
    vocabulary = vocabulary_of(smoke_tables, trained, USER_COLUMNS)
    logs = smoke_tables.logs.copy()
    newcomers = logs["user_id"] % 2 == 1
    logs.loc[newcomers, "user_id"] += 100_000  # users the run never saw
    logs["video_id"] += 400  # videos 400-799 the run saw (under other indices here), 800-1199 it did not
    shifted = type(smoke_tables)(logs, smoke_tables.videos, smoke_tables.users, "synthetic")
    translation = translate(shifted, _build(shifted), vocabulary, USER_COLUMNS)
    features, unknown = translation.data.features, translation.unknown
    user, item = trained.columns(["user", "item"])
    assert np.array_equal(unknown["user"], newcomers[logs["date"] >= sample_period_start(SMOKE_GENERATOR)])
    assert np.all(features[unknown["user"], user] == UNKNOWN)
    assert np.array_equal(features[~unknown["user"], user], trained.features[~unknown["user"], user])
    videos = translation.data.log_ids["video_id"]
    assert np.array_equal(unknown["item"], videos >= 800) and np.all(features[unknown["item"], item] == UNKNOWN)
    trained_index = dict(zip(trained.log_ids["video_id"].tolist(), trained.features[:, item].tolist(), strict=True))
    assert [trained_index[video] for video in videos[~unknown["item"]]] == features[~unknown["item"], item].tolist()
    assert translation.data.vocabulary == trained.vocabulary and translation.data.domain_names == trained.domain_names
    note = unknown_note(unknown, np.flatnonzero(translation.data.date >= translation.data.date.max()))
    assert note.startswith("ids never seen in training (scored with the reserved unknown index 0): user ")


def test_translation_refuses_a_tab_the_run_was_not_trained_on(smoke_tables):
    vocabulary = vocabulary_of(smoke_tables, _build(smoke_tables, domains=[1, 2]), USER_COLUMNS)
    with pytest.raises(DatasetError, match=r"holds the tabs \[0\], which the model was not trained on"):
        translate(smoke_tables, _build(smoke_tables), vocabulary, USER_COLUMNS)
    narrowed = translate(smoke_tables, _build(smoke_tables, domains=[2]), vocabulary, USER_COLUMNS)
    assert set(np.unique(narrowed.data.domain)) == {1}  # tab2: the run's second domain


@pytest.mark.parametrize("gamma", [-3.0, 0.0])
def test_gamma_outside_the_gate_scale_is_refused(gamma):
    with pytest.raises(ConfigError, match=rf"model.gamma={gamma}: it must be > 0.0"):
        typed_config(PEPNetModelConfig, {"gamma": gamma}, "model")


def test_gamma_and_empty_layer_lists_are_refused_on_the_command_line(run_cli, tmp_path):
    completed = run_cli(*SMOKE, "model.gamma=-3", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2 and "model.gamma=-3.0: it must be > 0.0" in completed.stderr
    with pytest.raises(ConfigError, match=r"model.star_dims=\[\]: it must hold at least one layer width"):
        typed_config(PEPNetModelConfig, {"star_dims": []}, "model")
