"""geocode_sites on GeoDataFrames, overrides, provider registry, the example portfolio."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, Polygon

from sitescreen.errors import ConfigError, GeocoderAuthError, SiteValidationError
from sitescreen.geocode import (
    GEOCODE_COLUMNS,
    AddressQuery,
    AMapGeocoder,
    GeocodeCache,
    OfflineGeocoder,
    default_geocoders,
    geocode_sites,
    read_overrides,
)
from sitescreen.geodesy import haversine_km

REPO = Path(__file__).resolve().parents[1]
NAN = float("nan")


class CountingOffline(OfflineGeocoder):
    """The real offline geocoder, counting the queries it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def geocode(self, query: AddressQuery):
        self.asked.append(query.key)
        return super().geocode(query)


def frame(rows: list[dict]) -> gpd.GeoDataFrame:
    base = {"site_id": "", "name": "", "company": "", "kind": "", "address": "", "city": "",
            "country": "", "lon": NAN, "lat": NAN, "location_source": "", "input_ref": ""}
    records = [{**base, **r} for r in rows]
    geoms = [Point(r["lon"], r["lat"]) if not math.isnan(r["lon"]) else r.get("geometry")
             for r in records]
    for r in records:
        r.pop("geometry", None)
    return gpd.GeoDataFrame(records, geometry=geoms, crs="EPSG:4326")


@pytest.fixture()
def sites() -> gpd.GeoDataFrame:
    return frame([
        {"site_id": "given", "address": "Xuhui District, Shanghai", "country": "CN",
         "lon": 121.394, "lat": 31.169, "location_source": "given"},
        {"site_id": "pinned", "address": "Nowhere", "country": "CN"},
        {"site_id": "geo", "address": "Nanshan District, Shenzhen, Guangdong", "city": "Shenzhen",
         "country": "CN"},
        {"site_id": "geo2", "address": "nanshan district, shenzhen, guangdong", "city": "shenzhen",
         "country": "cn"},
        {"site_id": "amb", "address": "Chaoyang District", "country": "CN"},
        {"site_id": "empty", "country": "CN"},
        {"site_id": "foot", "address": "上海市浦东新区", "country": "CN",
         "geometry": Polygon([(121.88, 30.918), (121.884, 30.918), (121.884, 30.921)])},
    ])


def test_geocode_sites_fills_and_records_provenance(sites, tmp_path):
    overrides = tmp_path / "pins.csv"
    overrides.write_text("site_id,lon,lat,note\npinned,113.95,22.54,from the lease\n"
                         "given,0,0,ignored\n", encoding="utf-8")
    geocoder = CountingOffline()
    calls: list[tuple[int, int]] = []
    out = geocode_sites(sites, geocoders=[geocoder], cache=GeocodeCache(tmp_path / "c.sqlite"),
                        overrides=overrides, progress=lambda d, t: calls.append((d, t)))
    by = out.set_index("site_id")
    assert list(out["site_id"]) == list(sites["site_id"]) and set(GEOCODE_COLUMNS) <= set(out)
    # coordinates in the file win, even over an override
    assert (by.loc["given", "lon"], by.loc["given", "lat"]) == (121.394, 31.169)
    assert by.loc["given", "location_source"] == "given"
    assert by.loc["given", "geocode_precision"] == "coordinates"
    assert "override ignored" in by.loc["given", "geocode_reason"]
    # overrides beat geocoding
    assert by.loc["pinned", ["lon", "lat"]].tolist() == [113.95, 22.54]
    assert by.loc["pinned", "location_source"] == "override"
    assert by.loc["pinned", "geocode_reason"] == "from the lease"
    # geocoded, with provenance
    assert by.loc["geo", "location_source"] == "geocoded"
    assert by.loc["geo", "geocoder"] == "offline"
    assert by.loc["geo", "geocode_precision"] == "district"
    assert by.loc["geo", "geocode_datum"] == "WGS84"
    assert "南山区" in by.loc["geo", "geocode_matched"]
    assert float(haversine_km(by.loc["geo", "lon"], by.loc["geo", "lat"], 113.93, 22.53)) < 8
    assert by.loc["geo2", "lon"] == by.loc["geo", "lon"]
    assert 0 < by.loc["geo", "geocode_confidence"] <= 1
    # ambiguous: unresolved with candidates, no coordinates, no geometry
    assert by.loc["amb", "location_source"] == "unresolved"
    assert by.loc["amb", "geocode_status"] == "ambiguous"
    assert "北京市朝阳区" in by.loc["amb", "geocode_candidates"]
    assert "; " in by.loc["amb", "geocode_candidates"]
    assert math.isnan(by.loc["amb", "lon"]) and by.loc["amb", "geometry"] is None
    assert by.loc["empty", "geocode_status"] == "unresolved"
    assert "no_coordinates" in by.loc["empty", "location_flags"]
    # a footprint is kept; a geocoded site gets a Point
    assert by.loc["foot", "geometry"].geom_type == "Polygon"
    assert by.loc["geo", "geometry"].equals(Point(by.loc["geo", "lon"], by.loc["geo", "lat"]))
    assert out.crs.to_epsg() == 4326
    # only sites without coordinates are sent, and a query shared by two sites only once
    assert len(geocoder.asked) == 3  # geo/geo2 together, amb, foot
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)
    # flags for every site, given ones included
    assert by.loc["given", "location_flags"] == ""
    # the input is not modified
    assert math.isnan(sites.loc[2, "lon"]) and "geocoder" not in sites


def test_cached_answers_are_reused_unless_refresh(sites, tmp_path):
    cache = GeocodeCache(tmp_path / "c.sqlite")
    first = CountingOffline()
    geocode_sites(sites, geocoders=[first], cache=cache)
    assert len(first.asked) == 4
    second = CountingOffline()
    again = geocode_sites(sites, geocoders=[second], cache=cache)
    assert second.asked == []
    assert again.set_index("site_id").loc["geo", "geocode_precision"] == "district"
    third = CountingOffline()
    geocode_sites(sites, geocoders=[third], cache=cache, refresh=True)
    assert len(third.asked) == 4


def test_first_ok_provider_wins_and_failures_are_explained(httpserver, tmp_path):
    httpserver.expect_request("/v3/geocode/geo").respond_with_json({
        "status": "1", "info": "OK", "infocode": "10000", "count": "1",
        "geocodes": [{"formatted_address": "北京市朝阳区", "province": "北京市", "city": "北京市",
                      "district": "朝阳区", "location": "116.443108,39.921470",
                      "level": "区县"}]})
    key = "secret-amap-key-42"
    amap = AMapGeocoder(key=key, base_url=httpserver.url_for(""), min_interval=0)
    sites = frame([{"site_id": "amb", "address": "Chaoyang District", "country": "CN"}])
    cache_path = tmp_path / "c.sqlite"
    out = geocode_sites(sites, geocoders=[OfflineGeocoder(), amap],
                        cache=GeocodeCache(cache_path))
    row = out.iloc[0]
    assert row["geocode_status"] == "ok" and row["geocoder"] == "amap"
    assert row["geocode_datum"] == "GCJ-02" and row["location_source"] == "geocoded"
    assert "offline: ambiguous" in row["geocode_reason"]
    assert row["lon"] != 116.443108  # converted to WGS 84
    # the key is nowhere: not in outputs, not in the cache file
    assert not out.astype(str).apply(lambda c: c.str.contains(key)).any().any()
    assert key.encode() not in cache_path.read_bytes()
    wal = cache_path.with_name(cache_path.name + "-wal")
    assert not wal.exists() or key.encode() not in wal.read_bytes()


def test_overrides_file_is_validated(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("site_id,lon,lat\na,200,10\n,1,2\nb,x,1\nc,1,2\nc,3,4\n", encoding="utf-8")
    with pytest.raises(SiteValidationError) as info:
        read_overrides(bad)
    text = str(info.value)
    assert "row 2 (a): lon 200.0 is outside" in text and "row 3: site_id is empty" in text
    assert "row 4 (b): lon 'x' is not a number" in text and "already pinned in row 5" in text
    cols = tmp_path / "cols.csv"
    cols.write_text("id,x,y\n", encoding="utf-8")
    with pytest.raises(SiteValidationError, match="missing column"):
        read_overrides(cols)
    good = tmp_path / "good.csv"
    good.write_text("\ufeffsite_id,longitude,latitude\nA,121.5,31.2\n", encoding="utf-8")
    assert read_overrides(good)["A"].lon == 121.5


def test_default_geocoders(monkeypatch):
    assert [g.name for g in default_geocoders()] == ["offline"]
    monkeypatch.setenv("SITESCREEN_AMAP_KEY", "abc")
    gs = default_geocoders(["Offline", "nominatim", "amap"],
                           nominatim={"user_agent": "acme/1 (a@b.c)"})
    assert [g.name for g in gs] == ["offline", "nominatim", "amap"]
    with pytest.raises(ConfigError, match="valid names: offline, nominatim, amap"):
        default_geocoders(["google"])
    with pytest.raises(ConfigError, match="twice"):
        default_geocoders(["offline", "offline"])
    with pytest.raises(ConfigError, match="not requested"):
        default_geocoders(["offline"], amap={"key": "x"})
    with pytest.raises(ConfigError, match="bad options"):
        default_geocoders(["offline"], offline={"colour": "red"})


# Approximate city centres (lon, lat), from general knowledge, for the example portfolio.
CITY_CENTRES = {
    "shanghai": (121.47, 31.23), "beijing": (116.40, 39.90), "tianjin": (117.20, 39.13),
    "xiamen": (118.09, 24.48), "suzhou": (120.62, 31.30), "hefei": (117.23, 31.82),
    "changsha": (112.94, 28.23), "shenyang": (123.43, 41.80), "harbin": (126.53, 45.80),
    "zhengzhou": (113.63, 34.75), "jinan": (117.00, 36.67), "fuzhou": (119.30, 26.08),
    "kunming": (102.83, 24.88), "ningbo": (121.55, 29.87), "dalian": (121.61, 38.91),
    "nanchang": (115.86, 28.68), "shijiazhuang": (114.51, 38.04), "taiyuan": (112.55, 37.87),
    "kyoto": (135.77, 35.01), "riyadh": (46.72, 24.69), "kuala lumpur": (101.69, 3.14),
    "bangkok": (100.50, 13.75), "wuhan": (114.31, 30.59), "hong kong": (114.17, 22.32),
    "shenzhen": (114.06, 22.54), "changshu": (120.75, 31.65), "singapore": (103.82, 1.35),
    "tokyo": (139.69, 35.69), "seoul": (126.98, 37.57), "abu dhabi": (54.37, 24.45),
    "hangzhou": (120.16, 30.27), "chengdu": (104.07, 30.57), "xi'an": (108.94, 34.34),
    "nanjing": (118.80, 32.06), "guangzhou": (113.26, 23.13), "qingdao": (120.38, 36.07),
    "chongqing": (106.55, 29.56),
}


def test_example_portfolio_resolves_offline():
    path = REPO / "sites.geojson"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from sitescreen.sites import read_sites

    sites = read_sites(path)
    todo = sites[~np.isfinite(sites["lon"].to_numpy(float))]
    assert len(todo) > 0
    out = geocode_sites(todo)
    problems = []
    for _, row in out.iterrows():
        centre = CITY_CENTRES.get(str(row["city"]).strip().lower())
        if centre is None:
            problems.append(f"{row['site_id']}: add {row['city']!r} to CITY_CENTRES")
            continue
        if row["geocode_status"] != "ok" or row["geocode_precision"] not in ("district", "city"):
            problems.append(f"{row['site_id']}: {row['geocode_status']} "
                            f"{row['geocode_precision']} {row['geocode_reason']}")
            continue
        km = float(haversine_km(row["lon"], row["lat"], *centre))
        if km > 60:
            problems.append(f"{row['site_id']}: {km:.0f} km from {row['city']}")
        if row["location_flags"]:
            problems.append(f"{row['site_id']}: flags {row['location_flags']}")
    assert not problems, "\n".join(problems)


def test_example_portfolio_given_sites_agree_with_offline_geocoding():
    """Where the file gives coordinates, geocoding the address lands near them (a check of
    both the geocoder and the file)."""
    path = REPO / "sites.geojson"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from sitescreen.sites import read_sites

    sites = read_sites(path)
    given = sites[np.isfinite(sites["lon"].to_numpy(float))]
    geocoder = OfflineGeocoder()
    far = []
    for _, row in given.iterrows():
        r = geocoder.geocode(AddressQuery(row["address"], row["city"], row["country"]))
        if r.status == "ok":
            km = float(haversine_km(r.lon, r.lat, row["lon"], row["lat"]))
            if km > 60:
                far.append(f"{row['site_id']}: {km:.0f} km")
    assert not far, far


def test_refused_key_stops_the_run_but_keeps_earlier_answers(httpserver, tmp_path):
    ok = {"status": "1", "info": "OK", "infocode": "10000", "count": "1",
          "geocodes": [{"formatted_address": "上海市浦东新区", "location": "121.544346,31.221461",
                        "level": "区县"}]}
    httpserver.expect_oneshot_request("/v3/geocode/geo").respond_with_json(ok)
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(
        {"status": "0", "info": "USER_DAILY_QUERY_OVER_LIMIT", "infocode": "10044"})
    amap = AMapGeocoder(key="quota-key", base_url=httpserver.url_for(""), min_interval=0)
    sites = frame([{"site_id": "a", "address": "上海市浦东新区", "country": "CN"},
                   {"site_id": "b", "address": "上海市徐汇区", "country": "CN"}])
    cache = GeocodeCache(tmp_path / "c.sqlite")
    with pytest.raises(GeocoderAuthError, match="10044"):
        geocode_sites(sites, geocoders=[amap], cache=cache)
    assert cache.stats() == {"amap@1": 1}  # the next run resumes where this one stopped


def test_geocode_problems_warn_about_what_would_not_be_placed(tmp_path):
    from analyst_sites import UNPLACEABLE, write_csv

    from sitescreen.geocode import geocode_problems
    from sitescreen.sites import read_sites

    sites = read_sites(write_csv(tmp_path / "a.csv"))
    problems = geocode_problems(sites)
    assert {p.where.split("'")[1] for p in problems} == set(UNPLACEABLE)
    assert all(p.severity == "warning" and p.field == "city" for p in problems)
    by_id = {p.where.split("'")[1]: p for p in problems}
    assert "candidates:" in by_id["SZ-02"].message and "Anhui" in by_id["SZ-02"].message
    assert by_id["TJ-01"].where == "row 9 (site_id 'TJ-01')" and by_id["TJ-01"].index == 7
    # a site only placed at province precision is worth a warning too; given ones are skipped
    sites.loc[0, ["address", "city"]] = ["", "Jiangsu"]
    sites.loc[1, "location_source"] = "given"
    sites.loc[1, "city"] = "Atlantis"
    extra = [p for p in geocode_problems(sites) if "SH-0" in p.where]
    assert len(extra) == 1 and "only at province precision" in extra[0].message


def test_missing_text_of_any_column_type_is_empty_not_a_query():
    """A table read with nullable text columns (pandas' ``string`` dtype, as a database or
    GeoPackage reader may give) has pd.NA for an empty cell: it must count as empty, not be
    geocoded as the text "<NA>"; other missing markers (None, NaN) and non-text ids too."""
    sites = frame([
        {"site_id": "a", "address": "Nanshan District, Shenzhen, Guangdong", "country": "CN"},
        {"site_id": "b", "address": "Xuhui District, Shanghai", "country": "CN"},
    ])
    sites["city"] = pd.array([pd.NA, "Shanghai"], dtype="string")
    sites["country"] = pd.array(["CN", pd.NA], dtype="string")
    geocoder = CountingOffline()
    out = geocode_sites(sites, geocoders=[geocoder])
    assert not any("<NA>" in q for q in geocoder.asked), geocoder.asked
    assert not out["geocode_query"].str.contains("<NA>").any()
    assert out["site_id"].tolist() == ["a", "b"]
