"""One small synthetic demo pack shared by the modules that run whole screenings.

Two demo areas of 0.2 x 0.2 degrees keep the pack quick to write (a few seconds); it is
built once per test session under pytest's base temporary folder.
"""

from __future__ import annotations

from pathlib import Path

from sitescreen.synthetic import DemoArea, build_demo_pack, pack_is_current

AREAS = (DemoArea("Shanghai", 121.47, 31.23, 0.1, coastal=True),
         DemoArea("Beijing", 116.40, 39.95, 0.1))


def small_pack(tmp_path_factory) -> Path:
    """The shared pack (written on first use in this session)."""
    root = tmp_path_factory.getbasetemp() / "small-demo-pack"
    if not pack_is_current(root):
        build_demo_pack(root, areas=AREAS)
    return root


def site(site_id: str, name: str, *, lon: float | None = None, lat: float | None = None,
         address: str = "", city: str = "Shanghai", country: str = "CN") -> dict:
    """A GeoJSON site feature: a Point when lon/lat are given, else address-only."""
    props = {"site_id": site_id, "name": name, "city": city, "country": country}
    if address:
        props["address"] = address
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lon is not None else None
    return {"type": "Feature", "geometry": geometry, "properties": props}


def sites_doc(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}
