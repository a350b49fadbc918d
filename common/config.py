"""Typed views of config nodes: a wrong type, an unknown key or a value out of its declared range becomes a
ConfigError naming the key, the value and what is allowed.

A dataclass field declares its range with `bounded(default, ...)` (or `field(metadata=bounds(...))`):
``minimum``/``maximum`` (inclusive), ``above``/``below`` (exclusive), ``choices``, ``same_length_as`` (another list
field of the same dataclass). `typed_config` checks every such field, in nested dataclasses, lists and dicts too.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.errors import ConfigError

Schema = TypeVar("Schema")
BOUND_KEYS = ("minimum", "maximum", "above", "below", "choices", "same_length_as")


def bounds(**limits: Any) -> dict[str, Any]:
    """Field metadata declaring what values are allowed (see the module docstring)."""
    unknown = sorted(set(limits) - set(BOUND_KEYS))
    if unknown:
        raise TypeError(f"unknown bounds {unknown}; allowed: {', '.join(BOUND_KEYS)}")
    return {"bounds": limits}


def bounded(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **limits: Any):
    """A dataclass field with a default and declared bounds, e.g. `batch_size: int = bounded(256, minimum=1)`."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=bounds(**limits))
    return dataclasses.field(default=default, metadata=bounds(**limits))


def typed_config(schema: type[Schema], node: DictConfig | dict | None, where: str) -> Schema:
    """Validate `node` against the dataclass `schema` (types, keys, declared bounds) and return an instance.

    `where` is the node's path in the full config (e.g. "trainer"; "" for top-level keys), used in messages.
    """
    try:
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        merged = OmegaConf.merge(OmegaConf.structured(schema), _nested_floats(schema, values or {}))
        instance = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        names = [field.name for field in dataclasses.fields(schema)]
        message = str(error).splitlines()[0]
        leaf = str(key).rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close and close[0] != leaf else ""
        scope = f"under '{where}'" if where else "at the top level"
        raise ConfigError(
            f"Bad config value at '{_join(where, str(key))}': {message}.{hint} "
            f"The keys allowed {scope} are: {', '.join(names)}; see configs/ for their defaults."
        ) from None
    check_bounds(instance, where)
    return instance


def _nested_floats(schema: type, values: Any) -> Any:
    """`values` with whole numbers made floats inside list-of-list-of-float fields (a matrix such as λ), which
    OmegaConf refuses as ints, unlike a flat list of floats; nested dataclass fields likewise."""
    if not isinstance(values, dict) or not dataclasses.is_dataclass(schema):
        return values
    hints = typing.get_type_hints(schema)
    converted = dict(values)
    for name, value in values.items():
        hint = _without_none(hints.get(name))
        if hint == list[list[float]] and isinstance(value, list):
            converted[name] = [[float(x) if isinstance(x, int) else x for x in row] for row in value]
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
            converted[name] = _nested_floats(hint, value)
    return converted


def _without_none(hint: Any) -> Any:
    """`X` of a hint `X | None`, the hint itself otherwise."""
    arguments = [argument for argument in typing.get_args(hint) if argument is not type(None)]
    is_optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    return arguments[0] if is_optional and len(arguments) == 1 else hint


def check_bounds(instance: Any, where: str) -> None:
    """Check every declared bound of the dataclass `instance` and of the dataclasses inside it."""
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        key = _join(where, field.name)
        limits = field.metadata.get("bounds")
        if limits:
            _check_value(instance, key, value, limits)
        for inner_key, inner in _nested(key, value):
            check_bounds(inner, inner_key)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _nested(key: str, value: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(value):
        return [(key, value)]
    if isinstance(value, list):
        return [(f"{key}[{i}]", item) for i, item in enumerate(value) if dataclasses.is_dataclass(item)]
    if isinstance(value, dict):
        return [(f"{key}.{name}", item) for name, item in value.items() if dataclasses.is_dataclass(item)]
    return []


def _check_value(instance: Any, key: str, value: Any, limits: dict[str, Any]) -> None:
    if value is None:
        return
    if "same_length_as" in limits:
        other = limits["same_length_as"]
        other_value = getattr(instance, other)
        if other_value is not None and len(value) != len(other_value):
            parent = key.rsplit(".", 1)[0]
            raise ConfigError(
                f"Bad config value {key}={value!r}: it must have as many entries as {parent}.{other} "
                f"({len(other_value)}: {other_value!r}), it has {len(value)}."
            )
    items = value if isinstance(value, list) else [value]
    for item in items:
        problem = _out_of_range(item, limits)
        if problem:
            shown = f"{key}={value!r}" + (f" (entry {item!r})" if isinstance(value, list) else "")
            raise ConfigError(f"Bad config value {shown}: {problem}.")


def _out_of_range(value: Any, limits: dict[str, Any]) -> str | None:
    """What is wrong with `value` under `limits`, or None."""
    if "choices" in limits and value not in limits["choices"]:
        return f"allowed values are {', '.join(map(str, limits['choices']))}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isnan(value):
        return "it must be a number, not NaN"
    rules = (
        ("minimum", lambda limit: value >= limit, "≥"),
        ("maximum", lambda limit: value <= limit, "≤"),
        ("above", lambda limit: value > limit, ">"),
        ("below", lambda limit: value < limit, "<"),
    )
    if all(holds(limits[name]) for name, holds, _ in rules if name in limits):
        return None
    allowed = " and ".join(f"{sign} {limits[name]}" for name, _, sign in rules if name in limits)
    return f"it must be {allowed}"


def require_choice(value: Any, allowed: tuple | list, key: str) -> Any:
    """Return `value` if it is one of `allowed`, else raise a ConfigError naming both."""
    if value not in allowed:
        raise ConfigError(f"Bad config value {key}={value!r}: allowed values are {', '.join(map(str, allowed))}.")
    return value
