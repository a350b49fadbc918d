"""Typed views of config nodes: a wrong type or unknown key becomes a ConfigError naming the key."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common.errors import ConfigError

Schema = TypeVar("Schema")


def typed_config(schema: type[Schema], node: DictConfig | dict | None, where: str) -> Schema:
    """Validate `node` against the dataclass `schema` and return an instance of it.

    `where` is the node's path in the full config (e.g. "trainer"), used in the error message.
    """
    try:
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        merged = OmegaConf.merge(OmegaConf.structured(schema), values or {})
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        allowed = ", ".join(field.name for field in dataclasses.fields(schema))
        message = str(error).splitlines()[0]
        raise ConfigError(
            f"Bad config value at '{where}.{key}': {message}. "
            f"The keys allowed under '{where}' are: {allowed}; see configs/ for their defaults."
        ) from None


def require_choice(value: Any, allowed: tuple | list, key: str) -> Any:
    """Return `value` if it is one of `allowed`, else raise a ConfigError naming both."""
    if value not in allowed:
        raise ConfigError(f"Bad config value {key}={value!r}: allowed values are {', '.join(map(str, allowed))}.")
    return value
