"""Tests for the river and coastal flood hazards and the synthetic Aqueduct Floods writer.

Fixtures write global-extent (43200 x 21600, 30") sparse GeoTIFFs with the upstream names,
holding hand-chosen depths at a few pixels, so every expected level is computed by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from sitescreen.catalog import load_catalog
from sitescreen.data.datasets import expand_files
from sitescreen.data.sources import DataSource
from sitescreen.errors import HazardDataError
from sitescreen.geodesy import haversine_km
from sitescreen.hazards import HazardContext, HazardResult
from sitescreen.hazards.flood import (
    NO_PROTECTION,
    CoastalFlood,
    RiverFlood,
    ensemble_summary,
    member_return_periods,
)
from sitescreen.raster import SAMPLES
from sitescreen.synthetic import DemoArea
from sitescreen.synthetic import aqueduct_floods as aq

RES = 1.0 / 120.0
NODATA = -9999.0
RIVER_RPS = [2, 5, 10, 25, 50, 100, 250, 500, 1000]
COAST_TOKENS = ["0001_5", "0002", "0005", "0010", "0025", "0050", "0100", "0250", "0500",
                "1000"]
MODELS = ["00000NorESM1-M", "0000GFDL-ESM2M", "0000HadGEM2-ES", "00IPSL-CM5A-LR",
          "MIROC-ESM-CHEM"]
# Sites sit at pixel centres of one 32 x 64 pixel patch near Guangzhou.
ROW0, COL0 = int((90 - 23.2) * 120), int((113.2 + 180) * 120)


def pixel_lonlat(row: int, col: int) -> tuple[float, float]:
    """Centre of pixel (row, col) of the patch."""
    return -180 + (COL0 + col + 0.5) * RES, 90 - (ROW0 + row + 0.5) * RES


def write_global(path: Path, patch: np.ndarray, *, crs: str | None = "EPSG:4326") -> Path:
    """A sparse global 30" float32 tile with ``patch`` at (ROW0, COL0); elsewhere no data."""
    profile = {"driver": "GTiff", "width": 43200, "height": 21600, "count": 1,
               "dtype": "float32", "transform": Affine(RES, 0, -180, 0, -RES, 90),
               "nodata": NODATA, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate", "sparse_ok": True}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(patch.astype("float32"), 1,
                  window=Window(COL0, ROW0, patch.shape[1], patch.shape[0]))
    return path


def context(root: Path, hazard: str, **params) -> HazardContext:
    ctx = HazardContext.build(load_catalog(), hazard, DataSource.open(root))
    if params:
        ctx = replace(ctx, spec=replace(ctx.spec, params={**ctx.spec.params, **params}))
    return ctx


# -- river: hand-made ensemble -------------------------------------------------------------

def reaches(rp_hit: float | None, *, at: float = 1.0, below: float = 0.2
            ) -> Callable[[int], float]:
    """Depth by return period: ``below`` before ``rp_hit``, ``at`` from it on (None: never)."""
    return lambda rp: at if rp_hit is not None and rp >= rp_hit else below


NEVER = None
# site -> (row, col) and per-model depth function of the return period (NaN: no data).
RIVER_SITES: dict[str, tuple[tuple[int, int], list[Callable[[int], float]]]] = {
    "rp10_exact": ((4, 4), [reaches(10, at=0.5)] * 5),        # depth exactly 0.5 m at 10 y
    "rp25": ((4, 8), [reaches(25)] * 5),
    "rp100": ((4, 12), [reaches(100)] * 5),
    "rp1000": ((4, 16), [reaches(1000)] * 5),
    "never": ((4, 20), [reaches(NEVER, below=0.3)] * 5),
    "rp2": ((4, 24), [reaches(2)] * 5),
    "almost": ((4, 28), [reaches(NEVER, below=0.49)] * 5),   # 1 cm short at every RP
    "nodata": ((8, 4), [lambda rp: math.nan] * 5),
    "disagree": ((8, 8), [reaches(2), reaches(10), reaches(25), reaches(100),
                          reaches(NEVER)]),
    "four": ((8, 12), [reaches(10), reaches(25), reaches(100), reaches(1000),
                       lambda rp: math.nan]),
    "two": ((8, 16), [reaches(10), reaches(1000)] + [lambda rp: math.nan] * 3),
}
RIVER_ORDER = list(RIVER_SITES)


def river_patch(model: int, rp: int, *, baseline: bool = False) -> np.ndarray:
    patch = np.zeros((32, 64), dtype="float32")
    for name, ((r, c), depth) in RIVER_SITES.items():
        if baseline:
            value = math.nan if name == "nodata" else (1.0 if name == "rp25" and rp >= 100
                                                       else 0.0)
        else:
            value = depth[model](rp)
        patch[r, c] = NODATA if math.isnan(value) else value
    return patch


@pytest.fixture(scope="module")
def river_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("river")
    folder = root / "aqueduct_floods"
    folder.mkdir()
    for m, model in enumerate(MODELS):
        for rp in RIVER_RPS:
            write_global(folder / aq.river_name("rcp4p5", model, 2050, rp), river_patch(m, rp))
    for rp in RIVER_RPS:
        write_global(folder / aq.river_name("historical", "000000000WATCH", 1980, rp),
                     river_patch(0, rp, baseline=True))
    return root


def site_coords(sites: dict) -> tuple[np.ndarray, np.ndarray]:
    pts = [pixel_lonlat(*rc) for rc, _ in sites.values()]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


@pytest.fixture(scope="module")
def river_result(river_root) -> HazardResult:
    lon, lat = site_coords(RIVER_SITES)
    return RiverFlood().assess(lon, lat, scenario="optimistic", year=2050,
                               context=context(river_root, "river_flood"))


def by_site(result: HazardResult, attr: str) -> dict:
    arr = getattr(result, attr) if hasattr(result, attr) else result.extra[attr]
    return dict(zip(RIVER_ORDER, np.asarray(arr).tolist(), strict=True))


def test_river_levels_at_return_period_boundaries(river_result):
    levels = by_site(river_result, "levels")
    values = by_site(river_result, "values")
    assert values["rp10_exact"] == 10 and levels["rp10_exact"] == 5   # 0.5 m counts
    assert values["rp25"] == 25 and levels["rp25"] == 4
    assert values["rp100"] == 100 and levels["rp100"] == 3
    assert values["rp1000"] == 1000 and levels["rp1000"] == 2
    assert values["never"] == math.inf and levels["never"] == 1
    assert values["rp2"] == 2 and levels["rp2"] == 5
    assert values["almost"] == math.inf and levels["almost"] == 1


def test_river_no_data_site(river_result):
    i = RIVER_ORDER.index("nodata")
    assert math.isnan(river_result.values[i])
    assert river_result.levels[i] == 0
    assert river_result.level_low[i] == 0 and river_result.level_high[i] == 0
    assert river_result.flags[i] == "no-data"
    assert river_result.extra["n_models"][i] == 0


def test_river_ensemble_that_disagrees(river_result):
    i = RIVER_ORDER.index("disagree")  # members reach 0.5 m at 2, 10, 25, 100 y and never
    assert river_result.values[i] == 25 and river_result.levels[i] == 4
    assert river_result.level_low[i] == 1 and river_result.level_high[i] == 5
    assert river_result.extra["rp_min"][i] == 2
    assert river_result.extra["rp_max"][i] == math.inf
    assert river_result.extra["n_models"][i] == 5
    assert "models-disagree" in river_result.flags[i].split(";")
    assert river_result.extra["depth_rp100_m"][i] == pytest.approx(1.0)  # median of 1,1,1,1,.2


def test_river_even_member_count_takes_the_more_frequent_middle(river_result):
    four = RIVER_ORDER.index("four")  # 10, 25, 100, 1000 y -> lower median 25 y
    assert river_result.values[four] == 25 and river_result.levels[four] == 4
    assert (river_result.level_low[four], river_result.level_high[four]) == (2, 5)
    assert river_result.extra["n_models"][four] == 4
    two = RIVER_ORDER.index("two")  # 10 and 1000 y -> 10 y, the cautious middle
    assert river_result.values[two] == 10 and river_result.levels[two] == 5
    assert (river_result.level_low[two], river_result.level_high[two]) == (2, 5)


def test_river_flags(river_result):
    flags = by_site(river_result, "flags")
    assert flags["rp10_exact"] == "near-threshold"  # exactly at the damaging depth
    assert flags["almost"] == "near-threshold"      # 0.49 m at the rarest RP
    assert flags["rp25"] == "" and flags["never"] == ""  # 0.2 / 0.3 m: 0.2 m off
    assert flags["disagree"] == "models-disagree"


def test_river_baseline_and_provenance(river_result):
    base = by_site(river_result, "rp_baseline")
    assert base["rp25"] == 100 and base["rp2"] == math.inf
    assert math.isnan(base["nodata"])
    assert by_site(river_result, "level_baseline")["rp25"] == 3
    d = river_result.details
    assert d["caveats"]["no-flood-protection"] == NO_PROTECTION
    assert d["members"] == MODELS and d["return_periods"] == RIVER_RPS
    assert river_result.pathway.code == "rcp4p5" and river_result.pathway.exact
    assert river_result.datasets == ("aqueduct_floods",)
    assert river_result.threshold_set == "flood-return-period-50cm-v1"
    assert len(d["files_read"]) == 54
    # No site carries the dataset-level caveat as a flag.
    assert not any("protection" in f for f in river_result.flags)


def test_current_trend_is_marked_inexact_and_reuses_samples(river_root, river_result):
    lon, lat = site_coords(RIVER_SITES)
    misses = SAMPLES.misses
    result = RiverFlood().assess(lon, lat, scenario="current_trend", year=2050,
                                 context=context(river_root, "river_flood"))
    assert SAMPLES.misses == misses  # same rcp4p5 files and baseline: nothing re-read
    assert result.pathway.code == "rcp4p5" and result.pathway.exact is False
    assert result.details["pathway_exact"] is False and "RCP4.5" in result.details["pathway_note"]
    np.testing.assert_array_equal(result.levels, river_result.levels)


def test_damaging_depth_is_a_parameter(river_root):
    lon, lat = site_coords(RIVER_SITES)
    result = RiverFlood().assess(lon, lat, scenario="optimistic", year=2050,
                                 context=context(river_root, "river_flood",
                                                 damaging_depth_m=0.8, baseline=False))
    levels = dict(zip(RIVER_ORDER, result.levels.tolist(), strict=True))
    assert levels["rp10_exact"] == 1  # 0.5 m never reaches 0.8 m
    assert levels["rp25"] == 4        # 1.0 m still does
    assert "rp_baseline" not in result.extra


def test_missing_tile_is_a_clear_error(river_root):
    lon, lat = site_coords(RIVER_SITES)
    with pytest.raises(HazardDataError, match=r"inunriver_rcp8p5_00000NorESM1-M_2080_rp00002"):
        RiverFlood().assess(lon, lat, scenario="pessimistic", year=2080,
                            context=context(river_root, "river_flood"))


def test_tile_in_wrong_crs_is_refused(tmp_path):
    folder = tmp_path / "aqueduct_floods"
    folder.mkdir()
    for m, model in enumerate(MODELS):
        for rp in RIVER_RPS:
            crs = None if (m, rp) == (2, 50) else "EPSG:4326"
            write_global(folder / aq.river_name("rcp8p5", model, 2030, rp), river_patch(m, rp),
                         crs=crs)
    lon, lat = site_coords(RIVER_SITES)
    with pytest.raises(HazardDataError, match="inunriver_rcp8p5_0000HadGEM2-ES_2030_rp00050"):
        RiverFlood().assess(lon, lat, scenario="pessimistic", year=2030,
                            context=context(tmp_path, "river_flood", baseline=False))


def test_member_return_periods_and_summary_by_hand():
    depth = np.array([[0.1, 0.5, np.nan], [0.6, 0.7, np.nan], [0.9, 0.9, 0.2]])
    assert member_return_periods(depth, [5, 50, 500], 0.5).tolist() == [50.0, 5.0, math.inf]
    ts = load_catalog().threshold_set("flood-return-period-50cm-v1")
    s = ensemble_summary(np.array([[2.0, np.nan], [np.inf, np.nan], [30.0, np.nan]]), ts)
    assert s.value[0] == 30 and s.level_low[0] == 1 and s.level_high[0] == 5
    assert math.isnan(s.value[1]) and s.level_low[1] == 0 and s.n_valid.tolist() == [3, 0]


# -- coast: nearest land pixel -------------------------------------------------------------

def coast_patch(rp: float, *, scale: float = 1.0) -> np.ndarray:
    """Land in columns 0-31 (dry, except a flooded shore strip and one site), sea beyond."""
    patch = np.zeros((32, 64), dtype="float32")
    patch[:, 31] = 2.0 * scale            # shore strip: 2 m at every return period
    patch[10, 5] = (1.0 if rp >= 100 else 0.0) * scale
    patch[:, 32:] = NODATA                # the sea
    return patch


COAST_SITES = {"land": (10, 5), "shore_sea": (10, 32), "far_sea": (10, 45), "inland": (20, 10)}


@pytest.fixture(scope="module")
def coast_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coast")
    folder = root / "aqueduct_floods"
    folder.mkdir()
    for tok in COAST_TOKENS:
        rp = float(tok.replace("_", "."))
        write_global(folder / aq.coast_name("rcp8p5", 2080, tok), coast_patch(rp))
        write_global(folder / aq.coast_name("historical", "hist", tok),
                     coast_patch(rp, scale=0.5))
    return root


def test_coastal_levels_and_nearest_land_pixel(coast_root):
    pts = [pixel_lonlat(*rc) for rc in COAST_SITES.values()]
    lon, lat = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    result = CoastalFlood().assess(lon, lat, scenario="pessimistic", year=2080,
                                   context=context(coast_root, "coastal_flood"))
    land, shore, far, inland = range(4)
    assert result.values[land] == 100 and result.levels[land] == 3
    # The sea pixel next to the shore takes the land pixel one column west: 2 m at 1.5 y.
    one_col_km = float(haversine_km(lon[shore], lat[shore], lon[shore] - RES, lat[shore]))
    assert one_col_km == pytest.approx(RES * math.pi / 180 * 6371.0088
                                       * math.cos(math.radians(lat[shore])), rel=1e-6)
    assert result.values[shore] == 1.5 and result.levels[shore] == 5
    assert result.extra["nearest_land_km"][shore] == pytest.approx(one_col_km)
    assert result.flags[shore] == f"nearest-land-pixel:{one_col_km:.1f}" == \
        "nearest-land-pixel:0.9"
    # 14 columns (11.9 km) offshore: beyond nearest_land_max_km = 2 km, so no data.
    assert math.isnan(result.values[far]) and result.levels[far] == 0
    assert result.flags[far] == "no-data"
    assert math.isnan(result.extra["nearest_land_km"][far])
    # Dry land inland is depth 0 at every return period: never flooded, not no data.
    assert result.values[inland] == math.inf and result.levels[inland] == 1
    assert result.flags[inland] == "" and result.extra["nearest_land_km"][inland] == 0
    assert result.extra["rp_baseline"][land] == 100  # 0.5 m exactly at 100 y
    assert result.extra["rp_baseline"][shore] == 1.5
    assert (result.level_low == result.level_high).all()
    assert result.pathway.code == "rcp8p5"
    assert result.details["members"] == ["wtsub_slr0"]


def test_coastal_search_distance_is_a_parameter(coast_root):
    lon, lat = pixel_lonlat(10, 45)
    result = CoastalFlood().assess(np.array([lon]), np.array([lat]), scenario="pessimistic",
                                   year=2080, context=context(coast_root, "coastal_flood",
                                                              nearest_land_max_km=12.0))
    want_km = float(haversine_km(lon, lat, lon - 14 * RES, lat))  # shore is 14 columns west
    assert result.levels[0] == 5 and result.flags[0] == f"nearest-land-pixel:{want_km:.1f}"
    assert result.extra["nearest_land_km"][0] == pytest.approx(want_km)


def test_coastal_flood_over_http_matches_local(coast_root, httpserver):
    from test_raster import RangeServer  # the range-serving helper of the raster tests

    server = RangeServer(httpserver)
    for f in sorted((coast_root / "aqueduct_floods").glob("*.tif")):
        server.serve(f"/mirror/aqueduct_floods/{f.name}", f)
    pts = [pixel_lonlat(*rc) for rc in COAST_SITES.values()]
    lon, lat = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    remote_ctx = HazardContext.build(load_catalog(), "coastal_flood",
                                     DataSource.open(httpserver.url_for("/mirror")))
    remote = CoastalFlood().assess(lon, lat, scenario="pessimistic", year=2080,
                                   context=remote_ctx)
    local = CoastalFlood().assess(lon, lat, scenario="pessimistic", year=2080,
                                  context=context(coast_root, "coastal_flood"))
    np.testing.assert_array_equal(remote.values, local.values)
    np.testing.assert_array_equal(remote.levels, local.levels)
    assert list(remote.flags) == list(local.flags)
    assert remote.details["data_origin"] == "mirror"
    # 20 files, 4 sites in one patch: a few small range requests per file.
    assert server.bytes_sent() < 20 * 100_000


# -- synthetic writer ----------------------------------------------------------------------

def test_writer_names_follow_upstream():
    names = aq.all_names()
    assert len(names) == len(set(names)) == 349
    assert sum(n.startswith("inunriver_") for n in names) == 9 + 2 * 5 * 3 * 9
    assert "inunriver_historical_000000000WATCH_1980_rp00002.tif" in names
    assert "inunriver_rcp4p5_MIROC-ESM-CHEM_2080_rp01000.tif" in names
    assert "inuncoast_historical_wtsub_hist_rp0001_5.tif" in names  # upstream: no "_0"
    assert "inuncoast_rcp8p5_wtsub_2050_rp0100_0.tif" in names
    assert not any("rp0001_5_0" in n for n in names)
    # The same names 'sitescreen data fetch' downloads and the hazards read.
    floods = load_catalog().dataset("aqueduct_floods")
    assert set(names) == set(expand_files(floods))
    assert set(RiverFlood().baseline(floods).files) <= set(names)
    cat = floods.params
    assert list(aq.RIVER_MODELS) == cat["river_models"]
    assert [aq.coast_rp_token(r) for r in aq.COAST_RETURN_PERIODS] == cat["coast_return_periods"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, list[DemoArea]]:
    root = tmp_path_factory.mktemp("synthetic")
    areas = [DemoArea("Shanghai", 121.47, 31.23, 0.1), DemoArea("Chengdu", 104.07, 30.67, 0.1)]
    only = [aq.river_name(p, m, y, rp) for p, m, y in [
        ("historical", "000000000WATCH", 1980), ("rcp4p5", "0000HadGEM2-ES", 2080),
        ("rcp8p5", "0000HadGEM2-ES", 2080), ("rcp8p5", "0000HadGEM2-ES", 2030),
        ("rcp8p5", "00IPSL-CM5A-LR", 2080)] for rp in (10, 100)]
    only += [aq.coast_name(p, y, rp) for p, y in [("rcp4p5", 2050), ("rcp8p5", 2050)]
             for rp in (10, 100)]
    aq.write(root, areas, seed=7, coastal={"Shanghai"}, only=only)
    return root / "aqueduct_floods", areas


def read_area(folder: Path, name: str, area: DemoArea) -> np.ndarray:
    with rasterio.open(folder / name) as ds:
        win = rasterio.windows.from_bounds(*area.bounds, transform=ds.transform)
        return ds.read(1, window=win.round_offsets().round_lengths(), masked=True)


def test_writer_files_are_sparse_global_upstream_grids(synthetic):
    folder, areas = synthetic
    path = folder / aq.river_name("rcp8p5", "0000HadGEM2-ES", 2080, 100)
    with rasterio.open(path) as ds:
        assert (ds.width, ds.height, ds.crs.to_epsg(), ds.dtypes[0]) == (43200, 21600, 4326,
                                                                        "float32")
        assert ds.bounds == (-180.0, -90.0, 180.0, 90.0) and ds.res == (RES, RES)
        assert ds.nodata == NODATA and ds.profile["tiled"]
        assert ds.compression.value == "DEFLATE"
        assert ds.tags()["sitescreen_synthetic"].startswith("synthetic-demo")
    assert path.stat().st_size < 1_000_000
    from sitescreen.raster import sample_points
    far = sample_points(path, [0.0, -70.0, 121.47], [0.0, 45.0, 31.23])
    assert np.isnan(far[:2]).all() and not np.isnan(far[2])


def test_writer_depths_grow_with_return_period_pathway_and_year(synthetic):
    folder, areas = synthetic
    for area in areas:
        def depth(p, m, y, rp, area=area):
            return read_area(folder, aq.river_name(p, m, y, rp), area)
        hist10 = depth("historical", "000000000WATCH", 1980, 10)
        a = depth("rcp8p5", "0000HadGEM2-ES", 2080, 10)
        assert (depth("rcp8p5", "0000HadGEM2-ES", 2080, 100) >= a).all()
        assert (a >= depth("rcp4p5", "0000HadGEM2-ES", 2080, 10)).all()
        assert (a >= depth("rcp8p5", "0000HadGEM2-ES", 2030, 10)).all()
        assert a.sum() > hist10.sum() > 0  # floods somewhere, more in the future
        assert not np.array_equal(a, depth("rcp8p5", "00IPSL-CM5A-LR", 2080, 10))  # GCMs differ
        c10 = read_area(folder, aq.coast_name("rcp8p5", 2050, 10), area)
        assert (read_area(folder, aq.coast_name("rcp8p5", 2050, 100), area) >= c10).all()
        assert (c10 >= read_area(folder, aq.coast_name("rcp4p5", 2050, 10), area)).all()
    shanghai = read_area(folder, aq.coast_name("rcp8p5", 2050, 100), areas[0])
    chengdu = read_area(folder, aq.coast_name("rcp8p5", 2050, 100), areas[1])
    assert shanghai.mask.any() and not shanghai.mask.all()  # sea on one side
    assert shanghai.max() > 0.5
    assert not chengdu.mask.any() and chengdu.max() == 0  # inland: dry land


def test_writer_is_deterministic(synthetic, tmp_path):
    folder, areas = synthetic
    name = aq.river_name("rcp8p5", "0000HadGEM2-ES", 2080, 100)
    aq.write(tmp_path, areas, seed=7, coastal={"Shanghai"}, only=[name])
    for area in areas:
        np.testing.assert_array_equal(read_area(folder, name, area),
                                      read_area(tmp_path / "aqueduct_floods", name, area))


def test_writer_refuses_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="not Aqueduct Floods file names"):
        aq.write(tmp_path, [], seed=1, only=["inunriver_rcp2p6_x_2030_rp00002.tif"])


def test_hazards_run_on_a_full_synthetic_pack(tmp_path):
    areas = [DemoArea("a", 114.06, 22.54, 0.08), DemoArea("b", 104.07, 30.67, 0.08)]
    paths = aq.write(tmp_path, areas, seed=3, coastal={"a"})
    assert len(paths) == 349
    lon = np.array([114.06, 114.1, 104.07, 0.0])
    lat = np.array([22.54, 22.5, 30.67, 0.0])
    for hazard, cls in (("river_flood", RiverFlood), ("coastal_flood", CoastalFlood)):
        ctx = context(tmp_path, hazard)
        for year in (2030, 2050, 2080):
            opt = cls().assess(lon, lat, scenario="optimistic", year=year, context=ctx)
            pes = cls().assess(lon, lat, scenario="pessimistic", year=year, context=ctx)
            # Deeper water under rcp8p5: return periods never longer, levels never lower.
            both_nan = np.isnan(pes.values) & np.isnan(opt.values)
            assert ((pes.values <= opt.values) | both_nan).all()
            assert (pes.levels >= opt.levels).all()
            assert pes.levels[3] == 0 and pes.flags[3] == "no-data"  # outside every area
