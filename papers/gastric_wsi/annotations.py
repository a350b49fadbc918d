"""Lesion and tissue polygons from the annotation files QuPath and ASAP write, in level-0 pixel coordinates, and
their rasterization to masks at any level.

- QuPath's GeoJSON export (File > Object data > Export as GeoJSON): a FeatureCollection, or a plain array of
  Features (QuPath 0.2's default), the class in properties.classification.name (QuPath's derived classes as
  "Tumor: Positive" or as a names list); Polygon, MultiPolygon and GeometryCollection geometries, with their holes.
- ASAP's XML: Annotation elements (Polygon, Spline, Rectangle) with Coordinate children, their class the
  PartOfGroup, followed up the AnnotationGroups' PartOfGroup chain; "None" means no group. ASAP writes decimals
  with the locale's separator, so "1234,5" reads as 1234.5. ASAP has no holes; a class mapped to `exclude` (e.g.
  Camelyon16's "_2") cuts its area out of the lesion and tissue masks instead.

Each class name is mapped to lesion, tissue, exclude or ignore (AnnotationClasses); an unclassified feature and a
class named nowhere get their configured targets. What is skipped (points, lines, unmapped classes) is counted in
the file's warnings, never silently.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.config import bounded
from common.errors import DatasetError

LESION, TISSUE, EXCLUDE, IGNORE = "lesion", "tissue", "exclude", "ignore"
TARGETS = (LESION, TISSUE, EXCLUDE, IGNORE)
ASAP_POLYGONS = ("Polygon", "Spline", "Rectangle")  # ASAP's area types (a Spline's control points as its outline)


@dataclass
class AnnotationClasses:
    """Which annotation class names (QuPath classes, ASAP groups; case-insensitive) are lesion, tissue or exclude."""

    lesion: list[str] = field(default_factory=lambda: ["lesion", "tumor", "tumour", "carcinoma", "cancer"])
    tissue: list[str] = field(default_factory=lambda: ["tissue", "region", "region*"])  # QuPath: Region*
    exclude: list[str] = field(default_factory=list)  # cut out of the lesion and tissue masks (e.g. ASAP holes)
    unclassified: str = bounded(IGNORE, choices=TARGETS)  # a feature without a class
    unknown: str = bounded(IGNORE, choices=TARGETS)  # a class listed under none of the above

    def listed(self, name: str) -> bool:
        return self._listed(name) is not None

    def _listed(self, name: str) -> str | None:
        for candidate in (name, name.split(":")[0]):  # QuPath's derived "Tumor: Positive" is a Tumor
            for target in (LESION, TISSUE, EXCLUDE):
                if candidate.strip().lower() in {listed.lower() for listed in getattr(self, target)}:
                    return target
        return None

    def target(self, name: str | None) -> tuple[str, str | None]:
        """(target, warning or None) of a class name (None: unclassified); a feature left out gets a warning."""
        if not name:
            return self.unclassified, "unclassified feature ignored" if self.unclassified == IGNORE else None
        target = self._listed(name)
        if target is not None:
            return target, None
        return self.unknown, f"class {name!r} ignored" if self.unknown == IGNORE else None


@dataclass
class Region:
    label: str  # lesion | tissue | exclude
    exterior: np.ndarray  # [n, 2] (x, y) level-0 pixels
    holes: tuple[np.ndarray, ...] = ()


@dataclass
class Annotations:
    """A file's regions and what was skipped reading it (a warning -> how many times)."""

    regions: list[Region]
    skipped: Counter = field(default_factory=Counter)

    def warning(self) -> str:
        """One line naming every skip and its count, empty when nothing was skipped."""
        return "; ".join(f"{count} x {what}" for what, count in sorted(self.skipped.items()))


def _qupath_class(properties: dict) -> str | None:
    classification = properties.get("classification")
    if isinstance(classification, str):
        return classification or None
    if isinstance(classification, dict):
        if classification.get("name"):
            return str(classification["name"])
        if classification.get("names"):
            return ": ".join(map(str, classification["names"]))
    return None


def _polygons(geometry: dict, skipped: Counter) -> list[list]:
    """The polygons (lists of rings) of a GeoJSON geometry; other geometry types are counted in `skipped`."""
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        return [coordinates]
    if kind == "MultiPolygon":
        return list(coordinates)
    if kind == "GeometryCollection":
        return [polygon for part in geometry.get("geometries", []) for polygon in _polygons(part, skipped)]
    skipped[f"{kind} geometry (not an area)"] += 1
    return []


def read_geojson(path: Path, classes: AnnotationClasses) -> Annotations:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"annotation file {path} is not readable GeoJSON ({error}).") from None
    features = data.get("features", [data]) if isinstance(data, dict) else data
    result = Annotations([])
    for number, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise DatasetError(f"{path}: feature {number} is not a GeoJSON Feature object.")
        target, warning = classes.target(_qupath_class(feature.get("properties") or {}))
        polygons = _polygons(feature.get("geometry") or {}, result.skipped)
        if warning and polygons:
            result.skipped[warning] += 1
        if target == IGNORE:
            continue
        for rings in polygons:
            try:
                exterior, *holes = (np.asarray(ring, dtype=np.float64)[:, :2] for ring in rings)
            except (ValueError, IndexError, TypeError):
                raise DatasetError(f"{path}: feature {number} has malformed polygon coordinates.") from None
            result.regions.append(Region(target, exterior, tuple(holes)))
    return result


def _asap_number(text: str | None, path: Path, name: str) -> float:
    try:
        return float(str(text).replace(",", "."))
    except ValueError:
        raise DatasetError(f"{path}: annotation {name!r} has the coordinate {text!r}, not a number.") from None


def _asap_group(name: str | None, parents: dict[str, str | None], classes: AnnotationClasses) -> str | None:
    """The nearest group on the way up from an annotation's PartOfGroup whose name `classes` lists, else the
    annotation's own group (None for ASAP's "None")."""
    own = name if name and name != "None" else None
    seen = set()
    while name and name != "None" and name not in seen:
        if classes.listed(name):
            return name
        seen.add(name)
        name = parents.get(name)
    return own


def read_asap_xml(path: Path, classes: AnnotationClasses) -> Annotations:
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise DatasetError(f"annotation file {path} is not readable ASAP XML ({error}).") from None
    parents = {group.get("Name"): group.get("PartOfGroup") for group in root.iter("Group")}
    result = Annotations([])
    for annotation in root.iter("Annotation"):
        kind, name = annotation.get("Type", "Polygon"), annotation.get("Name", "")
        if kind not in ASAP_POLYGONS:
            result.skipped[f"{kind} annotation (not an area)"] += 1
            continue
        target, warning = classes.target(_asap_group(annotation.get("PartOfGroup"), parents, classes))
        if warning:
            result.skipped[warning] += 1
        coordinates = sorted(annotation.iter("Coordinate"), key=lambda c: _asap_number(c.get("Order", 0), path, name))
        points = np.array([[_asap_number(c.get(axis), path, name) for axis in "XY"] for c in coordinates])
        if len(points) < 3:
            result.skipped["area annotation with under 3 points"] += 1
        elif target != IGNORE:
            result.regions.append(Region(target, points))
    return result


def read_annotations(path: Path, classes: AnnotationClasses) -> Annotations:
    """GeoJSON (.geojson, .json) or ASAP XML (.xml), by extension."""
    suffix = Path(path).suffix.lower()
    if suffix in (".geojson", ".json"):
        return read_geojson(path, classes)
    if suffix == ".xml":
        return read_asap_xml(path, classes)
    raise DatasetError(f"annotation file {path}: extension {suffix!r} is not one of .geojson, .json, .xml.")


def write_geojson(path: Path, regions: list[Region]) -> None:
    def ring(points: np.ndarray) -> list[list[float]]:
        closed = np.vstack([points, points[:1]])
        return [[round(float(x), 1), round(float(y), 1)] for x, y in closed]

    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring(r.exterior), *(ring(h) for h in r.holes)]},
            "properties": {"objectType": "annotation", "classification": {"name": r.label}},
        }
        for r in regions
    ]
    Path(path).write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def rasterize(regions: list[Region], labels: set[str], shape: tuple[int, int], downsample: float,
              origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # fmt: skip
    """uint8 mask [h, w] of a window whose top-left is level-0 `origin`, `downsample` times coarser than level 0:
    1 where a pixel's centre lies inside a region whose label is in `labels` (outside its holes) and inside no
    `exclude` region, 0 elsewhere. Only the pixels of each region's bounding box are tested."""
    mask = _fill([r for r in regions if r.label in labels], shape, downsample, origin)
    excluded = [r for r in regions if r.label == EXCLUDE]
    if excluded and mask.any():
        mask &= 1 - _fill(excluded, shape, downsample, origin)
    return mask


def _fill(regions: list[Region], shape: tuple[int, int], downsample: float, origin: tuple[float, float]) -> np.ndarray:
    from matplotlib.path import Path as Polygon

    mask = np.zeros(shape, dtype=np.uint8)
    offset = np.asarray(origin, dtype=np.float64)
    for region in regions:
        exterior = (region.exterior - offset) / downsample
        top, bottom = max(int(np.floor(exterior[:, 1].min())), 0), min(int(np.ceil(exterior[:, 1].max())), shape[0])
        left, right = max(int(np.floor(exterior[:, 0].min())), 0), min(int(np.ceil(exterior[:, 0].max())), shape[1])
        if bottom <= top or right <= left:
            continue
        ys, xs = np.mgrid[top:bottom, left:right] + 0.5
        centres = np.column_stack([xs.ravel(), ys.ravel()])
        inside = Polygon(exterior).contains_points(centres)
        for hole in region.holes:
            inside &= ~Polygon((hole - offset) / downsample).contains_points(centres)
        mask[top:bottom, left:right] |= inside.reshape(bottom - top, right - left).astype(np.uint8)
    return mask
