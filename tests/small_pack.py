"""The synthetic packs shared by the modules that run whole screenings.

The small pack: two demo areas of 0.2 x 0.2 degrees keep it quick to write (a few seconds).
The full demo pack (conftest's ``demo_pack``) is the one ``demo-data`` writes. Each is built
once per test session under pytest's base temporary folder, by ``build_demo_pack``; when the
collected tests use one, conftest starts writing it at the start of the session in a child
process (:func:`start_building`), so that it is written on the second core
while the first tests run, and the first test that needs it waits for that build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sitescreen.synthetic import DemoArea, build_demo_pack, pack_is_current

AREAS = (DemoArea("Shanghai", 121.47, 31.23, 0.1, coastal=True),
         DemoArea("Beijing", 116.40, 39.95, 0.1))

SMALL, DEMO = "small-demo-pack", "demo-pack"  # folder names under the base temporary folder
_BUILD = """
import sys
from small_pack import AREAS
from sitescreen.synthetic import DEMO_AREAS, build_demo_pack
build_demo_pack(sys.argv[1], areas=AREAS if sys.argv[2] == "small" else DEMO_AREAS)
"""
_building: dict[Path, subprocess.Popen] = {}


def start_building(root: Path, small: bool) -> None:
    """Start writing a pack into ``root`` in a child process."""
    _building[root] = subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(root), "small" if small else "full"],
        cwd=Path(__file__).parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)


def stop_building() -> None:
    """End the builds still running (a session stopped early); their packs stay unwritten."""
    for proc in _building.values():
        proc.kill()
        proc.communicate()
    _building.clear()


def ready_pack(root: Path, small: bool) -> Path:
    """The pack in ``root``: waits for its build in the background, or writes it now."""
    proc = _building.pop(root, None)
    if proc is not None:
        _, err = proc.communicate()
        assert proc.returncode == 0, f"writing the pack {root} failed:\n{err[-3000:]}"
    if not pack_is_current(root):
        build_demo_pack(root, **({"areas": AREAS} if small else {}))
    return root


def small_pack(tmp_path_factory) -> Path:
    """The shared small pack (written on first use in this session)."""
    return ready_pack(tmp_path_factory.getbasetemp() / SMALL, small=True)


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
