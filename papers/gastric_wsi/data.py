"""The slide table of a screening dataset: a CSV with one row per slide (slide file name, label 0/1, and
optionally its center and split), the slide files in one folder and optional annotation files named after
the slides (<stem>.geojson, <stem>.json or <stem>.xml) in another."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.errors import DatasetError

SPLITS = ("train", "val", "test")
ANNOTATION_SUFFIXES = (".geojson", ".json", ".xml")


@dataclass
class SlideRecord:
    path: Path
    label: int
    center: str
    split: str
    annotations: Path | None


def read_slide_table(table: Path, slides: Path, annotations: Path | None, data_card: str) -> list[SlideRecord]:
    table = Path(table)
    if not table.is_file():
        raise DatasetError(f"slide label table {table} does not exist; {data_card} describes its columns.")
    frame = pd.read_csv(table, dtype=str)
    missing = [column for column in ("slide", "label", "split") if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{table} lacks the column(s) {missing}; it needs slide, label (0/1) and split ({'/'.join(SPLITS)}), "
            "and may have center."
        )
    records = []
    for row, entry in enumerate(frame.itertuples(index=False), start=2):
        if entry.label not in ("0", "1"):
            raise DatasetError(f"{table}, line {row}: label {entry.label!r} is not 0 or 1.")
        if entry.split not in SPLITS:
            raise DatasetError(f"{table}, line {row}: split {entry.split!r} is not one of {', '.join(SPLITS)}.")
        stem = Path(entry.slide).stem
        found = [annotations / f"{stem}{suffix}" for suffix in ANNOTATION_SUFFIXES] if annotations else []
        center = getattr(entry, "center", None)
        records.append(
            SlideRecord(
                path=Path(slides) / entry.slide,
                label=int(entry.label),
                center=str(center) if isinstance(center, str) and center else "all",
                split=entry.split,
                annotations=next((path for path in found if path.is_file()), None),
            )
        )
    return records
