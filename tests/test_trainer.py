"""The shared trainer's pieces: batching, optimizer groups, checkpoints, typed config."""

import numpy as np
import pytest
import torch
from torch import nn

from common.checkpoint import load_checkpoint, save_atomic
from common.config import typed_config
from common.errors import ConfigError, DatasetError
from common.trainer import OptimizerConfig, TrainerConfig, build_optimizers, epoch_batches


def test_epoch_batches_are_a_permutation_fixed_by_seed_and_epoch():
    first = epoch_batches(103, 10, seed=0, epoch=0)
    assert len(first) == 10 and all(len(b) == 10 for b in first)
    assert len(set(np.concatenate(first).tolist())) == 100
    assert all((a == b).all() for a, b in zip(first, epoch_batches(103, 10, seed=0, epoch=0), strict=True))
    assert not all((a == b).all() for a, b in zip(first, epoch_batches(103, 10, seed=0, epoch=1), strict=True))


def test_optimizers_per_parameter_group():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 1))
    groups = {"embedding": [model[0].weight], "dense": list(model[1].parameters())}
    settings = {"embedding": OptimizerConfig("adagrad", 0.05), "dense": OptimizerConfig("adam", 1e-3)}
    optimizers = build_optimizers(groups, settings)
    assert isinstance(optimizers["embedding"], torch.optim.Adagrad)
    assert isinstance(optimizers["dense"], torch.optim.Adam)
    assert optimizers["embedding"].param_groups[0]["lr"] == 0.05


def test_unconfigured_group_and_unknown_optimizer_are_clear_errors():
    model = nn.Linear(2, 1)
    with pytest.raises(ConfigError, match="parameter group 'embedding'.*dense"):
        build_optimizers({"embedding": list(model.parameters())}, {"dense": OptimizerConfig()})
    with pytest.raises(ConfigError, match="trainer.optimizers.dense.name='lion'.*adagrad"):
        build_optimizers({"dense": list(model.parameters())}, {"dense": OptimizerConfig("lion")})


def test_typed_config_names_the_bad_key_and_value():
    with pytest.raises(ConfigError, match=r"trainer\.batch_size.*abc"):
        typed_config(TrainerConfig, {"batch_size": "abc"}, "trainer")
    with pytest.raises(ConfigError, match=r"trainer\.batchsize.*batch_size"):
        typed_config(TrainerConfig, {"batchsize": 3}, "trainer")
    assert typed_config(TrainerConfig, {"batch_size": "64"}, "trainer").batch_size == 64


def test_atomic_checkpoint_round_trip_and_no_partial_file(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_atomic({"step": 3, "weights": torch.ones(2)}, path)
    assert load_checkpoint(path)["step"] == 3

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_atomic({"step": 4, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_corrupt_checkpoint_is_named(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DatasetError, match=str(path)):
        load_checkpoint(path)
