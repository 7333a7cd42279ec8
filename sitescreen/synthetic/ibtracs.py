"""SYNTHETIC western North Pacific best tracks in the IBTrACS v04r01 CSV layout.

Writes ``<root>/ibtracs/ibtracs.WP.list.v04r01.csv`` with the full 174-column v04r01 header
and units row (as NOAA NCEI publishes them), blanks as a single space, and 42 seasons
(1980-2021, the typhoon hazard's default base period) of invented storms: about 3 a
season, from the Philippine Sea, either moving west-north-west to a landfall on the South
China coast (most often between Zhanjiang and Xiamen) or recurving north-east near 25-30N,
some past Zhejiang and Shanghai towards Korea and Japan. Lifetime-maximum intensities range
from tropical storm to super typhoon; storms weaken over cooler water north of 25N and decay
inland after landfall (Kaplan & DeMaria 1995: ``V = Vb + (0.9 V0 - Vb) exp(-0.095 t)``, t in
hours, Vb = 26.7 kt). The result: the South China coast gets the highest 50-year winds,
Shanghai less, Beijing, Xi'an and Chengdu none.

The columns filled are those of the JTWC-based mirror file (SID ... USA_SSHS) plus
``WMO_WIND``/``WMO_PRES``/``WMO_AGENCY`` (a 10-minute "tokyo" wind = 1-minute / 1.14),
``USA_RMW`` (from 2001, as in JTWC records) and ``STORM_SPEED``/``STORM_DIR``. Names are
``SYNyyNN`` so no row can pass for a real storm. Deterministic for a given seed; about 1.5 MB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from sitescreen.files import atomic_write
from sitescreen.synthetic import SYNTHETIC_MARK, SYNTHETIC_NOTE, DemoArea

__all__ = ["write", "COLUMNS", "UNITS", "RELPATH"]

RELPATH = "ibtracs/ibtracs.WP.list.v04r01.csv"

#: The IBTrACS v04r01 CSV header (174 columns), in upstream order.
COLUMNS: tuple[str, ...] = tuple((
    "SID,SEASON,NUMBER,BASIN,SUBBASIN,NAME,ISO_TIME,NATURE,LAT,LON,WMO_WIND,WMO_PRES,"
    "WMO_AGENCY,TRACK_TYPE,DIST2LAND,LANDFALL,IFLAG,USA_AGENCY,USA_ATCF_ID,USA_LAT,USA_LON,"
    "USA_RECORD,USA_STATUS,USA_WIND,USA_PRES,USA_SSHS,USA_R34_NE,USA_R34_SE,USA_R34_SW,"
    "USA_R34_NW,USA_R50_NE,USA_R50_SE,USA_R50_SW,USA_R50_NW,USA_R64_NE,USA_R64_SE,USA_R64_SW,"
    "USA_R64_NW,USA_POCI,USA_ROCI,USA_RMW,USA_EYE,TOKYO_LAT,TOKYO_LON,TOKYO_GRADE,TOKYO_WIND,"
    "TOKYO_PRES,TOKYO_R50_DIR,TOKYO_R50_LONG,TOKYO_R50_SHORT,TOKYO_R30_DIR,TOKYO_R30_LONG,"
    "TOKYO_R30_SHORT,TOKYO_LAND,CMA_LAT,CMA_LON,CMA_CAT,CMA_WIND,CMA_PRES,HKO_LAT,HKO_LON,"
    "HKO_CAT,HKO_WIND,HKO_PRES,KMA_LAT,KMA_LON,KMA_CAT,KMA_WIND,KMA_PRES,KMA_R50_DIR,"
    "KMA_R50_LONG,KMA_R50_SHORT,KMA_R30_DIR,KMA_R30_LONG,KMA_R30_SHORT,NEWDELHI_LAT,"
    "NEWDELHI_LON,NEWDELHI_GRADE,NEWDELHI_WIND,NEWDELHI_PRES,NEWDELHI_CI,NEWDELHI_DP,"
    "NEWDELHI_POCI,REUNION_LAT,REUNION_LON,REUNION_TYPE,REUNION_WIND,REUNION_PRES,"
    "REUNION_TNUM,REUNION_CI,REUNION_RMW,REUNION_R34_NE,REUNION_R34_SE,REUNION_R34_SW,"
    "REUNION_R34_NW,REUNION_R50_NE,REUNION_R50_SE,REUNION_R50_SW,REUNION_R50_NW,"
    "REUNION_R64_NE,REUNION_R64_SE,REUNION_R64_SW,REUNION_R64_NW,BOM_LAT,BOM_LON,BOM_TYPE,"
    "BOM_WIND,BOM_PRES,BOM_TNUM,BOM_CI,BOM_RMW,BOM_R34_NE,BOM_R34_SE,BOM_R34_SW,BOM_R34_NW,"
    "BOM_R50_NE,BOM_R50_SE,BOM_R50_SW,BOM_R50_NW,BOM_R64_NE,BOM_R64_SE,BOM_R64_SW,BOM_R64_NW,"
    "BOM_ROCI,BOM_POCI,BOM_EYE,BOM_POS_METHOD,BOM_PRES_METHOD,NADI_LAT,NADI_LON,NADI_CAT,"
    "NADI_WIND,NADI_PRES,WELLINGTON_LAT,WELLINGTON_LON,WELLINGTON_WIND,WELLINGTON_PRES,"
    "DS824_LAT,DS824_LON,DS824_STAGE,DS824_WIND,DS824_PRES,TD9636_LAT,TD9636_LON,"
    "TD9636_STAGE,TD9636_WIND,TD9636_PRES,TD9635_LAT,TD9635_LON,TD9635_WIND,TD9635_PRES,"
    "TD9635_ROCI,NEUMANN_LAT,NEUMANN_LON,NEUMANN_CLASS,NEUMANN_WIND,NEUMANN_PRES,MLC_LAT,"
    "MLC_LON,MLC_CLASS,MLC_WIND,MLC_PRES,USA_GUST,BOM_GUST,BOM_GUST_PER,REUNION_GUST,"
    "REUNION_GUST_PER,USA_SEAHGT,USA_SEARAD_NE,USA_SEARAD_SE,USA_SEARAD_SW,USA_SEARAD_NW,"
    "STORM_SPEED,STORM_DIR").split(","))

_N = "nmile"
#: The units row, aligned with :data:`COLUMNS` (" " where upstream leaves it blank).
UNITS: tuple[str, ...] = tuple(
    [" ", "Year", " ", " ", " ", " ", " ", " ", "degrees_north", "degrees_east", "kts", "mb",
     " ", " ", "km", "km", " ", " ", " ", "degrees_north", "degrees_east", " ", " ", "kts", "mb",
     "1"] + [_N] * 12 + ["mb", _N, _N, _N]
    + ["degrees_north", "degrees_east", "1", "kts", "mb", " ", _N, _N, " ", _N, _N, "1"]
    + ["degrees_north", "degrees_east", "1", "kts", "mb"] * 2
    + ["degrees_north", "degrees_east", " ", "kts", "mb", " ", _N, _N, " ", _N, _N]
    + ["degrees_north", "degrees_east", " ", "kts", "mb", "1", "mb", "mb"]
    + ["degrees_north", "degrees_east", " ", "kts", "mb", "1", "1", _N] + [_N] * 12
    + ["degrees_north", "degrees_east", " ", "kts", "mb", "1", "1", _N] + [_N] * 12
    + [_N, "mb", _N, " ", " "]
    + ["degrees_north", "degrees_east", "1", "kts", "mb"]
    + ["degrees_north", "degrees_east", "kts", "mb"]
    + ["degrees_north", "degrees_east", " ", "kts", "mb"] * 2
    + ["degrees_north", "degrees_east", "kts", "mb", _N]
    + ["degrees_north", "degrees_east", " ", "kts", "mb"] * 2
    + ["kts", "kts", "second", "kts", "second", "ft", _N, _N, _N, _N, "kts", "degrees"])

_KT = 1852.0 / 3600.0
_KM_PER_DEG = math.pi * 6371.0088 / 180.0
SEASONS = (1980, 2021)


def _coast_lat(lon: float) -> float:
    """Rough latitude of the South China coast (Leizhou 110E 21N to Fuzhou 119.5E 26N)."""
    return 21.0 + 0.22 * (lon - 110.0) + 0.045 * max(lon - 114.0, 0.0) ** 2


def _on_land(lon: float, lat: float) -> bool:
    """Crude mainland-China mask: north of the coast line, west of 121.9E (Shanghai)."""
    if lon < 108.0:
        return lat > 21.5
    if lon <= 119.8:
        return lat > _coast_lat(lon)
    return lon <= 120.2 + 0.45 * max(lat - 27.0, 0.0) and lat > 26.0 and lon < 121.9


def _status(v_kt: float) -> tuple[str, int]:
    if v_kt < 34:
        return "TD", -1
    sshs = 0
    for cat, lim in enumerate((64, 83, 96, 113, 137), start=1):
        if v_kt >= lim:
            sshs = cat
    return ("ST" if v_kt >= 130 else "TY" if v_kt >= 64 else "TS"), sshs


def _pressure(v_kt: float) -> int:
    """Central pressure from wind (Atkinson & Holliday 1977, western Pacific)."""
    return int(round(1010.0 - (max(v_kt, 15.0) / 6.7) ** (1.0 / 0.644)))


def _storm(rng: np.random.Generator, season: int) -> list[dict]:
    """One invented storm as 6-hourly fixes (dicts of lat, lon, wind in kt, time...)."""
    westward = rng.random() < 0.55
    lat, lon = rng.uniform(11.0, 18.0), rng.uniform(126.0, 137.0)
    start = datetime(season, 6, 1) + timedelta(hours=6 * int(rng.integers(0, 4 * 140)))
    lmi = 35.0 + 115.0 * rng.beta(1.3, 2.2)
    if westward:
        # Landfall anywhere from Hainan to Fujian, most often near the Pearl River Delta.
        land_lon = rng.triangular(108.5, 113.5, 120.0)
        target = (land_lon, _coast_lat(land_lon))
        speed = rng.uniform(4.5, 7.0)  # m/s
    else:
        target = (rng.uniform(120.5, 127.0), rng.uniform(24.0, 30.0))
        speed = rng.uniform(4.0, 6.5)
    fixes: list[dict] = []
    v, t, landed, hours_on_land, recurved = 25.0, start, False, 0.0, False
    wobble = rng.uniform(0, 2 * math.pi)
    for step in range(60):
        heading_lon, heading_lat = target[0] - lon, target[1] - lat
        dist_deg = math.hypot(heading_lon * math.cos(math.radians(lat)), heading_lat)
        if not westward and not recurved and dist_deg < 1.0:
            recurved = True  # turn north-east towards Korea / Japan, speeding up
            target = (lon + rng.uniform(2.0, 14.0), lat + rng.uniform(9.0, 14.0))
            speed *= rng.uniform(1.3, 1.8)
            heading_lon, heading_lat = target[0] - lon, target[1] - lat
        if westward and landed:
            heading_lon, heading_lat = -1.0, 0.8  # keep moving inland north-westwards
        direction = math.atan2(heading_lat, heading_lon * math.cos(math.radians(lat)))
        direction += 0.25 * math.sin(wobble + 0.5 * step)
        ve, vn = speed * math.cos(direction), speed * math.sin(direction)
        on_land = _on_land(lon, lat)
        fixes.append({"time": t, "lat": lat, "lon": lon, "v": v, "ve": ve, "vn": vn,
                      "landfall": on_land and not landed})
        # Intensity: towards the lifetime maximum over warm water, weaker north of 25N,
        # inland decay after landfall (Kaplan & DeMaria 1995).
        if on_land:
            if not landed:
                landed, v0 = True, v
            hours_on_land += 6.0
            v = 26.7 + (0.9 * v0 - 26.7) * math.exp(-0.095 * hours_on_land)
            v -= 2.0 * (hours_on_land / 6.0)
        elif lat > 25.0:
            v = max(v * (0.97 - 0.006 * (lat - 25.0)), v - 12.0)
        elif lon < 120.0:  # South China Sea: smaller, shallower, weaker on average
            v = min(lmi, v + rng.uniform(-4.0, 6.0))
        else:
            v = min(lmi, v + rng.uniform(4.0, 12.0))
        lat += vn * 6 * 3600 / 1000.0 / _KM_PER_DEG
        lon += ve * 6 * 3600 / 1000.0 / (_KM_PER_DEG * math.cos(math.radians(lat)))
        t += timedelta(hours=6)
        if v < 22.0 or lat > 45.0 or lon > 160.0 or lon < 100.0:
            break
    return fixes


def _rows(rng: np.random.Generator) -> list[list[str]]:
    rows: list[list[str]] = []
    col = {c: i for i, c in enumerate(COLUMNS)}
    seen: set[str] = set()
    for season in range(SEASONS[0], SEASONS[1] + 1):
        n = max(1, int(rng.poisson(3.0)))
        storms = sorted((_storm(rng, season) for _ in range(n)), key=lambda f: f[0]["time"])
        for number, fixes in enumerate(storms, start=1):
            g = fixes[0]
            sid = (f"{season}{g['time'].timetuple().tm_yday:03d}N"
                   f"{int(round(g['lat'])):02d}{int(round(g['lon'])):03d}")
            while sid in seen:  # two geneses in the same place and day: shift the suffix
                sid = sid[:-3] + f"{(int(sid[-3:]) + 1) % 1000:03d}"
            seen.add(sid)
            for fx in fixes:
                v_kt = float(np.clip(round(fx["v"] / 5.0) * 5.0, 15.0, 185.0))
                status, sshs = _status(v_kt)
                row = [" "] * len(COLUMNS)
                speed_kt = math.hypot(fx["ve"], fx["vn"]) / _KT
                heading = (math.degrees(math.atan2(fx["ve"], fx["vn"])) + 360.0) % 360.0
                values = {
                    "SID": sid, "SEASON": str(season), "NUMBER": str(number), "BASIN": "WP",
                    "SUBBASIN": "MM", "NAME": f"SYN{season % 100:02d}{number:02d}",
                    "ISO_TIME": fx["time"].strftime("%Y-%m-%d %H:%M:%S"),
                    "NATURE": "ET" if fx["lat"] > 35.0 else "TS",
                    "LAT": f"{fx['lat']:.1f}", "LON": f"{fx['lon']:.1f}",
                    "TRACK_TYPE": "main", "IFLAG": "_O_____________", "USA_AGENCY": "jtwc_wp",
                    "USA_ATCF_ID": f"WP{number:02d}{season}",
                    "USA_LAT": f"{fx['lat']:.1f}", "USA_LON": f"{fx['lon']:.1f}",
                    "USA_STATUS": status, "USA_WIND": str(int(v_kt)),
                    "USA_PRES": str(_pressure(v_kt)), "USA_SSHS": str(sshs),
                    "STORM_SPEED": str(int(round(speed_kt))), "STORM_DIR": str(int(round(heading))),
                }
                if fx["landfall"]:
                    values["USA_RECORD"] = "L"
                if v_kt >= 35:  # RSMC Tokyo: 10-minute wind, given from tropical storms up
                    values["WMO_WIND"] = str(int(round(v_kt / 1.14 / 5.0) * 5))
                    values["WMO_PRES"] = str(_pressure(v_kt) + 2)
                    values["WMO_AGENCY"] = "tokyo"
                if season >= 2001:  # JTWC best tracks carry RMW from 2001
                    rmw_km = 46.4 * math.exp(-0.0155 * v_kt * _KT + 0.0169 * abs(fx["lat"]))
                    values["USA_RMW"] = str(int(max(5, round(rmw_km / 1.852 / 5.0) * 5)))
                for k, val in values.items():
                    row[col[k]] = val
                rows.append(row)
    return rows


def write(root: Path, areas: Sequence[DemoArea], *, seed: int) -> list[Path]:
    """Write the synthetic WP track file under ``root`` and return its path.

    ``areas`` are not used: the tracks cover the whole western Pacific, and which demo
    cities they reach follows from the track families described in the module docstring.
    """
    del areas
    rng = np.random.default_rng([seed, 0x1B7AC5])
    path = Path(root) / RELPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    # A last column carries the synthetic mark on every row; the real reader reads columns
    # by name, so it tolerates the column, and the typhoon hazard reports it.
    lines = [",".join((*COLUMNS, SYNTHETIC_MARK)), ",".join((*UNITS, " "))]
    lines += [",".join((*r, SYNTHETIC_NOTE)) for r in _rows(rng)]
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return [path]
