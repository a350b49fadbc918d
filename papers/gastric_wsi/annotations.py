"""Lesion (and tissue) polygons from GeoJSON (QuPath's export: a FeatureCollection of Polygon / MultiPolygon
features, the class in properties.classification.name) and ASAP XML (Annotation elements of type Polygon,
the class in PartOfGroup), in level-0 pixel coordinates, and their rasterization to masks at any level."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DatasetError


@dataclass
class Region:
    label: str
    exterior: np.ndarray  # [n, 2] (x, y) level-0 pixels
    holes: tuple[np.ndarray, ...] = ()


def _feature_label(feature: dict) -> str:
    properties = feature.get("properties") or {}
    classification = properties.get("classification")
    if isinstance(classification, dict) and classification.get("name"):
        return str(classification["name"])
    return str(properties.get("label") or properties.get("name") or "lesion")


def read_geojson(path: Path) -> list[Region]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"annotation file {path} is not readable GeoJSON ({error}).") from None
    features = data.get("features", [data]) if isinstance(data, dict) else data
    regions = []
    for feature in features:
        geometry = feature.get("geometry") or {}
        kind, coordinates = geometry.get("type"), geometry.get("coordinates")
        if kind not in ("Polygon", "MultiPolygon"):
            raise DatasetError(f"{path}: geometry type {kind!r} is not supported; use Polygon or MultiPolygon.")
        polygons = [coordinates] if kind == "Polygon" else coordinates
        for rings in polygons:
            exterior, *holes = (np.asarray(ring, dtype=np.float64)[:, :2] for ring in rings)
            regions.append(Region(_feature_label(feature), exterior, tuple(holes)))
    return regions


def read_asap_xml(path: Path) -> list[Region]:
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise DatasetError(f"annotation file {path} is not readable ASAP XML ({error}).") from None
    regions = []
    for annotation in root.iter("Annotation"):
        if annotation.get("Type", "Polygon") not in ("Polygon", "Spline"):
            continue
        coordinates = sorted(annotation.iter("Coordinate"), key=lambda c: int(c.get("Order", 0)))
        points = np.array([[float(c.get("X")), float(c.get("Y"))] for c in coordinates])
        if len(points) >= 3:
            regions.append(Region(annotation.get("PartOfGroup") or "lesion", points))
    return regions


def read_annotations(path: Path) -> list[Region]:
    """GeoJSON (.geojson, .json) or ASAP XML (.xml), by extension."""
    suffix = Path(path).suffix.lower()
    if suffix in (".geojson", ".json"):
        return read_geojson(path)
    if suffix == ".xml":
        return read_asap_xml(path)
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


def rasterize(regions: list[Region], labels: set[str], shape: tuple[int, int], downsample: float) -> np.ndarray:
    """uint8 mask [h, w] at a level `downsample` times coarser than level 0: 1 where a pixel's centre lies
    inside a region whose label is in `labels` and outside that region's holes, 0 elsewhere. Only the pixels
    of each region's bounding box are tested."""
    from matplotlib.path import Path as Polygon

    mask = np.zeros(shape, dtype=np.uint8)
    for region in regions:
        if region.label not in labels:
            continue
        exterior = region.exterior / downsample
        top, bottom = max(int(np.floor(exterior[:, 1].min())), 0), min(int(np.ceil(exterior[:, 1].max())), shape[0])
        left, right = max(int(np.floor(exterior[:, 0].min())), 0), min(int(np.ceil(exterior[:, 0].max())), shape[1])
        if bottom <= top or right <= left:
            continue
        ys, xs = np.mgrid[top:bottom, left:right] + 0.5
        centres = np.column_stack([xs.ravel(), ys.ravel()])
        inside = Polygon(exterior).contains_points(centres)
        for hole in region.holes:
            inside &= ~Polygon(hole / downsample).contains_points(centres)
        mask[top:bottom, left:right] |= inside.reshape(bottom - top, right - left).astype(np.uint8)
    return mask
