"""Hydra set-up: `experiment=<name>` selects configs/experiment/<paper>/<name>.yaml, and the command line's
overrides are composed once before Hydra runs, so that an unknown key, a misspelt one, another paper's experiment or
a malformed override gets one `error:` paragraph naming it and what is allowed (Hydra's own message otherwise).

Hydra resolves `experiment@_global_: ${paper}/${experiment}` in configs/run.yaml; the `experiment`
group itself only needs to know the names, which this registers as empty configs.

Each default lives once, in a typed dataclass: the `schema` group holds every such dataclass by name, and a YAML
extends one with a defaults entry (`- /schema/<name>@_here_` in a group's config such as configs/data/<name>.yaml,
`- /schema/<name>@<node>` in a paper's `_global_` config), then sets only what differs from its defaults. The
composed node is then typed: an override of a key the dataclass lacks, or of the wrong type, is refused before
anything runs, and `mode=config` shows every value. The names are the trainer's, the logger's, the mode's, and
those in each paper package's `SCHEMAS` (papers/<pkg>/schemas.py).
"""

from __future__ import annotations

import difflib
import importlib
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.errors import ConfigError
from papers import PAPERS, paper_package_dir

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# Hydra's command-line flags that take a value (the next argument)
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp"}
FLAGS_WITH_VALUE |= {"--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}


def experiment_names() -> list[str]:
    return sorted({path.stem for path in CONFIG_DIR.glob("experiment/*/*.yaml")})


def register_configs() -> None:
    """Register the experiment names and, in the `schema` group, every typed schema the YAML extends."""
    store = ConfigStore.instance()
    for name in experiment_names():
        store.store(group="experiment", name=name, node={}, package="_global_")
    for name, schema in config_schemas().items():
        store.store(group="schema", name=name, node=schema)


def config_schemas() -> dict[str, type]:
    """The dataclasses configs extend by name: the trainer's, the logger's, the mode's and every paper
    package's `SCHEMAS` (papers/<pkg>/schemas.py, where a package has one)."""
    from common.logging import LoggerConfig
    from common.runner import ModeConfig
    from common.trainer import TrainerConfig

    schemas: dict[str, type] = {"trainer": TrainerConfig, "logger": LoggerConfig, "mode": ModeConfig}
    for package in sorted({paper_package_dir(key) for key in PAPERS}):
        if not (package / "schemas.py").exists():
            continue
        declared = importlib.import_module(f"papers.{package.name}.schemas").SCHEMAS
        clashes = sorted(set(declared) & set(schemas))
        if clashes:
            raise ValueError(f"papers/{package.name}/schemas.py declares schema names already taken: {clashes}")
        schemas.update(declared)
    return schemas


def config_overrides(arguments: list[str]) -> list[str]:
    """The config overrides among command-line arguments (Hydra's flags and hydra.* settings left out)."""
    overrides, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument.startswith("-"):
            skip = argument in FLAGS_WITH_VALUE
        elif not argument.lstrip("+~").startswith("hydra"):
            overrides.append(argument)
    return overrides


def check_command_line(arguments: list[str]) -> None:
    """Compose the run config with the command line's overrides (each value of a sweep once); a ConfigError
    names what cannot be composed."""
    overrides = config_overrides(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ConfigError(f"cannot read the overrides {' '.join(overrides)}: {_first_line(error)}.") from None
    choices = [_values(override) for override in parsed]
    for combination in _combinations(choices):
        _compose(list(combination))


def _values(override) -> list[str]:
    key = override.get_key_element()
    if override.is_sweep_override():
        return [f"{key}={value}" for value in override.sweep_string_iterator()]
    return [override.input_line]


def _combinations(choices: list[list[str]]):
    """The first value of every override, then each other value of a sweep with the others' first values."""
    first = [values[0] for values in choices]
    yield first
    for i, values in enumerate(choices):
        for value in values[1:]:
            yield [*first[:i], value, *first[i + 1 :]]


def compose_run(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="run", overrides=overrides)


def _compose(overrides: list[str]) -> None:
    try:
        compose_run(overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_explain(error, overrides)) from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0].rstrip(".")


def _explain(error: Exception, overrides: list[str]) -> str:
    message = str(error)
    missing = re.search(r"Could not find '([^']+)'", message)
    if missing:
        return _missing_option(missing.group(1), overrides)
    unknown = re.search(r"Could not override '([^']+)'", message)
    if unknown:
        return _unknown_key(unknown.group(1), overrides)
    merging = re.search(r"Error merging override (\S+)", message)
    if merging and error.__cause__ is not None:
        return f"Bad config value {merging.group(1)}: {_first_line(error.__cause__)}."
    return f"the overrides {' '.join(overrides)} cannot be composed: {_first_line(error)}."


def _missing_option(path: str, overrides: list[str]) -> str:
    group, _, name = path.rpartition("/")
    if group == "experiment":  # not the name of any paper's experiment
        group = f"experiment/{_chosen_paper(overrides)}"
    if group.startswith("experiment/"):
        paper = group.partition("/")[2]
        allowed = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        return (
            f"experiment={name} is not an experiment of paper {paper}; its experiments are: {', '.join(allowed)} "
            f"(configs/experiment/{paper}/)."
        )
    allowed = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" Did you mean {group}={close[0]}?" if close else ""
    return f"{group}={name} is not a choice of '{group}'; allowed: {', '.join(allowed)}.{hint}"


def _chosen_paper(overrides: list[str]) -> str:
    chosen = [override.partition("=")[2] for override in overrides if override.startswith("paper=")]
    if chosen:
        return chosen[-1]
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "run.yaml").defaults)
    return next(entry["paper"] for entry in defaults if isinstance(entry, dict) and "paper" in entry)


def _unknown_key(key: str, overrides: list[str]) -> str:
    others = [override for override in overrides if not override.startswith(f"{key}=")]
    parent, _, leaf = key.rpartition(".")
    try:
        node = OmegaConf.select(compose_run(others), parent) if parent else compose_run(others)
    except (HydraException, OmegaConfBaseException):
        node = None
    keys = sorted(node.keys()) if isinstance(node, DictConfig) else []
    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f" Did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
    listed = f" The keys under '{parent or 'the top level'}' are: {', '.join(keys)}." if keys else ""
    return (
        f"{key} is not a config key.{hint}{listed} To add a new key on purpose, write +{key}=... "
        "(a paper's typed config still refuses keys it does not know)."
    )
