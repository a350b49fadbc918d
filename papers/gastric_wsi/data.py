"""The slide table of a screening dataset: a CSV with one row per slide (slide file name, label 0/1, and
optionally its center, split and mpp: a per-slide µm/px overriding the slide's metadata), the slide files in one
folder and optional annotation files named after the slides (<stem>.geojson, <stem>.json or <stem>.xml) in
another."""

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
    label: int | None  # None: unlabelled (a slide mode=predict screens without a label)
    center: str
    split: str  # train | val | test; empty for a slide mode=predict screens
    annotations: Path | None
    mpp: float | None = None  # the table's µm/px for this slide, overriding its metadata


def _mpp(value, table: Path, row: int) -> float | None:
    """A labels.csv mpp cell: empty, or a positive number of µm per pixel."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return None
    try:
        mpp = float(value)
    except ValueError:
        mpp = -1.0
    if not mpp > 0:
        raise DatasetError(f"{table}, line {row}: mpp {value!r} is not a positive number of µm per pixel.")
    return mpp


def read_slide_table(table: Path, slides: Path, annotations: Path | None, data_card: str) -> list[SlideRecord]:
    table = Path(table)
    if not table.is_file():
        raise DatasetError(f"slide label table {table} does not exist; {data_card} describes its columns.")
    frame = pd.read_csv(table, dtype=str)
    missing = [column for column in ("slide", "label", "split") if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{table} lacks the column(s) {missing}; it needs slide, label (0/1) and split ({'/'.join(SPLITS)}), "
            "and may have center and mpp."
        )
    records = []
    for row, entry in enumerate(frame.itertuples(index=False), start=2):
        if entry.label not in ("0", "1"):
            raise DatasetError(f"{table}, line {row}: label {entry.label!r} is not 0 or 1.")
        if entry.split not in SPLITS:
            raise DatasetError(f"{table}, line {row}: split {entry.split!r} is not one of {', '.join(SPLITS)}.")
        center = getattr(entry, "center", None)
        records.append(
            SlideRecord(
                path=Path(slides) / entry.slide,
                label=int(entry.label),
                center=str(center) if isinstance(center, str) and center else "all",
                split=entry.split,
                annotations=annotation_file(annotations, Path(entry.slide).stem),
                mpp=_mpp(getattr(entry, "mpp", None), table, row),
            )
        )
    return records


def annotation_file(annotations: Path | None, stem: str) -> Path | None:
    """The annotation file of the slide named `stem` in the folder `annotations`, if there is one."""
    found = [annotations / f"{stem}{suffix}" for suffix in ANNOTATION_SUFFIXES] if annotations else []
    return next((path for path in found if path.is_file()), None)


def screening_records(table: Path, slides: Path, annotations: Path | None) -> list[SlideRecord]:
    """The slides a trained run screens (mode=predict): every row of the label table when there is one (its
    label where the row gives 0 or 1, unlabelled where the column or the value is missing; other columns are not
    needed; an mpp column overrides the slides' metadata), else every file in the slides folder, unlabelled."""
    slides = Path(slides)
    if Path(table).is_file():
        frame = pd.read_csv(table, dtype=str, keep_default_na=False)
        if "slide" not in frame.columns:
            raise DatasetError(f"{table} lacks the column 'slide' (the slide file names under {slides}).")
        labels = frame["label"] if "label" in frame.columns else [""] * len(frame)
        centers = frame["center"] if "center" in frame.columns else ["all"] * len(frame)
        mpps = frame["mpp"] if "mpp" in frame.columns else [""] * len(frame)
        rows = list(zip(frame["slide"], labels, centers, mpps, strict=True))
    elif slides.is_dir():
        rows = [(path.name, "", "all", "") for path in sorted(slides.iterdir()) if path.is_file()]
    else:
        raise DatasetError(f"there is neither a label table {table} nor a slide folder {slides} to screen.")
    records = []
    for line, (name, label, center, mpp) in enumerate(rows, start=2):
        if label not in ("0", "1", ""):
            raise DatasetError(f"{table}, line {line}: label {label!r} is not 0, 1 or empty (unlabelled).")
        records.append(SlideRecord(slides / name, int(label) if label else None, center or "all", "",
                                   annotation_file(annotations, Path(name).stem), _mpp(mpp, table, line)))  # fmt: skip
    return records
