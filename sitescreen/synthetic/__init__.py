"""Synthetic hazard data in the exact upstream file formats and names.

Upstream data cannot be downloaded everywhere (not on this project's CI), so ``sitescreen
demo-data`` writes a small, deterministic pack that the real readers load unchanged. The pack
declares ``origin = "synthetic-demo"`` in ``PACK.json``, every file carries the mark
:data:`SYNTHETIC_MARK` inside itself, and every output made from it repeats
that: these numbers are not hazard data and must never be reported as such.

Each dataset has a writer module here with one function
``write(root, areas, *, seed) -> list[Path]``; tests build their fixtures with the same code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sitescreen.data.sources import PACK_MARKER, SYNTHETIC_MARK, DataOrigin

__all__ = ["DemoArea", "DEMO_AREAS", "build_demo_pack", "SYNTHETIC_MARK", "SYNTHETIC_NOTE"]

#: The value of :data:`SYNTHETIC_MARK` in every file a writer here makes (a GeoTIFF tag, a
#: NetCDF global attribute, a CSV or geodatabase column): the file itself says it is
#: synthetic, so it stays synthetic without ``PACK.json``.
SYNTHETIC_NOTE = f"{DataOrigin.SYNTHETIC_DEMO.value}: sitescreen demo pack; not hazard data"  # no comma: a CSV value


@dataclass(frozen=True, slots=True)
class DemoArea:
    """A square around a point where raster writers put data (elsewhere: no data)."""

    name: str
    lon: float
    lat: float
    half_width_deg: float = 0.25
    #: The sea lies on one side of the area (coastal flood tiles then have water pixels).
    coastal: bool = False

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h = self.half_width_deg
        return (self.lon - h, self.lat - h, self.lon + h, self.lat + h)

    def contains(self, lon: float, lat: float) -> bool:
        x0, y0, x1, y1 = self.bounds
        return x0 <= lon <= x1 and y0 <= lat <= y1


def _areas(rows: str, half_width: float = 0.3) -> tuple[DemoArea, ...]:
    out = []
    for line in rows.strip().splitlines():
        name, lon, lat, coast = (x.strip() for x in line.split(","))
        out.append(DemoArea(name, float(lon), float(lat), half_width, coast == "coast"))
    return tuple(out)


# Cities of the example portfolio (sites.geojson); raster writers put data around each, so
# any site in these cities (given or geocoded to district precision) falls on demo data.
DEMO_AREAS: tuple[DemoArea, ...] = _areas("""
Shanghai, 121.47, 31.23, coast
Shanghai Lingang, 121.92, 30.90, coast
Hong Kong, 114.17, 22.35, coast
Beijing, 116.40, 39.95, inland
Shenzhen, 114.00, 22.58, coast
Hangzhou, 120.20, 30.25, inland
Chengdu, 104.06, 30.66, inland
Xi'an, 108.94, 34.27, inland
Wuhan, 114.30, 30.55, inland
Nanjing, 118.78, 32.05, inland
Guangzhou, 113.30, 23.13, coast
Qingdao, 120.38, 36.07, coast
Tianjin, 117.15, 39.25, coast
Chongqing, 106.55, 29.60, inland
Xiamen, 118.10, 24.48, coast
Suzhou and Changshu, 120.70, 31.45, inland
Hefei, 117.23, 31.82, inland
Changsha, 112.94, 28.20, inland
Shenyang, 123.43, 41.80, inland
Harbin, 126.64, 45.76, inland
Zhengzhou, 113.65, 34.76, inland
Jinan, 117.00, 36.67, inland
Fuzhou, 119.30, 26.08, coast
Kunming, 102.71, 25.04, inland
Ningbo, 121.55, 29.87, coast
Dalian, 121.60, 38.91, coast
Nanchang, 115.86, 28.68, inland
Shijiazhuang, 114.51, 38.04, inland
Taiyuan, 112.55, 37.87, inland
Singapore, 103.82, 1.35, coast
Tokyo, 139.69, 35.69, coast
Kyoto, 135.77, 35.01, inland
Seoul, 127.00, 37.55, inland
Abu Dhabi, 54.40, 24.45, coast
Riyadh, 46.72, 24.69, inland
Kuala Lumpur, 101.69, 3.14, inland
Bangkok, 100.50, 13.75, inland
""")

#: Bumped whenever a writer changes what it writes, so stale packs are rebuilt.
PACK_FORMAT = 2

# Dataset id -> writer module; each module has write(root, areas, *, seed) -> list[Path].
_WRITERS = {
    "aqueduct40": "sitescreen.synthetic.aqueduct40",
    "aqueduct_floods": "sitescreen.synthetic.aqueduct_floods",
    "ibtracs_wp": "sitescreen.synthetic.ibtracs",
    "cckp_cmip6": "sitescreen.synthetic.cckp",
}


def pack_is_current(root: str | Path) -> bool:
    """True when ``root`` holds a complete demo pack written by this pack format."""
    marker = Path(root) / PACK_MARKER
    try:
        pack = json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return pack.get("origin") == DataOrigin.SYNTHETIC_DEMO and pack.get("pack_format") == PACK_FORMAT


def build_demo_pack(root: str | Path, *, areas: Sequence[DemoArea] = DEMO_AREAS,
                    seed: int = 20231231, progress=None) -> dict:
    """Write the synthetic demo pack into ``root`` and return its ``PACK.json`` content.

    The pack is written into a temporary folder beside ``root`` and renamed into place, so a
    pack is either complete or absent; an existing pack is replaced.
    """
    import importlib

    from sitescreen import __version__
    from sitescreen.files import atomic_folder

    root = Path(root)
    with atomic_folder(root, prefix=".") as tmp:
        written: list[str] = []
        for dataset, module in _WRITERS.items():
            if progress:
                progress(f"writing synthetic {dataset}")
            paths = importlib.import_module(module).write(tmp, list(areas), seed=seed)
            written += [str(Path(p).relative_to(tmp)) for p in paths]
        pack = {
            "origin": DataOrigin.SYNTHETIC_DEMO.value,
            "description": "SYNTHETIC demo hazard pack written by 'sitescreen demo-data': "
                           "upstream file formats and names, invented values. Not hazard data.",
            "generator": f"sitescreen {__version__}",
            "pack_format": PACK_FORMAT,
            "seed": seed,
            "areas": [asdict(a) for a in areas],
            "datasets": list(_WRITERS),
            "n_files": len(written),
        }
        (tmp / PACK_MARKER).write_text(json.dumps(pack, indent=2) + "\n", "utf-8")
    return pack
