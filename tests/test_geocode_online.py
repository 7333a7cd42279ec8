"""Nominatim and AMap clients against a real local HTTP server answering the APIs' JSON.

Response bodies follow the providers' documented shapes: Nominatim ``/search`` with
``format=jsonv2`` (a list of places with string ``lat``/``lon``, ``place_rank``,
``importance``, ``display_name``) and AMap geocoding v3 (``status``, ``info``, ``infocode``,
``count``, ``geocodes`` with ``location`` "lon,lat" in GCJ-02 and empty fields as ``[]``).
"""

from __future__ import annotations

import logging
import math
import time

import pytest
from werkzeug.wrappers import Response

from sitescreen.data.fetch import retry_after_seconds
from sitescreen.errors import ConfigError, GeocoderAuthError
from sitescreen.geocode import (
    AddressQuery,
    AMapGeocoder,
    GeocodeCache,
    NominatimGeocoder,
    Precision,
    datum,
)
from sitescreen.geocode.gazetteer import haversine_km
from sitescreen.geocode.http import RetryPolicy, redact

KEY = "k3y-s3cr3t-0123456789abcdef"
FAST = RetryPolicy(max_retries=2, backoff=0.01, max_backoff=0.05, max_retry_after=5)

XUHUI = [{
    "place_id": 297305361, "licence": "Data © OpenStreetMap contributors, ODbL 1.0.",
    "osm_type": "relation", "osm_id": 1278213, "lat": "31.1884", "lon": "121.4365",
    "category": "boundary", "type": "administrative", "place_rank": 18, "importance": 0.52,
    "addresstype": "suburb", "name": "徐汇区",
    "display_name": "徐汇区, 上海市, 200030, 中国",
    "boundingbox": ["31.1166", "31.2317", "121.3956", "121.4807"],
}]
AMAP_OK = {
    "status": "1", "info": "OK", "infocode": "10000", "count": "1",
    "geocodes": [{
        "formatted_address": "上海市徐汇区虹梅路1900号", "country": "中国",
        "province": "上海市", "citycode": "021", "city": "上海市", "district": "徐汇区",
        "township": [], "neighborhood": {"name": [], "type": []},
        "building": {"name": [], "type": []}, "adcode": "310104", "street": "虹梅路",
        "number": "1900号", "location": "121.398373,31.168163", "level": "门牌号",
    }],
}
QUERY = AddressQuery("1900 Hongmei Road, Xuhui District, Shanghai", "Shanghai", "CN")


def nominatim(server, **kw) -> NominatimGeocoder:
    return NominatimGeocoder(base_url=server.url_for(""), min_interval=kw.pop("min_interval", 0),
                             timeout=kw.pop("timeout", 2), retry=kw.pop("retry", FAST), **kw)


def amap(server, **kw) -> AMapGeocoder:
    return AMapGeocoder(key=KEY, base_url=server.url_for(""), min_interval=0,
                        timeout=kw.pop("timeout", 2), retry=kw.pop("retry", FAST), **kw)


# ----------------------------------------------------------------------------- Nominatim
def test_nominatim_ok_sends_identifying_request(httpserver):
    httpserver.expect_request("/search", query_string={
        "q": "1900 Hongmei Road, Xuhui District, Shanghai", "format": "jsonv2", "limit": "5",
        "addressdetails": "0", "accept-language": "en", "countrycodes": "cn",
    }).respond_with_json(XUHUI)
    r = nominatim(httpserver, user_agent="acme-screening/2.0 (ops@acme.example)").geocode(QUERY)
    assert r.status == "ok" and r.provider == "nominatim" and r.datum == "WGS84"
    assert (r.lon, r.lat) == (121.4365, 31.1884)
    assert r.precision == Precision.DISTRICT  # place_rank 18
    assert r.matched.startswith("徐汇区")
    request, _ = httpserver.log[0]
    assert request.headers["User-Agent"] == "acme-screening/2.0 (ops@acme.example)"


def test_nominatim_default_user_agent_names_sitescreen(httpserver, monkeypatch):
    monkeypatch.delenv("SITESCREEN_USER_AGENT", raising=False)
    httpserver.expect_request("/search").respond_with_json(XUHUI)
    nominatim(httpserver).geocode(QUERY)
    assert httpserver.log[0][0].headers["User-Agent"].startswith("sitescreen/")


def test_nominatim_refuses_to_run_without_user_agent():
    with pytest.raises(ConfigError, match="User-Agent"):
        NominatimGeocoder(user_agent="")
    with pytest.raises(ConfigError, match="User-Agent"):
        NominatimGeocoder(user_agent="python-requests/2.32")
    with pytest.raises(ConfigError, match="1 request per second"):
        NominatimGeocoder(min_interval=0.2)


def test_nominatim_waits_between_requests(httpserver):
    times: list[float] = []

    def handler(request):
        times.append(time.monotonic())
        return Response('[]', content_type="application/json")

    httpserver.expect_request("/search").respond_with_handler(handler)
    g = nominatim(httpserver, min_interval=0.3)
    g.geocode(AddressQuery("a"))
    g.geocode(AddressQuery("b"))
    assert len(times) == 2 and times[1] - times[0] >= 0.2  # paced (server-side times jitter under load)


def test_nominatim_own_cache_sends_each_query_once(httpserver, tmp_path):
    httpserver.expect_request("/search").respond_with_json(XUHUI)
    g = nominatim(httpserver, cache=GeocodeCache(tmp_path / "c.sqlite"))
    first, second = g.geocode(QUERY), g.geocode(QUERY)
    assert first == second and first.status == "ok" and g.requests_sent == 1


def test_nominatim_429_then_success(httpserver):
    httpserver.expect_oneshot_request("/search").respond_with_data(
        "Too Many Requests", status=429, headers={"Retry-After": "0"})
    httpserver.expect_request("/search").respond_with_json(XUHUI)
    g = nominatim(httpserver)
    r = g.geocode(QUERY)
    assert r.status == "ok" and g.requests_sent == 2


def test_nominatim_500_gives_transient_unresolved_after_bounded_retries(httpserver):
    httpserver.expect_request("/search").respond_with_data("boom", status=500)
    g = nominatim(httpserver)
    r = g.geocode(QUERY)
    assert r.status == "unresolved" and r.transient
    assert "HTTP 500" in r.reason and "3 attempts" in r.reason
    assert g.requests_sent == 3  # 1 + max_retries


def test_nominatim_timeout(httpserver):
    def slow(request):
        time.sleep(0.6)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/search").respond_with_handler(slow)
    g = nominatim(httpserver, timeout=0.15, retry=RetryPolicy(max_retries=1, backoff=0.01))
    r = g.geocode(QUERY)
    assert r.status == "unresolved" and r.transient and "within 0.15 s" in r.reason


def test_nominatim_malformed_json(httpserver):
    httpserver.expect_request("/search").respond_with_data("<html>oops", content_type="text/html")
    r = nominatim(httpserver).geocode(QUERY)
    assert r.status == "unresolved" and "malformed JSON" in r.reason and r.transient


def test_nominatim_empty_result_is_a_definite_no_match(httpserver):
    httpserver.expect_request("/search").respond_with_json([])
    r = nominatim(httpserver).geocode(QUERY)
    assert r.status == "unresolved" and r.reason == "Nominatim found no match"
    assert not r.transient


def test_nominatim_403_is_an_auth_error(httpserver):
    httpserver.expect_request("/search").respond_with_data("blocked", status=403)
    with pytest.raises(GeocoderAuthError, match="User-Agent|user_agent"):
        nominatim(httpserver).geocode(QUERY)


def test_nominatim_far_apart_namesakes_are_ambiguous(httpserver):
    two = [dict(XUHUI[0], lat="31.30", lon="120.58", importance=0.6, place_rank=16,
                display_name="苏州市, 江苏省, 中国"),
           dict(XUHUI[0], lat="33.65", lon="116.96", importance=0.58, place_rank=16,
                display_name="宿州市, 安徽省, 中国")]
    httpserver.expect_request("/search").respond_with_json(two)
    r = nominatim(httpserver).geocode(AddressQuery("Suzhou", country="CN"))
    assert r.status == "ambiguous" and len(r.candidates) == 2
    assert math.isnan(r.lon)


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(future) <= 31
    p = RetryPolicy(backoff=1, max_backoff=4)
    assert [p.delay(a, None) for a in range(4)] == [1, 2, 4, 4]
    assert p.delay(0, 9.0) == 9.0  # Retry-After wins when longer


def test_retry_after_longer_than_allowed_gives_up_at_once(httpserver):
    httpserver.expect_request("/search").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "3600"})
    g = nominatim(httpserver)
    r = g.geocode(QUERY)
    assert r.status == "unresolved" and r.transient and "3600" in r.reason
    assert g.requests_sent == 1


# ---------------------------------------------------------------------------------- AMap
def test_amap_converts_gcj02_to_wgs84(httpserver):
    httpserver.expect_request("/v3/geocode/geo", query_string={
        "address": QUERY.address, "key": KEY, "output": "JSON", "city": "Shanghai",
    }).respond_with_json(AMAP_OK)
    r = amap(httpserver).geocode(QUERY)
    assert r.status == "ok" and r.datum == "GCJ-02" and r.precision == Precision.ADDRESS
    assert r.matched == "上海市徐汇区虹梅路1900号"
    # back to GCJ-02 gives AMap's numbers; the WGS 84 point is a few hundred metres away
    glon, glat = datum.wgs84_to_gcj02(r.lon, r.lat)
    assert float(glon) == pytest.approx(121.398373, abs=1e-6)
    assert float(glat) == pytest.approx(31.168163, abs=1e-6)
    assert 0.2 < float(haversine_km(r.lon, r.lat, 121.398373, 31.168163)) < 1.0


@pytest.mark.parametrize("level, precision", [("区县", Precision.DISTRICT),
                                              ("市", Precision.CITY),
                                              ("道路", Precision.STREET),
                                              ("省", Precision.PROVINCE)])
def test_amap_levels(httpserver, level, precision):
    body = {**AMAP_OK, "geocodes": [{**AMAP_OK["geocodes"][0], "level": level}]}
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(body)
    assert amap(httpserver).geocode(QUERY).precision == precision


def test_amap_rejected_key_never_shows_the_key(httpserver, caplog):
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(
        {"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"})
    g = amap(httpserver)
    with pytest.raises(GeocoderAuthError) as info:
        g.geocode(QUERY)
    assert "INVALID_USER_KEY" in str(info.value) and "10001" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(g)
    assert info.value.__cause__ is None
    # urllib3 logs request URLs at DEBUG: redacted (werkzeug is the test server's own log)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert KEY not in ours
    assert "key=***" in ours


@pytest.mark.parametrize("code", ["10003", "10044"])
def test_amap_quota_is_an_auth_error(httpserver, code):
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(
        {"status": "0", "info": "DAILY_QUERY_OVER_LIMIT", "infocode": code})
    with pytest.raises(GeocoderAuthError, match=code):
        amap(httpserver).geocode(QUERY)


def test_amap_qps_limit_is_retried(httpserver):
    httpserver.expect_oneshot_request("/v3/geocode/geo").respond_with_json(
        {"status": "0", "info": "CUQPS_HAS_EXCEEDED_THE_LIMIT", "infocode": "10021"})
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(AMAP_OK)
    g = amap(httpserver)
    assert g.geocode(QUERY).status == "ok" and g.requests_sent == 2


def test_amap_empty_result(httpserver):
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(
        {"status": "1", "info": "OK", "infocode": "10000", "count": "0", "geocodes": []})
    r = amap(httpserver).geocode(QUERY)
    assert r.status == "unresolved" and r.reason == "AMap found no match" and not r.transient


def test_amap_malformed_location_and_json(httpserver):
    bad = {**AMAP_OK, "geocodes": [{**AMAP_OK["geocodes"][0], "location": []}]}
    httpserver.expect_oneshot_request("/v3/geocode/geo").respond_with_json(bad)
    r = amap(httpserver).geocode(QUERY)
    assert r.status == "unresolved" and "no valid location" in r.reason
    httpserver.expect_request("/v3/geocode/geo").respond_with_data("{not json")
    r = amap(httpserver).geocode(QUERY)
    assert r.status == "unresolved" and "malformed JSON" in r.reason


def test_amap_connection_error_is_redacted():
    g = AMapGeocoder(key=KEY, base_url="http://127.0.0.1:9", min_interval=0, timeout=1,
                     retry=RetryPolicy(max_retries=1, backoff=0.01))
    r = g.geocode(QUERY)
    assert r.status == "unresolved" and r.transient
    assert "127.0.0.1" in r.reason and KEY not in r.reason


def test_amap_outside_china_is_not_sent(httpserver):
    g = amap(httpserver)
    r = g.geocode(AddressQuery("Chiyoda, Tokyo", country="JP"))
    assert r.status == "unresolved" and "China only" in r.reason and g.requests_sent == 0


def test_amap_key_from_environment(monkeypatch):
    monkeypatch.delenv("SITESCREEN_AMAP_KEY", raising=False)
    with pytest.raises(ConfigError, match="SITESCREEN_AMAP_KEY"):
        AMapGeocoder()
    monkeypatch.setenv("SITESCREEN_AMAP_KEY", KEY)
    assert KEY not in repr(AMapGeocoder())


def test_redact_hides_key_parameters():
    assert redact("GET /v3/geocode/geo?address=x&key=abc123&output=JSON") == \
        "GET /v3/geocode/geo?address=x&key=***&output=JSON"
    assert redact("token s3cr3t here", ["s3cr3t"]) == "token *** here"
