"""Offline geocoder: address forms, hierarchy, ambiguity, country narrowing.

Expected positions are the seats of the administrative units (from general knowledge of the
cities, rounded), checked within a tolerance; expected names are the official Chinese ones.
"""

from __future__ import annotations

import pytest

from sitescreen.geocode import AddressQuery, OfflineGeocoder, Precision
from sitescreen.geocode.gazetteer import (
    GEONAMES_CN_ADMIN1,
    Kind,
    cjk_key,
    latin_key,
    load_gazetteer,
)
from sitescreen.geodesy import haversine_km


@pytest.fixture(scope="module")
def geocoder() -> OfflineGeocoder:
    return OfflineGeocoder()


def near(result, lon: float, lat: float, km: float) -> bool:
    return float(haversine_km(result.lon, result.lat, lon, lat)) <= km


def test_keys_normalise_spelling():
    assert latin_key("Shā-tin") == latin_key("Sha Tin") == "shatin"
    assert latin_key("Xi'an") == "xian"
    assert cjk_key("上海 市") == "上海市"


def test_english_street_address_resolves_to_district(geocoder):
    r = geocoder.geocode(AddressQuery("1900 Hongmei Road, Xuhui District, Shanghai",
                                      "Shanghai", "CN"))
    assert r.status == "ok" and r.precision == Precision.DISTRICT
    assert "徐汇区" in r.matched
    assert near(r, 121.44, 31.19, 8)
    # street level is out of reach offline, and the result says so
    assert "1900 Hongmei Road" in r.reason and "street" in r.reason


def test_chinese_address_resolves_to_finest_unit(geocoder):
    r = geocoder.geocode(AddressQuery("上海市浦东新区临港新片区", "Shanghai", "CN"))
    assert r.status == "ok" and r.precision == Precision.DISTRICT
    assert "浦东新区" in r.matched
    assert near(r, 121.54, 31.22, 10)


def test_hong_kong_district(geocoder):
    r = geocoder.geocode(AddressQuery("Sha Tin, Hong Kong", "Hong Kong", "HK"))
    assert r.status == "ok" and r.precision == Precision.DISTRICT
    assert r.matched.startswith("Sha Tin")
    assert near(r, 114.19, 22.38, 5)
    whole = geocoder.geocode(AddressQuery("Hong Kong", country="HK"))
    assert whole.precision == Precision.CITY and "香港" in whole.matched


def test_county_level_city_with_province(geocoder):
    r = geocoder.geocode(AddressQuery("Changshu, Jiangsu", "Changshu", "CN"))
    assert r.status == "ok" and r.precision == Precision.CITY
    assert "常熟市" in r.matched and "江苏省" in r.matched
    assert near(r, 120.75, 31.65, 8)


def test_town_unknown_to_gazetteer_falls_back_to_its_district(geocoder):
    r = geocoder.geocode(AddressQuery("Yizhuang, Daxing District, Beijing", "Beijing", "CN"))
    assert r.status == "ok" and r.precision == Precision.DISTRICT
    assert "大兴区" in r.matched
    assert near(r, 116.34, 39.73, 8)
    # the Yizhuang GeoNames knows is in Jiangsu: ignored, and the reason says so
    assert "Yizhuang" in r.reason


@pytest.mark.parametrize("query, local", [
    (AddressQuery("Xuhui", country="CN"), "徐汇区"),
    (AddressQuery("xuhui qu, shanghai shi"), "徐汇区"),
    (AddressQuery("徐汇区"), "徐汇区"),
    (AddressQuery("Pudong New Area", "Shanghai", "CN"), "浦东新区"),
    (AddressQuery("广东省深圳市南山区科技园"), "南山区"),
    (AddressQuery("Yanta District, Xi'an, Shaanxi", country="CN"), "雁塔区"),
    (AddressQuery("Xiaodian District, Taiyuan, Shanxi", country="CN"), "小店区"),
    (AddressQuery("", "Peking", "CN"), "北京市"),
])
def test_english_pinyin_and_chinese_forms(geocoder, query, local):
    r = geocoder.geocode(query)
    assert r.status == "ok", r.reason
    assert local in r.matched


def test_same_district_name_in_two_provinces_is_ambiguous(geocoder):
    r = geocoder.geocode(AddressQuery("Chaoyang District", country="CN"))
    assert r.status == "ambiguous"
    assert any("北京市朝阳区" in c for c in r.candidates)
    assert any("长春市朝阳区" in c for c in r.candidates)
    assert r.lon != r.lon  # NaN: nothing picked


@pytest.mark.parametrize("city, local, lon, lat", [
    ("Beijing", "北京市朝阳区", 116.44, 39.92),
    ("长春", "长春市朝阳区", 125.29, 43.83),
])
def test_context_resolves_the_ambiguity(geocoder, city, local, lon, lat):
    r = geocoder.geocode(AddressQuery("朝阳区", city, "CN"))
    assert r.status == "ok" and local in r.matched
    assert near(r, lon, lat, 10)


def test_several_gulou_districts_stay_ambiguous(geocoder):
    r = geocoder.geocode(AddressQuery("鼓楼区", country="CN"))
    assert r.status == "ambiguous" and len(r.candidates) >= 3
    assert "add the city" in r.reason
    ok = geocoder.geocode(AddressQuery("Gulou District, Fuzhou, Fujian", country="CN"))
    assert ok.status == "ok" and "福州市鼓楼区" in ok.matched


def test_prominent_namesake_is_taken_but_not_silently(geocoder):
    r = geocoder.geocode(AddressQuery("Wuxi", country="CN"))
    assert r.status == "ok" and "无锡市" in r.matched
    assert any("巫溪县" in c for c in r.candidates)
    assert "most prominent" in r.reason and r.confidence < 0.7


def test_country_narrows_namesakes(geocoder):
    gb = geocoder.geocode(AddressQuery("Cambridge", country="GB"))
    assert gb.status == "ok" and near(gb, 0.12, 52.2, 10)
    us = geocoder.geocode(AddressQuery("Cambridge", country="US"))
    assert us.status == "ambiguous"  # Massachusetts, Maryland, Ohio...: no state given
    assert all(", US admin1 " in c for c in us.candidates)
    world = geocoder.geocode(AddressQuery("Victoria", country="HK"))
    assert world.status == "ok" and world.lon == pytest.approx(114.16, abs=0.1)


def test_worldwide_cities_and_wards(geocoder):
    kyoto = geocoder.geocode(AddressQuery("Kyoto", "Kyoto", "JP"))
    assert kyoto.precision == Precision.CITY and near(kyoto, 135.77, 35.01, 10)
    ward = geocoder.geocode(AddressQuery("Minato, Tokyo", country="JP"))
    assert ward.precision == Precision.DISTRICT and near(ward, 139.75, 35.66, 5)
    assert geocoder.geocode(AddressQuery("Minato", country="JP")).status == "ambiguous"
    sg = geocoder.geocode(AddressQuery(city="Singapore", country="SG"))
    assert sg.precision == Precision.CITY and near(sg, 103.85, 1.29, 10)


def test_macau_and_taiwan(geocoder):
    mo = geocoder.geocode(AddressQuery("Macau", country="MO"))
    assert mo.status == "ok" and near(mo, 113.54, 22.19, 5)
    tw = geocoder.geocode(AddressQuery("Taipei", country="TW"))
    assert tw.status == "ok" and near(tw, 121.53, 25.05, 10)
    # China admits the SARs and Taiwan, which cpca lists as provinces
    assert geocoder.geocode(AddressQuery("澳门", country="CN")).status == "ok"


def test_province_only_has_province_precision(geocoder):
    r = geocoder.geocode(AddressQuery("Jiangsu", country="CN"))
    assert r.precision == Precision.PROVINCE and r.confidence < 0.5
    assert geocoder.geocode(AddressQuery("Shanghai")).precision == Precision.CITY


def test_unresolved_and_unknown_country(geocoder):
    r = geocoder.geocode(AddressQuery("Kingsoft Building", country="CN"))
    assert r.status == "unresolved" and "no known place name" in r.reason
    bad = geocoder.geocode(AddressQuery("Shanghai", country="XX"))
    assert bad.status == "unresolved" and "XX" in bad.reason
    assert geocoder.geocode(AddressQuery("Shanghai", country="China")).status == "ok"


def test_name_is_used_only_without_address_and_city(geocoder):
    assert geocoder.geocode(AddressQuery(name="Kyoto office", country="JP")).status == "ok"


def test_geonames_admin1_mapping_agrees_with_cpca():
    """Most GeoNames places of each admin1 code lie nearest to a county of the mapped
    province (checks the hand-written table against the data)."""
    gaz = load_gazetteer()
    t = gaz.places
    cn = [u for u in range(len(t)) if t.source[u] == "geonames" and t.country[u] == "CN"
          and t.admin1[u] in GEONAMES_CN_ADMIN1]
    _, county = gaz.nearest(gaz.lon[cn], gaz.lat[cn], within="counties")
    agree = sum(t.adcode[c][:2] == GEONAMES_CN_ADMIN1[t.admin1[u]] for u, c in zip(cn, county, strict=True))
    assert agree / len(cn) > 0.95
    assert t.kind[gaz.lookup("shaanxi")[0]] == Kind.PROVINCE
    assert t.local[gaz.lookup("shanxi")[0]] == "山西省"


def test_gazetteer_cache_location(monkeypatch, tmp_path):
    from sitescreen.geocode import gazetteer

    monkeypatch.setenv("SITESCREEN_GAZETTEER_CACHE", "off")
    assert gazetteer.cache_path("cities500") is None
    monkeypatch.setenv("SITESCREEN_GAZETTEER_CACHE", str(tmp_path))
    path = gazetteer.cache_path("cities500")
    assert path.parent == tmp_path and path.name.startswith("gazetteer-1-cities500-")


def test_nothing_is_loaded_at_import():
    import subprocess
    import sys

    code = ("import sitescreen.geocode as g\n"
            "from sitescreen.geocode import gazetteer\n"
            "g.OfflineGeocoder()\n"
            "assert not gazetteer.loaded_gazetteers(), 'loaded at import'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
