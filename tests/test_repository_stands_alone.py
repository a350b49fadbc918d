"""The repository stands alone: no file a user reads points at notes outside it or at how it was made."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".cff", ".cfg", ".toml"}
FORBIDDEN = re.compile(r"shared/|\bspecs?\b|\bhelpers?\b|\bsessions?\b", re.IGNORECASE)
SKIPPED = {"tests", ".git", ".cache", "outputs"}


def _user_files() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*")
        if path.suffix in SUFFIXES
        and path.is_file()
        and not set(path.relative_to(ROOT).parts) & SKIPPED
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def test_no_file_refers_to_notes_outside_the_repository() -> None:
    hits = []
    for path in _user_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not hits, "\n".join(hits)


def test_citation_file_names_the_project() -> None:
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["title"].startswith("reprozoo")
    assert citation["authors"] and citation["license"] == "MIT"
