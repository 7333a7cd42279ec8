"""Online geocoders: Nominatim (OpenStreetMap) and AMap (Gaode).

Both return :class:`~sitescreen.geocode.GeocodeResult` in WGS 84 and say which datum the
provider answered in. Network trouble (timeouts, 5xx, malformed answers) gives an
"unresolved" result marked ``transient`` (not cached, so the next run asks again); a refused
key or exhausted quota raises :class:`~sitescreen.errors.GeocoderAuthError`, because every
following request would fail the same way.

Nominatim
    ``GET {base_url}/search?q=...&format=jsonv2``. The public server's usage policy
    (https://operations.osmfoundation.org/policies/nominatim/) asks for at most one request
    per second, an identifying User-Agent and caching of results: this client waits at least
    ``min_interval`` (1 s) between requests, refuses to run without a User-Agent, and is
    meant to be used with :class:`~sitescreen.geocode.GeocodeCache`.
AMap
    ``GET {base_url}/v3/geocode/geo?address=...&city=...&key=...`` (AMap Web Service API,
    geocoding v3). Answers ``status`` "1"/"0", ``info``, ``infocode``, ``count`` and
    ``geocodes`` with ``location`` "lon,lat" in GCJ-02, converted here to WGS 84
    (:mod:`sitescreen.geocode.datum`). The key comes from ``key=`` or the environment
    variable ``SITESCREEN_AMAP_KEY``; it never appears in logs, errors, cache or outputs.
"""

from __future__ import annotations

import math
import os
from typing import Any

import requests

from sitescreen import __version__
from sitescreen.errors import ConfigError, GeocoderAuthError
from sitescreen.geocode import datum
from sitescreen.geocode.cache import GeocodeCache
from sitescreen.geocode.gazetteer import km_between
from sitescreen.geocode.http import HttpFailure, JsonClient, RetryPolicy, redact
from sitescreen.geocode.model import AddressQuery, GeocodeResult, Precision

__all__ = ["NominatimGeocoder", "AMapGeocoder", "DEFAULT_USER_AGENT", "AMAP_KEY_ENV",
           "RetryPolicy"]

DEFAULT_USER_AGENT = f"sitescreen/{__version__} (climate risk screening of operating sites)"
AMAP_KEY_ENV = "SITESCREEN_AMAP_KEY"
USER_AGENT_ENV = "SITESCREEN_USER_AGENT"
PUBLIC_NOMINATIM = "nominatim.openstreetmap.org"

_BASE_CONFIDENCE = {
    Precision.ADDRESS: 0.9, Precision.STREET: 0.85, Precision.DISTRICT: 0.75,
    Precision.CITY: 0.65, Precision.PROVINCE: 0.4, Precision.COUNTRY: 0.2,
}
#: A second answer this much as important and this far away makes the query ambiguous.
_AMBIGUOUS_IMPORTANCE = 0.9
_AMBIGUOUS_KM = 50.0


def _valid_lonlat(lon: float, lat: float) -> bool:
    return math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90


# --------------------------------------------------------------------------- Nominatim
def _nominatim_precision(item: dict[str, Any]) -> Precision:
    """Precision from Nominatim's ``place_rank`` (address ranks, Nominatim docs
    "Place Ranking": 4 country, 8 state, 12-16 county/city, 17-25 suburb/village/
    neighbourhood, 26-27 street, 28-30 house and POI)."""
    try:
        rank = int(item.get("place_rank", 0))
    except (TypeError, ValueError):
        rank = 0
    if rank >= 28:
        return Precision.ADDRESS
    if rank >= 26:
        return Precision.STREET
    if rank >= 17:
        return Precision.DISTRICT
    if rank >= 12:
        return Precision.CITY
    if rank >= 5:
        return Precision.PROVINCE
    if rank >= 1:
        return Precision.COUNTRY
    return Precision.NONE


class NominatimGeocoder:
    """Nominatim search (OpenStreetMap); see the module docstring for the usage policy.

    Parameters
    ----------
    base_url : server root (default the public OSM server; a self-hosted one may be faster).
    user_agent : identifying User-Agent (default ``sitescreen/<version> (...)`` or
        ``$SITESCREEN_USER_AGENT``); an empty one is refused.
    email : contact address sent as ``email=`` (recommended by the policy for bulk use).
    min_interval : seconds between requests; at least 1 against the public server.
    timeout, retry : see :class:`~sitescreen.geocode.http.JsonClient`.
    limit : answers asked for (to notice namesakes).
    accept_language : language of returned names.
    cache : answers already received are taken from it, and new ones stored (the usage
        policy asks clients to cache); :func:`~sitescreen.geocode.geocode_sites` also caches
        under the same key, so either way a query is sent once.

    Raises
    ------
    ConfigError
        For an empty User-Agent, or ``min_interval`` below 1 s on the public server.
    """

    name = "nominatim"
    version = "1"

    def __init__(self, *, base_url: str = f"https://{PUBLIC_NOMINATIM}",
                 user_agent: str | None = None, email: str | None = None,
                 min_interval: float = 1.0, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, limit: int = 5,
                 accept_language: str = "en", session: requests.Session | None = None,
                 cache: GeocodeCache | None = None) -> None:
        ua = user_agent if user_agent is not None else os.environ.get(USER_AGENT_ENV,
                                                                      DEFAULT_USER_AGENT)
        if not ua or not ua.strip() or ua.lower().startswith(("python-requests", "curl/")):
            raise ConfigError(
                f"Nominatim needs an identifying User-Agent, got {ua!r}; pass user_agent= "
                f"or set {USER_AGENT_ENV} (e.g. 'myorg-sitescreen/1.0 (you@example.org)')")
        self.base_url = base_url.rstrip("/")
        if PUBLIC_NOMINATIM in self.base_url and min_interval < 1.0:
            raise ConfigError(
                f"the public Nominatim server allows at most 1 request per second; "
                f"min_interval={min_interval:g} is too short (use >= 1 or your own server)")
        self.user_agent = ua
        self.email = email
        self.limit = max(1, int(limit))
        self.accept_language = accept_language
        self.cache = cache
        self._client = JsonClient(user_agent=ua, timeout=timeout, retry=retry,
                                  min_interval=min_interval, session=session)

    def __repr__(self) -> str:
        return f"NominatimGeocoder(base_url={self.base_url!r})"

    @property
    def requests_sent(self) -> int:
        return self._client.requests_sent

    def geocode(self, query: AddressQuery) -> GeocodeResult:
        cache_key = f"{self.name}@{self.version}"
        if self.cache is not None:
            hit = self.cache.get(cache_key, query)
            if hit is not None:
                return hit
        result = self._lookup(query)
        if self.cache is not None:
            self.cache.put(cache_key, query, result)
        return result

    def _lookup(self, query: AddressQuery) -> GeocodeResult:
        text = query.text
        if not text:
            return GeocodeResult.unresolved(self.name, text, "nothing to look up: no address, "
                                            "city or name")
        params: dict[str, Any] = {"q": text, "format": "jsonv2", "limit": self.limit,
                                  "addressdetails": 0, "accept-language": self.accept_language}
        if query.country:
            params["countrycodes"] = query.country.lower()
        if self.email:
            params["email"] = self.email
        try:
            data = self._client.get_json(f"{self.base_url}/search", params)
        except HttpFailure as exc:
            if exc.status in (401, 403):
                raise GeocoderAuthError(
                    f"Nominatim at {self.base_url} refused the request (HTTP {exc.status}); "
                    "the usage policy blocks anonymous or too frequent clients: set an "
                    "identifying user_agent, keep min_interval >= 1 s, or use your own "
                    "server") from None
            return GeocodeResult.unresolved(self.name, text, f"Nominatim: {exc.message}",
                                            transient=exc.transient)
        return self._parse(data, text)

    def _parse(self, data: Any, text: str) -> GeocodeResult:
        if isinstance(data, dict) and "error" in data:
            return GeocodeResult.unresolved(self.name, text,
                                            f"Nominatim error: {redact(data['error'])}")
        if not isinstance(data, list):
            return GeocodeResult.unresolved(
                self.name, text, f"Nominatim answered {type(data).__name__}, not a list",
                transient=True)
        items = []
        for item in data:
            try:
                lon, lat = float(item["lon"]), float(item["lat"])
            except (KeyError, TypeError, ValueError):
                continue
            if _valid_lonlat(lon, lat):
                items.append((lon, lat, item))
        if not items:
            reason = "Nominatim found no match" if not data else \
                "Nominatim answers had no valid coordinates"
            return GeocodeResult.unresolved(self.name, text, reason)
        lon, lat, best = items[0]
        names = [str(i.get("display_name", "")) for _, _, i in items]
        imp0 = float(best.get("importance") or 0.0)
        rivals = [k for k, (lo, la, it) in enumerate(items[1:], start=1)
                  if float(it.get("importance") or 0.0) >= _AMBIGUOUS_IMPORTANCE * imp0
                  and km_between(lon, lat, lo, la) > _AMBIGUOUS_KM]
        if rivals:
            cands = tuple(f"{names[k]} @ {items[k][0]:.4f},{items[k][1]:.4f}"
                          for k in [0, *rivals])
            return GeocodeResult(
                status="ambiguous", provider=self.name, query=text, candidates=cands,
                reason=f"Nominatim found {len(cands)} equally prominent places far apart; "
                       "add the city or district")
        precision = _nominatim_precision(best)
        return GeocodeResult(
            status="ok", lon=lon, lat=lat, provider=self.name, precision=precision,
            confidence=_BASE_CONFIDENCE.get(precision, 0.3), datum=datum.WGS84, query=text,
            matched=names[0])


# -------------------------------------------------------------------------------- AMap
#: AMap ``level`` values (geocoding v3 documentation) to precision.
AMAP_LEVELS = {
    "国家": Precision.COUNTRY, "省": Precision.PROVINCE, "市": Precision.CITY,
    "区县": Precision.DISTRICT, "开发区": Precision.DISTRICT, "乡镇": Precision.DISTRICT,
    "村庄": Precision.DISTRICT, "热点商圈": Precision.DISTRICT,
    "兴趣点": Precision.ADDRESS, "门牌号": Precision.ADDRESS, "单元号": Precision.ADDRESS,
    "楼栋": Precision.ADDRESS, "道路": Precision.STREET, "道路交叉路口": Precision.STREET,
    "公交站台、地铁站": Precision.STREET, "公交站台": Precision.STREET,
    "地铁站": Precision.STREET,
}
#: infocodes meaning the key, its permissions or its quota are the problem (AMap error codes).
AMAP_AUTH_INFOCODES = {
    "10001": "INVALID_USER_KEY", "10003": "DAILY_QUERY_OVER_LIMIT",
    "10005": "INVALID_USER_IP", "10006": "INVALID_USER_DOMAIN",
    "10007": "INVALID_USER_SIGNATURE", "10008": "INVALID_USER_SCODE",
    "10009": "USERKEY_PLAT_NOMATCH", "10010": "IP_QUERY_OVER_LIMIT",
    "10012": "INSUFFICIENT_PRIVILEGES", "10013": "USER_KEY_RECYCLED",
    "10029": "ABROAD_DAILY_QUERY_OVER_LIMIT", "10041": "NO_EFFECTIVE_INTERFACE",
    "10044": "USER_DAILY_QUERY_OVER_LIMIT", "10045": "USER_ABROAD_DAILY_QUERY_OVER_LIMIT",
}
#: infocodes worth retrying after a pause (rate limits, server busy).
AMAP_RETRY_INFOCODES = {"10004", "10014", "10015", "10016", "10019", "10020", "10021"}
#: AMap covers China (incl. Hong Kong, Macau and Taiwan).
AMAP_COUNTRIES = ("CN", "HK", "MO", "TW")


def _s(value: Any) -> str:
    """AMap sends empty fields as [] rather than ""."""
    if value is None or isinstance(value, list | dict):
        return ""
    return str(value)


class AMapGeocoder:
    """AMap (Gaode) geocoding v3; see the module docstring.

    Parameters
    ----------
    key : Web Service API key; default ``$SITESCREEN_AMAP_KEY``.
    base_url : server root (default ``https://restapi.amap.com``).
    min_interval : seconds between requests (AMap limits queries per second per key).
    timeout, retry, session : see :class:`~sitescreen.geocode.http.JsonClient`.
    user_agent : sent with requests.

    Raises
    ------
    ConfigError
        When no key is given and ``SITESCREEN_AMAP_KEY`` is not set.
    """

    name = "amap"
    version = "1"

    def __init__(self, *, key: str | None = None, base_url: str = "https://restapi.amap.com",
                 min_interval: float = 0.05, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, user_agent: str | None = None,
                 session: requests.Session | None = None) -> None:
        key = key if key is not None else os.environ.get(AMAP_KEY_ENV, "")
        if not key.strip():
            raise ConfigError(
                f"AMap needs a Web Service API key: pass key= or set {AMAP_KEY_ENV}")
        self._key = key.strip()
        self.base_url = base_url.rstrip("/")
        ua = user_agent or os.environ.get(USER_AGENT_ENV, DEFAULT_USER_AGENT)
        self._client = JsonClient(user_agent=ua, timeout=timeout, retry=retry,
                                  min_interval=min_interval, secrets=[self._key],
                                  session=session)

    def __repr__(self) -> str:  # never show the key
        return f"AMapGeocoder(base_url={self.base_url!r}, key=***)"

    @property
    def requests_sent(self) -> int:
        return self._client.requests_sent

    def geocode(self, query: AddressQuery) -> GeocodeResult:
        text = query.text
        if query.country and query.country not in AMAP_COUNTRIES:
            return GeocodeResult.unresolved(
                self.name, text, f"AMap covers China only; country is {query.country}")
        address = query.address or query.city or query.name
        if not address:
            return GeocodeResult.unresolved(self.name, text, "nothing to look up: no address, "
                                            "city or name")
        params = {"address": address, "key": self._key, "output": "JSON"}
        if query.city:
            params["city"] = query.city
        try:
            data = self._client.get_json(f"{self.base_url}/v3/geocode/geo", params,
                                         retry_payload=self._retry_reason)
        except HttpFailure as exc:
            if exc.status in (401, 403):
                raise GeocoderAuthError(
                    f"AMap refused the request (HTTP {exc.status}); check the key in "
                    f"{AMAP_KEY_ENV}") from None
            return GeocodeResult.unresolved(self.name, text, f"AMap: {exc.message}",
                                            transient=exc.transient)
        return self._parse(data, text)

    @staticmethod
    def _retry_reason(data: Any) -> str | None:
        if isinstance(data, dict) and _s(data.get("status")) == "0" and \
                _s(data.get("infocode")) in AMAP_RETRY_INFOCODES:
            return f"AMap is busy or rate-limited ({_s(data.get('info'))}, " \
                   f"infocode {_s(data.get('infocode'))})"
        return None

    def _parse(self, data: Any, text: str) -> GeocodeResult:
        if not isinstance(data, dict) or "status" not in data:
            return GeocodeResult.unresolved(self.name, text,
                                            "AMap answer is not a geocoding response",
                                            transient=True)
        info = redact(_s(data.get("info")), [self._key])
        code = _s(data.get("infocode"))
        if _s(data.get("status")) != "1":
            if code in AMAP_AUTH_INFOCODES:
                raise GeocoderAuthError(
                    f"AMap refused the key: {info or AMAP_AUTH_INFOCODES[code]} (infocode "
                    f"{code}); check {AMAP_KEY_ENV}, its daily quota, its allowed IPs and that "
                    "it is a Web Service key")
            transient = code in AMAP_RETRY_INFOCODES or code.startswith("3")
            return GeocodeResult.unresolved(self.name, text,
                                            f"AMap error {info} (infocode {code})",
                                            transient=transient)
        geocodes = data.get("geocodes")
        if not isinstance(geocodes, list) or not geocodes:
            return GeocodeResult.unresolved(self.name, text, "AMap found no match")
        found = []
        for g in geocodes:
            if not isinstance(g, dict):
                continue
            try:
                glon, glat = (float(v) for v in _s(g.get("location")).split(","))
            except ValueError:
                continue
            if _valid_lonlat(glon, glat):
                found.append((glon, glat, g))
        if not found:
            return GeocodeResult.unresolved(self.name, text,
                                            "AMap answers had no valid location", transient=True)
        # GCJ-02 -> WGS 84 for all answers at once.
        wlon, wlat = datum.gcj02_to_wgs84([f[0] for f in found], [f[1] for f in found])
        lon, lat, best = float(wlon[0]), float(wlat[0]), found[0][2]
        labels = [_s(g.get("formatted_address")) or
                  "".join(_s(g.get(k)) for k in ("province", "city", "district"))
                  for _, _, g in found]
        rivals = [k for k in range(1, len(found))
                  if km_between(lon, lat, float(wlon[k]), float(wlat[k])) > _AMBIGUOUS_KM]
        if rivals:
            cands = tuple(f"{labels[k]} @ {wlon[k]:.4f},{wlat[k]:.4f}" for k in [0, *rivals])
            return GeocodeResult(status="ambiguous", provider=self.name, query=text,
                                 datum=datum.GCJ02, candidates=cands,
                                 reason=f"AMap found {len(cands)} places far apart; add the "
                                        "city or district")
        level = _s(best.get("level"))
        precision = AMAP_LEVELS.get(level, Precision.CITY)
        confidence = _BASE_CONFIDENCE.get(precision, 0.3)
        reason = ""
        if level not in AMAP_LEVELS:
            confidence = 0.3
            reason = f"AMap match level {level or 'missing'!r} is unknown; taken as city"
        return GeocodeResult(status="ok", lon=lon, lat=lat, provider=self.name,
                             precision=precision, confidence=confidence, datum=datum.GCJ02,
                             query=text, matched=labels[0], reason=reason)
