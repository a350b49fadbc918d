"""Data cards: one markdown file per dataset under data_cards/, with YAML front matter and fixed sections.

A card opens with front matter between two `---` lines holding REQUIRED_FIELDS (and, for generated data,
GENERATED_FIELDS), followed by level-2 sections with exactly the titles in REQUIRED_SECTIONS. `read_card`
parses and checks one card; `configured_datasets` lists the card each configs/data/*.yaml points to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

REQUIRED_FIELDS = (
    "name", "kind", "used_by", "license", "access", "source", "format", "size", "citation",
)  # fmt: skip
GENERATED_FIELDS = ("generator", "stands_in_for")
REQUIRED_SECTIONS = (
    "Description", "Structure", "How it was made", "Intended use", "Gap to the paper's data", "Known limitations",
)  # fmt: skip
KINDS = ("real", "generated")
FRONT_MATTER_DELIMITER = "---"


class DataCardError(ValueError):
    """A data card is missing, malformed or incomplete; the message names the file and the problem."""


@dataclass
class DataCard:
    fields: dict
    sections: dict[str, str] = field(default_factory=dict)


def _is_empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False


def _split_front_matter(path: Path, text: str) -> tuple[str, str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != FRONT_MATTER_DELIMITER:
        raise DataCardError(f"data card {path} does not start with YAML front matter (a first line '---').")
    for index in range(1, len(lines)):
        if lines[index].strip() == FRONT_MATTER_DELIMITER:
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :])
    raise DataCardError(f"data card {path} has no closing '---' line after its YAML front matter.")


def _parse_sections(path: Path, body: str) -> dict[str, str]:
    """Level-2 sections by title; lines inside fenced code blocks are never headings."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    fence: str | None = None
    for line in body.splitlines():
        stripped = line.strip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None and line.startswith("## "):
            title = line[3:].strip()
            if title in sections:
                raise DataCardError(f"data card {path} has the section '## {title}' twice.")
            if title not in REQUIRED_SECTIONS:
                raise DataCardError(
                    f"data card {path} has an unexpected section '## {title}'; the level-2 sections must be "
                    f"exactly: {', '.join(REQUIRED_SECTIONS)} (use ### for subsections)."
                )
            current = sections[title] = []
            continue
        if current is not None:
            current.append(line)
    return {title: "\n".join(lines).strip() for title, lines in sections.items()}


def _check_fields(path: Path, fields: dict) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise DataCardError(f"data card {path} lacks the front-matter field(s): {', '.join(missing)}.")
    empty = [name for name in REQUIRED_FIELDS if _is_empty(fields[name])]
    if empty:
        raise DataCardError(f"data card {path} has empty front-matter field(s): {', '.join(empty)}.")
    if fields["kind"] not in KINDS:
        raise DataCardError(f"data card {path} has kind {fields['kind']!r}; it must be one of: {', '.join(KINDS)}.")
    if fields["kind"] == "generated":
        absent = [name for name in GENERATED_FIELDS if _is_empty(fields.get(name))]
        if absent:
            raise DataCardError(
                f"data card {path} is of kind 'generated' but lacks or leaves empty: {', '.join(absent)}."
            )
    used_by = fields["used_by"]
    if not isinstance(used_by, list) or not all(isinstance(key, str) and key.strip() for key in used_by):
        raise DataCardError(
            f"data card {path} has used_by {used_by!r}; it must be a non-empty list of paper keys (strings)."
        )
    if fields["name"] != path.stem:
        raise DataCardError(
            f"data card {path} has name {fields['name']!r}, which differs from its file name {path.stem!r}."
        )


def read_card(path: Path) -> DataCard:
    """Parse and check the data card at `path`; raise DataCardError naming the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataCardError(f"data card {path} cannot be read ({type(error).__name__}: {error}).") from None
    front_matter, body = _split_front_matter(path, text)
    try:
        fields = yaml.safe_load(front_matter)
    except yaml.YAMLError as error:
        raise DataCardError(f"data card {path} has front matter that is not valid YAML: {error}") from None
    if not isinstance(fields, dict):
        raise DataCardError(f"data card {path} has front matter that is not a YAML mapping of fields.")
    _check_fields(path, fields)
    sections = _parse_sections(path, body)
    missing = [title for title in REQUIRED_SECTIONS if title not in sections]
    if missing:
        raise DataCardError(f"data card {path} lacks the section(s): {', '.join('## ' + title for title in missing)}.")
    empty = [title for title in REQUIRED_SECTIONS if not sections[title]]
    if empty:
        raise DataCardError(f"data card {path} has empty section(s): {', '.join('## ' + title for title in empty)}.")
    return DataCard(fields=fields, sections=sections)


def configured_datasets(config_dir: Path) -> dict[str, str]:
    """Map each dataset configured in `config_dir`/*.yaml (its `name`) to its `data_card` (repo-relative)."""
    datasets: dict[str, str] = {}
    for config_path in sorted(Path(config_dir).glob("*.yaml")):
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise DataCardError(f"dataset config {config_path} is not valid YAML: {error}") from None
        if not isinstance(config, dict):
            raise DataCardError(f"dataset config {config_path} is not a YAML mapping.")
        name, card = config.get("name"), config.get("data_card")
        for key, value in (("name", name), ("data_card", card)):
            if not isinstance(value, str) or not value.strip():
                raise DataCardError(f"dataset config {config_path} lacks a '{key}' string (it has {value!r}).")
        if name in datasets:
            raise DataCardError(f"dataset config {config_path} repeats the dataset name {name!r}.")
        datasets[name] = card
    return datasets
