"""The synthetic packs shared by the modules that run whole screenings.

The small pack: two demo areas of 0.2 x 0.2 degrees keep it quick to write (a few seconds).
The full demo pack (conftest's ``demo_pack``) is the one ``demo-data`` writes. Each is built
once per test session under pytest's base temporary folder, by ``build_demo_pack``; when the
collected tests use one, conftest starts writing it at the start of the session in a child
process (:func:`start_building`, one pack after the other, at low priority), so that it is
written on the second core while the first tests run, and the first test that needs it waits
for that build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sitescreen.synthetic import DemoArea, build_demo_pack, pack_is_current

AREAS = (DemoArea("Shanghai", 121.47, 31.23, 0.1, coastal=True),
         DemoArea("Beijing", 116.40, 39.95, 0.1))

SMALL, DEMO = "small-demo-pack", "demo-pack"  # folder names under the base temporary folder
_BUILD = """
import sys
from small_pack import AREAS
from sitescreen.synthetic import DEMO_AREAS, build_demo_pack
for root, kind in zip(sys.argv[1::2], sys.argv[2::2]):
    build_demo_pack(root, areas=AREAS if kind == "small" else DEMO_AREAS)
"""
_builder: subprocess.Popen | None = None
_builder_log = tempfile.TemporaryFile("w+")  # its stderr, shown if a build fails
_queued: set[Path] = set()


def start_building(packs: list[tuple[Path, bool]]) -> None:
    """Start writing packs ``(root, small)``, one after the other, in one child process (one
    core: the tests keep the other)."""
    global _builder
    if not packs:
        return
    args = [str(a) for root, small in packs for a in (root, "small" if small else "full")]
    _builder = subprocess.Popen([sys.executable, "-c", _BUILD, *args],
                                cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                                stderr=_builder_log, text=True)
    _set_nice(10)  # behind the tests while they run; a test waiting for it raises it again
    _queued.update(root for root, _ in packs)


def _set_nice(value: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, _builder.pid, value)
    except OSError:  # gone already, or (raising it again) not allowed without root
        pass


def stop_building() -> None:
    """End the build if still running (a session stopped early); its packs stay unwritten."""
    global _builder
    if _builder is not None:
        _builder.kill()
        _builder.wait()
        _builder = None
    _queued.clear()


def ready_pack(root: Path, small: bool) -> Path:
    """The pack in ``root``: waits for its build in the background, or writes it now."""
    if root in _queued:
        if not pack_is_current(root):
            _set_nice(0)
        while not pack_is_current(root) and _builder.poll() is None:
            time.sleep(0.2)
        if not pack_is_current(root):
            _builder_log.seek(0)
            raise AssertionError(f"writing the pack {root} failed:\n"
                                 + _builder_log.read()[-3000:])
    elif not pack_is_current(root):
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
