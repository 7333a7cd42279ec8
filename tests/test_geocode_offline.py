"""Offline geocoder: address forms, hierarchy, ambiguity, country narrowing.

Expected positions are the seats of the administrative units (from general knowledge of the
cities, rounded), checked within a tolerance; expected names are the official Chinese ones.
"""

from __future__ import annotations

import math

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
    # The Lin-gang Special Area is a zone of the packaged table: placed at its own location
    # (Nanhui New City), 45 km from Pudong's seat, not at the district's seat.
    assert near(r, 121.933, 30.900, 2)


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


def test_development_zone_in_its_district_is_placed_at_the_zone(geocoder):
    # GeoNames knows only a Yizhuang in Jiangsu; the packaged zone table places Beijing's
    # Yizhuang (the Economic-Technological Development Area) in Daxing, at the zone itself.
    r = geocoder.geocode(AddressQuery("Yizhuang, Daxing District, Beijing", "Beijing", "CN"))
    assert r.status == "ok" and r.precision == Precision.DISTRICT
    assert "大兴区" in r.matched and "北京经济技术开发区" in r.matched
    assert near(r, 116.50, 39.80, 3)
    assert "ignored" not in r.reason


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
    assert path.parent == tmp_path
    assert path.name.startswith(f"gazetteer-{gazetteer.GAZETTEER_VERSION}-cities500-")


def test_nothing_is_loaded_at_import():
    import subprocess
    import sys

    code = ("import sitescreen.geocode as g\n"
            "from sitescreen.geocode import gazetteer\n"
            "g.OfflineGeocoder()\n"
            "assert not gazetteer.loaded_gazetteers(), 'loaded at import'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- development zones, unmatched parts, typos ---------------------------------------------------

_ZONES = [  # (address, city, expected Chinese name in the match, lon, lat)
    ("北京经济技术开发区", "", "北京经济技术开发区", 116.50, 39.80),
    ("Beijing E-Town", "Beijing", "北京经济技术开发区", 116.50, 39.80),
    ("Suzhou Industrial Park", "Suzhou", "苏州工业园区", 120.658, 31.293),
    ("深圳市南山区科技园", "", "深圳市南山区科技园", 113.95, 22.54),
    ("Building 5, Zhangjiang Hi-Tech Park, Pudong", "Shanghai", "张江高科技园区", 121.588, 31.19),
    ("Lingang Special Area", "Shanghai", "临港新片区", 121.933, 30.90),
    ("Future Sci-Tech City, Yuhang District", "Hangzhou", "杭州未来科技城", 120.02, 30.28),
    ("Chengdu Hi-tech Zone", "Chengdu", "成都高新技术产业开发区", 104.07, 30.56),
]


@pytest.mark.parametrize(("address", "city", "local", "lon", "lat"), _ZONES)
def test_development_zones_resolve_to_their_own_location(geocoder, address, city, local, lon,
                                                         lat):
    r = geocoder.geocode(AddressQuery(address, city, "CN"))
    assert r.status == "ok" and r.precision == Precision.DISTRICT, r
    assert local in r.matched
    assert near(r, lon, lat, 0.5)
    assert "not matched" not in r.reason and "ignored" not in r.reason


def test_suzhou_industrial_park_decides_which_suzhou(geocoder):
    bare = geocoder.geocode(AddressQuery("", "Suzhou", "CN"))
    assert bare.status == "ambiguous" and len(bare.candidates) >= 2
    r = geocoder.geocode(AddressQuery("Suzhou Industrial Park, Suzhou, China", "", "China"))
    assert r.status == "ok" and "江苏省苏州市" in r.matched


def test_zone_table_rows_have_a_source_and_lie_near_their_county():
    import csv

    from sitescreen.geocode.gazetteer import ZONES_FILE

    gaz = load_gazetteer()
    lines = [ln for ln in ZONES_FILE.read_text("utf-8").splitlines() if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert len(rows) >= 7
    p = gaz.places
    for row in rows:
        assert row["source"].strip(), row["name_zh"]
        [county] = [u for u in gaz.lookup(row["name_zh"]) if p.source[u] == "zones"]
        parent = [u for u in gaz.ancestors(county) if p.adcode[u] == row["adcode"]]
        assert parent, row["name_zh"]
        # a zone lies within its county-level unit (Lingang is 45 km from Pudong's seat)
        assert haversine_km(float(row["lon"]), float(row["lat"]), p.lon[parent[0]],
                            p.lat[parent[0]]) < 60, row["name_zh"]


def test_every_unmatched_address_part_is_named(geocoder):
    r = geocoder.geocode(AddressQuery("深圳市南山区神秘园", "", "CN"))
    assert r.status == "ok" and "南山区" in r.matched
    assert "not matched: '神秘园'" in r.reason
    r = geocoder.geocode(AddressQuery("Quantum Valley Campus, Xuhui District", "Shanghai", "CN"))
    assert "not matched: 'Quantum Valley Campus'" in r.reason
    # house numbers, floors and "Tower" are street or building detail, not unmatched places
    r = geocoder.geocode(AddressQuery("Tower B, Xuhui District", "Shanghai", "CN"))
    assert "not matched" not in r.reason


@pytest.mark.parametrize(("city", "suggestion"), [("Tianjn", "Tianjin"),
                                                  ("Hangzhuo", "Hangzhou")])
def test_typos_get_a_suggestion_never_a_silent_pick(geocoder, city, suggestion):
    r = geocoder.geocode(AddressQuery("", city, "CN"))
    assert r.status == "unresolved" and math.isnan(r.lon)
    assert f"did you mean '{suggestion}" in r.reason


def test_typo_beside_a_known_district_is_named_with_its_suggestion(geocoder):
    r = geocoder.geocode(AddressQuery("Xuhui District, Shanghaj", "", "CN"))
    assert r.status == "ok" and "徐汇区" in r.matched
    assert "'Shanghaj' (did you mean 'Shanghai" in r.reason
