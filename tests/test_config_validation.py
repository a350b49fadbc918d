"""Configs refuse bad values before any data is made: every bounded field of every typed config, and the command
line's unknown keys, misspelt keys and other papers' experiments, each with one `error:` paragraph and exit 2."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing

import pytest

from common.config import bounded, typed_config
from common.errors import ConfigError

PACKAGES = ("common", "papers")


def _typed_configs() -> list[type]:
    """Every dataclass in common/ and papers/ with at least one bounded field."""
    found = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            for value in vars(importlib.import_module(info.name)).values():
                if isinstance(value, type) and dataclasses.is_dataclass(value):
                    if any("bounds" in field.metadata for field in dataclasses.fields(value)):
                        found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


def _bad_values(field: dataclasses.Field, schema: type) -> list[object]:
    """Values just outside the field's declared bounds."""
    limits = field.metadata["bounds"]
    integer = _scalar_type(field, schema) is int
    step = 1 if integer else 0.5
    bad: list[object] = []
    if "choices" in limits:
        bad.append("not-a-choice")
    if "minimum" in limits:
        bad.append(limits["minimum"] - step)
    if "maximum" in limits:
        bad.append(limits["maximum"] + step)
    if "above" in limits:
        bad.append(limits["above"])
    if "below" in limits:
        bad.append(limits["below"])
    if _is_list(field, schema):  # the default list with its first entry out of bounds: nothing else is wrong
        rest = list(getattr(schema(), field.name) or [None])[1:]
        bad = [[value, *rest] for value in bad]
    if "same_length_as" in limits:
        other = getattr(schema(), limits["same_length_as"])
        bad.append(list(other) + list(other[:1]))
    return bad


def _hints(schema: type) -> dict:
    return typing.get_type_hints(schema)


def _is_list(field: dataclasses.Field, schema: type) -> bool:
    return "list" in str(_hints(schema)[field.name])


def _scalar_type(field: dataclasses.Field, schema: type) -> type:
    hint = str(_hints(schema)[field.name])
    return int if "int" in hint and "float" not in hint else float


CONFIGS = _typed_configs()


def test_the_walk_finds_the_shared_configs() -> None:
    names = {schema.__name__ for schema in CONFIGS}
    assert {"TrainerConfig", "OptimizerConfig", "RunSettings"} <= names


@pytest.mark.parametrize("schema", CONFIGS, ids=lambda schema: f"{schema.__module__}.{schema.__name__}")
def test_every_bounded_field_refuses_a_value_outside_its_bounds(schema: type) -> None:
    for field in dataclasses.fields(schema):
        if "bounds" not in field.metadata:
            continue
        for bad in _bad_values(field, schema):
            with pytest.raises(ConfigError) as error:
                typed_config(schema, {field.name: bad}, "node")
            assert f"node.{field.name}" in str(error.value), (field.name, bad, str(error.value))


@dataclasses.dataclass
class _Toy:
    widths: list[int] = bounded(default_factory=lambda: [4, 2], minimum=1)
    names: list[str] = bounded(default_factory=lambda: ["a", "b"], same_length_as="widths")
    rate: float = bounded(0.5, minimum=0.0, maximum=1.0)


def test_bounds_name_the_key_the_value_and_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"node\.rate=1\.5: it must be ≥ 0\.0 and ≤ 1\.0"):
        typed_config(_Toy, {"rate": 1.5}, "node")
    with pytest.raises(ConfigError, match=r"node\.widths=\[4, 0\] \(entry 0\): it must be ≥ 1"):
        typed_config(_Toy, {"widths": [4, 0]}, "node")
    with pytest.raises(ConfigError, match=r"as many entries as node\.widths"):
        typed_config(_Toy, {"names": ["a"]}, "node")
    with pytest.raises(ConfigError, match="Did you mean 'rate'"):
        typed_config(_Toy, {"rtae": 0.1}, "node")
    assert typed_config(_Toy, {"rate": 1.0}, "node").rate == 1.0


SMOKE = ("paper=twin", "debug=smoke", "logger=none")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("seed=-1",), "seed=-1: it must be ≥ 0"),
        (("data_seed=-2",), "data_seed=-2: it must be ≥ 0"),
        (("trainer.batch_size=0",), "trainer.batch_size=0: it must be ≥ 1"),
        (("trainer.optimizers.dense.lr=-0.001",), "trainer.optimizers.dense.lr=-0.001: it must be > 0.0"),
        (("model.num_head=2",), "model.num_head is not a config key. Did you mean model.num_heads?"),
        (("trainer.batchsize=3",), "Did you mean trainer.batch_size?"),
        (("experiment=zzz",), "experiment=zzz is not an experiment of paper twin; its experiments are:"),
        (("mode=tabel",), "mode=tabel is not a choice of 'mode'; allowed: bench, config, predict, table, train."),
        (("trainer.batch_size=many",), "trainer.batch_size=many: Value 'many' of type 'str' could not be converted"),
        (("model.mlp_dims=[1",), "cannot read the overrides"),
    ],
)
def test_bad_command_lines_get_one_error_paragraph(run_cli, tmp_path, arguments, expected) -> None:
    completed = run_cli(*SMOKE, *arguments, f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.startswith("error: ") and expected in completed.stderr
    assert "Traceback" not in completed.stderr and completed.stderr.count("\n") == 1


def test_another_papers_experiment_lists_this_papers_experiments(run_cli, tmp_path) -> None:
    completed = run_cli("paper=pepnet", "experiment=table4_din", "logger=none", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 2
    assert "experiment=table4_din is not an experiment of paper pepnet" in completed.stderr
    assert "shared_bottom" in completed.stderr and "table4_sim_soft" not in completed.stderr


def test_a_sweep_is_checked_value_by_value(run_cli, tmp_path) -> None:
    completed = run_cli("-m", *SMOKE, "experiment=main,table4_dn", f"hydra.sweep.dir={tmp_path}")
    assert completed.returncode == 2 and "experiment=table4_dn is not an experiment of paper twin" in completed.stderr
    assert not list(tmp_path.iterdir())  # nothing ran


def test_mode_config_prints_the_typed_merged_config(run_cli, tmp_path) -> None:
    completed = run_cli(*SMOKE, "mode=config", "model.num_heads=2", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr
    assert "trainer:" in completed.stdout and "num_heads: 2" in completed.stdout
    assert "key_dim:" in completed.stdout  # a default the YAML does not repeat is shown too


@dataclasses.dataclass
class _Matrix:
    weights: list[list[float]] | None = None


def test_a_matrix_of_floats_takes_whole_numbers() -> None:
    assert typed_config(_Matrix, {"weights": [[0, 1], [1, 0]]}, "node").weights == [[0.0, 1.0], [1.0, 0.0]]
