"""A synthetic Aqueduct 4.0 water-risk pack, laid out exactly as WRI's download.

Writes, under ``<root>/aqueduct40/Aqueduct40_waterrisk_download_Y2023M07D05/``:

- ``CVS/Aqueduct40_future_annual_y2023m07d05.csv`` keyed by ``fid`` and ``pfaf_id``, with the
  columns ``{bau|opt|pes}{30|50|80}_{ind}_x_{r|s|c|l}`` (``ws``, ``wd``, ``iv``, ``sv``), the raw
  and label columns of ``ba`` and ``ww`` (``_x_r``, ``_x_l``), ``_x_u`` for ``ws``/``wd``/``iv``/``sv``
  and the change-from-baseline columns ``_y_{r|s|c|l}`` for all six indicators;
- ``CVS/Aqueduct40_baseline_annual_y2023m07d05.csv`` keyed by ``string_id``/``aq30_id`` (rows are
  unions of basin ``pfaf_id``, province ``gid_1`` and aquifer ``aqid``) with ``bws_*``, ``bwd_*``,
  ``rfr_*`` and ``cfr_*`` as ``_raw``/``_score``/``_cat``/``_label``;
- ``GDB/Aq40_Y2023D07M05.gdb``, a File Geodatabase (GDAL OpenFileGDB) with the layers
  ``future_annual`` (one polygon per basin, field ``pfaf_id``) and ``baseline_annual`` (the
  basin x province x aquifer polygons with the baseline attributes), both EPSG:4326.

Names, labels and sentinels follow WRI's production notebooks (wri/Aqueduct40,
``production_scripts/step3_calculate-indicators.ipynb`` and ``step4_finalize-data-download.ipynb``):
scores ``ws`` = log2(r / 0.1) + 1 clipped to 0-5, category = floor(score) (5 -> 4); raw 1.0,
score 5, category -1 for "arid and low water use"; raw 9999 for extreme scarcity (supply near
zero); -9999 and "No Data" for no data. The real future table has 396 value columns; this pack
writes the documented families above, not necessarily every one of them. ``_x_u`` is written as
an uncertainty class 0-2 (our reading of WRI's ``cov_score``; its meaning is not documented).

Basins are Voronoi cells of a jittered grid clipped to the neighbourhoods of the given areas,
numbered like HydroBASINS level-6 Pfafstetter codes (six digits, first digit the region: 2
Europe/Middle East west of 60 degE, 4 Asia east of it). Values come from a smooth field (dry
north China plain, Indus and Gulf; wet south China and Southeast Asia) plus a little noise, rise
from ``opt`` to ``bau`` to ``pes`` and from 2030 to 2080. About one basin in a hundred (at least
one each) is arid, extremely scarce (raw 9999), no data (-9999), blank (no model output, empty
cells as in the real file) or a unit without a basin (``pfaf_id`` -9999); none of these is the
basin of an area's centre. THESE NUMBERS ARE NOT HAZARD DATA.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from sitescreen.files import replace_path
from sitescreen.synthetic import SYNTHETIC_MARK, SYNTHETIC_NOTE, DemoArea

__all__ = [
    "write",
    "LOCAL_DIR",
    "FUTURE_CSV",
    "BASELINE_CSV",
    "GDB",
    "FUTURE_LAYER",
    "BASELINE_LAYER",
    "SCENARIO_CODES",
    "PERIOD_CODES",
    "WS_FUTURE_LABELS",
    "WD_LABELS",
    "BWS_LABELS",
]

log = logging.getLogger(__name__)

#: The dataset's ``local_dir`` in the catalog.
LOCAL_DIR = "aqueduct40"
_RELEASE = "Aqueduct40_waterrisk_download_Y2023M07D05"
FUTURE_CSV = f"{_RELEASE}/CVS/Aqueduct40_future_annual_y2023m07d05.csv"
BASELINE_CSV = f"{_RELEASE}/CVS/Aqueduct40_baseline_annual_y2023m07d05.csv"
GDB = f"{_RELEASE}/GDB/Aq40_Y2023D07M05.gdb"
FUTURE_LAYER = "future_annual"
BASELINE_LAYER = "baseline_annual"

SCENARIO_CODES = ("bau", "opt", "pes")
PERIOD_CODES = ("30", "50", "80")

NO_DATA = -9999.0
NO_DATA_LABEL = "No Data"
EXTREME_RAW = 9999.0

# Category -> label. The future water-stress labels differ in case and hyphenation from the
# baseline ones and from the future depletion labels; WRI's files are written exactly so.
WS_FUTURE_LABELS = {
    -1: "Arid and low water use", 0: "Low (<10%)", 1: "Low-medium (10-20%)",
    2: "Medium-high (20-40%)", 3: "High (40-80%)", 4: "Extremely high (>80%)",
}
WD_LABELS = {
    -1: "Arid and Low Water Use", 0: "Low (<5%)", 1: "Low - Medium (5-25%)",
    2: "Medium - High (25-50%)", 3: "High (50-75%)", 4: "Extremely High (>75%)",
}
BWS_LABELS = {
    -1: "Arid and Low Water Use", 0: "Low (<10%)", 1: "Low - Medium (10-20%)",
    2: "Medium - High (20-40%)", 3: "High (40-80%)", 4: "Extremely High (>80%)",
}
_IV_LABELS = {
    0: "Low (<0.25)", 1: "Low - Medium (0.25-0.50)", 2: "Medium - High (0.50-0.75)",
    3: "High (0.75-1.00)", 4: "Extremely High (>1.00)",
}
_SV_LABELS = {
    0: "Low (<0.33)", 1: "Low - Medium (0.33-0.66)", 2: "Medium - High (0.66-1.00)",
    3: "High (1.00-1.33)", 4: "Extremely High (>1.33)",
}
_RFR_LABELS = {
    0: "Low (0 to 1 in 1,000)", 1: "Low - Medium (1 in 1,000 to 2 in 1,000)",
    2: "Medium - High (2 in 1,000 to 6 in 1,000)", 3: "High (6 in 1,000 to 1 in 100)",
    4: "Extremely High (more than 1 in 100)",
}
_CFR_LABELS = {
    -1: "No Risk", 0: "Low (0 to 9 in 1,000,000)",
    1: "Low - Medium (9 in 1,000,000 to 7 in 100,000)",
    2: "Medium - High (7 in 100,000 to 3 in 10,000)", 3: "High (3 in 10,000 to 2 in 1,000)",
    4: "Extremely High (more than 2 in 1,000)",
}
# Change-from-baseline classes (-3..3) and their labels, per indicator family.
_CHANGE_WS = ((2 ** (-6 / 4), 2 ** (-4 / 4), 2 ** (-2 / 4), 2 ** (2 / 4), 2 ** (4 / 4), 2 ** (6 / 4)),
              {-3: "2.8x or greater decrease", -2: "2.0x decrease", -1: "1.4x decrease",
               0: "Near normal", 1: "1.4xincrease", 2: "2.0x increase",
               3: "2.8x or greater increase"})
_CHANGE_SD = ((2 ** (-6 / 8), 2 ** (-4 / 8), 2 ** (-2 / 8), 2 ** (2 / 8), 2 ** (4 / 8), 2 ** (6 / 8)),
              {-3: "1.7x or greater decrease", -2: "1.4x decrease", -1: "1.2x decrease",
               0: "Near normal", 1: "1.2x increase", 2: "1.4x increase",
               3: "1.7x or greater increase"})
_CHANGE_VA = ((2 ** (-8 / 16), 2 ** (-4 / 16), 2 ** (-2 / 16), 2 ** (2 / 16), 2 ** (4 / 16),
               2 ** (8 / 16)),
              {-3: "1.3x or greater decrease", -2: "1.2x decrease", -1: "1.1x decrease",
               0: "Near normal", 1: "1.1x increase", 2: "1.2x increase",
               3: "1.3x or greater increase"})
_CHANGE = {"ws": _CHANGE_WS, "wd": _CHANGE_WS, "iv": _CHANGE_VA, "sv": _CHANGE_VA,
           "ba": _CHANGE_SD, "ww": _CHANGE_SD}

# Growth of the stress ratio per scenario and period step (30 -> 1, 50 -> 2, 80 -> 3).
_GROWTH = {"opt": 0.05, "bau": 0.10, "pes": 0.15}

# Smooth log10(water stress) field: (lon, lat, amplitude, sigma in degrees).
_BASE_LOG10 = -1.35
_BUMPS = (
    (116.5, 38.0, 1.55, 4.5),   # north China plain: extremely high
    (50.5, 25.5, 1.70, 7.0),    # Gulf: extremely high
    (71.0, 29.0, 1.40, 5.0),    # Indus basin
    (104.0, 40.5, 1.00, 6.0),   # Inner Mongolia, Hexi corridor
    (121.5, 31.2, 0.35, 2.5),   # Yangtze delta: medium
    (113.5, 23.5, -0.35, 5.0),  # south China: wet
    (104.0, 5.0, -0.40, 9.0),   # Southeast Asia: wet
)

_KM_PER_DEG = 111.195
_DEFAULT_EXTENT = (40.0, -12.0, 150.0, 56.0)
_MAX_BASINS = 2000
_MIN_SPACING_DEG = 0.5
_MARGIN_DEG = 1.0


def write(root: Path, areas: Sequence[DemoArea], *, seed: int) -> list[Path]:
    """Write the synthetic Aqueduct 4.0 pack under ``root/aqueduct40`` and return its paths.

    Parameters
    ----------
    root : Path
        The data folder (the pack's root); files go under ``root/aqueduct40/``.
    areas : sequence of DemoArea
        Basins cover each area's square plus a 1 degree margin. With no areas, the whole
        extent lon 40..150, lat -12..56 is covered with coarser basins.
    seed : int
        Seed of the jitter and noise; the same seed and areas give byte-identical tables.

    Returns
    -------
    list of Path
        The future table, the baseline table and the geodatabase folder, in that order.

    Examples
    --------
    >>> import tempfile
    >>> paths = write(Path(tempfile.mkdtemp()), [DemoArea("Beijing", 116.4, 39.9)], seed=1)
    >>> [p.name for p in paths]
    ['Aqueduct40_future_annual_y2023m07d05.csv', 'Aqueduct40_baseline_annual_y2023m07d05.csv', 'Aq40_Y2023D07M05.gdb']
    """
    rng = np.random.default_rng(seed)
    area, spacing = region(areas)
    cells = _basins(area, spacing, rng)
    centres = shapely.points([(a.lon, a.lat) for a in areas]) if areas else np.array([])
    basins = _basin_table(cells, centres, rng)
    future = _future_table(basins)
    province_cells = _baseline_polygons(cells, basins)
    baseline = _baseline_table(basins, province_cells)

    base = Path(root) / LOCAL_DIR
    targets = [base / FUTURE_CSV, base / BASELINE_CSV, base / GDB]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".aqueduct40-", dir=base) as tmp:
        tmp_path = Path(tmp)
        # Six decimals keep the wide future table small and quick to write (synthetic anyway).
        # The mark travels with each table (a last column), whatever happens to PACK.json.
        future.round(6).assign(**{SYNTHETIC_MARK: SYNTHETIC_NOTE}).to_csv(
            tmp_path / "future.csv", index=False)
        baseline.drop(columns="geometry").assign(**{SYNTHETIC_MARK: SYNTHETIC_NOTE}).to_csv(
            tmp_path / "baseline.csv", index=False)
        _write_gdb(tmp_path / "pack.gdb", basins, baseline)
        replace_path(tmp_path / "future.csv", targets[0])
        replace_path(tmp_path / "baseline.csv", targets[1])
        replace_path(tmp_path / "pack.gdb", targets[2])
    log.info("wrote synthetic Aqueduct 4.0 pack: %d basins, %d baseline units under %s",
             len(basins), len(baseline), base)
    return targets


# --- geometry -------------------------------------------------------------------------------

def region(areas: Sequence[DemoArea]) -> tuple[shapely.Geometry, float]:
    """The area to cover and the seed spacing (degrees) that keeps the basin count small."""
    if areas:
        boxes = [shapely.box(*a.bounds).buffer(_MARGIN_DEG, join_style="mitre") for a in areas]
        area = shapely.union_all(boxes)
    else:
        area = shapely.box(*_DEFAULT_EXTENT)
    spacing = max(_MIN_SPACING_DEG, float(np.sqrt(area.area / _MAX_BASINS)))
    return area, spacing


def _basins(region: shapely.Geometry, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Voronoi cells of a jittered grid, clipped to ``region``; one polygon per seed."""
    x0, y0, x1, y1 = region.bounds
    xs = np.arange(x0 + spacing / 2, x1, spacing)
    ys = np.arange(y0 + spacing / 2, y1, spacing)
    gx, gy = np.meshgrid(xs, ys)
    jitter = rng.uniform(-0.35, 0.35, size=(2, *gx.shape)) * spacing
    px, py = (gx + jitter[0]).ravel(), (gy + jitter[1]).ravel()
    shapely.prepare(region)
    keep = shapely.contains_xy(region, px, py)
    seeds = shapely.multipoints(np.column_stack([px[keep], py[keep]]))
    envelope = shapely.box(x0 - 1, y0 - 1, x1 + 1, y1 + 1)
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=envelope, ordered=True))
    return shapely.intersection(cells, region)


def _baseline_polygons(cells: np.ndarray, basins: pd.DataFrame) -> pd.DataFrame:
    """Split basins by a 3-degree province grid (aquifers: a 6-degree grid), as Aqueduct's
    baseline rows are unions of basin, province and aquifer."""
    x0, y0, x1, y1 = shapely.total_bounds(cells)
    ix = np.arange(np.floor(x0 / 3), np.ceil(x1 / 3))
    iy = np.arange(np.floor(y0 / 3), np.ceil(y1 / 3))
    gx, gy = (a.ravel() for a in np.meshgrid(ix, iy))
    boxes = shapely.box(gx * 3, gy * 3, gx * 3 + 3, gy * 3 + 3)
    b_idx, p_idx = shapely.STRtree(boxes).query(cells, predicate="intersects")
    pieces = shapely.intersection(cells[b_idx], boxes[p_idx])
    # Keep the polygonal parts only (boxes touching a basin along an edge give lines).
    parts, which = shapely.get_parts(pieces, return_index=True)
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 1e-9)
    parts, which = parts[keep], which[keep]
    order = np.argsort(which, kind="stable")
    parts, which = parts[order], which[order]
    piece_ids, codes = np.unique(which, return_inverse=True)
    geoms = shapely.multipolygons(parts, indices=codes)
    prov = p_idx[piece_ids]
    aquifer = pd.factorize(
        pd.MultiIndex.from_arrays([np.floor(gy[prov] / 2), np.floor(gx[prov] / 2)]))[0]
    return pd.DataFrame({"basin": b_idx[piece_ids], "province": prov + 1, "aqid": aquifer + 1,
                         "geometry": geoms})


# --- values ---------------------------------------------------------------------------------

def _stress_log10(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The smooth log10 water-stress field (dimensionless ratio of withdrawal to supply)."""
    g = np.full(lon.shape, _BASE_LOG10)
    coslat = np.cos(np.radians(lat))
    for x0, y0, amp, sigma in _BUMPS:
        dx = (lon - x0) * coslat
        dy = lat - y0
        g += amp * np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
    return g


def _pfaf_codes(lon: np.ndarray) -> np.ndarray:
    """Six-digit Pfafstetter-like codes: region digit, then five digits 1-9 counting up."""
    n = np.arange(len(lon))
    digits = np.zeros(len(lon), dtype=np.int64)
    for k in range(5):
        digits += ((n // 9 ** k) % 9 + 1) * 10 ** k
    region = np.where(lon < 60.0, 2, 4)
    return region * 100_000 + digits


def _basin_table(cells: np.ndarray, centres: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """One row per basin: id, geometry, baseline stress field and its special role."""
    rep = shapely.point_on_surface(cells)
    lon, lat = shapely.get_x(rep), shapely.get_y(rep)
    n = len(cells)
    g = _stress_log10(lon, lat) + rng.normal(0.0, 0.06, n)
    # Special basins never hold an area's centre, so demo sites keep values.
    has_centre = np.zeros(n, dtype=bool)
    if len(centres):
        hit = shapely.STRtree(cells).query(centres, predicate="intersects")[1]
        has_centre[hit] = True
    role = np.full(n, "", dtype=object)
    k = max(1, round(0.01 * n))
    free = np.flatnonzero(~has_centre)
    dry = free[np.argsort(-g[free], kind="stable")]
    for name, pool in (("arid", dry[: max(5 * k, 1)]), ("extreme", dry[: max(10 * k, 1)]),
                       ("nodata", free), ("blank", free), ("nobasin", free)):
        pool = pool[role[pool] == ""]
        if len(pool):
            role[rng.choice(pool, size=min(k, len(pool)), replace=False)] = name
    pfaf = _pfaf_codes(lon)
    pfaf[role == "nobasin"] = int(NO_DATA)
    area_km2 = shapely.area(cells) * _KM_PER_DEG ** 2 * np.cos(np.radians(lat))
    return pd.DataFrame({"pfaf_id": pfaf, "lon": lon, "lat": lat, "g": g, "role": role,
                         "area_km2": area_km2, "geometry": cells})


def _ws_score(r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.clip((np.log(r) - np.log(0.1)) / np.log(2) + 1, 0, 5)


def _wd_score(r: np.ndarray) -> np.ndarray:
    return np.clip(np.where(r < 0.05, 20 * r, np.where(r < 0.25, 5 * r + 0.75, 4 * r + 1)), 0, 5)


def _category(score: np.ndarray) -> np.ndarray:
    return np.minimum(np.floor(score), 4)


def _labels(cat: np.ndarray, table: dict[int, str]) -> np.ndarray:
    """Label per category; categories the table lacks get "No Data"."""
    keys = np.array(sorted(table), dtype=float)
    names = np.array([table[int(k)] for k in keys], dtype=object)
    c = np.asarray(cat, dtype=float)
    pos = np.minimum(np.searchsorted(keys, c), len(keys) - 1)
    return np.where(keys[pos] == c, names[pos], NO_DATA_LABEL).astype(object)


def _change(ratio: np.ndarray, ind: str) -> tuple[np.ndarray, np.ndarray]:
    edges, labels = _CHANGE[ind]
    cls = np.searchsorted(np.asarray(edges), ratio, side="left") - 3
    return cls.astype(float), _labels(cls, labels)


def _depth_label(r: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    names = ["< 1 cm"] + [f"{a:g}-{b:g} cm" for a, b in zip(edges, edges[1:], strict=False)]
    names.append(f">{edges[-1]:g} cm")
    return np.array(names, dtype=object)[np.searchsorted(np.asarray(edges), r, side="right")]


def _indicators(basins: pd.DataFrame, step: int, growth: float) -> dict[str, dict[str, np.ndarray]]:
    """Raw, score, category and label of every indicator for one scenario step (0 = baseline)."""
    lon, lat, g = basins["lon"].to_numpy(), basins["lat"].to_numpy(), basins["g"].to_numpy()
    factor = 1.0 + growth * step
    ws_r = 10.0 ** g * factor
    wd_r = 0.55 * ws_r
    iv_r = (0.3 + 0.6 * (0.5 + 0.5 * np.sin(lon / 7.0) * np.cos(lat / 5.0))) * (1 + 0.03 * step)
    sv_r = (0.4 + 0.8 * (0.5 + 0.5 * np.cos(lon / 9.0) * np.sin(lat / 6.0))) * (1 + 0.02 * step)
    ba_r = 60.0 / 10.0 ** (g - _BASE_LOG10) / (1 + 0.5 * growth * step)
    out = {
        "ws": {"r": ws_r, "s": _ws_score(ws_r)},
        "wd": {"r": wd_r, "s": _wd_score(wd_r)},
        "iv": {"r": iv_r, "s": np.clip(4 * iv_r, 0, 5)},
        "sv": {"r": sv_r, "s": np.clip(3 * sv_r, 0, 5)},
        "ba": {"r": ba_r},
        "ww": {"r": ws_r * ba_r},
    }
    for ind in ("ws", "wd", "iv", "sv"):
        out[ind]["c"] = _category(out[ind]["s"])
    role = basins["role"].to_numpy()
    for ind in ("ws", "wd"):
        arid, extreme = role == "arid", role == "extreme"
        out[ind]["r"] = np.where(arid, 1.0, np.where(extreme, EXTREME_RAW, out[ind]["r"]))
        out[ind]["s"] = np.where(arid | extreme, 5.0, out[ind]["s"])
        out[ind]["c"] = np.where(arid, -1.0, np.where(extreme, 4.0, out[ind]["c"]))
    out["ba"]["l"] = _depth_label(ba_r, (1, 3, 10, 30, 100, 300, 1000))
    out["ww"]["l"] = _depth_label(ws_r * ba_r, (1, 3, 10, 30))
    out["u"] = np.minimum(np.floor(3 * (0.5 + 0.5 * np.sin(lon / 5.0 + lat / 4.0))), 2)
    return out


def _future_table(basins: pd.DataFrame) -> pd.DataFrame:
    """The future table, in WRI's column families; special basins get their sentinels."""
    base = _indicators(basins, 0, 0.0)
    cols: dict[str, np.ndarray] = {"fid": np.arange(len(basins)),
                                   "pfaf_id": basins["pfaf_id"].to_numpy()}
    change: dict[str, np.ndarray] = {}
    label_tables = {"ws": WS_FUTURE_LABELS, "wd": WD_LABELS, "iv": _IV_LABELS, "sv": _SV_LABELS}
    for scen in SCENARIO_CODES:
        for p, period in enumerate(PERIOD_CODES, start=1):
            fut = _indicators(basins, p, _GROWTH[scen])
            prefix = f"{scen}{period}"
            for ind in ("ws", "wd", "iv", "sv"):
                v = fut[ind]
                cols[f"{prefix}_{ind}_x_r"] = v["r"]
                cols[f"{prefix}_{ind}_x_s"] = v["s"]
                cols[f"{prefix}_{ind}_x_c"] = v["c"]
                cols[f"{prefix}_{ind}_x_l"] = _labels(v["c"], label_tables[ind])
                cols[f"{prefix}_{ind}_x_u"] = fut["u"]
            for ind in ("ba", "ww"):
                cols[f"{prefix}_{ind}_x_r"] = fut[ind]["r"]
                cols[f"{prefix}_{ind}_x_l"] = fut[ind]["l"]
            for ind in ("ws", "wd", "iv", "sv", "ba", "ww"):
                ratio = fut[ind]["r"] / base[ind]["r"]
                cls, lab = _change(ratio, ind)
                change[f"{prefix}_{ind}_y_r"] = ratio
                change[f"{prefix}_{ind}_y_s"] = np.log2(ratio)
                change[f"{prefix}_{ind}_y_c"] = cls
                change[f"{prefix}_{ind}_y_l"] = lab
    # WRI's change block is sorted by name after the future-value block.
    cols.update({k: change[k] for k in sorted(change)})
    _apply_missing(cols, basins["role"].to_numpy(), skip=("fid", "pfaf_id"))
    return pd.DataFrame(cols)


def _apply_missing(cols: dict[str, np.ndarray], role: np.ndarray, *,
                   skip: tuple[str, ...]) -> None:
    """-9999 / "No Data" for no-data basins and units without a basin; empty for blank ones."""
    sentinel = np.isin(role, ("nodata", "nobasin"))
    blank = role == "blank"
    for name, values in cols.items():
        if name in skip:
            continue
        label = name.endswith(("_l", "_label"))
        v = np.array(values, dtype=object if label else "float64")
        v[sentinel] = NO_DATA_LABEL if label else NO_DATA
        v[blank] = None if label else np.nan
        cols[name] = v


def _baseline_table(basins: pd.DataFrame, pieces: pd.DataFrame) -> pd.DataFrame:
    """Baseline rows (basin x province x aquifer) with bws, bwd, rfr and cfr."""
    ind = _indicators(basins, 0, 0.0)
    b = pieces["basin"].to_numpy()
    lon, lat = basins["lon"].to_numpy()[b], basins["lat"].to_numpy()[b]
    pfaf = basins["pfaf_id"].to_numpy()[b]
    gid_1 = np.array([f"SYN.{p}_1" for p in pieces["province"]], dtype=object)
    aqid = pieces["aqid"].to_numpy()
    string_id = np.array([f"{f}-{g}-{a}" for f, g, a in zip(pfaf, gid_1, aqid, strict=True)],
                         dtype=object)
    geoms = pieces["geometry"].to_numpy()
    rep_lat = shapely.get_y(shapely.point_on_surface(geoms))
    cols: dict[str, np.ndarray] = {
        "string_id": string_id, "aq30_id": np.arange(len(pieces)), "pfaf_id": pfaf,
        "gid_1": gid_1, "aqid": aqid, "gid_0": np.full(len(pieces), "SYN", dtype=object),
        "name_0": np.full(len(pieces), "Synthetic (not real data)", dtype=object),
        "name_1": np.array([f"Synthetic province {p}" for p in pieces["province"]], dtype=object),
        "area_km2": shapely.area(geoms) * _KM_PER_DEG ** 2 * np.cos(np.radians(rep_lat)),
    }
    for name, src, table in (("bws", "ws", BWS_LABELS), ("bwd", "wd", WD_LABELS)):
        cols[f"{name}_raw"] = ind[src]["r"][b]
        cols[f"{name}_score"] = ind[src]["s"][b]
        cols[f"{name}_cat"] = ind[src]["c"][b]
        cols[f"{name}_label"] = _labels(ind[src]["c"][b], table)
    # Riverine flood: expected annual share of population affected (smooth field).
    rfr = 0.0005 + 0.015 * (0.5 + 0.5 * np.sin(lon / 4.0) * np.cos(lat / 3.0)) ** 2
    cols.update(_binned("rfr", rfr, (0.001, 0.002, 0.006, 0.01), _RFR_LABELS))
    cfr = 0.004 * np.clip(np.sin(lon / 3.0 + lat / 2.0), 0, None) ** 3
    cfr_cols = _binned("cfr", cfr, (9e-6, 7e-5, 3e-4, 2e-3), _CFR_LABELS)
    no_risk = cfr == 0
    cfr_cols["cfr_score"][no_risk] = 0.0
    cfr_cols["cfr_cat"][no_risk] = -1.0
    cfr_cols["cfr_label"][no_risk] = _CFR_LABELS[-1]
    cols.update(cfr_cols)
    role = basins["role"].to_numpy()[b]
    # The baseline table has no blanks: WRI filled every gap with -9999 / "No Data".
    role = np.where(role == "blank", "nodata", role)
    _apply_missing(cols, role, skip=tuple(list(cols)[:9]))
    df = pd.DataFrame(cols)
    df["geometry"] = geoms
    return df


def _binned(name: str, raw: np.ndarray, edges: tuple[float, ...],
            labels: dict[int, str]) -> dict[str, np.ndarray]:
    """Raw, score (category plus the position inside its bin) and category over ``edges``."""
    e = np.asarray((0.0, *edges), dtype=float)
    cat = np.searchsorted(np.asarray(edges), raw, side="right")
    lo = e[cat]
    hi = np.append(e[1:], e[-1] * 2)[cat]
    score = np.clip(cat + (raw - lo) / (hi - lo), 0, 5)
    return {f"{name}_raw": raw, f"{name}_score": score, f"{name}_cat": cat.astype(float),
            f"{name}_label": _labels(cat, labels)}


# --- files ----------------------------------------------------------------------------------

def _write_gdb(path: Path, basins: pd.DataFrame, baseline: pd.DataFrame) -> None:
    import geopandas as gpd
    import pyogrio

    future = gpd.GeoDataFrame({"pfaf_id": basins["pfaf_id"].astype("int32"),
                               SYNTHETIC_MARK: SYNTHETIC_NOTE},
                              geometry=basins["geometry"].to_numpy(), crs="EPSG:4326")
    pyogrio.write_dataframe(future, path, layer=FUTURE_LAYER, driver="OpenFileGDB",
                            promote_to_multi=True)
    attrs = baseline.drop(columns="geometry").assign(**{SYNTHETIC_MARK: SYNTHETIC_NOTE})
    for c in ("aq30_id", "pfaf_id", "aqid"):
        attrs[c] = attrs[c].astype("int32")
    base = gpd.GeoDataFrame(attrs, geometry=baseline["geometry"].to_numpy(), crs="EPSG:4326")
    pyogrio.write_dataframe(base, path, layer=BASELINE_LAYER, driver="OpenFileGDB",
                            promote_to_multi=True)


