"""Value types of the geocoding package: query keys, result round trips."""

from __future__ import annotations

import math

import pytest

from sitescreen.geocode import AddressQuery, GeocodeResult, Precision


def test_query_key_ignores_case_width_and_spacing():
    a = AddressQuery("1900  Hongmei Road，Xuhui District", "Shanghai", "cn", name="HQ")
    b = AddressQuery("1900 hongmei road, xuhui district", " SHANGHAI ", "CN", name="Lab")
    assert a.key == b.key == "1900 hongmei road, xuhui district | shanghai | cn"
    assert a.country == "CN"


def test_query_key_uses_name_only_without_address_or_city():
    assert AddressQuery(name="Kyoto lab").key == " |  |  | kyoto lab"
    assert AddressQuery("Kyoto", name="Kyoto lab").key == "kyoto |  | "


def test_query_text_adds_city_once():
    assert AddressQuery("Nanshan District, Shenzhen", "Shenzhen").text == \
        "Nanshan District, Shenzhen"
    assert AddressQuery("上海市浦东新区", "Shanghai").text == "上海市浦东新区, Shanghai"
    assert AddressQuery(city="Kyoto").text == "Kyoto"
    assert AddressQuery(float("nan"), None, None).is_empty


def test_result_round_trip_keeps_zero_coordinates():
    r = GeocodeResult("ok", 0.0, 51.5, provider="nominatim", precision=Precision.CITY,
                      confidence=0.65, query="Greenwich", matched="Greenwich, London",
                      candidates=("a", "b"))
    d = r.to_dict()
    assert d["lon"] == 0.0 and d["precision"] == "city" and d["candidates"] == ["a", "b"]
    assert GeocodeResult.from_dict(d) == r


def test_unresolved_round_trip_omits_nan():
    r = GeocodeResult.unresolved("amap", "x", "AMap found no match")
    d = r.to_dict()
    assert "lon" not in d and d["status"] == "unresolved"
    back = GeocodeResult.from_dict(d)
    assert math.isnan(back.lon) and back.reason == "AMap found no match"
    assert back == r and hash(back) == hash(r)


def test_result_validation():
    with pytest.raises(ValueError, match="status"):
        GeocodeResult("maybe")
    with pytest.raises(ValueError, match="unknown GeocodeResult keys"):
        GeocodeResult.from_dict({"status": "ok", "colour": "red"})
    assert GeocodeResult("ok", confidence=3.0).confidence == 1.0
