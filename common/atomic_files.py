"""Files replaced atomically: a crash never leaves a half-written file where the last good one was."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def replace_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file in `path`'s folder, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any, indent: int | None = 2, default: Callable | None = None) -> Path:
    """`payload` as JSON (one trailing newline) in `path`, replaced atomically; returns `path`."""
    text = json.dumps(payload, indent=indent, default=default) + "\n"
    replace_atomically(path, lambda stream: stream.write(text.encode("utf-8")))
    return Path(path)
