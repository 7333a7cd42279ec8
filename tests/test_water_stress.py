"""Water stress on Aqueduct 4.0: a hand-made pack in the upstream layout, values checked by hand.

The pack (written here with pandas and pyogrio, independently of the synthetic writer) has seven
1-degree squares at 60-62 degN, where one degree of longitude is about 55 km:

    lat 61-62 | C 411113 -9999 | D 411114 blank  | F  -9999 (no basin) |
    lat 60-61 | A 411111 normal | B 411112 arid   | E 411115 raw 9999   | G 411116 not in table
              lon 10-11         11-12              12-13                 13-14

Basin A's water-stress category is offset(scenario) + step(year), offsets opt 0, bau 1, pes 2 and
steps 2030 0, 2050 1, 2080 2; its depletion category is 4 minus that.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from sitescreen.catalog import load_catalog
from sitescreen.classify import ThresholdSet
from sitescreen.data.sources import DataSource
from sitescreen.errors import CatalogError, HazardDataError
from sitescreen.files import UNUSED_DAYS
from sitescreen.hazards import HazardContext, HazardResult, basins, load_hazard
from sitescreen.hazards.water_stress import WaterStress, forget_tables
from sitescreen.synthetic import DemoArea
from sitescreen.synthetic import aqueduct40 as writer

RELEASE = "Aqueduct40_waterrisk_download_Y2023M07D05"
FUTURE = f"{RELEASE}/CVS/Aqueduct40_future_annual_y2023m07d05.csv"
BASELINE = f"{RELEASE}/CVS/Aqueduct40_baseline_annual_y2023m07d05.csv"
GDB = f"{RELEASE}/GDB/Aq40_Y2023D07M05.gdb"

OFFSET = {"opt": 0, "bau": 1, "pes": 2}
STEP = {"30": 0, "50": 1, "80": 2}
# category -> (raw ratio, score = log2(raw / 0.1) + 1 clipped to 0-5, label)
WS = {0: (0.05, 0.0, "Low (<10%)"), 1: (0.15, 1.585, "Low-medium (10-20%)"),
      2: (0.3, 2.585, "Medium-high (20-40%)"), 3: (0.6, 3.585, "High (40-80%)"),
      4: (1.2, 4.585, "Extremely high (>80%)")}
WD = {0: (0.02, 0.4, "Low (<5%)"), 1: (0.1, 1.25, "Low - Medium (5-25%)"),
      2: (0.3, 2.2, "Medium - High (25-50%)"), 3: (0.6, 3.4, "High (50-75%)"),
      4: (0.9, 4.6, "Extremely High (>75%)")}

A, B, C, D, E, G = 411111, 411112, 411113, 411114, 411115, 411116
POLYGONS = [  # (pfaf_id, lon0, lat0)
    (A, 10, 60), (B, 11, 60), (C, 10, 61), (D, 11, 61), (E, 12, 60), (-9999, 12, 61), (G, 13, 60),
]


def _future_rows() -> pd.DataFrame:
    rows = []
    for fid, (pfaf, *_rest) in enumerate(POLYGONS):
        if pfaf == G:
            continue  # a polygon whose basin the table lacks
        row: dict = {"fid": fid, "pfaf_id": pfaf}
        for s in ("bau", "opt", "pes"):
            for p in ("30", "50", "80"):
                k = OFFSET[s] + STEP[p]
                for ind, table, cat in (("ws", WS, k), ("wd", WD, 4 - k)):
                    col = f"{s}{p}_{ind}_x_"
                    if pfaf == A:
                        r, sc, lab = table[cat]
                        c = float(cat)
                    elif pfaf == B:
                        r, sc, c = 1.0, 5.0, -1.0
                        lab = "Arid and low water use" if ind == "ws" else "Arid and Low Water Use"
                    elif pfaf == E:
                        r, sc, c = 9999.0, 5.0, 4.0
                        lab = table[4][2]
                    elif pfaf == D:
                        r = sc = c = np.nan
                        lab = None
                    else:  # C and the unit without a basin
                        r = sc = c = -9999.0
                        lab = "No Data"
                    row.update({col + "r": r, col + "s": sc, col + "c": c, col + "l": lab,
                                col + "u": 1.0})
                row[f"{s}{p}_ws_y_c"] = 1.0
                row[f"{s}{p}_ws_y_l"] = "1.4xincrease"
        rows.append(row)
    return pd.DataFrame(rows)


def _baseline_rows() -> gpd.GeoDataFrame:
    # A is split over two provinces, as Aqueduct's basin x province x aquifer units are.
    units = [(A, "SYN.1_1", 7, shapely.box(10, 60, 10.5, 61)),
             (A, "SYN.2_1", 7, shapely.box(10.5, 60, 11, 61)),
             (B, "SYN.2_1", 7, shapely.box(11, 60, 12, 61)),
             (C, "SYN.1_1", 7, shapely.box(10, 61, 11, 62)),
             (-9999, "SYN.3_1", 8, shapely.box(12, 61, 13, 62))]
    rows = []
    for i, (pfaf, gid_1, aqid, _geom) in enumerate(units):
        raw, score, cat, label = {
            A: (0.6, 3.585, 3.0, "High (40-80%)"),
            B: (1.0, 5.0, -1.0, "Arid and Low Water Use"),
        }.get(pfaf, (-9999.0, -9999.0, -9999.0, "No Data"))
        rows.append({"string_id": f"{pfaf}-{gid_1}-{aqid}", "aq30_id": i, "pfaf_id": pfaf,
                     "gid_1": gid_1, "aqid": aqid, "bws_raw": raw, "bws_score": score,
                     "bws_cat": cat, "bws_label": label, "bwd_raw": raw / 2, "bwd_score": score,
                     "bwd_cat": cat, "bwd_label": label})
    gdf = gpd.GeoDataFrame(rows, geometry=[u[3] for u in units], crs="EPSG:4326")
    return gdf.astype({"aq30_id": "int32", "pfaf_id": "int32", "aqid": "int32"})


def write_hand_pack(root: Path, *, future: pd.DataFrame | None = None) -> Path:
    base = root / "aqueduct40"
    for rel in (FUTURE, BASELINE, GDB):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
    (future if future is not None else _future_rows()).to_csv(base / FUTURE, index=False)
    baseline = _baseline_rows()
    baseline.drop(columns="geometry").to_csv(base / BASELINE, index=False)
    basins = gpd.GeoDataFrame(
        {"pfaf_id": np.array([p for p, *_ in POLYGONS], dtype="int32")},
        geometry=[shapely.box(x, y, x + 1, y + 1) for _, x, y in POLYGONS], crs="EPSG:4326")
    pyogrio.write_dataframe(basins, base / GDB, layer="future_annual", driver="OpenFileGDB",
                            promote_to_multi=True)
    pyogrio.write_dataframe(baseline, base / GDB, layer="baseline_annual",
                            driver="OpenFileGDB", promote_to_multi=True)
    return root


# 0.012 deg of longitude at 60.5 degN is 0.012 * cos(60.5 deg) * 111.195 = 0.657 km;
# 0.012 deg of latitude is 1.334 km.
SITES = {
    "a": (10.5, 60.5), "b_arid": (11.5, 60.5), "c_nodata": (10.5, 61.5),
    "d_blank": (11.5, 61.5), "e_extreme": (12.5, 60.5), "f_nobasin": (12.5, 61.5),
    "g_untabled": (13.5, 60.5), "outside": (20.0, 20.0), "nan": (math.nan, math.nan),
    "a_near_west": (10.012, 60.5), "a_near_south": (10.5, 60.012),
}
NAMES = list(SITES)
LON = np.array([SITES[n][0] for n in NAMES])
LAT = np.array([SITES[n][1] for n in NAMES])
AT = {n: i for i, n in enumerate(NAMES)}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    return write_hand_pack(tmp_path / "data")


def context(catalog, root: Path, hazard: str = "water_stress", cache_dir: Path | None = None,
            **params) -> HazardContext:
    ctx = HazardContext.build(catalog, hazard, DataSource.open(root),
                              cache_dir=str(cache_dir) if cache_dir else None)
    if params:
        spec = dataclasses.replace(ctx.spec, params={**ctx.spec.params, **params})
        ctx = dataclasses.replace(ctx, spec=spec)
    return ctx


def test_current_trend_2050_reads_bau50(catalog, pack):
    r = WaterStress().assess(LON, LAT, scenario="current_trend", year=2050,
                             context=context(catalog, pack))
    assert isinstance(r, HazardResult)
    assert (r.pathway.code, r.pathway.period, r.pathway.label) == ("bau", "2035-2065", "SSP3 RCP7.0")
    assert r.details["columns"]["c"] == "bau50_ws_x_c"
    assert r.datasets == ("aqueduct40",)
    assert "Kuzma et al. 2023" in r.method and "2035-2065" in r.method and "1 km" in r.method
    a = AT["a"]
    # bau (1) + 2050 (1) = category 2: medium-high, level 3.
    assert r.values[a] == 2 and r.levels[a] == 3
    assert r.extra["ws_raw"][a] == pytest.approx(0.3)
    assert r.extra["ws_score"][a] == pytest.approx(2.585)
    assert r.extra["ws_label"][a] == "Medium-high (20-40%)"
    assert r.extra["pfaf_id"][a] == A
    assert r.flags[a] == ""
    assert (r.level_low == r.levels).all() and (r.level_high == r.levels).all()


@pytest.mark.parametrize("scenario", ["optimistic", "current_trend", "pessimistic"])
@pytest.mark.parametrize("year", [2030, 2050, 2080])
def test_every_pathway_picks_its_own_column(catalog, pack, scenario, year):
    r = WaterStress().assess(LON, LAT, scenario=scenario, year=year, context=context(catalog, pack))
    code = {"optimistic": "opt", "current_trend": "bau", "pessimistic": "pes"}[scenario]
    cat = OFFSET[code] + STEP[str(year)[2:]]
    assert r.pathway.code == code
    assert r.values[AT["a"]] == cat
    assert r.levels[AT["a"]] == cat + 1  # mapping 0..4 -> 1..5
    assert r.extra["ws_label"][AT["a"]] == WS[cat][2]


def test_special_sites_levels_and_flags(catalog, pack):
    r = WaterStress().assess(LON, LAT, scenario="pessimistic", year=2080,
                             context=context(catalog, pack))
    lv = dict(zip(NAMES, r.levels.tolist(), strict=True))
    fl = dict(zip(NAMES, r.flags.tolist(), strict=True))
    assert (lv["b_arid"], fl["b_arid"]) == (4, "arid-low-water-use")
    assert r.values[AT["b_arid"]] == -1
    assert r.extra["ws_label"][AT["b_arid"]] == "Arid and low water use"
    assert (lv["e_extreme"], fl["e_extreme"]) == (5, "extreme-scarcity")
    assert r.extra["ws_raw"][AT["e_extreme"]] == 9999
    for name in ("c_nodata", "d_blank", "f_nobasin", "g_untabled"):
        assert (lv[name], fl[name]) == (0, "no-data"), name
        assert np.isnan(r.values[AT[name]]) and np.isnan(r.extra["ws_raw"][AT[name]])
    assert r.extra["ws_label"][AT["c_nodata"]] == "No Data"
    assert r.extra["ws_label"][AT["d_blank"]] == ""
    assert r.extra["pfaf_id"][AT["f_nobasin"]] == -9999
    assert r.extra["pfaf_id"][AT["g_untabled"]] == G
    assert (lv["outside"], fl["outside"]) == (0, "outside-basins")
    assert r.extra["pfaf_id"][AT["outside"]] == -9999
    assert (lv["nan"], fl["nan"]) == (0, "no-coordinates")
    # 0.657 km from A's west edge: flagged; 1.334 km from its south edge: not.
    assert (lv["a_near_west"], fl["a_near_west"]) == (5, "basin-boundary")
    assert (lv["a_near_south"], fl["a_near_south"]) == (5, "")


def test_boundary_distance_is_a_parameter(catalog, pack):
    half = context(catalog, pack, boundary_km=0.5)
    r = WaterStress().assess(LON, LAT, scenario="optimistic", year=2030, context=half)
    assert r.flags[AT["a_near_west"]] == ""  # 0.657 km > 0.5 km
    wide = context(catalog, pack, boundary_km=1.5)
    r = WaterStress().assess(LON, LAT, scenario="optimistic", year=2030, context=wide)
    assert r.flags[AT["a_near_west"]] == "basin-boundary"
    assert r.flags[AT["a_near_south"]] == "basin-boundary"  # 1.334 km < 1.5 km
    assert "1.5 km" in r.method


def test_site_on_a_shared_edge_gets_a_basin_and_the_flag(catalog, pack):
    r = WaterStress().assess(np.array([11.0]), np.array([60.5]), scenario="optimistic",
                             year=2030, context=context(catalog, pack))
    assert r.extra["pfaf_id"][0] in (A, B)
    assert "basin-boundary" in r.flags[0]


def test_repeated_coordinates_and_repeated_calls_agree(catalog, pack):
    ctx = context(catalog, pack)
    h = WaterStress()
    lon, lat = np.repeat(LON, 3), np.repeat(LAT, 3)
    first = h.assess(lon, lat, scenario="pessimistic", year=2050, context=ctx)
    again = h.assess(lon, lat, scenario="pessimistic", year=2050, context=ctx)
    single = WaterStress().assess(LON, LAT, scenario="pessimistic", year=2050, context=ctx)
    assert (first.levels == np.repeat(single.levels, 3)).all()
    assert (first.flags == again.flags).all()
    assert len(first) == 3 * len(NAMES)


def test_empty_input(catalog, pack):
    r = WaterStress().assess(np.array([]), np.array([]), scenario="optimistic", year=2030,
                             context=context(catalog, pack))
    assert len(r) == 0 and r.levels.dtype == np.int8


def test_water_depletion_entry_uses_wd_columns(catalog, pack):
    spec = catalog.hazard("water_depletion")
    hazard = load_hazard(spec)
    assert hazard.name == "water_depletion"
    ctx = context(catalog, pack, hazard="water_depletion")
    r = hazard.assess(LON, LAT, scenario="current_trend", year=2050, context=ctx)
    assert r.hazard == "water_depletion"
    assert r.threshold_set == "water-depletion-aqueduct-category-v1"
    assert r.details["columns"]["c"] == "bau50_wd_x_c"
    # depletion category of A = 4 - (1 + 1) = 2
    assert r.values[AT["a"]] == 2 and r.levels[AT["a"]] == 3
    assert r.extra["wd_raw"][AT["a"]] == pytest.approx(0.3)
    assert r.extra["wd_label"][AT["a"]] == "Medium - High (25-50%)"
    assert r.flags[AT["b_arid"]] == "arid-low-water-use"


def test_baseline_reads_bws(catalog, pack):
    r = WaterStress().baseline(LON, LAT, context=context(catalog, pack))
    assert r.pathway is None and r.scenario is None and r.details["period"] == "baseline"
    assert r.values[AT["a"]] == 3 and r.levels[AT["a"]] == 4
    assert r.extra["bws_label"][AT["a"]] == "High (40-80%)"
    assert r.extra["bws_raw"][AT["a"]] == pytest.approx(0.6)
    assert (r.levels[AT["b_arid"]], r.flags[AT["b_arid"]]) == (4, "arid-low-water-use")
    assert (r.levels[AT["c_nodata"]], r.flags[AT["c_nodata"]]) == (0, "no-data")
    assert (r.levels[AT["d_blank"]], r.flags[AT["d_blank"]]) == (0, "no-data")  # not in baseline
    assert "bws_cat" in r.method


def test_each_future_layer_carries_the_baseline_beside_it(catalog, pack):
    r = WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                             context=context(catalog, pack))
    a, arid, nodata = AT["a"], AT["b_arid"], AT["c_nodata"]
    # Basin A: baseline bws_cat 3 (high) -> level 4, beside its own future category.
    assert r.extra["bws_cat"][a] == 3 and r.extra["level_baseline"][a] == 4
    assert r.extra["bws_label"][a] == "High (40-80%)"
    assert r.extra["bws_raw"][a] == pytest.approx(0.6)
    assert r.levels[a] != r.extra["level_baseline"][a]  # the future value is its own column
    assert r.extra["level_baseline"][arid] == 4  # arid ranks with high stress
    assert r.extra["level_baseline"][nodata] == 0
    assert r.details["baseline"]["columns"]["c"] == "bws_cat"
    assert "level_baseline" in r.method
    depletion = WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                                     context=context(catalog, pack, hazard="water_depletion"))
    assert "bwd_cat" in depletion.extra and "bws_cat" not in depletion.extra

    off = WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                               context=context(catalog, pack, baseline=False))
    assert "level_baseline" not in off.extra and "baseline" not in off.details


def test_missing_column_names_file_column_and_version(catalog, tmp_path):
    future = _future_rows().drop(columns=[c for c in _future_rows().columns
                                          if c.startswith("bau50_ws")])
    root = write_hand_pack(tmp_path / "data", future=future)
    with pytest.raises(HazardDataError) as err:
        WaterStress().assess(LON, LAT, scenario="current_trend", year=2050,
                             context=context(catalog, root))
    msg = str(err.value)
    assert "Aqueduct40_future_annual_y2023m07d05.csv" in msg
    assert "bau50_ws_x_r" in msg and "Y2023M07D05" in msg
    # other pathways still work
    r = WaterStress().assess(LON, LAT, scenario="optimistic", year=2050,
                             context=context(catalog, root))
    assert r.levels[AT["a"]] == 2


@pytest.mark.parametrize("column, values, fragment", [
    ("bau50_ws_x_c", "n/a", "'n/a'"),                    # every category "n/a"
    ("bau50_ws_x_c", "high", "not a number"),            # text in a numeric column
    ("bau50_ws_x_r", "0,3", "not a number"),             # a decimal comma
    ("bau50_ws_x_c", 7.0, "outside the documented"),     # category outside -1..4 / -9999
    ("bau50_ws_x_c", 2.5, "outside the documented"),     # categories are whole numbers
    ("bau50_ws_x_c", -9999.0, "no category at all"),     # a column of no data only
], ids=["n/a", "text", "decimal-comma", "category-7", "category-2.5", "all-no-data"])
def test_a_schema_violation_names_file_column_and_values(catalog, tmp_path, column, values,
                                                         fragment):
    future = _future_rows()
    future[column] = values
    root = write_hand_pack(tmp_path / "data", future=future)
    with pytest.raises(HazardDataError, match=fragment) as err:
        WaterStress().assess(LON, LAT, scenario="current_trend", year=2050,
                             context=context(catalog, root))
    msg = str(err.value)
    assert "Aqueduct40_future_annual_y2023m07d05.csv" in msg and f"column {column!r}" in msg
    assert "sitescreen data fetch aqueduct40" in msg


def test_missing_pfaf_column_is_a_data_error(catalog, tmp_path):
    future = _future_rows().rename(columns={"pfaf_id": "PFAF"})
    root = write_hand_pack(tmp_path / "data", future=future)
    with pytest.raises(HazardDataError, match="pfaf_id"):
        WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                             context=context(catalog, root))


def test_missing_gdb_is_a_data_error(catalog, pack):
    import shutil

    shutil.rmtree(pack / "aqueduct40" / GDB)
    with pytest.raises(HazardDataError, match="Aq40_Y2023D07M05.gdb"):
        WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                             context=context(catalog, pack))


def test_missing_layer_is_a_data_error(catalog, pack):
    with pytest.raises(HazardDataError, match="no layer 'basins_level6'.*future_annual"):
        WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                             context=context(catalog, pack, basin_layer="basins_level6"))


def test_bad_parameters_are_catalog_errors(catalog, pack):
    with pytest.raises(CatalogError, match="unknown Aqueduct indicator 'xx'"):
        WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                             context=context(catalog, pack, indicator="xx"))
    with pytest.raises(CatalogError, match="no period for year 2040"):
        WaterStress().assess(LON, LAT, scenario="optimistic", year=2040,
                             context=context(catalog, pack))
    ctx = context(catalog, pack)
    ascending = ThresholdSet("t", "water_stress", "1", "ascending", "ratio", (0.1, 0.2, 0.4, 0.8))
    ctx = dataclasses.replace(ctx, thresholds=ascending)
    with pytest.raises(CatalogError, match="categorical"):
        WaterStress().assess(LON, LAT, scenario="optimistic", year=2030, context=ctx)


def test_basin_index_is_cached_as_geoparquet_keyed_by_the_gdb(catalog, pack, tmp_path):
    cache = tmp_path / "cache"
    WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                         context=context(catalog, pack, cache_dir=cache))
    files = sorted((cache / "aqueduct40").glob("future_annual-*.parquet"))
    assert len(files) == 1
    cached = gpd.read_parquet(files[0])
    assert sorted(cached["pfaf_id"]) == sorted(p for p, *_ in POLYGONS)
    assert cached.crs.to_epsg() == 4326
    # A changed geodatabase (new mtime) gets a new cache entry rather than stale polygons.
    table = next((pack / "aqueduct40" / GDB).glob("*.gdbtable"))
    os.utime(table, ns=(table.stat().st_atime_ns, table.stat().st_mtime_ns + 10**9))
    basins.forget_indexes()  # as a new process would
    r = WaterStress().assess(LON, LAT, scenario="optimistic", year=2030,
                             context=context(catalog, pack, cache_dir=cache))
    now = sorted((cache / "aqueduct40").glob("*.parquet"))
    assert len(now) == 1 and now != files  # the copy of the old geodatabase is gone
    assert r.levels[AT["a"]] == 1


def test_parsed_tables_are_kept_in_the_cache_and_follow_the_file(catalog, pack, tmp_path):
    cache = tmp_path / "cache"

    def assess(cache_dir):
        forget_tables()  # as a new process would
        basins.forget_indexes()
        return WaterStress().assess(LON, LAT, scenario="current_trend", year=2050,
                                    context=context(catalog, pack, cache_dir=cache_dir))

    plain, first, kept = assess(None), assess(cache), assess(cache)
    tables = sorted((cache / "aqueduct40" / "tables").glob("*.parquet"))
    assert len(tables) == 2  # the future and the baseline table
    for r in (first, kept):  # the same with and without the kept copies
        np.testing.assert_array_equal(r.levels, plain.levels)
        np.testing.assert_array_equal(r.extra["ws_label"], plain.extra["ws_label"])
        np.testing.assert_allclose(r.extra["ws_raw"], plain.extra["ws_raw"])
        assert r.flags.tolist() == plain.flags.tolist()
        assert (r.details, r.method) == (plain.details, plain.method)
    # A changed table (new size and mtime) is read again, not served from the stale copy.
    future = pd.read_csv(pack / "aqueduct40" / FUTURE)
    future.loc[future["pfaf_id"] == A, "bau50_ws_x_l"] = "Changed"
    future.to_csv(pack / "aqueduct40" / FUTURE, index=False)
    changed = assess(cache)
    assert changed.extra["ws_label"][AT["a"]] == "Changed"
    now = sorted((cache / "aqueduct40" / "tables").glob("*.parquet"))
    # The baseline's copy stays; the future table's copy of the old file is replaced.
    assert len(now) == 2 and len(set(now) & set(tables)) == 1


def test_old_parsed_copies_go_and_other_versions_in_use_stay(catalog, pack, tmp_path):
    """Policy of :class:`~sitescreen.data.parsed.ParsedCopy`: a copy of this table by other
    code (another checkout sharing the cache) read lately stays; one unread for UNUSED_DAYS
    (of other code, or named as an earlier release named them) goes when a copy is written."""
    cache = tmp_path / "cache"
    tables = cache / "aqueduct40" / "tables"
    tables.mkdir(parents=True)
    forget_tables()
    basins.forget_indexes()
    WaterStress().assess(LON, LAT, scenario="current_trend", year=2050,
                         context=context(catalog, pack, cache_dir=cache))
    mine = sorted(tables.glob("*.parquet"))
    kind, slot, state, _ = mine[0].stem.rsplit("-", 3)
    in_use = tables / f"{kind}-{slot}-{state}-0123abcd.parquet"  # this file, other code
    unused = tables / f"{kind}-{slot}-{state}-4567ef01.parquet"
    legacy = tables / "Y2023M07D05-8ec1ff38c33ebb1b.parquet"  # named as before
    long_ago = time.time() - (UNUSED_DAYS + 1) * 86400
    for p in (in_use, unused, legacy):
        p.write_bytes(b"PAR1")
    for p in (unused, legacy):
        os.utime(p, (long_ago, long_ago))
    for p in mine:
        p.unlink()  # written again by the next process
    forget_tables()
    WaterStress().assess(LON, LAT, scenario="current_trend", year=2050,
                         context=context(catalog, pack, cache_dir=cache))
    assert sorted(tables.glob("*.parquet")) == sorted([*mine, in_use])


def test_on_the_synthetic_pack(catalog, tmp_path):
    areas = [DemoArea("Beijing", 116.40, 39.90), DemoArea("Guangzhou", 113.26, 23.13)]
    root = tmp_path / "demo"
    writer.write(root, areas, seed=7)
    ctx = context(catalog, root)
    lon = np.array([a.lon for a in areas])
    lat = np.array([a.lat for a in areas])
    h = WaterStress()
    opt30 = h.assess(lon, lat, scenario="optimistic", year=2030, context=ctx)
    pes80 = h.assess(lon, lat, scenario="pessimistic", year=2080, context=ctx)
    base = h.baseline(lon, lat, context=ctx)
    # Area centres never fall in special basins; stress rises from baseline to pes 2080.
    assert (opt30.levels >= 1).all()
    assert (pes80.extra["ws_raw"] > opt30.extra["ws_raw"]).all()
    assert (opt30.extra["ws_raw"] > base.extra["bws_raw"]).all()
    assert (pes80.levels >= opt30.levels).all() and (opt30.levels >= base.levels).all()
    # The field is dry on the north China plain and wet in south China.
    assert pes80.levels[0] == 5 and opt30.levels[1] <= 2
    # Its arid basin reads as arid.
    future = pd.read_csv(root / "aqueduct40" / FUTURE, usecols=["pfaf_id", "opt30_ws_x_c"])
    arid = future.loc[future["opt30_ws_x_c"] == -1, "pfaf_id"].iloc[0]
    basins = pyogrio.read_dataframe(root / "aqueduct40" / GDB, layer="future_annual")
    point = shapely.point_on_surface(basins.geometry[basins["pfaf_id"] == arid].iloc[0])
    r = h.assess(np.array([point.x]), np.array([point.y]), scenario="optimistic", year=2030,
                 context=ctx)
    assert r.levels[0] == 4 and "arid-low-water-use" in r.flags[0]
