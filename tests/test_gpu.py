"""The CUDA path: mixed-precision TWIN training and the smoke run on the GPU (skipped without CUDA)."""

import json

import pytest
import torch

from papers.twin.model import click_loss
from tests.test_runner import SMOKE
from tests.twin_helpers import random_batch, tiny_model

pytestmark = pytest.mark.gpu


def test_twin_trains_under_autocast_on_cuda():
    model = tiny_model().cuda()
    batch = {name: value.cuda() for name, value in random_batch().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, auxiliary = model(batch)
        loss, _ = click_loss(logits, auxiliary, batch["label"], 1.0)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    overlap = model.eval().gsu_esu_overlap(batch, model.score(batch)[2])
    assert ((overlap >= 0) & (overlap <= 1)).all()


def test_cpu_and_cuda_gsu_select_the_same_behaviors():
    model = tiny_model()
    batch = random_batch(short_histories=False)
    target = model.features.inherent(batch["target_item"])
    on_cpu = model.retriever.select(model.features, batch, target).positions
    model = model.cuda()
    batch = {name: value.cuda() for name, value in batch.items()}
    on_cuda = model.retriever.select(model.features, batch, model.features.inherent(batch["target_item"])).positions
    assert all(set(a.tolist()) == set(b.tolist()) for a, b in zip(on_cpu, on_cuda.cpu(), strict=True))


def test_smoke_run_on_cuda(run_cli, tmp_path):
    arguments = [argument for argument in SMOKE if not argument.startswith("trainer.device")]
    completed = run_cli(*arguments, "trainer.device=cuda", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((tmp_path / "results.json").read_text())["device"].startswith("cuda")
