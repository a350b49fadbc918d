import importlib
from pathlib import Path

import pytest

from common.data_cards import (
    REQUIRED_SECTIONS,
    DataCardError,
    configured_datasets,
    read_card,
)

ROOT = Path(__file__).resolve().parents[1]
CARD_DIR = ROOT / "data_cards"
CONFIG_DIR = ROOT / "configs" / "data"
CARDS = sorted(CARD_DIR.glob("*.md"))
DATASETS = configured_datasets(CONFIG_DIR)


def test_there_are_cards_and_datasets():
    assert CARDS, f"no data cards in {CARD_DIR}"
    assert DATASETS, f"no dataset configs in {CONFIG_DIR}"


@pytest.mark.parametrize("path", CARDS, ids=[path.stem for path in CARDS])
def test_card_parses(path):
    card = read_card(path)
    assert card.fields["name"] == path.stem
    assert set(card.sections) == set(REQUIRED_SECTIONS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_configured_dataset_has_card(name):
    configured = DATASETS[name]
    path = ROOT / configured
    assert path.is_file(), f"configs/data declares data_card {configured} for {name!r}, but the file is missing"
    assert Path(configured) == Path("data_cards") / f"{name}.md"
    assert read_card(path).fields["name"] == name


def _is_generated(path: Path) -> bool:
    try:
        return read_card(path).fields["kind"] == "generated"
    except DataCardError:
        return False  # test_card_parses reports the broken card


GENERATED = [path for path in CARDS if _is_generated(path)]


@pytest.mark.parametrize("path", GENERATED, ids=[path.stem for path in GENERATED])
def test_generator_is_importable(path):
    module = read_card(path).fields["generator"]
    importlib.import_module(module)


def _card_text(fields: dict[str, str], sections: list[str]) -> str:
    front = "\n".join(f"{key}: {value}" for key, value in fields.items())
    body = "\n\n".join(f"## {title}\n\nSome text." for title in sections)
    return f"---\n{front}\n---\n\n{body}\n"


def _good_fields(name: str) -> dict[str, str]:
    return {
        "name": name,
        "kind": "real",
        "used_by": "[twin]",
        "license": "MIT",
        "access": "local",
        "source": "a test",
        "format": "CSV",
        "size": "tiny",
        "citation": "none",
    }


def test_good_card_in_tmp_path_parses(tmp_path):
    path = tmp_path / "toy.md"
    path.write_text(_card_text(_good_fields("toy"), list(REQUIRED_SECTIONS)))
    card = read_card(path)
    assert card.fields["used_by"] == ["twin"]
    assert card.sections["Known limitations"] == "Some text."


def _without(fields: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != key}


BAD_CARDS = {
    "missing_field": (lambda f: _without(f, "license"), list(REQUIRED_SECTIONS), "license"),
    "fake_kind": (lambda f: {**f, "kind": "fake"}, list(REQUIRED_SECTIONS), "fake"),
    "missing_section": (lambda f: f, [s for s in REQUIRED_SECTIONS if s != "Intended use"], "Intended use"),
    "empty_field": (lambda f: {**f, "size": "''"}, list(REQUIRED_SECTIONS), "size"),
    "generated_without_generator": (lambda f: {**f, "kind": "generated"}, list(REQUIRED_SECTIONS), "generator"),
    "used_by_not_list": (lambda f: {**f, "used_by": "twin"}, list(REQUIRED_SECTIONS), "used_by"),
    "wrong_name": (lambda f: {**f, "name": "other"}, list(REQUIRED_SECTIONS), "other"),
    "unknown_section": (lambda f: f, [*REQUIRED_SECTIONS, "Extras"], "Extras"),
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_card_is_rejected(tmp_path, case):
    edit, sections, expected = BAD_CARDS[case]
    path = tmp_path / f"{case}.md"
    path.write_text(_card_text(edit(_good_fields(case)), sections))
    with pytest.raises(DataCardError) as caught:
        read_card(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message


def test_empty_section_is_rejected(tmp_path):
    path = tmp_path / "hollow.md"
    text = _card_text(_good_fields("hollow"), list(REQUIRED_SECTIONS))
    path.write_text(text.replace("## Structure\n\nSome text.", "## Structure\n"))
    with pytest.raises(DataCardError, match="Structure"):
        read_card(path)


def test_card_without_front_matter_is_rejected(tmp_path):
    path = tmp_path / "bare.md"
    path.write_text("# Bare\n\n## Description\n\nNo front matter.\n")
    with pytest.raises(DataCardError, match="front matter"):
        read_card(path)
