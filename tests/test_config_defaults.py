"""Each default lives once: every config node a paper composes is typed by a registered schema (so its defaults are
the dataclass's), and no YAML repeats a value its schema already gives."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import DictConfig, OmegaConf

from common.hydra_setup import CONFIG_DIR, compose_run, config_schemas, register_configs
from papers import PAPERS

SCHEMA_ENTRY = "/schema/"
IDENTITY_KEYS = ("name", "data_card")


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_configs()


def _untyped_nodes(node: DictConfig, where: str) -> list[str]:
    """Paths of the dict nodes under `node` that no dataclass types (a typed node's fields are its own)."""
    found = []
    for key in node.keys():
        child = node._get_node(key)
        if not isinstance(child, DictConfig):
            continue
        path = f"{where}.{key}" if where else str(key)
        if dataclasses.is_dataclass(OmegaConf.get_type(child)):
            continue
        found.append(path)
    return found


@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_every_node_of_a_paper_is_typed(paper):
    config = compose_run([f"paper={paper}"])
    untyped = [path for path in _untyped_nodes(config, "") if path != "hydra"]
    assert not untyped, f"paper={paper}: nodes without a schema (see common/hydra_setup.py): {untyped}"


def _schema_entries(raw: DictConfig) -> list[tuple[str, str]]:
    """(schema name, node path) of each `/schema/<name>@<package>` entry of a config's defaults list."""
    entries = []
    for entry in raw.get("defaults", []):
        if isinstance(entry, str) and entry.startswith(SCHEMA_ENTRY):
            name, _, package = entry.removeprefix(SCHEMA_ENTRY).partition("@")
            entries.append((name, "" if package in ("", "_here_") else package))
    return entries


def _repeats(values, defaults, where: str) -> list[str]:
    """The values that equal their schema's default; a `name` and a `data_card` may (a data config names its
    dataset and card, which common/data_cards.py reads from the YAML)."""
    if isinstance(values, dict) and isinstance(defaults, dict):
        found = []
        for key, value in values.items():
            if key in defaults and key not in IDENTITY_KEYS:
                found += _repeats(value, defaults[key], f"{where}.{key}" if where else key)
        return found
    return [f"{where}={values!r}"] if values == defaults else []


def _config_files() -> list:
    return sorted(path for path in CONFIG_DIR.rglob("*.yaml") if "experiment" not in path.parts)


@pytest.mark.parametrize("path", _config_files(), ids=lambda path: str(path.relative_to(CONFIG_DIR)))
def test_no_yaml_repeats_its_schema_default(path):
    raw = OmegaConf.load(path)
    schemas = config_schemas()
    entries = _schema_entries(raw)
    if raw.get("trainer") is not None and path.parent.name == "paper":  # a paper's trainer settings
        entries.append(("trainer", "trainer"))
    values = OmegaConf.to_container(raw, resolve=False)
    values.pop("defaults", None)
    repeats = []
    for name, node in entries:
        assert name in schemas, f"{path}: /schema/{name} is not registered; registered: {sorted(schemas)}"
        defaults = OmegaConf.to_container(OmegaConf.structured(schemas[name]), resolve=False)
        own = OmegaConf.select(OmegaConf.create(values), node) if node else values
        if own is not None:  # None: the YAML sets nothing under the node, so it repeats nothing
            repeats += _repeats(OmegaConf.to_container(own) if node else own, defaults, node)
    assert not repeats, f"{path} repeats its schema's defaults (drop them from the YAML): {repeats}"
