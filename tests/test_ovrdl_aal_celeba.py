"""The paper's second setting, CelebA, runs end to end through the runner on a fixture in CelebA's layout."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES

CELEBA = (
    "paper=ovrdl_aal", "data=celeba", f"data.root={FIXTURES / 'celeba'}", "data.protocol.min_images=8",
    "data.protocol.size=16", "logger=none", "trainer.device=cpu", "trainer.progress_bar=false",
    "model.stage1_steps=2", "model.stage1_eval_every=1", "model.ovrdl.filters=4", "model.ovrdl.feature_dim=16",
    "model.aal.hidden=16", "model.aal.mixes_per_loop=256", "model.aal.loops=1", "trainer.max_steps=2",
    "trainer.eval_every=1", "trainer.batch_size=4",
)  # fmt: skip


def test_the_celeba_configuration_trains_both_stages_on_people_and_eyeglasses(run_cli, tmp_path):
    completed = run_cli(*CELEBA, f"hydra.run.dir={tmp_path}", timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = json.loads((tmp_path / "results.json").read_text())
    assert [stage["name"] for stage in record["stages"]] == ["ovrdl", "aal"]
    assert record["typed_config"]["data"]["protocol"]["attributes"] == ["Eyeglasses"]
    assert record["typed_config"]["model"]["ovrdl"]["independence"] is None  # λ = 1 − I over (person, Eyeglasses)
    assert {"auc", "far", "frr", "accuracy", "ovrdl_auc"} <= set(record["metrics"])


def test_celeba_without_a_root_says_where_to_get_it(run_cli, tmp_path):
    completed = run_cli("paper=ovrdl_aal", "data=celeba", "logger=none", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2 and "data.root is not set" in completed.stderr
    assert "data_cards/celeba.md" in completed.stderr
