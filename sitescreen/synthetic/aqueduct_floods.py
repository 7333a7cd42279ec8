"""SYNTHETIC Aqueduct Floods tiles: upstream names and grid, invented depths.

Writes the riverine and coastal inundation GeoTIFFs that :mod:`sitescreen.hazards.flood`
reads, under ``root/aqueduct_floods/`` with the exact upstream file names (Ward et al. 2020;
REFERENCE section 3):

- ``inunriver_historical_000000000WATCH_1980_rp{RP:05d}.tif`` and
  ``inunriver_{rcp4p5|rcp8p5}_{model}_{2030|2050|2080}_rp{RP:05d}.tif`` for the five GCMs;
- ``inuncoast_historical_wtsub_hist_rp{RP}_0.tif`` and
  ``inuncoast_{rcp4p5|rcp8p5}_wtsub_{2030|2050|2080}_rp{RP}_0.tif`` (RP as 4 characters,
  suffix ``0`` = 95th-percentile sea-level rise), except the 1.5-year tile, which upstream
  names ``..._rp0001_5.tif`` without the ``_0``.

Names come from the catalog's file templates through
:func:`sitescreen.data.datasets.format_file_name`, so the writer, ``sitescreen data fetch`` and
the flood hazard use one naming rule.

The grid is the upstream one: global, -180..180 x -90..90 at 30 arc-seconds (43200 x 21600
pixels), float32 depth in metres, EPSG:4326. Files are tiled (128 rows x 256 columns),
DEFLATE-compressed and *sparse* (GDAL ``SPARSE_OK``): only the blocks that touch a
:class:`DemoArea` are written, everything else has no block at all and reads as nodata. A
file is about 350 kB, mostly the tile index (28,561 tiles x 8 bytes), instead of gigabytes.
The tile size is a measured compromise: smaller tiles mean fewer bytes to compress when
writing and to decode when sampling a site (each site decodes one tile), larger tiles a
smaller index; 128 x 256 writes the 349 files of a 40-area portfolio in about 10 s of CPU
and reads one site-file pair in well under a millisecond.

Nodata is -9999.0, our reading of what the upstream tiles declare; it could not be verified
here (no upstream file is reachable), and the reader does not depend on it because it
honours whatever nodata value a file declares.

The depths are NOT hazard data. They are smooth deterministic functions of position, chosen
so that screening behaves plausibly and testably:

- river: a sinuous channel crosses each area; terrain rises with distance from it; the
  water level above the channel grows with log(return period), with the pathway and year
  (rcp8p5 > rcp4p5 > historical; 2080 > 2050 > 2030), and differs between GCMs (each
  model has a global bias and a per-area perturbation, so models disagree);
- coast: in coastal areas the sea (nodata) covers one side of the square, land rises
  inland from a wiggly shoreline, and the still-water level is a surge growing with
  log(return period) plus sea-level rise and subsidence (``wtsub``) growing with pathway
  and year. Inland areas are dry land (depth 0) in the coastal tiles.

Depth is ``max(0, level - terrain)``, so at every pixel it never decreases with return
period, pathway or year.
"""

from __future__ import annotations

import functools
import logging
import math
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from sitescreen.data.datasets import format_file_name
from sitescreen.files import atomic_write
from sitescreen.synthetic import SYNTHETIC_MARK, SYNTHETIC_NOTE, DemoArea

__all__ = [
    "NODATA",
    "RIVER_MODELS",
    "RIVER_HISTORICAL_MODEL",
    "RIVER_RETURN_PERIODS",
    "COAST_RETURN_PERIODS",
    "PATHWAYS",
    "YEARS",
    "river_name",
    "coast_name",
    "coast_rp_token",
    "all_names",
    "write",
]

log = logging.getLogger(__name__)

NODATA = -9999.0
RES_DEG = 1.0 / 120.0  # 30 arc-seconds
WIDTH, HEIGHT = 43200, 21600
BLOCK_ROWS, BLOCK_COLS = 128, 256

RIVER_HISTORICAL_MODEL = "000000000WATCH"
RIVER_MODELS = ("00000NorESM1-M", "0000GFDL-ESM2M", "0000HadGEM2-ES", "00IPSL-CM5A-LR",
                "MIROC-ESM-CHEM")
RIVER_RETURN_PERIODS = (2, 5, 10, 25, 50, 100, 250, 500, 1000)
COAST_RETURN_PERIODS = (1.5, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
PATHWAYS = ("rcp4p5", "rcp8p5")
YEARS = (2030, 2050, 2080)
SUBSIDENCE = "wtsub"
SLR = "0"

# Synthetic model biases on the river water level: some models wetter than others.
_MODEL_BIAS = {"00000NorESM1-M": 0.92, "0000GFDL-ESM2M": 1.06, "0000HadGEM2-ES": 1.2,
               "00IPSL-CM5A-LR": 0.84, "MIROC-ESM-CHEM": 1.0, RIVER_HISTORICAL_MODEL: 1.0}
# Relative growth of the river level per century after 1980, by pathway.
_RIVER_TREND = {"historical": 0.0, "rcp4p5": 0.12, "rcp8p5": 0.3}
# Synthetic sea-level rise in metres by pathway and year (95th-percentile-like magnitudes).
_SLR_M = {("historical", "hist"): 0.0,
          ("rcp4p5", 2030): 0.12, ("rcp4p5", 2050): 0.24, ("rcp4p5", 2080): 0.45,
          ("rcp8p5", 2030): 0.14, ("rcp8p5", 2050): 0.3, ("rcp8p5", 2080): 0.7}


def coast_rp_token(rp: float) -> str:
    """Upstream's 4-character coastal return period: 1.5 -> ``0001_5``, 10 -> ``0010``.

    >>> coast_rp_token(1.5), coast_rp_token(2), coast_rp_token(1000)
    ('0001_5', '0002', '1000')
    """
    whole = int(rp)
    frac = round((rp - whole) * 10)
    return f"{whole:04d}_{frac}" if frac else f"{whole:04d}"


@functools.cache
def _templates() -> dict[str, str]:
    """The packaged catalog's file templates, so writer, fetcher and reader agree on names."""
    from sitescreen.catalog import load_catalog

    files = load_catalog().dataset("aqueduct_floods").files
    return {t.split("_", 1)[0]: t for t in files}


def river_name(pathway: str, model: str, year: int | str, rp: int) -> str:
    """Upstream riverine name, ``inunriver_{pathway}_{model}_{year}_rp{rp:05d}.tif``.

    >>> river_name("rcp8p5", "0000GFDL-ESM2M", 2050, 100)
    'inunriver_rcp8p5_0000GFDL-ESM2M_2050_rp00100.tif'
    """
    return format_file_name(_templates()["inunriver"], pathway=pathway, model=model,
                            year=year, rp=int(rp))


def coast_name(pathway: str, year: int | str, rp: float | str, *,
               subsidence: str = SUBSIDENCE, slr: str = SLR) -> str:
    """Upstream coastal name, ``inuncoast_{pathway}_{subsidence}_{year}_rp{RP}_{slr}.tif``,
    with upstream's quirk: the 1.5-year tile has no ``_0`` (see
    :func:`sitescreen.data.datasets.format_file_name`).

    >>> coast_name("rcp4p5", 2030, 10), coast_name("rcp4p5", 2030, 1.5)
    ('inuncoast_rcp4p5_wtsub_2030_rp0010_0.tif', 'inuncoast_rcp4p5_wtsub_2030_rp0001_5.tif')
    """
    token = rp if isinstance(rp, str) else coast_rp_token(rp)
    return format_file_name(_templates()["inuncoast"], pathway=pathway, subsidence=subsidence,
                            year=year, rp_coast=token, slr=slr)


@dataclass(frozen=True, slots=True)
class _Tile:
    """One file to write: its name and the level parameters the depth is computed from."""

    name: str
    kind: str  # "river" | "coast"
    pathway: str
    year: int | str
    model: str
    rp: float


def _tiles() -> list[_Tile]:
    tiles = [_Tile(river_name("historical", RIVER_HISTORICAL_MODEL, 1980, rp), "river",
                   "historical", 1980, RIVER_HISTORICAL_MODEL, rp)
             for rp in RIVER_RETURN_PERIODS]
    tiles += [_Tile(river_name(p, m, y, rp), "river", p, y, m, rp)
              for p in PATHWAYS for m in RIVER_MODELS for y in YEARS
              for rp in RIVER_RETURN_PERIODS]
    tiles += [_Tile(coast_name("historical", "hist", rp), "coast", "historical", "hist", "", rp)
              for rp in COAST_RETURN_PERIODS]
    tiles += [_Tile(coast_name(p, y, rp), "coast", p, y, "", rp)
              for p in PATHWAYS for y in YEARS for rp in COAST_RETURN_PERIODS]
    return tiles


def all_names() -> list[str]:
    """Every file name :func:`write` produces (349: 279 riverine, 70 coastal)."""
    return [t.name for t in _tiles()]


@dataclass(frozen=True, slots=True)
class _AreaField:
    """Static terrain of one area on its pixel window; per file only a level changes."""

    row0: int
    col0: int
    river_terrain: np.ndarray   # m above the channel
    coast_terrain: np.ndarray   # m above present sea level; +inf inland areas
    sea: np.ndarray             # bool, no data in every tile
    river_scale: float          # m, area's flood-proneness
    model_factor: dict[str, float]
    surge_scale: float
    subsidence_m_per_yr: float


def _area_rng(area: DemoArea, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(area.name.encode("utf-8"))])


def _field(area: DemoArea, seed: int, coastal: bool) -> _AreaField | None:
    x0, y0, x1, y1 = area.bounds
    col0 = max(0, math.floor((x0 + 180.0) / RES_DEG))
    col1 = min(WIDTH, math.ceil((x1 + 180.0) / RES_DEG))
    row0 = max(0, math.floor((90.0 - y1) / RES_DEG))
    row1 = min(HEIGHT, math.ceil((90.0 - y0) / RES_DEG))
    if col1 <= col0 or row1 <= row0:
        return None
    rng = _area_rng(area, seed)
    lon = -180.0 + (np.arange(col0, col1) + 0.5) * RES_DEG
    lat = 90.0 - (np.arange(row0, row1) + 0.5) * RES_DEG
    h = area.half_width_deg
    u = ((lon - area.lon) / h)[None, :]
    v = ((lat - area.lat) / h)[:, None]
    # River: sinuous channel v = A sin(pi (f u + phase)); terrain rises away from it.
    amp, freq, phase = rng.uniform(0.15, 0.45), rng.uniform(0.6, 1.4), rng.uniform(0, 2)
    d = np.abs(v - amp * np.sin(np.pi * (freq * u + phase)))
    texture = 0.5 * (1 + np.sin(3.1 * u + 2.3 * v + rng.uniform(0, 6.3)))
    river_terrain = (7.0 * d ** 1.2 + 1.5 * texture * d).astype("float64")
    # Coast: sea beyond a wiggly shoreline on one side; land rises inland.
    if coastal:
        theta = rng.uniform(0, 2 * np.pi)
        s = u * math.cos(theta) + v * math.sin(theta)
        t = -u * math.sin(theta) + v * math.cos(theta)
        shore = rng.uniform(0.3, 0.6) + 0.08 * np.sin(5.0 * t + rng.uniform(0, 6.3))
        sea = s > shore
        slope = rng.uniform(3.0, 9.0)  # m per half-width inland
        coast_terrain = np.maximum(0.0, shore - s) * slope + 0.4 * texture
    else:
        sea = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
        coast_terrain = np.full(sea.shape, np.inf)
    models = {m: _MODEL_BIAS[m] * float(np.exp(rng.normal(0.0, 0.12))) for m in RIVER_MODELS}
    models[RIVER_HISTORICAL_MODEL] = 1.0
    return _AreaField(
        row0=row0, col0=col0, river_terrain=river_terrain, coast_terrain=coast_terrain,
        sea=np.broadcast_to(sea, river_terrain.shape), river_scale=float(rng.uniform(0.3, 1.2)),
        model_factor=models, surge_scale=float(rng.uniform(0.6, 1.4)),
        subsidence_m_per_yr=float(rng.uniform(0.0, 0.015)))


def _level(tile: _Tile, f: _AreaField) -> float:
    """Water level (m) above the terrain datum of one area for one tile."""
    if tile.kind == "river":
        year = 1980 if tile.pathway == "historical" else int(tile.year)
        climate = 1.0 + _RIVER_TREND[tile.pathway] * (year - 1980) / 100.0
        return f.river_scale * (1.0 + 0.4 * math.log(tile.rp / 2.0 + 1.0)) \
            * f.model_factor[tile.model] * climate
    slr = _SLR_M[(tile.pathway, tile.year)]
    sub = 0.0 if tile.year == "hist" else f.subsidence_m_per_yr * (int(tile.year) - 2010)
    return f.surge_scale * (0.5 + 0.45 * math.log(tile.rp)) + slr + sub


def _depth(tile: _Tile, f: _AreaField) -> np.ndarray:
    terrain = f.river_terrain if tile.kind == "river" else f.coast_terrain
    depth = np.maximum(0.0, _level(tile, f) - terrain).astype("float32")
    depth[f.sea] = NODATA
    return depth


def _block_plan(fields: list[_AreaField]) -> list[tuple[Window, list[tuple[int, tuple, tuple]]]]:
    """Blocks touched by any area and, per block, which slice of which area goes where."""
    blocks: dict[tuple[int, int], list[tuple[int, tuple, tuple]]] = {}
    for i, f in enumerate(fields):
        h, w = f.river_terrain.shape
        r0, c0 = f.row0, f.col0
        for br in range(r0 // BLOCK_ROWS, (r0 + h - 1) // BLOCK_ROWS + 1):
            for bc in range(c0 // BLOCK_COLS, (c0 + w - 1) // BLOCK_COLS + 1):
                rr0, rr1 = max(r0, br * BLOCK_ROWS), min(r0 + h, (br + 1) * BLOCK_ROWS)
                cc0, cc1 = max(c0, bc * BLOCK_COLS), min(c0 + w, (bc + 1) * BLOCK_COLS)
                dst = (slice(rr0 - br * BLOCK_ROWS, rr1 - br * BLOCK_ROWS),
                       slice(cc0 - bc * BLOCK_COLS, cc1 - bc * BLOCK_COLS))
                src = (slice(rr0 - r0, rr1 - r0), slice(cc0 - c0, cc1 - c0))
                blocks.setdefault((br, bc), []).append((i, dst, src))
    plan = []
    for (br, bc), parts in sorted(blocks.items()):
        win = Window(bc * BLOCK_COLS, br * BLOCK_ROWS, min(BLOCK_COLS, WIDTH - bc * BLOCK_COLS),
                     min(BLOCK_ROWS, HEIGHT - br * BLOCK_ROWS))
        plan.append((win, parts))
    return plan


_PROFILE = {
    "driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 1, "dtype": "float32",
    "crs": "EPSG:4326", "transform": Affine(RES_DEG, 0.0, -180.0, 0.0, -RES_DEG, 90.0),
    "nodata": NODATA, "tiled": True, "blockxsize": BLOCK_COLS, "blockysize": BLOCK_ROWS,
    "compress": "deflate", "zlevel": 1, "sparse_ok": True,
}


def _write_tile(path: Path, tile: _Tile, fields: list[_AreaField],
                plan: list[tuple[Window, list[tuple[int, tuple, tuple]]]]) -> None:
    depths = [_depth(tile, f) for f in fields]

    def write(tmp: Path) -> None:
        with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(
                tmp, "w", **_PROFILE) as dst:
            dst.update_tags(**{SYNTHETIC_MARK: SYNTHETIC_NOTE},
                            UNITS="m", SOURCE_LAYOUT="Aqueduct Floods v2 (WRI)")
            buf = np.empty((BLOCK_ROWS, BLOCK_COLS), dtype="float32")
            for win, parts in plan:
                block = buf[: win.height, : win.width]
                block.fill(NODATA)
                for i, dst_sl, src_sl in parts:
                    part = depths[i][src_sl]
                    # Where areas overlap, land (a value) wins over another area's sea.
                    target = block[dst_sl]
                    np.copyto(target, part, where=(part != NODATA) | (target == NODATA))
                dst.write(block, 1, window=win)

    atomic_write(path, write)


def write(root: Path, areas: Sequence[DemoArea], *, seed: int,
          coastal: Collection[str] | None = None,
          only: Collection[str] | None = None) -> list[Path]:
    """Write the synthetic Aqueduct Floods tiles for ``areas`` under ``root/aqueduct_floods``.

    Parameters
    ----------
    root : Path
        Data folder; files go to ``root/aqueduct_floods/<upstream name>``.
    areas : sequence of DemoArea
        Squares where depths are written; everywhere else is nodata.
    seed : int
        Seed of the deterministic per-area terrain (same seed and areas, same files).
    coastal : collection of str, optional
        Names of the areas that touch the sea (sea appears on one side of them). By default
        the areas whose ``coastal`` attribute is true.
    only : collection of str, optional
        Write only these file names (tests); unknown names are refused.

    Returns
    -------
    list of Path
        The files written, in a stable order: all 349 (279 riverine, 70 coastal) unless
        ``only`` is given.
    """
    out_dir = Path(root) / "aqueduct_floods"
    out_dir.mkdir(parents=True, exist_ok=True)
    fields: list[_AreaField] = []
    for area in areas:
        is_coastal = (area.name in coastal) if coastal is not None else area.coastal
        f = _field(area, seed, is_coastal)
        if f is not None:
            fields.append(f)
    tiles = _tiles()
    if only is not None:
        unknown = sorted(set(only) - {t.name for t in tiles})
        if unknown:
            raise ValueError(f"not Aqueduct Floods file names: {unknown}; see all_names()")
        tiles = [t for t in tiles if t.name in set(only)]
    plan = _block_plan(fields)
    paths = []
    for tile in tiles:
        path = out_dir / tile.name
        _write_tile(path, tile, fields, plan)
        paths.append(path)
    log.info("wrote %d synthetic Aqueduct Floods tiles (%d areas, %d blocks each) to %s",
             len(paths), len(fields), len(plan), out_dir)
    return paths
