"""The shared trainer's pieces: batching, optimizer groups, checkpoints, typed config."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from common.atomic_files import write_json_atomic
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


def test_json_records_are_replaced_atomically(tmp_path):
    path = write_json_atomic(tmp_path / "training_history.json", [{"step": 1}])
    with pytest.raises(TypeError):
        write_json_atomic(path, [{"step": 2, "bad": object()}])
    assert json.loads(path.read_text()) == [{"step": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["training_history.json"]


def test_corrupt_checkpoint_is_named(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DatasetError, match=str(path)):
        load_checkpoint(path)


class ToyTask:
    """A linear model on random data whose validation metric follows a scripted curve."""

    model_name, dataset_name = "toy", "random"

    def __init__(self, curve):
        from common.distributed import DistributedContext

        self.context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
        self.curve, self.evaluations = list(curve), 0

    def build_model(self):
        torch.manual_seed(0)
        return nn.Linear(3, 1)

    def parameter_groups(self, model):
        return {"dense": list(model.parameters())}

    def loss(self, model, batch):
        return ((model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean(), {}

    def training_step(self, model, batch, update):
        return update(lambda: self.loss(model, batch))

    def predict(self, model, batch):
        return {"prediction": model(batch["x"]).squeeze(-1)}

    def metrics(self, outputs):
        value = self.curve[min(self.evaluations, len(self.curve) - 1)]
        self.evaluations += 1
        return {"score": value}

    def on_train_step(self, model, step):
        pass


class RandomSource:
    def __init__(self, size):
        generator = torch.Generator().manual_seed(size)
        self.x, self.y = torch.randn(size, 3, generator=generator), torch.randn(size, generator=generator)

    def __len__(self):
        return len(self.y)

    def batch(self, indices):
        return {"x": self.x[indices], "y": self.y[indices]}


def test_early_stopping_stops_after_patience_and_restores_the_best_model(tmp_path):
    from common.logging import NullLogger
    from common.trainer import EarlyStoppingConfig, Trainer

    curve = [0.5, 0.7, 0.6, 0.55, 0.9, 0.1]  # best at the 2nd evaluation; 2 evaluations without improvement
    settings = TrainerConfig(
        max_epochs=1,
        batch_size=8,
        eval_every=2,
        checkpoint_every=100,
        progress_bar=False,
        early_stopping=EarlyStoppingConfig(metric="score", mode="max", patience=1),
    )
    task = ToyTask(curve)
    trainer = Trainer(task, settings, seed=0, run_dir=tmp_path, logger=NullLogger(), resume=False)
    result = trainer.fit(RandomSource(200), RandomSource(16), RandomSource(16))
    assert result.state.stopped_early and result.state.step == 8
    assert result.state.best_value == 0.7 and result.state.best_step == 4
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)["model"]
    torch.testing.assert_close(result.model.state_dict()["weight"], best["weight"])
    assert [entry["valid/score"] for entry in result.history if "valid/score" in entry] == curve[:4]


def test_batch_size_must_split_across_processes(tmp_path):
    from common.distributed import DistributedContext
    from common.logging import NullLogger
    from common.trainer import Trainer

    task = ToyTask([0.0])
    task.context = DistributedContext(rank=0, world_size=3, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="batch_size=8.*3"):
        Trainer(task, TrainerConfig(batch_size=8), seed=0, run_dir=tmp_path, logger=NullLogger(), resume=False)


def test_learning_rate_warms_up_linearly_then_stays(tmp_path):
    from common.logging import NullLogger
    from common.trainer import Trainer, warmup_factor

    assert [warmup_factor(step, 4, 0.01) for step in (0, 2, 4, 9)] == [0.01, 0.505, 1.0, 1.0]
    settings = TrainerConfig(batch_size=8, warmup_steps=4, optimizers={"dense": OptimizerConfig("adam", 1e-4)})
    trainer = Trainer(ToyTask([0.0]), settings, seed=0, run_dir=tmp_path, logger=NullLogger(), resume=False)
    optimizers = build_optimizers({"dense": list(nn.Linear(2, 1).parameters())}, settings.optimizers)
    seen = []
    for step in range(6):
        trainer._set_learning_rates(optimizers, step)
        seen.append(optimizers["dense"].param_groups[0]["lr"])
    np.testing.assert_allclose(seen, [1e-6, 2.575e-5, 5.05e-5, 7.525e-5, 1e-4, 1e-4])


def test_a_training_step_may_update_named_optimizers_in_turn(tmp_path):
    from common.logging import NullLogger
    from common.trainer import Trainer

    class TwoUpdates(ToyTask):
        """Two updates per batch: the weight's optimizer on the loss, then the bias's on a second loss."""

        def parameter_groups(self, model):
            return {"weight": [model.weight], "bias": [model.bias]}

        def training_step(self, model, batch, update):
            first = update(lambda: self.loss(model, batch), ["weight"])
            second = update(lambda: ((model.bias - 5.0).pow(2).sum(), {}), ["bias"])
            return {"loss": first["loss"], "bias_loss": second["loss"]}

    optimizers = {"weight": OptimizerConfig("sgd", 0.1), "bias": OptimizerConfig("sgd", 0.1)}
    settings = TrainerConfig(batch_size=8, max_steps=3, progress_bar=False, grad_clip=None, optimizers=optimizers)
    task = TwoUpdates([0.0])
    start = task.build_model()
    result = Trainer(task, settings, seed=0, run_dir=tmp_path, logger=NullLogger(), resume=False).fit(
        RandomSource(40), RandomSource(8), RandomSource(8)
    )
    bias_after = 5.0 + (start.bias.item() - 5.0) * 0.8**3  # SGD on (b - 5)^2: b <- b - 0.1 * 2 (b - 5), 3 times
    assert result.model.bias.item() == pytest.approx(bias_after, rel=1e-5)
    assert not torch.allclose(result.model.weight, start.weight)


def test_adam_betas_are_configurable_and_refused_where_they_mean_nothing():
    parameters = list(nn.Linear(2, 1).parameters())
    optimizers = build_optimizers({"d": parameters}, {"d": OptimizerConfig("adam", 2e-4, betas=[0.5, 0.999])})
    assert optimizers["d"].param_groups[0]["betas"] == (0.5, 0.999)
    with pytest.raises(ConfigError, match="trainer.optimizers.d.betas is set but sgd has no betas"):
        build_optimizers({"d": parameters}, {"d": OptimizerConfig("sgd", 0.1, betas=[0.5, 0.999])})
