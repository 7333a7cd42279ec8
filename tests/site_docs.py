"""GeoJSON site documents built feature by feature, for the reader and checks tests."""

from __future__ import annotations

import json
from pathlib import Path


def feature_collection(*features: dict, **top) -> dict:
    return {"type": "FeatureCollection", **top, "features": list(features)}


def feature(props: dict, geom: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geom}


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path
