"""Typhoon hazard: IBTrACS reader, wind profile, extremes, change factors, the plug-in.

Expected numbers are computed by hand in the tests (plain ``math``) from the published
formulas and the REFERENCE values, never copied from the code's output.
"""

from __future__ import annotations

import dataclasses
import math
import os
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from sitescreen.catalog import load_catalog
from sitescreen.data.sources import DataSource
from sitescreen.errors import CatalogError, HazardDataError
from sitescreen.hazards import Hazard, HazardContext
from sitescreen.hazards._extremes import annual_rate_for_return_period, fit_pot, return_level
from sitescreen.hazards._ibtracs import clear_track_cache, read_ibtracs
from sitescreen.hazards._windfield import (
    holland_wind,
    interpolate_tracks,
    storm_max_winds,
)
from sitescreen.hazards.typhoon import Typhoon, base_climate, change_factors, clear_cache
from sitescreen.synthetic import DEMO_AREAS, SYNTHETIC_MARK, SYNTHETIC_NOTE
from sitescreen.synthetic import ibtracs as synthetic_ibtracs

KT = 1852.0 / 3600.0

# The first 26 columns of IBTrACS v04r01 and their units row, as upstream writes them.
HEADER = ("SID,SEASON,NUMBER,BASIN,SUBBASIN,NAME,ISO_TIME,NATURE,LAT,LON,WMO_WIND,WMO_PRES,"
          "WMO_AGENCY,TRACK_TYPE,DIST2LAND,LANDFALL,IFLAG,USA_AGENCY,USA_ATCF_ID,USA_LAT,USA_LON,"
          "USA_RECORD,USA_STATUS,USA_WIND,USA_PRES,USA_SSHS")
UNITS = (" ,Year, , , , , , ,degrees_north,degrees_east,kts,mb, , ,km,km, , , ,degrees_north,"
         "degrees_east, , ,kts,mb,1")
COLS = HEADER.split(",")


def _row(**values) -> str:
    """One data line: the given columns filled, every other one a single space."""
    return ",".join(str(values.get(c, " ")) for c in COLS)


def _write(path: Path, rows: list[str], *, units: bool = True) -> Path:
    path.write_text("\n".join([HEADER] + ([UNITS] if units else []) + rows) + "\n", "utf-8")
    return path


# A hand-written file: storm A (2001) with a JTWC wind, a Tokyo-only wind, a -999 sentinel and
# a spur row; storm B (1999) listed after A with a HURDAT (1-minute) WMO wind only.
TINY = [
    "2001200N15130,2001,12,WP,MM,NOT_NAMED,2001-07-19 00:00:00,TS,15.0,130.0, , , ,main, , ,"
    "_O____________,jtwc_wp,WP122001,15.0,130.0, ,TY,100,950,3",
    "2001200N15130,2001,12,WP,MM,NOT_NAMED,2001-07-19 12:00:00,TS,16.0,128.8,50,985,tokyo,main,"
    " , ,_O____________,jtwc_wp,WP122001,16.0,128.8, ,TS, ,985,0",
    "2001200N15130,2001,12,WP,MM,NOT_NAMED,2001-07-19 06:00:00,TS,15.5,129.4, , , ,main, , ,"
    "_O____________,jtwc_wp,WP122001,15.5,129.4, ,TY,90,955,2",
    "2001200N15130,2001,12,WP,MM,NOT_NAMED,2001-07-19 18:00:00,TS,16.5,128.0, , , ,main, , ,"
    "_O____________,jtwc_wp,WP122001,16.5,128.0, ,TS,-999, ,0",
    "2001200N15130,2001,12,WP,MM,NOT_NAMED,2001-07-19 06:00:00,TS,15.9,129.9, , , ,spur, , ,"
    "_O____________,jtwc_wp,WP122001,15.9,129.9, ,TY,120,930,4",
    "1999250N20140,1999,30,WP,MM,NOT_NAMED,1999-09-07 00:00:00,TS,20.0,140.0,60, ,hurdat_atl,"
    "main, , ,_O____________,jtwc_wp,WP301999,20.0,140.0, ,TS, , ,0",
    "1999250N20140,1999,30,WP,MM,NOT_NAMED,1999-09-07 06:00:00,TS,20.5,139.5, , , ,main, , ,"
    "_O____________,jtwc_wp,WP301999,20.5,139.5, ,TS,45,990,0",
]


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_track_cache()
    clear_cache()
    yield


# --------------------------------------------------------------------------- reader


def test_reader_parses_exact_layout(tmp_path):
    tracks = read_ibtracs(_write(tmp_path / "ibtracs.WP.list.v04r01.csv", TINY))
    assert tracks.sid.tolist() == ["2001200N15130", "1999250N20140"]
    assert tracks.season.tolist() == [2001, 1999]
    assert tracks.n_points == 6  # the spur row is dropped
    a = tracks.storm == 0
    # Sorted by time within the storm although the file lists 12:00 before 06:00.
    assert tracks.lat[a].tolist() == [15.0, 15.5, 16.0, 16.5]
    expected = [100 * KT, 90 * KT, 50 * 1.14 * KT, np.nan]  # Tokyo 10-min x 1.14; -999 missing
    np.testing.assert_allclose(tracks.vmax_ms[a], expected, rtol=1e-12)
    b = tracks.storm == 1
    np.testing.assert_allclose(tracks.vmax_ms[b], [60 * KT, 45 * KT])  # HURDAT is 1-minute
    assert tracks.wind_origin.tolist() == [1, 1, 2, 0, 2, 1]
    assert np.all(np.isnan(tracks.rmw_km))  # no USA_RMW column: no radius given
    assert tracks.time_h[1] - tracks.time_h[0] == 6.0


def test_reader_wind_source_is_explicit(tmp_path):
    path = _write(tmp_path / "t.csv", TINY)
    usa = read_ibtracs(path, wind_source="usa")
    assert np.isnan(usa.vmax_ms[2]) and usa.vmax_ms[0] == pytest.approx(100 * KT)
    wmo = read_ibtracs(path, wind_source="wmo", wmo_to_one_minute=1.075)
    assert wmo.vmax_ms[2] == pytest.approx(50 * 1.075 * KT)
    assert np.isnan(wmo.vmax_ms[0])
    with pytest.raises(HazardDataError, match="wind source"):
        read_ibtracs(path, wind_source="cma")


def test_reader_full_174_column_layout(tmp_path):
    """The synthetic writer's header and units row are the upstream v04r01 ones, plus one
    last column that says the file is synthetic (the reader tolerates it)."""
    (path,) = synthetic_ibtracs.write(tmp_path, [], seed=3)
    lines = path.read_text("utf-8").splitlines()
    assert len(lines[0].split(",")) == 175 == len(lines[1].split(","))
    assert lines[0].startswith(HEADER + ",USA_R34_NE")
    assert lines[0].endswith("USA_SEARAD_NW,STORM_SPEED,STORM_DIR," + SYNTHETIC_MARK)
    assert lines[1].startswith(UNITS + ",nmile")
    assert lines[1].endswith(",kts,degrees, ")
    assert lines[2].endswith("," + SYNTHETIC_NOTE)
    assert ",," not in lines[2]  # blanks are a single space
    tracks = read_ibtracs(path)
    assert tracks.season.min() == 1980 and tracks.season.max() == 2021
    assert np.isfinite(tracks.rmw_km[tracks.season[tracks.storm] >= 2001]).all()
    assert np.isnan(tracks.rmw_km[tracks.season[tracks.storm] < 2001]).all()


def test_reader_names_file_line_and_column(tmp_path):
    bad = list(TINY)
    bad[1] = bad[1].replace(",16.0,128.8,50,", ",16.0,128.8,5O,")  # letter O, file line 4
    path = _write(tmp_path / "bad.csv", bad)
    with pytest.raises(HazardDataError, match=r"bad\.csv, line 4: column WMO_WIND holds '5O'"):
        read_ibtracs(path)
    time_bad = [TINY[0].replace("2001-07-19 00:00:00", "19/07/2001 00:00")]
    with pytest.raises(HazardDataError, match=r"line 3: ISO_TIME"):
        read_ibtracs(_write(tmp_path / "t.csv", time_bad))
    with pytest.raises(HazardDataError, match=r"missing columns \['USA_WIND'\]"):
        (tmp_path / "m.csv").write_text(HEADER.replace("USA_WIND", "USA_WINDS") + "\n", "utf-8")
        read_ibtracs(tmp_path / "m.csv")
    with pytest.raises(HazardDataError, match=r"ragged\.csv: malformed"):
        read_ibtracs(_write(tmp_path / "ragged.csv", [TINY[0] + ",extra"]))
    with pytest.raises(HazardDataError, match="cannot be read"):
        read_ibtracs(tmp_path / "absent.csv")


def test_reader_without_units_row_keeps_first_data_row(tmp_path):
    tracks = read_ibtracs(_write(tmp_path / "t.csv", TINY, units=False))
    assert tracks.n_points == 6


def test_reader_caches_until_the_file_changes(tmp_path):
    path = _write(tmp_path / "t.csv", TINY)
    first = read_ibtracs(path)
    assert read_ibtracs(path) is first
    _write(path, TINY[:1])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert read_ibtracs(path).n_points == 1


# --------------------------------------------------------------------------- wind profile


def test_holland_profile_peaks_at_rmax_and_decays():
    r = np.linspace(1.0, 500.0, 4991)
    v = holland_wind(r, 50.0, 30.0, 1.5)
    assert v[np.argmax(v)] == pytest.approx(50.0, abs=1e-3)
    assert r[np.argmax(v)] == pytest.approx(30.0, abs=0.1)
    out = r >= 30.0
    assert np.all(np.diff(v[out]) < 0) and np.all(np.diff(v[~out]) > 0)
    # Hand value at 3 Rmax: 50 * sqrt(x^B e^(1 - x^B)), x = 1/3, B = 1.5.
    xb = (1 / 3) ** 1.5
    assert float(holland_wind(90.0, 50.0, 30.0, 1.5)) == pytest.approx(
        50 * math.sqrt(xb * math.exp(1 - xb)), rel=1e-12)
    # The gradient-wind form with Coriolis still passes through Vmax at Rmax.
    assert float(holland_wind(30.0, 50.0, 30.0, 1.5, 5e-5)) == pytest.approx(50.0, rel=1e-12)
    assert float(holland_wind(300.0, 50.0, 30.0, 1.5, 5e-5)) < float(holland_wind(300.0, 50.0, 30.0, 1.5))


def _northward_storm(tmp_path: Path, *, kt: int = 80) -> Path:
    """One storm moving due north along 120E, 1 degree latitude per 6 h, constant wind."""
    start = datetime(2000, 6, 28)
    rows = [_row(SID="2000180N17120", SEASON=2000, NUMBER=1, BASIN="WP", SUBBASIN="MM",
                 NAME="NOT_NAMED", NATURE="TS", TRACK_TYPE="main", USA_AGENCY="jtwc_wp",
                 ISO_TIME=(start + timedelta(hours=6 * k)).strftime("%Y-%m-%d %H:%M:%S"),
                 LAT=f"{lat}.0", LON="120.0", USA_STATUS="TY", USA_WIND=kt)
            for k, lat in enumerate(range(17, 24))]
    return _write(tmp_path / "one.csv", rows)


def test_hand_computed_storm_passing_at_100_km(tmp_path):
    tracks = read_ibtracs(_northward_storm(tmp_path))
    points = interpolate_tracks(tracks, step_hours=1.0)
    lat = 20.0
    # Sites exactly 100 km east and west of the track at 20N (great-circle distance).
    dlon = math.degrees(2 * math.asin(math.sin(100.0 / 6371.0088 / 2) / math.cos(math.radians(lat))))
    winds = storm_max_winds(points, np.array([120.0 + dlon, 120.0 - dlon]), np.array([lat, lat]),
                            scale=1.0, floor_ms=1.0)
    # Hand computation: Willoughby et al. (2006) Rmax, Willoughby & Rahn (2004) B, cyclostrophic
    # Holland (1980) with Vm = Vmax - Vt/2, Jelesnianski (1966) motion term Vt Rm r/(Rm^2 + r^2).
    vmax = 80 * KT
    rm = 46.4 * math.exp(-0.0155 * vmax + 0.0169 * lat)
    b = 0.886 + 0.0177 * vmax - 0.0094 * lat
    vt = (math.pi * 6371.0088 / 180.0) * 1000.0 / (6 * 3600.0)  # 1 degree of latitude in 6 h
    x = rm / 100.0
    sym = (vmax - vt / 2) * math.sqrt(x**b * math.exp(1 - x**b))
    motion = vt * rm * 100.0 / (rm**2 + 100.0**2)
    right, left = winds.wind  # east of a northward storm is its right-hand side
    assert winds.storm.tolist() == [0, 0]
    assert right == pytest.approx(sym + motion, rel=2e-3)
    assert left == pytest.approx(sym - motion, rel=2e-3)
    assert winds.n_storms_near.tolist() == [1, 1]


def test_chunking_and_date_line(tmp_path):
    (path,) = synthetic_ibtracs.write(tmp_path, [], seed=7)
    points = interpolate_tracks(read_ibtracs(path), step_hours=1.0)
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(105, 135, 300), rng.uniform(15, 40, 300)
    one = storm_max_winds(points, lon, lat, floor_ms=12.0)
    many = storm_max_winds(points, lon, lat, floor_ms=12.0, max_pairs=2_000, max_cells=500)
    np.testing.assert_array_equal(one.indptr, many.indptr)
    np.testing.assert_array_equal(one.storm, many.storm)
    np.testing.assert_allclose(one.wind, many.wind)
    assert one.wind.size > 100 and one.wind.min() >= 12.0
    # A storm crossing 180E: interpolated longitudes stay on the short way round.
    rows = [_row(SID="2005200N20178", SEASON=2005, BASIN="WP", ISO_TIME=f"2005-07-19 {h:02d}:00:00",
                 LAT="20.0", LON=lon_, TRACK_TYPE="main", USA_WIND=90)
            for h, lon_ in ((0, "178.8"), (6, "-179.6"), (12, "-178.0"))]
    dateline = interpolate_tracks(read_ibtracs(_write(tmp_path / "d.csv", rows)))
    assert np.all(np.abs(dateline.lon) >= 178.0)
    assert dateline.ve.min() > 0  # moving east throughout
    w = storm_max_winds(dateline, np.array([179.95, -179.95]), np.array([20.0, 20.0]), floor_ms=30)
    assert w.wind.min() > 40.0


# --------------------------------------------------------------------------- extremes


def test_return_level_recovers_known_gumbel():
    """Storms arrive as Poisson(lam) per year with Exp(beta) excesses over u0, so the annual
    maxima are Gumbel with location u0 + beta ln(lam) and scale beta; its 50-year value is
    mu - beta ln(-ln(1 - 1/50))."""
    lam, beta, u0 = 3.0, 5.0, 15.0
    mu = u0 + beta * math.log(lam)
    expected = mu - beta * math.log(-math.log(1 - 1 / 50))
    assert expected == pytest.approx(40.0, abs=0.01)
    rng = np.random.default_rng(42)
    for years, min_gpd, tol in ((600, 10**9, 1.0), (3000, 15, 1.5)):
        n = rng.poisson(lam, years).sum()
        wind = u0 + rng.exponential(beta, n)
        below = u0 - rng.uniform(0, 3, 50)  # events under the threshold are ignored
        fit = fit_pot(np.zeros(n + 50, int), np.r_[wind, below], 1, years=years, u0=u0,
                      min_gpd=min_gpd)
        assert fit.n[0] == n
        # Exponential tail (one parameter) over 600 years; GPD shape estimated over 3000.
        assert float(return_level(fit, 50)[0]) == pytest.approx(expected, abs=tol)


def test_gpd_shape_and_scaling_factors():
    rng = np.random.default_rng(1)
    xi, sigma = -0.2, 6.0
    y = sigma / xi * ((1 - rng.random(4000)) ** (-xi) - 1)  # GPD by inversion
    fit = fit_pot(np.zeros(4000, int), 15.0 + y, 1, years=1000, u0=15.0)
    assert float(fit.xi[0]) == pytest.approx(xi, abs=0.04)
    assert float(fit.sigma[0]) == pytest.approx(sigma, rel=0.05)
    # Exponential tail (few events): frequency F shifts the level by sigma ln F; intensity scales.
    few = fit_pot(np.zeros(5, int), np.array([16.0, 18.0, 20.0, 22.0, 24.0]), 1, years=40, u0=15.0)
    assert few.xi[0] == 0.0 and few.sigma[0] == pytest.approx(5.0)
    r50 = -math.log(1 - 1 / 50)
    base = 15.0 + 5.0 * math.log((5 / 40) / r50)
    assert float(return_level(few, 50)[0]) == pytest.approx(base)
    assert float(return_level(few, 50, frequency=0.9)[0]) == pytest.approx(base + 5.0 * math.log(0.9))
    assert float(return_level(few, 50, intensity=1.05)[0]) == pytest.approx(1.05 * base)
    assert annual_rate_for_return_period(50) == pytest.approx(r50)
    assert np.isnan(return_level(fit_pot(np.zeros(0, int), np.zeros(0), 2, years=40, u0=15.0), 50)).all()


# --------------------------------------------------------------------------- change factors


def test_change_factors_pessimistic_2050_by_hand():
    cf = change_factors("pessimistic", 2050, base_warming_c=0.75)
    dT = 2.4 - 0.75  # AR6 SSP5-8.5 2041-2060 minus the 1980-2021 base period
    assert cf["pathway"] == "ssp585" and cf["period"] == "2041-2060"
    assert cf["gwl"] == 2.4 and cf["dT"] == pytest.approx(dT)
    e = dT / 2
    assert cf["intensity"]["p50"] == pytest.approx(1.053**e)
    assert cf["intensity"]["p5"] == pytest.approx(1.019**e)
    assert cf["intensity"]["p95"] == pytest.approx(1.093**e)
    assert cf["frequency"]["p5"] == pytest.approx(0.696**e)
    assert cf["frequency"]["p50"] == pytest.approx(0.897**e)
    assert cf["frequency"]["p95"] == pytest.approx(1.173**e)
    assert cf["frequency_cat45"]["p95"] == pytest.approx(1.42**e)
    assert cf["precipitation"]["p25"] == pytest.approx(1.121**e)
    opt = change_factors("optimistic", 2030, base_warming_c=0.75)
    assert opt["pathway"] == "ssp126" and opt["dT"] == pytest.approx(1.5 - 0.75)
    assert opt["intensity"]["p50"] < cf["intensity"]["p50"]
    # At exactly 2 degC of warming the factors are Knutson's percentages themselves.
    at2 = change_factors("current_trend", 2050, base_warming_c=0.0)
    assert at2["intensity"]["p50"] == pytest.approx(1.053)
    with pytest.raises(CatalogError, match="no period for year 2040"):
        change_factors("pessimistic", 2040)


# --------------------------------------------------------------------------- the plug-in


def _context(root: Path, **params) -> HazardContext:
    ctx = HazardContext.build(load_catalog(), "typhoon", DataSource.open(root))
    if params:
        spec = dataclasses.replace(ctx.spec, params={**ctx.spec.params, **params})
        ctx = dataclasses.replace(ctx, spec=spec)
    return ctx


DEMO = {a.name: (a.lon, a.lat) for a in DEMO_AREAS}


def test_synthetic_pack_gives_the_demo_gradient(tmp_path):
    (path,) = synthetic_ibtracs.write(tmp_path, DEMO_AREAS, seed=20231231)
    assert path.stat().st_size < 2_000_000
    again = synthetic_ibtracs.write(tmp_path / "again", DEMO_AREAS, seed=20231231)[0]
    assert again.read_bytes() == path.read_bytes()  # deterministic by seed
    names = ["Hong Kong", "Shenzhen", "Shanghai", "Beijing", "Chengdu", "Abu Dhabi"]
    lon = np.array([DEMO[n][0] for n in names] + [np.nan])
    lat = np.array([DEMO[n][1] for n in names] + [np.nan])
    hazard = Typhoon()
    assert isinstance(hazard, Hazard)
    r = hazard.assess(lon, lat, scenario="current_trend", year=2050, context=_context(tmp_path))
    hk, sz, sh, bj, cd, ad, nan = r.levels.tolist()
    assert min(hk, sz) > sh > max(bj, cd) == 1
    assert ad == 0 and "outside-basin-coverage" in r.flags[5]
    assert nan == 0 and r.flags[6] == "no-coordinates" and np.isnan(r.values[6])
    assert np.all(r.level_low <= r.levels) and np.all(r.levels <= r.level_high)
    assert r.pathway.code == "ssp245" and r.threshold_set == "typhoon-china-grade-rp50-v1"
    cf = r.details["change_factors"]
    assert cf["intensity"]["p50"] == pytest.approx(1.053 ** ((2.0 - 0.75) / 2))
    # Scenario values follow the base-period value and the factors: with an exponential or
    # GPD tail the scaled value lies between intensity x base and intensity x base + shift.
    base = r.extra["wind_rp_base_ms"]
    assert r.values[0] == pytest.approx(float(base[0]) * cf["intensity"]["p50"], rel=0.03)
    assert r.extra["rate_gale_per_yr"][0] >= r.extra["rate_typhoon_force_per_yr"][0] > 0
    assert r.extra["n_storms_within_200km"][0] > r.extra["n_storms_within_200km"][3] == 0
    n = r.extra["n_events_over_threshold"]
    few = np.array(["few-storms" in f for f in r.flags])
    np.testing.assert_array_equal(few, (n > 0) & (n < 15))
    assert r.flags[3] == "" and r.values[3] == 0.0  # Beijing: no storm, level 1, no flag
    near = np.array(["near-threshold" in f for f in r.flags])
    edges = np.array([17.2, 24.5, 32.7, 41.5])
    dist = np.abs(np.nan_to_num(r.values, nan=-99.0)[:, None] - edges).min(axis=1)
    np.testing.assert_array_equal(near, dist <= 1.5)


def test_base_climate_is_computed_once_per_coordinates(tmp_path):
    synthetic_ibtracs.write(tmp_path, [], seed=5)
    ctx = _context(tmp_path)
    lon, lat = np.array([114.17, 121.47]), np.array([22.3, 31.23])
    h = Typhoon()
    first = h.assess(lon, lat, scenario="optimistic", year=2030, context=ctx)
    later = h.assess(lon, lat, scenario="pessimistic", year=2080, context=ctx)
    from sitescreen.hazards.typhoon import _Params

    params = _Params.from_params(ctx.params)
    path = str(tmp_path / "ibtracs" / "ibtracs.WP.list.v04r01.csv")
    assert base_climate(path, lon, lat, params) is base_climate(path, lon.copy(), lat.copy(), params)
    np.testing.assert_array_equal(first.extra["wind_rp_base_ms"], later.extra["wind_rp_base_ms"])
    assert later.values[0] > first.values[0]  # more warming, stronger typhoons (median)


def test_params_are_checked(tmp_path):
    synthetic_ibtracs.write(tmp_path, [], seed=5)
    with pytest.raises(CatalogError, match="unknown params \\['return_period'\\]"):
        Typhoon().assess(np.array([114.0]), np.array([22.0]), scenario="optimistic", year=2030,
                         context=_context(tmp_path, return_period=100))
    with pytest.raises(CatalogError, match="pot_threshold_ms"):
        Typhoon().assess(np.array([114.0]), np.array([22.0]), scenario="optimistic", year=2030,
                         context=_context(tmp_path, pot_threshold_ms=20.0))
    with pytest.raises(HazardDataError, match="do not overlap the typhoon base period"):
        Typhoon().assess(np.array([114.0]), np.array([22.0]), scenario="optimistic", year=2030,
                         context=_context(tmp_path, base_period=[1950, 1960]))


def test_missing_track_file_names_the_dataset(tmp_path):
    with pytest.raises(HazardDataError, match="ibtracs_wp"):
        Typhoon().assess(np.array([114.0]), np.array([22.0]), scenario="optimistic", year=2030,
                         context=_context(tmp_path))


# --------------------------------------------------------------------------- real tracks


@pytest.mark.mirror
def test_real_tracks_rank_cities_and_match_hong_kong_climatology(mirror_dir):
    sites = {
        "Hong Kong": (114.17, 22.30), "Shenzhen": (114.06, 22.54), "Shanghai": (121.47, 31.23),
        "Beijing": (116.40, 39.90), "Chengdu": (104.07, 30.67), "Xi'an": (108.94, 34.27),
        "Abu Dhabi": (54.37, 24.45),
    }
    lon = np.array([v[0] for v in sites.values()])
    lat = np.array([v[1] for v in sites.values()])
    r = Typhoon().assess(lon, lat, scenario="current_trend", year=2050,
                         context=_context(mirror_dir))
    lv = dict(zip(sites, r.levels.tolist(), strict=True))
    assert min(lv["Hong Kong"], lv["Shenzhen"]) > lv["Shanghai"]
    assert lv["Shanghai"] > max(lv["Beijing"], lv["Chengdu"], lv["Xi'an"])
    assert lv["Beijing"] == lv["Chengdu"] == lv["Xi'an"] == 1
    assert lv["Abu Dhabi"] == 0 and r.flags[-1] == "outside-basin-coverage"
    # Hong Kong Observatory, "Tropical Cyclones in 2016", Table 4.6: signal No. 8 or higher
    # (gale or storm force, 10-minute mean >= 63 km/h, expected or blowing generally near sea
    # level) on 90 occasions in 1956-2016 = 1.48 a year; the hurricane signal No. 10 on 13
    # occasions = 0.21 a year (once in 4.7 years). Signals are issued on forecasts, with some
    # precaution, and for the territory rather than one point, so the modelled point rate of
    # gales (>= 17.2 m/s) must lie within a factor 2 of the signal-8 rate; hurricane-force
    # winds at one point (within tens of km of the eye) are rarer than the signal, so the
    # typhoon-force rate must lie between once in 20 years and the signal-10 rate doubled.
    gale = r.extra["rate_gale_base_per_yr"][0]
    typhoon_force = r.extra["rate_typhoon_force_base_per_yr"][0]
    assert 90 / 61 / 2 <= gale <= 90 / 61 * 2
    assert 1 / 20 <= typhoon_force <= 2 * 13 / 61
    assert r.details["base_period_used"] == [1980, 2021]
    assert r.details["tracks"]["points_wind_usa"] > 60_000
