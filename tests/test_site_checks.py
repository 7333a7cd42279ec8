"""Unit tests for sitescreen.site_checks: the checks, the problem/report objects, the policy.

End to end (files in, problems out) the checks are also exercised by tests/test_corpus.py.
"""

from __future__ import annotations

import doctest

import geopandas as gpd
import numpy as np
import pytest
import shapely
from site_docs import feature as _feat
from site_docs import feature_collection as _fc
from site_docs import write_json as _write_json

import sitescreen.site_checks as checks_mod
from sitescreen.errors import SiteValidationError
from sitescreen.site_checks import (
    Issues,
    Problem,
    ValidationReport,
    build_report,
    check_coordinate_pairs,
    check_coordinates,
    check_crs,
    check_duplicate_ids,
    check_geometry,
    check_locatable,
    check_text_fields,
)
from sitescreen.sites import SITE_KINDS, read_sites

# --- every problem at once, through the reader ------------------------------------------------


def test_all_errors_reported_at_once(tmp_path):
    path = _write_json(tmp_path / "bad.geojson", _fc(
        _feat({"site_id": "a", "name": "A"}, {"type": "Point", "coordinates": [31.2, 121.4]}),
        _feat({"site_id": "b", "name": ""}, {"type": "Point", "coordinates": [0, 0]}),
        _feat({"site_id": "A ", "name": "A2"}, {"type": "Point", "coordinates": [1.0, 2.0]}),
        _feat({"site_id": "d", "name": "D"}, None)))
    with pytest.raises(SiteValidationError) as info:
        read_sites(path)
    errs = info.value.problems
    assert [(p.where, p.field) for p in errs] == [
        ("feature 1 (site_id 'a')", "geometry.coordinates"),
        ("feature 2 (site_id 'b')", "geometry.coordinates"),
        ("feature 3 (site_id 'A')", "site_id"),
        ("feature 4 (site_id 'd')", "geometry"),
    ]
    assert "lon 121.4, lat 31.2" in errs[0].hint
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{path}: 4 problems found")


# --- coordinates ---------------------------------------------------------------------------------


def test_check_coordinates_table_cells():
    raw_lon = np.array(["abc", "nan", "inf", "2000000", "31.2", "5"], dtype=object)
    raw_lat = np.array(["1", "1", "1", "3000000", "121.4", "6"], dtype=object)
    lon = np.array([np.nan, np.nan, np.inf, 2e6, 31.2, 5.0])
    lat = np.array([1.0, 1.0, 1.0, 3e6, 121.4, 6.0])
    issues = Issues()
    bad = check_coordinates(lon, lat, np.ones(6, dtype=bool), issues, "x", "y",
                            raw_lon=raw_lon, raw_lat=raw_lat)
    assert bad.tolist() == [True, True, True, True, True, False]
    got = sorted((i, f, m, h) for _, i, f, m, h in issues.items)
    assert got == [
        (0, "x", "longitude 'abc' is not a number",
         "write a decimal number of degrees, e.g. 121.4737"),
        (1, "x", "longitude is NaN", "give a real coordinate, or leave the site without "
         "coordinates and give an address"),
        (2, "x", "longitude is infinite", "give a real coordinate in degrees"),
        (3, "x", "longitude 2000000 is outside -180..180",
         "the value looks projected (metres?); give WGS 84 degrees"),
        (3, "y", "latitude 3000000 is outside -90..90",
         "the value looks projected (metres?); give WGS 84 degrees"),
        (4, "y", "latitude 121.4 is outside -90..90",
         "lat and lon look swapped: (lon 121.4, lat 31.2) is a valid position; exchange the "
         "two values"),
    ]


def test_check_coordinates_only_masked_sites_and_geojson_wording():
    issues = Issues()
    lon, lat = np.array([200.0, 10.0]), np.array([0.0, 95.0])
    bad = check_coordinates(lon, lat, np.array([False, True]), issues,
                            "geometry.coordinates", "geometry.coordinates",
                            raw_lon=None, raw_lat=None)
    assert bad.tolist() == [False, True]  # site 0 is out of range but not checked
    [(severity, i, f, message, hint)] = issues.items
    assert (severity, i, f) == ("error", 1, "geometry.coordinates")
    assert message == "latitude 95 is outside -90..90 (position [10, 95])"
    assert hint.endswith("; GeoJSON order is [lon, lat]")


def test_check_coordinate_pairs_names_the_missing_column():
    issues = Issues()
    bad = check_coordinate_pairs(np.array([True, False, True, False]),
                                 np.array([False, True, True, False]), issues,
                                 "Longitude", "Latitude")
    assert bad.tolist() == [True, True, False, False]
    assert [(i, f, m) for _, i, f, m, _ in issues.items] == [
        (0, "Latitude", "Latitude is empty but Longitude is given"),
        (1, "Longitude", "Longitude is empty but Latitude is given"),
    ]


# --- GeoJSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("crs", [
    {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
    {"type": "EPSG", "properties": {"code": 4326}},
    "EPSG:4326",
    None,
])
def test_check_crs_accepts_wgs84_names(crs):
    assert check_crs(crs, "/data/s.geojson") is None


def test_check_crs_refuses_projected():
    p = check_crs({"type": "EPSG", "properties": {"code": 3857}}, "/data/s.geojson")
    assert (p.severity, p.where, p.field) == ("error", "s.geojson", "crs")
    assert p.message.startswith("declares CRS 'EPSG:3857'")
    assert "ogr2ogr" in p.hint


def test_check_geometry_point_ignores_altitude():
    issues = Issues()
    assert check_geometry({"type": "Point", "coordinates": [121.5, 31.25, 12.0]}, 0,
                          issues) == (True, 121.5, 31.25, None)
    assert issues.items == []


@pytest.mark.parametrize("geom, field, message", [
    ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "geometry.type",
     "unsupported geometry type 'LineString'"),
    ({"coordinates": [1, 2]}, "geometry.type", "geometry has no 'type'"),
    ({"type": "Point", "coordinates": ["121", "31"]}, "geometry.coordinates",
     "Point coordinates ['121', '31'] are not numbers"),
    ({"type": "Point", "coordinates": [121]}, "geometry.coordinates",
     "Point coordinates [121] are not [longitude, latitude]"),
    ([121, 31], "geometry", "geometry is a list, not a GeoJSON object"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
     "geometry", "Polygon is invalid: Self-intersection[0.5 0.5]"),
])
def test_check_geometry_problems(geom, field, message):
    issues = Issues()
    ok, lon, lat, footprint = check_geometry(geom, 4, issues)
    assert not ok and np.isnan(lon) and np.isnan(lat) and footprint is None
    [(severity, i, f, m, _)] = issues.items
    assert (severity, i, f, m) == ("error", 4, field, message)


def test_check_geometry_polygon_with_lat_lon_vertices():
    ring = [[31.0, 121.0], [31.0, 121.1], [31.1, 121.1], [31.0, 121.0]]
    issues = Issues()
    ok, *_ = check_geometry({"type": "Polygon", "coordinates": [ring]}, 0, issues)
    assert not ok
    [(_, _, f, message, hint)] = issues.items
    assert f == "geometry.coordinates"
    assert "(bounds 31, 121, 31.1, 121.1)" in message
    assert hint == "vertices look like [lat, lon]; GeoJSON wants [lon, lat]"


def test_check_geometry_polygon_located_inside():
    # An L shape: its centroid (1.1, 1.1) lies outside the footprint.
    ring = [[0, 0], [3, 0], [3, 1], [1, 1], [1, 3], [0, 3], [0, 0]]
    issues = Issues()
    ok, lon, lat, footprint = check_geometry({"type": "Polygon", "coordinates": [ring]}, 0,
                                             issues)
    assert ok and issues.items == []
    assert footprint.equals(shapely.Polygon(ring))
    assert not footprint.contains(footprint.centroid)
    assert footprint.contains(shapely.Point(lon, lat))


# --- the site table ------------------------------------------------------------------------------


def test_check_locatable_skips_and_reports():
    issues = Issues()
    found = check_locatable(np.array([False, False, True, False, False]),
                            np.array(["", "1 Road", "", "", ""], dtype=object),
                            np.array(["", "", "", "Kyoto", ""], dtype=object),
                            np.array([False, False, False, False, True]), issues)
    assert found.tolist() == [True, False, False, False, False]
    assert [(i, f) for _, i, f, _, _ in issues.items] == [(0, "geometry")]


def test_check_duplicate_ids_first_kept_same_and_case():
    issues = Issues()
    ids = np.array(["a", "b", "a", "", "", "B"], dtype=object)
    refs = [f"row {k + 2}" for k in range(6)]
    assert check_duplicate_ids(ids, refs, issues).tolist() == [
        False, False, True, False, False, True]  # blanks are not duplicates
    assert [(i, m) for _, i, _, m, _ in issues.items] == [
        (2, "duplicate site_id 'a': row 2 has the same id"),
        (5, "duplicate site_id 'B': row 3 has 'b', which differs only in letter case or "
            "spaces"),
    ]


def test_check_text_fields_warnings():
    issues = Issues()
    check_text_fields(np.array(["", "HQ", ""], dtype=object),
                      np.array(["office", "warehouse", ""], dtype=object),
                      np.array(["CN", "China", ""], dtype=object),
                      np.array([False, False, True]), issues, known_kinds=SITE_KINDS)
    assert [(s, i, f) for s, i, f, _, _ in issues.items] == [
        ("warning", 0, "name"), ("warning", 1, "kind"), ("warning", 1, "country")]
    assert issues.items[1][3] == ("kind 'warehouse' is not one of "
                                  "('office', 'data_center', 'lab', 'rnd_center')")
    assert issues.items[2][3] == "country 'China' is not an ISO 3166-1 alpha-2 code"


def test_issues_to_problems_uses_given_ids():
    issues = Issues()
    issues.add("error", 1, "lat", "bad", "fix it")
    issues.add_many("warning", np.array([0]), "name", ["name is blank"])
    assert issues.problems(["row 2", "row 3"], ["", "x"]) == [
        Problem("error", "row 3 (site_id 'x')", "lat", "bad", "fix it", 1),
        Problem("warning", "row 2", "name", "name is blank", "", 0),
    ]


# --- the report ----------------------------------------------------------------------------------


@pytest.fixture
def table() -> gpd.GeoDataFrame:
    gdf = gpd.GeoDataFrame({"site_id": ["a", "b", "c"]},
                           geometry=gpd.GeoSeries([None] * 3, crs="EPSG:4326"))
    gdf.attrs["source_format"] = "csv"
    return gdf


def test_build_report_orders_file_problems_first_then_by_site(table):
    probs = [Problem("warning", "row 4", "name", "w", index=2),
             Problem("error", "row 3", "lat", "e1", index=1),
             Problem("warning", "s.csv", "x", "file"),
             Problem("error", "row 3", "lon", "e2", index=1)]
    report = build_report("s.csv", probs, table, np.array([False, True, False]),
                          on_invalid="raise")
    assert [p.message for p in report.problems] == ["file", "e1", "e2", "w"]
    assert report.sites is None and report.n_input == 3


def test_build_report_drops_bad_rows_unless_raise(table):
    probs = [Problem("error", "row 3", "lat", "e", index=1)]
    for policy in ("warn", "ignore"):
        report = build_report("s.csv", probs, table, np.array([False, True, False]),
                              on_invalid=policy)
        assert report.sites["site_id"].tolist() == ["a", "c"]
        assert report.sites.index.tolist() == [0, 1]
        assert report.sites.attrs == {"source_format": "csv"}
    ok = build_report("s.csv", [], table, np.zeros(3, dtype=bool), on_invalid="raise")
    assert ok.ok and len(ok.sites) == 3


def test_build_report_no_site_left(table):
    report = build_report("s.csv", [], table, np.ones(3, dtype=bool), on_invalid="warn")
    assert report.sites is None
    [p] = report.errors
    assert (p.where, p.message) == ("s.csv", "no valid sites left: all 3 have errors")


def test_build_report_unreadable_file():
    p = Problem("error", "s.csv", "", "file is empty")
    report = build_report("s.csv", [p], None, None, on_invalid="ignore")
    assert report.problems == (p,) and report.sites is None and report.n_input == 0


def test_problem_round_trip_and_text():
    p = Problem("error", "row 7", "lat", "latitude 121.4 is outside -90..90", "swap them", 5)
    assert Problem.from_dict(p.to_dict()) == p
    assert "hint" not in Problem("warning", "row 2", "name", "name is blank").to_dict()
    assert str(p) == ("error: row 7, field 'lat': latitude 121.4 is outside -90..90 "
                      "(hint: swap them)")


def test_report_format_limits_and_counts():
    probs = tuple(Problem("error", f"row {i}", "lat", "bad", index=i) for i in range(2, 6))
    report = ValidationReport("s.csv", probs, None, 4)
    assert not report.ok
    text = report.format(max_problems=2)
    assert text.splitlines()[0] == "s.csv: 4 sites read, 4 errors, 0 warnings"
    assert text.splitlines()[-2:] == ["  ... and 2 more; problems by kind:",
                                      "    4 x error, field 'lat': bad"]
    assert report.to_dict()["problems"][0] == {"severity": "error", "where": "row 2",
                                                "field": "lat", "message": "bad", "index": 2}


def test_docstring_examples():
    result = doctest.testmod(checks_mod)
    assert result.attempted >= 8 and result.failed == 0


# --- footprints across the antimeridian (RFC 7946 section 3.1.9) ------------------------------

# A Fiji estate drawn the short way across 180 degrees (not split, as many tools write it).
_FIJI_RING = [[179.8, -17.2], [-179.8, -17.2], [-179.8, -16.8], [179.8, -16.8], [179.8, -17.2]]
# The same estate split at the antimeridian, as RFC 7946 asks.
_FIJI_SPLIT = [[[[179.8, -17.2], [180.0, -17.2], [180.0, -16.8], [179.8, -16.8], [179.8, -17.2]]],
               [[[-180.0, -17.2], [-179.8, -17.2], [-179.8, -16.8], [-180.0, -16.8],
                 [-180.0, -17.2]]]]


@pytest.mark.parametrize("gtype, coords", [("Polygon", [_FIJI_RING]),
                                           ("MultiPolygon", _FIJI_SPLIT)],
                         ids=["unsplit", "split"])
def test_antimeridian_footprint_is_screened_in_fiji(gtype, coords):
    issues = Issues()
    ok, lon, lat, footprint = check_geometry({"type": gtype, "coordinates": coords}, 0, issues)
    assert ok
    assert abs(abs(lon) - 180.0) <= 0.2 + 1e-9 and -17.2 <= lat <= -16.8, (lon, lat)
    # The footprint is split at 180 degrees: every part stays within -180..180 and is small.
    assert footprint.bounds[0] >= -180 and footprint.bounds[2] <= 180
    assert footprint.area == pytest.approx(0.4 * 0.4, rel=1e-6)
    assert shapely.intersects(footprint, shapely.Point(lon, lat))
    if gtype == "Polygon":  # read the short way, and said so
        assert [p.message for p in issues.problems(["f"], ["s"])
                if "antimeridian" in p.message]


# --- a file with very many bad rows ----------------------------------------------------------

def _many_bad_rows(path, n_bad: int):
    rows = ["site_id,name,lon,lat"]
    rows += [f"s{i},Site {i},121.{i % 1000:03d},{'abc' if i % 2 else '131.2'}"
             for i in range(n_bad)]
    rows.append("ok,Fine,121.47,31.23")
    path.write_text("\n".join(rows) + "\n", "utf-8")
    return path


def test_fifty_thousand_bad_rows_show_the_first_problems_counts_and_a_report_file(tmp_path):
    path = _many_bad_rows(tmp_path / "big.csv", 50_000)

    with pytest.raises(SiteValidationError) as err:
        read_sites(path)

    lines = str(err.value).splitlines()
    assert len(lines) < 60, len(lines)
    text = str(err.value)
    assert "50000 problems found" in text and "... and 49980 more" in text
    # counts per kind: 25,000 non-numeric latitudes and 25,000 out of range
    assert "25000 x" in text and text.count(" x ") >= 2
    report = tmp_path / "big.csv.problems.txt"
    assert f"full report: {report}" in text
    written = report.read_text("utf-8").splitlines()
    assert sum(ln.startswith("  - error: ") for ln in written) == 50_000
    assert len(err.value.problems) == 50_000  # the exception still holds every problem
