"""Every slide's row in `slides.csv`, in a training run and in mode=predict alike: what became of it and why.

Columns: slide, split, label, status, reason, warnings, score, prediction. Status is `screened` (read, tiled and
scored), `skipped` (it could not be screened: missing, unopenable or unreadable file, a missing or implausible
resolution without an override, an unreadable annotation file; `reason` says which) or `no_tissue` (read, but its
tissue mask leaves no tile). `warnings` lists what was left out while reading a screened slide (annotation
features that are not areas, unmapped classes, a positive training slide without lesion annotations).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

SCREENED, SKIPPED, NO_TISSUE = "screened", "skipped", "no_tissue"
STATUSES = (SCREENED, SKIPPED, NO_TISSUE)
COLUMNS = ("slide", "split", "label", "status", "reason", "warnings", "score", "prediction")


@dataclass
class SlideRow:
    """One row of slides.csv, with what folder metrics need (the lesion Dice where annotated)."""

    slide: str
    split: str
    label: int | None
    status: str
    reason: str = ""
    warnings: str = ""
    score: float | None = None
    prediction: str = ""  # positive | negative | "" (not screened, or not decided)
    lesion_dice: float | None = None


def write_slides_csv(path: Path, rows: list[SlideRow]) -> None:
    """slides.csv, replaced atomically (a resumed run reads it whole or not at all)."""
    temporary = Path(path).with_suffix(".csv.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            values = {**row.__dict__, "label": "" if row.label is None else row.label}
            values["score"] = "" if row.score is None else f"{row.score:.4f}"
            writer.writerow([values[column] for column in COLUMNS])
    temporary.replace(path)
