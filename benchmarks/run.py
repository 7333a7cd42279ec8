"""sitescreen benchmarks (issue 7): raster sampling, memory, full pipeline, re-runs, geocoding.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full run (about 8 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # about 2.5 minutes; some figures extrapolated
    .venv/bin/python benchmarks/run.py --only raster --only memory
    make bench

Prints one table of figures, goals, ratios and PASS/MISS per goal, and writes the same as
JSON to ``benchmarks/results/latest.json`` (git-ignored). Inputs are built once and kept
under ``cache/bench/``: a 6000 x 4800 tiled DEFLATE float32 GeoTIFF at 30 arc-seconds over
East Asia (lon 95-145, lat 15-55) and the synthetic demo pack. Heavy cases run in a child
process each, so their peak memory (``ru_maxrss``) is their own and in-process caches
(sample cache, typhoon base climate) do not carry over between runs, as between two CLI
invocations.

Benchmarks (``--only`` names):

- ``raster``: :func:`sitescreen.raster.sample_points` at 1,000 / 100,000 / 1,000,000 random
  points against rasterio ``DatasetReader.sample``, ``rasterstats.point_query`` (nearest
  pixel) and the floor (one read of the whole raster plus numpy indexing); blocks and bytes
  read for a few dozen scattered sites.
- ``memory``: peak memory of sampling 1,000,000 points (tracemalloc and ``ru_maxrss``).
- ``pipeline``: :func:`sitescreen.pipeline.screen` on 100,000 synthetic sites with
  coordinates, all default hazards x 3 narratives x (2030, 2050), without outputs and with
  every output (``--per-site-outputs all``: CSV, GeoJSON, GeoParquet, GeoPackage, report).
- ``scale``: the hard case: sites drawn at random over the land of China and East Asia
  (Natural Earth outlines; neighbouring sites in different raster blocks), end to end with
  the default outputs, single-process and on ``--dask local`` (2 workers). The size is
  ``BENCH_SITES`` (default 100,000 for the full run; the 1,000,000-site goal is measured
  with ``make bench BENCH_SITES=1000000``; ``BENCH_DASK=0`` skips the Dask run,
  ``BENCH_DASK=only`` the single-process one); figures at
  other sizes are extrapolated to 1,000,000 and say so.
- ``incremental``: 10,000 sites screened, then 10 added; 100,000 sites, then 1 added: cost
  of the second run.
- ``geocode``: offline geocoding and cache throughput (``benchmarks/bench_geocode.py``).
- ``geopackage``: :func:`sitescreen.outputs.geopackage.write_geopackage` alone for 100,000
  sites x 4 hazards and 2 composites x 3 narratives x 2 years (random levels).
- ``outputs``: the write step alone (``benchmarks/bench_outputs.py``): the files of a run of
  1,000,000 sites x 54 layers (random levels; the configuration's ``outputs_sites``) with the
  default outputs and the report, and of 100,000 sites (its ``pipeline_sites``) with every
  output: wall and CPU time, peak RSS, sizes.
- ``fetch``: windowed fetch of all 349 Aqueduct Floods tiles for ``sites.geojson`` from a
  local HTTP server, tiled and striped (``benchmarks/bench_fetch.py``): bytes, requests, time.

Sites are written in two distributions: ``demo`` (uniform over the demo pack's areas, so
every site falls on demo data) and ``land`` (the scale case above).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BENCHES = ("raster", "memory", "pipeline", "scale", "incremental", "geocode",
           "geopackage", "outputs", "fetch")
GB = 2**30
MB = 2**20

# The benchmark raster: 30 arc-seconds over East Asia, tiled 256 x 256, DEFLATE float32.
RASTER_BOUNDS = (95.0, 15.0, 145.0, 55.0)
RES_DEG = 1.0 / 120.0
BLOCK = 256


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one benchmark configuration."""

    name: str
    raster_bounds: tuple[float, float, float, float]
    points: tuple[int, ...]          # sample_points sizes
    rio_points: int                  # DatasetReader.sample measured at (extrapolated to max)
    rs_points: int                   # rasterstats.point_query measured at
    rs_goal_points: int              # rasterstats compared at (extrapolated from rs_points)
    sparse_sites: int                # "a few dozen sites" for the block-read count
    memory_points: int
    pipeline_sites: int              # measured, without and with outputs
    pipeline_goal_sites: int         # goal stated for (extrapolated if larger)
    incr_sites: int
    incr_added: int
    geocode_n: int
    scale_sites: int = 100_000       # BENCH_SITES overrides
    incr_big_sites: int = 100_000    # the "100,000 + 1 site" re-run
    dask_workers: int = 2
    area_names: tuple[str, ...] = ()  # demo areas of the pack (empty: all DEMO_AREAS)
    pipeline_writes: tuple[bool, ...] = (False, True)  # without / with writing outputs
    # A second, smaller size screened without outputs: with two sizes the time is
    # extrapolated as fixed cost + cost per site, not as cost per site alone.
    pipeline_small_sites: int = 0
    gpkg_sites: int = 100_000          # sites of the GeoPackage write
    # The write step alone, with the default outputs (the scale goal's size in the full
    # configuration); with every output it is measured at pipeline_sites.
    outputs_sites: int = 1_000_000
    subprocess: bool = True
    repeats: int = 3
    #: The scale case renders the report and charts (default outputs); the tiny
    #: configuration (the test suite's smoke run) leaves them out to stay quick.
    scale_report: bool = True

    @property
    def outputs_cases(self) -> tuple[tuple[int, str], ...]:
        """The write step's (sites, --per-site-outputs) cases of this configuration."""
        return ((self.outputs_sites, "auto"), (self.pipeline_sites, "all"))


FULL = Config(
    name="full", raster_bounds=RASTER_BOUNDS, points=(1_000, 100_000, 1_000_000),
    rio_points=1_000_000, rs_points=20_000, rs_goal_points=20_000, sparse_sites=36,
    memory_points=1_000_000, pipeline_sites=100_000, pipeline_goal_sites=100_000,
    incr_sites=10_000, incr_added=10, geocode_n=20_000)
QUICK = Config(
    name="quick", raster_bounds=RASTER_BOUNDS, points=(1_000, 100_000, 1_000_000),
    rio_points=50_000, rs_points=1_000, rs_goal_points=20_000, sparse_sites=36,
    memory_points=1_000_000, pipeline_sites=20_000, pipeline_goal_sites=100_000,
    pipeline_small_sites=5_000, incr_sites=10_000, incr_added=10, geocode_n=5_000,
    scale_sites=20_000, incr_big_sites=20_000, outputs_sites=100_000, repeats=2)
# The smallest configuration: every code path, in-process, in a few seconds (for the tests).
TINY = Config(
    name="tiny", raster_bounds=(95.0, 15.0, 100.0, 19.0), points=(1_000,),
    rio_points=1_000, rs_points=100, rs_goal_points=100, sparse_sites=12,
    memory_points=10_000, pipeline_sites=100, pipeline_goal_sites=100,
    incr_sites=50, incr_added=5, geocode_n=200, area_names=("Shanghai",),
    pipeline_writes=(False,), gpkg_sites=100, subprocess=False, repeats=1, scale_sites=100,
    incr_big_sites=0, dask_workers=0, scale_report=False, outputs_sites=100)
CONFIGS = {c.name: c for c in (FULL, QUICK, TINY)}


@dataclass(slots=True)
class Figure:
    """One measured figure, with its goal when it has one."""

    bench: str
    name: str
    value: float | None
    unit: str
    goal: str = ""
    ratio: float | None = None   # value / goal limit (<= 1 passes for "<" goals) or speed-up
    status: str = ""             # PASS, MISS, or "" for information
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Report:
    config: Config
    figures: list[Figure] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        f = Figure(*args, **kwargs)
        self.figures.append(f)
        return f

    def less_than(self, bench: str, name: str, value: float, limit: float, unit: str, *,
                  note: str = "") -> Figure:
        ok = value < limit
        return self.add(bench, name, value, unit, goal=f"< {_num(limit)} {unit}",
                        ratio=value / limit, status="PASS" if ok else "MISS", note=note)

    def at_least(self, bench: str, name: str, value: float, limit: float, unit: str, *,
                 note: str = "") -> Figure:
        ok = value >= limit
        return self.add(bench, name, value, unit, goal=f">= {_num(limit)} {unit}",
                        ratio=value / limit, status="PASS" if ok else "MISS", note=note)


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.001:
        return f"{v:.4f}"
    return f"{v:.2e}"


# --------------------------------------------------------------------------- child processes


def run_case(cfg: Config, case: str, params: dict) -> dict:
    """Run ``case`` in a fresh interpreter (or in-process for the tiny configuration)."""
    if not cfg.subprocess:
        return CASES[case](**params)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case,
           "--params", json.dumps(params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    tail = (proc.stderr or proc.stdout)[-2000:]
    raise RuntimeError(f"benchmark case {case} failed (exit {proc.returncode}): {tail}")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far."""
    # Linux reports ru_maxrss in kilobytes (macOS in bytes).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def current_rss_bytes() -> int:
    """Resident memory of this process now (``/proc/self/statm``; elsewhere the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize()
    except OSError:  # not Linux
        return peak_rss_bytes()


# --------------------------------------------------------------------------- inputs


def build_raster(path: Path, bounds: tuple[float, float, float, float]) -> Path:
    """A tiled DEFLATE float32 GeoTIFF at 30 arc-seconds over ``bounds`` (built once).

    Values are a smooth field plus noise (so DEFLATE does real work) with a no-data "sea" in
    the south-east corner, like a flood or hazard grid.
    """
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    if path.exists():
        return path
    x0, y0, x1, y1 = bounds
    width = round((x1 - x0) / RES_DEG)
    height = round((y1 - y0) / RES_DEG)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # rasterio's own "*"
        transform = from_origin(x0, y1, RES_DEG, RES_DEG)
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32",
                   crs="EPSG:4326", transform=transform,
                   nodata=-9999.0, tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                   compress="DEFLATE", predictor=3)
    rng = np.random.default_rng(7)
    cols = np.arange(width)
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, height, BLOCK):
            h = min(BLOCK, height - r0)
            rows = np.arange(r0, r0 + h)[:, None]
            v = (np.sin(cols[None, :] / 150.0) * np.cos(rows / 110.0) + 1.0).astype("float32")
            v += rng.normal(0, 0.05, size=v.shape).astype("float32")
            v[(rows > 0.6 * height) & (cols[None, :] > 0.7 * width)] = -9999.0
            dst.write(v, 1, window=Window(0, r0, width, h))
    os.replace(tmp, path)
    return path


def random_points(n: int, bounds: tuple[float, float, float, float], seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, x1, y1 = bounds
    rng = np.random.default_rng(seed)
    return rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)


def _areas(cfg: Config) -> list:
    from sitescreen.synthetic import DEMO_AREAS

    if not cfg.area_names:
        return list(DEMO_AREAS)
    return [a for a in DEMO_AREAS if a.name in cfg.area_names]


def build_pack(cache: Path, cfg: Config) -> Path:
    """The synthetic demo pack for ``cfg`` (rebuilt only when its format changed)."""
    from sitescreen.synthetic import build_demo_pack, pack_is_current

    root = cache / ("pack" if not cfg.area_names else f"pack-{cfg.name}")
    if not pack_is_current(root):
        build_demo_pack(root, areas=_areas(cfg))
    return root


#: Natural Earth (1:110m) countries whose land the ``land`` distribution covers.
LAND_COUNTRIES = ("CHN", "TWN", "JPN", "KOR", "PRK", "MNG")


def land_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform (in degrees) over the land of :data:`LAND_COUNTRIES`, drawn by
    rejection from their bounding box with the Natural Earth outlines the package ships."""
    import shapely

    path = ROOT / "sitescreen" / "outputs" / "naturalearth_110m_countries.geojson"
    doc = json.loads(path.read_text("utf-8"))
    land = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in doc["features"]
                              if f["properties"].get("iso_a3") in LAND_COUNTRIES])
    shapely.prepare(land)
    x0, y0, x1, y1 = land.bounds
    rng = np.random.default_rng(seed)
    xs, ys, have = [], [], 0
    while have < n:
        x = rng.uniform(x0, x1, 2 * (n - have) + 1000)
        y = rng.uniform(y0, y1, len(x))
        ok = shapely.contains_xy(land, x, y)
        xs.append(x[ok])
        ys.append(y[ok])
        have += int(ok.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def write_sites(path: Path, n: int, cfg: Config, *, seed: int = 11, start: int = 0,
                distribution: str = "demo") -> Path:
    """``n`` sites with coordinates as a CSV sites file: spread uniformly over the demo
    areas (``demo``: every site falls on demo data) or over the land of China and East Asia
    (``land``: see :func:`land_points`)."""
    import pandas as pd

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    if distribution == "land":
        lon, lat = land_points(n, seed)
        city = "East Asia"
    else:
        areas = _areas(cfg)
        pick = rng.integers(0, len(areas), n)
        lon0 = np.array([a.lon for a in areas])[pick]
        lat0 = np.array([a.lat for a in areas])[pick]
        hw = np.array([a.half_width_deg for a in areas])[pick]
        lon = lon0 + rng.uniform(-1, 1, n) * hw * 0.95
        lat = lat0 + rng.uniform(-1, 1, n) * hw * 0.95
        city = [areas[j].name for j in pick]
    ids = np.arange(start, start + n)
    frame = pd.DataFrame({
        "site_id": [f"bench-{i:07d}" for i in ids],
        "name": [f"Benchmark site {i}" for i in ids],
        "company": "Bench Co",
        "kind": "office",
        "city": city,
        "lon": np.round(lon, 5),
        "lat": np.round(lat, 5),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- cases (children)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def case_raster(raster: str, points: list[int], rio_points: int, rs_points: int,
                rs_goal_points: int, bounds: list[float], repeats: int) -> dict:
    """Timings of sample_points, DatasetReader.sample, rasterstats and the floor."""
    import rasterio

    from sitescreen.raster import _pixel_index, raster_info, sample_points

    out: dict[str, Any] = {"sample_points": {}}
    info = raster_info(raster)
    nmax = max(points)
    x, y = random_points(nmax, tuple(bounds), seed=1)
    sample_points(raster, x[:1000], y[:1000])  # warm the OS file cache and imports
    for n in points:
        out["sample_points"][str(n)] = _best(lambda n=n: sample_points(raster, x[:n], y[:n]),
                                             repeats)
    ref = sample_points(raster, x[:nmax], y[:nmax])

    def floor() -> np.ndarray:
        with rasterio.open(raster) as ds:
            arr = ds.read(1)
        rows, cols, _ = _pixel_index(info, x, y)
        v = arr[rows, cols].astype("float64")
        v[(v == info.nodata) | ~np.isfinite(v)] = np.nan
        return v

    out["floor"] = _best(floor, repeats)
    out["floor_points"] = nmax
    out["floor_agrees"] = bool(np.array_equal(np.isnan(floor()), np.isnan(ref)))

    m = min(rio_points, nmax)
    with rasterio.open(raster) as ds:
        t0 = time.perf_counter()
        rio = np.fromiter((v[0] for v in ds.sample(zip(x[:m], y[:m], strict=True))), dtype="float64",
                          count=m)
        out["rio_sample"] = time.perf_counter() - t0
    rio[rio == info.nodata] = np.nan
    out["rio_points"] = m
    out["rio_agrees"] = bool(np.allclose(rio, ref[:m], equal_nan=True))

    from rasterstats import point_query
    from shapely import points as shp_points

    k = min(rs_points, nmax)
    geoms = list(shp_points(x[:k], y[:k]))
    with warnings.catch_warnings():
        # rasterstats uses the affine "*" operator, deprecated for "@": one warning a point.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        t0 = time.perf_counter()
        rs = np.asarray(point_query(geoms, raster, interpolate="nearest"), dtype="float64")
        out["rasterstats"] = time.perf_counter() - t0
    out["rs_points"] = k
    out["rs_agrees"] = bool(np.allclose(rs, ref[:k], equal_nan=True))
    kg = min(rs_goal_points, nmax)
    out["sample_points_at_rs_goal"] = _best(lambda: sample_points(raster, x[:kg], y[:kg]),
                                            repeats)
    return out


class _CountingDataset:
    """An open rasterio dataset that records the windows read through it."""

    def __init__(self, ds: Any) -> None:
        self._ds = ds
        self.windows: list[Any] = []

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self.windows.append(kwargs.get("window"))
        return self._ds.read(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ds, name)


def case_blocks(raster: str, n_sites: int, bounds: list[float]) -> dict:
    """Blocks (and compressed bytes) read for a few dozen scattered sites, against the
    blocks that hold them and the blocks of the whole raster."""
    import rasterio

    from sitescreen.raster import _pixel_index, raster_info, sample_points

    info = raster_info(raster)
    x, y = random_points(n_sites, tuple(bounds), seed=5)
    bh, bw = info.block_shape
    nbr, nbc = -(-info.height // bh), -(-info.width // bw)
    rows, cols, inside = _pixel_index(info, x, y)
    needed = {(int(r) // bh, int(c) // bw) for r, c in zip(rows[inside], cols[inside],
                                                           strict=True)}
    with rasterio.open(raster) as ds:
        counting = _CountingDataset(ds)
        sample_points(counting, x, y)
        read: set[tuple[int, int]] = set()
        for w in counting.windows:
            r0, c0 = int(w.row_off) // bh, int(w.col_off) // bw
            r1 = (int(w.row_off) + int(w.height) - 1) // bh
            c1 = (int(w.col_off) + int(w.width) - 1) // bw
            read |= {(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
        nbytes = sum(ds.block_size(1, r, c) for r, c in read)
        total_bytes = sum(ds.block_size(1, r, c) for r in range(nbr) for c in range(nbc))
    return {"sites": n_sites, "reads": len(counting.windows), "blocks_read": len(read),
            "blocks_needed": len(needed), "blocks_total": nbr * nbc,
            "extra_blocks": len(read - needed), "bytes_read": int(nbytes),
            "bytes_total": int(total_bytes), "file_bytes": os.path.getsize(raster)}


def case_memory(raster: str, n: int, bounds: list[float]) -> dict:
    """Peak memory of sampling ``n`` points (fresh process: ru_maxrss is this case's own)."""
    import sitescreen.raster as raster_mod

    x, y = random_points(n, tuple(bounds), seed=3)
    rss_before = peak_rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    v = raster_mod.sample_points(raster, x, y)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"points": n, "tracemalloc_peak": peak, "rss_peak": peak_rss_bytes(),
            "rss_before": rss_before, "inputs_bytes": int(x.nbytes + y.nbytes + v.nbytes),
            "seconds_traced": elapsed}


def case_pipeline(sites: str, pack: str, out: str, cache_dir: str, write: bool,
                  profile: str = "", per_site_outputs: str = "auto", dask: str = "",
                  dask_workers: int = 2, report: bool = True) -> dict:
    """One :func:`sitescreen.pipeline.screen` run; wall time, step timings and peak RSS."""
    from sitescreen import pipeline

    request = pipeline.make_request(sites=sites, data=pack, out=out, cache_dir=cache_dir,
                                    years=[2030, 2050], per_site_outputs=per_site_outputs,
                                    report=report)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    memory = _StepMemory()
    t0, c0 = time.perf_counter(), time.process_time()
    with memory:
        run = pipeline.screen(request, write=write, progress=memory.progress,
                              **({"dask": dask, "dask_workers": dask_workers} if dask else {}))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    steps = dict(run.timings)
    accounted = sum(steps.values())
    if write:
        # screen() times its steps up to aggregation; the rest is building and writing files.
        steps["outputs (render + write)"] = max(0.0, wall - accounted)
    else:
        steps["other"] = max(0.0, wall - accounted)
    out_bytes, files = 0, {}
    if run.run_dir is not None:
        for p in Path(run.run_dir).rglob("*"):
            if p.is_file():
                out_bytes += p.stat().st_size
                files[p.relative_to(run.run_dir).as_posix()] = p.stat().st_size
    big = sorted(files.items(), key=lambda kv: -kv[1])[:6]
    res = run.results
    return {"sites": int(len(run.sites)), "rows": int(len(res) * len(res.layers)),
            "wall_s": wall, "cpu_s": cpu, "steps": steps, "rss_peak": peak_rss_bytes(),
            "write": write, "layers": len(run.manifest.get("layers", [])),
            "rss_by_step": memory.peaks,
            "output_bytes": out_bytes, "largest_files": dict(big),
            "results_bytes": res.nbytes,
            "worker_rss_peak": getattr(run, "worker_rss_peak", None),
            "screened": int(sum(int((lv > 0).sum()) for lv in res.level))}


class _StepMemory:
    """Peak resident memory per step of a run: a thread samples ``/proc/self/statm`` every
    0.1 s and books it to the step the run's progress events last named (load, locate,
    assess, write; fetching the data counts to locate, aggregation to assess)."""

    def __init__(self) -> None:
        import threading

        self.peaks: dict[str, int] = {}
        self.step = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def progress(self, event: Any) -> None:
        self.step = event.step

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            step = self.step
            self.peaks[step] = max(self.peaks.get(step, 0), current_rss_bytes())

    def __enter__(self) -> _StepMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rss_note(p: dict) -> str:
    steps = p.get("rss_by_step") or {}
    return "; ".join(f"{k} {v / GB:.2f} GB" for k, v in steps.items())


def case_geocode(n: int) -> dict:
    from bench_geocode import GOAL, measure

    out = measure(n)
    out["goal_per_s"] = GOAL
    return out


def case_geopackage(n: int, out: str) -> dict:
    """The GeoPackage of ``n`` sites with random levels: write time, size, peak RSS."""
    from sitescreen.catalog import load_catalog
    from sitescreen.hazards import HazardResult
    from sitescreen.outputs.geopackage import write_geopackage
    from sitescreen.pipeline import ScreeningRequest, summarise
    from sitescreen.scenarios import Narrative, pathway_for

    rng = np.random.default_rng(5)
    ids = [f"s{i:06d}" for i in range(n)]
    import pandas as pd

    sites = pd.DataFrame({"site_id": ids, "name": [f"Site {i}" for i in range(n)],
                          "company": "Example", "kind": "office", "address": "", "city": "",
                          "country": "CN", "lon": rng.uniform(100, 125, n),
                          "lat": rng.uniform(20, 45, n), "location_source": "given",
                          "geocode_precision": "coordinates",
                          "asset_value": rng.integers(1, 10**7, n).astype(str)})
    catalog = load_catalog()
    family = {"water_stress": "aqueduct40", "river_flood": "aqueduct_floods",
              "coastal_flood": "aqueduct_floods", "typhoon": "tc_change"}
    results = []
    for hazard, fam in family.items():
        spec = catalog.hazard(hazard)
        for scenario in Narrative:
            for year in (2030, 2050):
                lv = rng.integers(0, 6, n).astype("int8")
                results.append(HazardResult(
                    hazard=hazard, scenario=scenario, year=year,
                    pathway=pathway_for(fam, scenario, year),
                    units=catalog.threshold_set(spec.threshold_set).units,
                    threshold_set=spec.threshold_set, datasets=(hazard,), method="bench",
                    values=np.where(lv > 0, lv * 1.5, np.nan), levels=lv, level_low=lv,
                    level_high=lv, flags=np.where(lv == 3, "near-threshold", "").astype(object),
                    details={}))
    columns, _ = summarise(sites, results, ScreeningRequest(sites="bench.csv", data="bench",
                                                            years=(2030, 2050)))
    manifest = {"run_id": "bench", "data_origin": "synthetic-demo",
                "created_at": "2026-01-01T00:00:00Z"}
    path = Path(out) / "sites.gpkg"
    path.parent.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    write_geopackage(path, sites, columns, manifest=manifest)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = path.stat().st_size
    path.unlink()
    return {"sites": n, "rows": int(len(columns) * len(columns.layers)), "wall_s": wall, "cpu_s": cpu, "bytes": size,
            "rss_peak": peak_rss_bytes()}


def case_outputs(n: int, mode: str, cache: str, config: str) -> dict:
    """The write step alone (:func:`bench_outputs.measure`)."""
    from bench_outputs import measure

    return measure(n, mode, cache=Path(cache), config=config)


def case_raster_floor(sites: str, pack: str) -> dict:
    """Only the raster reads a screening of ``sites`` needs: every GeoTIFF the run's layers
    read (the windowed datasets of :func:`sitescreen.data.prepare.plan_data`, from the
    hazards' ``data_needs``), sampled at the sites from a fresh process; no sites file,
    locating, store, other datasets or aggregation. A re-run that adds these sites cannot be
    cheaper than this part of its work."""
    import pandas as pd

    from sitescreen import pipeline
    from sitescreen.data.prepare import plan_data
    from sitescreen.raster import SampleCache

    request = pipeline.make_request(sites=sites, data=pack, years=[2030, 2050])
    catalog = pipeline.catalog_for(request)
    data = pipeline.open_data(request)
    frame = pd.read_csv(sites)
    lon, lat = frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)
    plan = plan_data(catalog, pipeline.plan_layers(catalog, request), pack, lon, lat)
    paths = [str(data.require(catalog.dataset(w.dataset), f.name))
             for w in plan.windowed for f in w.files]
    t0, c0 = time.perf_counter(), time.process_time()
    SampleCache().sample_many(paths, lon, lat)
    return {"sites": len(frame), "files": len(paths), "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}

CASES = {"raster": case_raster, "blocks": case_blocks, "memory": case_memory,
         "pipeline": case_pipeline, "geocode": case_geocode, "geopackage": case_geopackage,
         "outputs": case_outputs, "raster_floor": case_raster_floor}


# --------------------------------------------------------------------------- benchmarks


def bench_raster(rep: Report, cache: Path) -> None:
    cfg = rep.config
    raster = str(build_raster(cache / _raster_name(cfg), cfg.raster_bounds))
    bounds = list(cfg.raster_bounds)
    r = run_case(cfg, "raster", {"raster": raster, "points": list(cfg.points),
                                 "rio_points": cfg.rio_points, "rs_points": cfg.rs_points,
                                 "rs_goal_points": cfg.rs_goal_points,
                                 "bounds": bounds, "repeats": cfg.repeats})
    b = run_case(cfg, "blocks", {"raster": raster, "n_sites": cfg.sparse_sites,
                                 "bounds": bounds})
    rep.raw["raster"] = {"file": raster, **r, "blocks": b}
    nmax = max(cfg.points)
    for n in cfg.points:
        t = r["sample_points"][str(n)]
        if n == 1_000_000:
            rep.less_than("raster", f"sample_points, {n:,} points", t, 1.0, "s",
                          note=f"{n / t:,.0f} points/s")
        else:
            rep.add("raster", f"sample_points, {n:,} points", t, "s",
                    note=f"{n / t:,.0f} points/s")
    t_max = r["sample_points"][str(nmax)]
    rep.add("raster", f"floor: read whole raster + numpy index, {nmax:,} points", r["floor"],
            "s", note=f"sample_points / floor = {t_max / r['floor']:.2f}; NaN pattern "
            f"{'agrees' if r['floor_agrees'] else 'DIFFERS'}")
    rio_m = r["rio_points"]
    rio_t = r["rio_sample"] * nmax / rio_m
    note = (f"measured at {rio_m:,} points ({r['rio_sample']:.2f} s), extrapolated linearly "
            f"to {nmax:,}" if rio_m < nmax else "measured")
    rep.add("raster", f"rasterio DatasetReader.sample, {nmax:,} points", rio_t, "s",
            note=note + f"; values {'agree' if r['rio_agrees'] else 'DIFFER'}")
    rep.at_least("raster", f"speed-up vs DatasetReader.sample at {nmax:,}", rio_t / t_max, 20,
                 "x")
    k, kg = r["rs_points"], cfg.rs_goal_points
    rs_t = r["rasterstats"] * kg / k
    sp_t = r["sample_points_at_rs_goal"]
    note = (f"measured at {k:,} points ({r['rasterstats']:.2f} s), extrapolated linearly to "
            f"{kg:,}" if k < kg else "measured")
    rep.add("raster", f"rasterstats.point_query (nearest), {kg:,} points", rs_t, "s",
            note=note + f"; values {'agree' if r['rs_agrees'] else 'DIFFER'}")
    rep.at_least("raster", f"speed-up vs rasterstats.point_query at {kg:,}", rs_t / sp_t, 100,
                 "x", note=f"sample_points at {kg:,} points: {sp_t:.4f} s (measured)")
    blocks_ok = b["extra_blocks"] == 0 and b["blocks_read"] == b["blocks_needed"]
    rep.add("raster", f"blocks read for {b['sites']} scattered sites", b["blocks_read"],
            "blocks", goal="only the blocks holding sites",
            ratio=b["blocks_read"] / max(1, b["blocks_needed"]),
            status="PASS" if blocks_ok else "MISS",
            note=f"{b['blocks_needed']} blocks hold sites, {b['blocks_total']:,} in the raster; "
                 f"{b['reads']} window reads; {b['bytes_read'] / MB:.2f} MB of "
                 f"{b['bytes_total'] / MB:.1f} MB compressed tile data")


def _raster_name(cfg: Config) -> str:
    x0, y0, x1, y1 = cfg.raster_bounds
    return f"raster-{x0:g}_{y0:g}_{x1:g}_{y1:g}-30s-b{BLOCK}-deflate.tif"


def bench_memory(rep: Report, cache: Path) -> None:
    cfg = rep.config
    raster = str(build_raster(cache / _raster_name(cfg), cfg.raster_bounds))
    m = run_case(cfg, "memory", {"raster": raster, "n": cfg.memory_points,
                                 "bounds": list(cfg.raster_bounds)})
    rep.raw["memory"] = m
    n = m["points"]
    rep.less_than("memory", f"tracemalloc peak, sample_points {n:,} points",
                  m["tracemalloc_peak"] / GB, 4, "GB",
                  note=f"{m['tracemalloc_peak'] / MB:.0f} MB (Python and numpy allocations)")
    rep.less_than("memory", f"process peak RSS, sample_points {n:,} points",
                  m["rss_peak"] / GB, 4, "GB",
                  note=f"{m['rss_peak'] / MB:.0f} MB incl. interpreter, GDAL block cache; "
                       f"{m['rss_before'] / MB:.0f} MB before sampling"
                       + ("" if cfg.subprocess else "; in-process (not a clean peak)"))


def bench_pipeline(rep: Report, cache: Path, *, profile: bool = False) -> None:
    cfg = rep.config
    pack = build_pack(cache, cfg)
    n, goal_n = cfg.pipeline_sites, cfg.pipeline_goal_sites
    sites = write_sites(cache / "sites" / f"pipeline-{cfg.name}-{n}.csv", n, cfg)
    work = cache / "work" / f"pipeline-{cfg.name}"
    rep.raw["pipeline"] = {"sites": n, "cpu_count": os.cpu_count(), "pack": str(pack)}

    def run(sites_file: Path, write: bool) -> dict:
        shutil.rmtree(work, ignore_errors=True)  # an empty result store: everything computed
        prof = str(cache / f"profile-pipeline-{'write' if write else 'nowrite'}.prof") \
            if profile else ""
        return run_case(cfg, "pipeline", {"sites": str(sites_file), "pack": str(pack),
                                          "out": str(work / "out"),
                                          "cache_dir": str(work / "cache"), "write": write,
                                          "profile": prof, "per_site_outputs": "all"})

    small = None
    if goal_n > n and cfg.pipeline_small_sites:
        m = cfg.pipeline_small_sites
        small = run(write_sites(cache / "sites" / f"pipeline-{cfg.name}-{m}.csv", m, cfg), False)
        rep.raw["pipeline"]["nowrite_small"] = small
    nowrite_est = None
    for write in cfg.pipeline_writes:
        tag = "with every output" if write else "without outputs"
        p = run(sites, write)
        rep.raw["pipeline"]["write" if write else "nowrite"] = p
        note = (f"{p['layers']} layers, {p['rows']:,} result rows, {p['cpu_s']:.1f} s CPU on "
                f"{os.cpu_count()} cores")
        t = p["wall_s"]
        if goal_n != n:
            base = rep.raw["pipeline"].get("nowrite")
            if not write and small is not None:
                # fixed cost + cost per site, from the two sizes
                m = small["sites"]
                per_site = (p["wall_s"] - small["wall_s"]) / (n - m)
                t = p["wall_s"] + per_site * (goal_n - n)
                how = (f"fixed + per-site cost fitted to {m:,} sites ({small['wall_s']:.1f} s) "
                       f"and {n:,} sites")
                nowrite_est = t
            elif write and nowrite_est is not None and base is not None:
                outputs = p["wall_s"] - base["wall_s"]
                t = nowrite_est + outputs * goal_n / n
                how = ("the estimate without outputs plus the output cost "
                       f"({outputs:.1f} s) scaled per site")
            else:
                t = p["wall_s"] * goal_n / n
                how = "linear per site"
            note = (f"ESTIMATE: measured {p['wall_s']:.1f} s at {n:,} sites, extrapolated to "
                    f"{goal_n:,} ({how}); ") + note
        if write:
            note += f"; {p['output_bytes'] / MB:.0f} MB written ({_files_note(p)})"
        rep.less_than("pipeline", f"screen {goal_n:,} sites, {tag}", t, 60, "s", note=note)
        steps = sorted(p["steps"].items(), key=lambda kv: -kv[1])
        rep.add("pipeline", f"  steps, {tag} ({n:,} sites)", None, "",
                note="; ".join(f"{k} {v:.1f} s" for k, v in steps if v >= 0.05))
        rep.less_than("pipeline", f"peak RSS, {tag} ({n:,} sites)", p["rss_peak"] / GB, 2.5,
                      "GB", note=f"per-site results {p['results_bytes'] / MB:.0f} MB; peak by "
                      f"step: {_rss_note(p)}"
                      + ("" if cfg.subprocess else "; in-process (not a clean peak)"))
    shutil.rmtree(work, ignore_errors=True)  # outputs of 100,000 sites take gigabytes


def _files_note(p: dict) -> str:
    return ", ".join(f"{k} {v / MB:.0f} MB" for k, v in p.get("largest_files", {}).items()
                     if v >= MB)


#: The 1,000,000-site goals: end to end with the default outputs.
SCALE_GOAL_SITES = 1_000_000
SCALE_GOALS = {"wall_s": 15 * 60, "rss_gb": 6.0, "output_gb": 3.0}


def scale_sites(cfg: Config) -> int:
    """``BENCH_SITES`` from the environment, else the configuration's size."""
    value = os.environ.get("BENCH_SITES", "").replace("_", "").replace(",", "")
    return int(value) if value else cfg.scale_sites


def bench_scale(rep: Report, cache: Path) -> None:
    """The hard case at ``BENCH_SITES`` sites, single-process and on a local Dask cluster."""
    cfg = rep.config
    pack = build_pack(cache, cfg)
    n = scale_sites(cfg)
    sites = write_sites(cache / "sites" / f"land-{n}.csv", n, cfg, seed=31, distribution="land")
    work = cache / "work" / f"scale-{cfg.name}"
    rep.raw["scale"] = {"sites": n, "distribution": "land", "loadavg_before": os.getloadavg()}
    # BENCH_DASK=0: the single-process run only; BENCH_DASK=only: the Dask run only.
    dask_mode = os.environ.get("BENCH_DASK", "1")
    runs = [] if dask_mode == "only" else [("single process", "")]
    if cfg.dask_workers and dask_mode != "0":
        runs.append((f"--dask local ({cfg.dask_workers} workers)", "local"))
    factor = SCALE_GOAL_SITES / n
    est = "" if n == SCALE_GOAL_SITES else \
        f"ESTIMATE: measured at {n:,} sites, scaled linearly to {SCALE_GOAL_SITES:,}; "
    single = None
    for tag, dask in runs:
        shutil.rmtree(work, ignore_errors=True)
        p = run_case(cfg, "pipeline", {"sites": str(sites), "pack": str(pack),
                                       "out": str(work / "out"), "cache_dir": str(work / "cache"),
                                       "write": True, "dask": dask,
                                       "dask_workers": cfg.dask_workers,
                                       "report": cfg.scale_report})
        rep.raw["scale"]["dask" if dask else "single"] = p
        shutil.rmtree(work, ignore_errors=True)
        note = (f"{est}{p['layers']} layers, {p['screened']:,} site-layers screened of "
                f"{p['rows']:,}; {p['cpu_s']:.0f} s CPU in the driver; load before "
                f"{rep.raw['scale']['loadavg_before'][0]:.1f}")
        if single is not None:
            note += f"; single process {single['wall_s']:.0f} s at the same size"
        rep.less_than("scale", f"{SCALE_GOAL_SITES:,} land sites end to end, {tag}",
                      p["wall_s"] * factor, SCALE_GOALS["wall_s"], "s",
                      note=note + f"; measured {p['wall_s']:.1f} s")
        steps = sorted(p["steps"].items(), key=lambda kv: -kv[1])
        rep.add("scale", f"  steps, {tag} ({n:,} sites)", None, "",
                note="; ".join(f"{k} {v:.1f} s" for k, v in steps if v >= 0.05))
        rss = p["rss_peak"] / GB
        # Memory is bounded by the chunk size, plus the sites and their compact results:
        # the estimate scales the part above a fixed 0.5 GB (interpreter, libraries) linearly.
        rss_est = rss if not est else 0.5 + max(0.0, rss - 0.5) * factor
        rep.less_than("scale", f"  peak RSS, {tag}", rss_est, SCALE_GOALS["rss_gb"], "GB",
                      note=(est + f"measured {rss:.2f} GB; per-site results "
                            f"{p['results_bytes'] / MB:.0f} MB; peak by step: {_rss_note(p)}"))
        if dask and p.get("worker_rss_peak"):
            rep.add("scale", "  peak RSS of one Dask worker", p["worker_rss_peak"] / GB, "GB",
                    note=f"measured at {n:,} sites; bounded by the chunk size")
        out_gb = p["output_bytes"] / GB
        rep.less_than("scale", f"  outputs, {tag}", out_gb * factor, SCALE_GOALS["output_gb"],
                      "GB", note=est + f"measured {p['output_bytes'] / MB:.0f} MB ("
                      f"{_files_note(p)})")
        single = single or p


def bench_incremental(rep: Report, cache: Path) -> None:
    cfg = rep.config
    pack = build_pack(cache, cfg)
    n, k = cfg.incr_sites, cfg.incr_added
    first = write_sites(cache / "sites" / f"incr-{cfg.name}-{n}.csv", n, cfg, seed=21)
    added = write_sites(cache / "sites" / f"incr-{cfg.name}-{n}-added.csv", k, cfg, seed=22,
                        start=n)
    import pandas as pd

    second = cache / "sites" / f"incr-{cfg.name}-{n}+{k}.csv"
    pd.concat([pd.read_csv(first), pd.read_csv(added)]).to_csv(second, index=False)
    work = cache / "work" / f"incremental-{cfg.name}"
    shutil.rmtree(work, ignore_errors=True)
    common = {"pack": str(pack), "out": str(work / "out"), "cache_dir": str(work / "cache"),
              "write": False}
    a = run_case(cfg, "pipeline", {"sites": str(first), **common})
    b = run_case(cfg, "pipeline", {"sites": str(second), **common})
    rep.raw["incremental"] = {"first": a, "second": b}
    shutil.rmtree(work, ignore_errors=True)
    rep.add("incremental", f"first run, {n:,} sites (empty cache)", a["wall_s"], "s",
            note="without outputs; " + "; ".join(
                f"{s} {v:.2f} s" for s, v in sorted(a["steps"].items(), key=lambda kv: -kv[1])
                if v >= 0.01))
    rep.add("incremental", f"second run, {n:,} + {k} sites (same cache)", b["wall_s"], "s",
            note="; ".join(f"{s} {v:.2f} s" for s, v in
                           sorted(b["steps"].items(), key=lambda kv: -kv[1]) if v >= 0.01))
    rep.less_than("incremental", "second run / first run", 100 * b["wall_s"] / a["wall_s"], 5,
                  "%")
    # The part of the second run no store can save: the added sites' raster reads.
    floor = run_case(cfg, "raster_floor", {"sites": str(added), "pack": str(pack)})
    rep.raw["incremental"]["raster_floor"] = floor
    rep.add("incremental", f"  floor: the {k} added sites' raster reads alone",
            floor["wall_s"], "s",
            note=f"{100 * floor['wall_s'] / a['wall_s']:.1f} % of the first run; "
                 f"{floor['files']} GeoTIFFs opened and sampled "
                 f"{'in a fresh process' if cfg.subprocess else 'in this process'}, "
                 f"{floor['cpu_s']:.2f} s CPU")
    big = cfg.incr_big_sites
    if not big:
        return
    first = write_sites(cache / "sites" / f"incr-{cfg.name}-{big}.csv", big, cfg, seed=23)
    added = write_sites(cache / "sites" / f"incr-{cfg.name}-{big}-added1.csv", 1, cfg, seed=24,
                        start=big)
    second = cache / "sites" / f"incr-{cfg.name}-{big}+1.csv"
    if not second.exists():
        pd.concat([pd.read_csv(first), pd.read_csv(added)]).to_csv(second, index=False)
    shutil.rmtree(work, ignore_errors=True)
    a = run_case(cfg, "pipeline", {"sites": str(first), **common})
    b = run_case(cfg, "pipeline", {"sites": str(second), **common})
    rep.raw["incremental"].update(big_first=a, big_second=b)
    shutil.rmtree(work, ignore_errors=True)
    rep.add("incremental", f"first run, {big:,} sites (empty cache)", a["wall_s"], "s",
            note="without outputs")
    rep.less_than("incremental", f"second run, {big:,} + 1 site (same cache)", b["wall_s"], 3,
                  "s", note="; ".join(f"{s} {v:.2f} s" for s, v in
                                      sorted(b["steps"].items(), key=lambda kv: -kv[1])
                                      if v >= 0.01))


def bench_geocode(rep: Report, cache: Path) -> None:
    cfg = rep.config
    g = run_case(cfg, "geocode", {"n": cfg.geocode_n})
    rep.raw["geocode"] = g
    rep.at_least("geocode", f"offline geocoding, {g['n']:,} addresses", g["geocode_per_s"],
                 g["goal_per_s"], "addresses/s",
                 note=f"{g['geocode_per_cpu_s']:,.0f} per CPU second; {g['ok_share']:.1%} ok; "
                      f"gazetteer load {g['gazetteer_load_s']:.2f} s")
    rep.add("geocode", "cache hits (batch get_many)", g["cache_read_per_s"], "answers/s")
    rep.add("geocode", "cache hits (one by one)", g["cache_single_per_s"], "answers/s")
    rep.add("geocode", "cache writes (put_many)", g["cache_write_per_s"], "answers/s")


def bench_geopackage(rep: Report, cache: Path) -> None:
    n = rep.config.gpkg_sites
    g = run_case(rep.config, "geopackage", {"n": n, "out": str(cache / "work" / "gpkg")})
    rep.raw["geopackage"] = g
    rep.less_than("geopackage", f"GeoPackage, {n:,} sites", g["wall_s"], 10, "s",
                  note=f"{g['cpu_s']:.1f} s CPU; {g['rows']:,} result rows; "
                       f"{g['bytes'] / MB:.0f} MB; one point layer with every level, a detail "
                       "table and SQL views; load average "
                       f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def bench_outputs(rep: Report, cache: Path) -> None:
    rep.raw["outputs"] = {}
    for n, mode in rep.config.outputs_cases:
        o = run_case(rep.config, "outputs", {"n": n, "mode": mode, "cache": str(cache),
                                             "config": rep.config.name})
        rep.raw["outputs"][f"{n}-{mode}"] = o
        slow = sorted(o["timings"].items(), key=lambda kv: -kv[1][0])[:4]
        rep.add("outputs", f"write step, {n:,} sites, --per-site-outputs {mode}", o["wall_s"],
                "s", note=f"{o['cpu_s']:.1f} s CPU; " + "; ".join(
                    f"{k} {w:.1f} s" for k, (w, _) in slow) + f"; {o['output_bytes'] / MB:.0f} MB"
                f" written ({_files_note(o)})")
        rep.add("outputs", f"  peak RSS, {n:,} sites, {mode}", o["rss_peak"] / GB, "GB",
                note=f"{o['rss_before_write'] / GB:.2f} GB before the write step "
                     f"(results {o['results_bytes'] / MB:.0f} MB)")


def bench_fetch(rep: Report, cache: Path) -> None:
    import tempfile

    from bench_fetch import GOAL_PER_SITE_LAYER, GOAL_TOTAL, measure

    with tempfile.TemporaryDirectory(dir=cache) as work:
        res = measure(Path(work))
    rep.raw["fetch"] = res
    for name, r in res["layouts"].items():
        what = f"{r['files']} tiles x {res['sites']} sites, {name}"
        rep.less_than("fetch", f"bytes per site per tile, {what}", r["per_site_layer"] / 1e6,
                      GOAL_PER_SITE_LAYER / 1e6, "MB",
                      note=f"{r['requests']} requests, {r['seconds']:.1f} s")
        rep.less_than("fetch", f"total transferred, {name}", r["bytes"] / 1e6, GOAL_TOTAL / 1e6,
                      "MB", note=f"cache {r['cache_bytes'] / 1e6:.1f} MB on disk")
        rep.less_than("fetch", f"largest share of one upstream file read, {name}",
                      r["max_file_share"], 1.0, "of the file", note="1 = whole-file download")
        rep.add("fetch", f"second identical fetch, {name}", r["second_run_requests"],
                "requests")


BENCH_FUNCS = {"raster": bench_raster, "memory": bench_memory, "pipeline": bench_pipeline,
               "scale": bench_scale, "incremental": bench_incremental,
               "geocode": bench_geocode, "geopackage": bench_geopackage,
               "outputs": bench_outputs, "fetch": bench_fetch}


# --------------------------------------------------------------------------- report


def machine() -> dict:
    import rasterio

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "numpy": np.__version__,
            "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__}


def format_report(rep: Report, elapsed: float) -> str:
    rows = [("bench", "figure", "value", "unit", "goal", "ratio", "status")]
    for f in rep.figures:
        rows.append((f.bench, f.name, _num(f.value), f.unit, f.goal,
                     "" if f.ratio is None else f"{f.ratio:.3g}", f.status))
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))]
    lines = [f"sitescreen benchmarks, configuration {rep.config.name!r}, "
             f"{os.cpu_count()} CPUs, {elapsed:.0f} s"]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f for f in rep.figures if f.note]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines += [f"  [{f.bench}] {f.name.strip()}: {f.note}" for f in notes]
    for bench, err in rep.errors.items():
        lines.append(f"ERROR in {bench}: {err}")
    goals = [f for f in rep.figures if f.status]
    passed = sum(f.status == "PASS" for f in goals)
    lines.append("")
    lines.append(f"goals: {passed} PASS, {len(goals) - passed} MISS"
                 + (f", {len(rep.errors)} benchmark(s) failed" if rep.errors else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes (about 2 minutes); extrapolated figures say so")
    parser.add_argument("--tiny", action="store_true",
                        help="smallest sizes, in-process (a smoke test, not a measurement)")
    parser.add_argument("--only", action="append", choices=BENCHES,
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache" / "bench",
                        help="where inputs are built and kept (default cache/bench)")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "benchmarks" / "results" / "latest.json",
                        help="where to write the report as JSON")
    parser.add_argument("--profile", action="store_true",
                        help="also write cProfile stats of the pipeline runs into --cache")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = CASES[args.child](**json.loads(args.params or "{}"))
        print("BENCH_JSON " + json.dumps(result), flush=True)
        return 0

    cfg = TINY if args.tiny else QUICK if args.quick else FULL
    rep = Report(cfg)
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for name in args.only or BENCHES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            if name == "pipeline":
                bench_pipeline(rep, cache, profile=args.profile)
            else:
                BENCH_FUNCS[name](rep, cache)
        except Exception as exc:  # one failing benchmark must not hide the others
            rep.errors[name] = f"{type(exc).__name__}: {exc}"
        print(f"  {name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    text = format_report(rep, elapsed)
    print(text)
    doc = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "config": asdict(cfg), "elapsed_s": elapsed, "machine": machine(),
           "figures": [f.to_dict() for f in rep.figures], "raw": rep.raw,
           "errors": rep.errors,
           "goals": {"pass": sum(f.status == "PASS" for f in rep.figures),
                     "miss": sum(f.status == "MISS" for f in rep.figures)}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_name(f".{args.json.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n", "utf-8")
    os.replace(tmp, args.json)
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
