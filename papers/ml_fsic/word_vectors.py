"""Label word vectors e_l from a vector file, read once per run, streaming (a 5 GB GloVe file is never held).

Formats read: GloVe text (`token v_1 … v_d`, no header), word2vec text (the same lines after a `count dim`
header), and the authors' JSON lines (`{"label": [v_1, …]}` per line, atten_purify.py: WordEmbeddings). A token
may contain spaces (glove.840B.300d has such tokens): a line's vector is its last d fields, the token the rest.
A label's vector is its own entry where the file has one, else the mean of its words' vectors (spaces or
underscores split a name); `aliases` maps a dataset's label name to the words to look up (VOC's "diningtable" →
"dining table").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common.errors import DatasetError


def _words(name: str, aliases: dict[str, str]) -> list[str]:
    return aliases.get(name, name).replace("_", " ").lower().split()


def _text_entries(path: Path, lines: Iterator[str], first: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, token, vector fields) of a GloVe or word2vec text file; `first` is its first line."""
    fields = first.split()
    header = len(fields) == 2 and all(field.isdigit() for field in fields)
    dim = int(fields[1]) if header else len(first.rstrip("\n").split(" ")) - 1
    if dim < 1:
        raise DatasetError(f"word vector file {path}: its first line has no vector ({first[:60]!r}).")
    numbered = enumerate(lines, start=2) if header else enumerate([first, *lines], start=1)
    for number, line in numbered:
        parts = line.rstrip("\r\n").split(" ")
        if len(parts) < dim + 1:
            raise DatasetError(
                f"word vector file {path}, line {number}: {len(parts)} fields, expected a token and {dim} numbers."
            )
        yield number, " ".join(parts[:-dim]), parts[-dim:]


def _json_entries(path: Path, lines: Iterator[str], first: str) -> Iterator[tuple[int, str, list]]:
    for number, line in enumerate([first, *lines], start=1):
        if not line.strip():
            continue
        try:
            entries = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"word vector file {path}, line {number}: not a JSON object ({error}).") from None
        for token, vector in entries.items():
            yield number, token, json.loads(vector) if isinstance(vector, str) else vector


def read_vectors(path: Path, tokens: set[str]) -> dict[str, np.ndarray]:
    """The vectors of `tokens` that `path` holds (the first entry of a repeated token)."""
    found: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        first = next(lines, "")
        if not first.strip():
            raise DatasetError(f"word vector file {path} is empty.")
        entries = (_json_entries if first.lstrip().startswith("{") else _text_entries)(path, lines, first)
        for number, token, vector in entries:
            if token in tokens and token not in found:
                try:
                    found[token] = np.asarray(vector, dtype=np.float32)
                except ValueError:
                    raise DatasetError(f"word vector file {path}, line {number}: {token!r} has a non-number.") from None
            if len(found) == len(tokens):
                break
    if len({len(vector) for vector in found.values()}) > 1:
        raise DatasetError(f"word vector file {path}: the vectors of {sorted(found)} differ in length.")
    return found


def label_vectors(path: Path, names: list[str], data_card: str, aliases: dict[str, str] | None = None) -> np.ndarray:
    """[labels, dim]: each label's vector, its own entry or the mean of its words' (see the module's text)."""
    aliases = aliases or {}
    if not Path(path).is_file():
        raise DatasetError(f"word vector file {path} does not exist; {data_card} says where to get GloVe.")
    whole = {aliases.get(name, name) for name in names}
    found = read_vectors(Path(path), whole | {word for name in names for word in _words(name, aliases)})
    rows = []
    for name in names:
        if aliases.get(name, name) in found:
            rows.append(found[aliases.get(name, name)])
            continue
        words = _words(name, aliases)
        missing = [word for word in words if word not in found]
        if missing:
            alias = f" (alias {aliases[name]!r})" if name in aliases else ""
            raise DatasetError(
                f"label {name!r}{alias}: words {missing} are not in the word vectors of {path}; give the words to "
                f"use with data.aliases={{{name}: ...}}."
            )
        rows.append(np.mean([found[word] for word in words], axis=0))
    return np.stack(rows).astype(np.float32)
