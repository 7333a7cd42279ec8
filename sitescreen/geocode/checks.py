"""Plausibility flags for final site coordinates (given, pinned or geocoded alike).

Flags
-----
no_coordinates
    lon or lat is missing.
invalid_range
    lon outside [-180, 180] or lat outside [-90, 90].
null_island
    within about 1 km of (0, 0), the classic sign of a failed geocode written as zeros.
outside_country
    the point is not in the stated country. Without boundary polygons the test uses the
    gazetteer: it is outside when the nearest place of the stated country is more than
    ``country_km`` (150 km) away, or more than 30 km away and over three times as far as the
    nearest place of another country. Coarse near borders, decisive for a point in the wrong
    country or at sea. China's stated sites may lie in Hong Kong, Macau or Taiwan.
swapped_lat_lon
    outside the stated country (or out of range) as given, inside it with lon and lat
    swapped.
far_from_city
    more than ``far_km`` (50 km) from the gazetteer position of the stated city, unless the
    nearest Chinese county seat belongs to that city (municipalities such as Chongqing reach
    far beyond 50 km).
unknown_country
    the stated country is not an ISO 3166-1 code or country name the gazetteer knows.

Only sites with a stated country get the country checks, and only sites with a stated city
that resolves to a city or district get ``far_from_city``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike

from sitescreen.geocode.gazetteer import (
    GREATER_CHINA,
    Gazetteer,
    Kind,
    haversine_km,
    load_gazetteer,
)
from sitescreen.geocode.model import AddressQuery, Precision, normalise_text
from sitescreen.geocode.offline import OfflineGeocoder

__all__ = ["LocationFlag", "location_flags", "outside_country"]

_NULL_ISLAND_DEG = 0.01  # about 1 km
_BORDER_KM = 30.0
_BORDER_RATIO = 3.0


class LocationFlag(StrEnum):
    NO_COORDINATES = "no_coordinates"
    INVALID_RANGE = "invalid_range"
    NULL_ISLAND = "null_island"
    SWAPPED = "swapped_lat_lon"
    OUTSIDE_COUNTRY = "outside_country"
    FAR_FROM_CITY = "far_from_city"
    UNKNOWN_COUNTRY = "unknown_country"


def _in_range(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (np.abs(lon) <= 180) & (np.abs(lat) <= 90)


def outside_country(lon: ArrayLike, lat: ArrayLike, country: str, *,
                    country_km: float = 150.0, gazetteer: Gazetteer | None = None) -> np.ndarray:
    """True where (lon, lat) is not in ``country`` (ISO alpha-2); see the module docstring.

    Points out of range or NaN are reported outside.
    """
    gaz = gazetteer or load_gazetteer()
    lon = np.atleast_1d(np.asarray(lon, dtype="float64"))
    lat = np.atleast_1d(np.asarray(lat, dtype="float64"))
    ok = _in_range(lon, lat) & np.isfinite(lon) & np.isfinite(lat)
    members = GREATER_CHINA if country == "CN" else (country,)
    own = np.full(lon.shape, np.inf)
    for cc in members:
        d, _ = gaz.nearest(np.where(ok, lon, np.nan), np.where(ok, lat, np.nan), within=cc)
        own = np.minimum(own, d)
    anywhere, uid = gaz.nearest(np.where(ok, lon, np.nan), np.where(ok, lat, np.nan))
    country_of = np.asarray(gaz.places.country, dtype=object)[np.maximum(uid, 0)]
    foreign_nearest = (uid >= 0) & ~np.isin(country_of, list(members))
    # Distance to the nearest place of another country: the nearest place overall when it is
    # foreign; otherwise at least as far as the nearest own place (so the ratio test passes).
    other = np.where(foreign_nearest, anywhere, own)
    with np.errstate(invalid="ignore"):
        out = (own > country_km) | ((own > _BORDER_KM) & (own > _BORDER_RATIO * other))
    return out | ~ok


def location_flags(lon: ArrayLike, lat: ArrayLike, *, country: Sequence[object] | None = None,
                   city: Sequence[object] | None = None, far_km: float = 50.0,
                   country_km: float = 150.0,
                   geocoder: OfflineGeocoder | None = None) -> list[tuple[str, ...]]:
    """Flags (see the module docstring) for each site, in input order.

    Parameters
    ----------
    lon, lat : WGS 84 degrees, NaN when unknown.
    country : stated ISO alpha-2 codes (or names), "" or None when unknown.
    city : stated city names.
    far_km : distance from the stated city beyond which a site is flagged.
    country_km : see :func:`outside_country`.
    geocoder : offline geocoder used to place the stated cities (default: a new one).

    Returns
    -------
    list of tuple of str
        One tuple of :class:`LocationFlag` values per site (empty when nothing is wrong).

    Examples
    --------
    >>> location_flags([0.0, float("nan")], [0.0, 1.0])
    [('null_island',), ('no_coordinates',)]
    """
    lon = np.atleast_1d(np.asarray(lon, dtype="float64"))
    lat = np.atleast_1d(np.asarray(lat, dtype="float64"))
    n = len(lon)
    # Text is normalised once per distinct value, not once per site.
    countries = _each_distinct(country, n, lambda c: "" if c is None else normalise_text(c).upper())
    cities = _each_distinct(city, n, lambda c: "" if c is None else str(c))
    flags: dict[int, list[str]] = {}  # the flagged sites only

    def flag(mask: np.ndarray, what: LocationFlag) -> None:
        for i in np.flatnonzero(mask).tolist():
            flags.setdefault(i, []).append(what.value)

    def listed() -> list[tuple[str, ...]]:
        return [tuple(flags[i]) if i in flags else () for i in range(n)]

    finite = np.isfinite(lon) & np.isfinite(lat)
    in_range = _in_range(lon, lat) & finite
    flag(~finite, LocationFlag.NO_COORDINATES)
    flag(finite & ~in_range, LocationFlag.INVALID_RANGE)
    with np.errstate(invalid="ignore"):
        null = finite & (np.abs(lon) < _NULL_ISLAND_DEG) & (np.abs(lat) < _NULL_ISLAND_DEG)
    flag(null, LocationFlag.NULL_ISLAND)

    needs_gazetteer = bool(finite.any()) and (any(countries) or any(cities))
    if not needs_gazetteer:
        return listed()
    geocoder = geocoder or OfflineGeocoder()
    gaz = geocoder.gazetteer

    # Country checks, one vectorised pass per stated country.
    codes = np.array(_each_distinct(countries, n, lambda c: gaz.country_code(c) or "?" if c
                                    else ""), dtype=object)
    flag(codes == "?", LocationFlag.UNKNOWN_COUNTRY)
    for cc in sorted(set(codes.tolist()) - {"", "?"}):
        idx = np.flatnonzero((codes == cc) & finite)
        if not len(idx):
            continue
        outside = outside_country(lon[idx], lat[idx], cc, country_km=country_km, gazetteer=gaz)
        swapped_ok = _in_range(lat[idx], lon[idx])
        swapped_out = outside_country(lat[idx], lon[idx], cc, country_km=country_km,
                                      gazetteer=gaz)
        outside &= ~null[idx]  # null island already says it
        swapped = np.zeros(n, dtype=bool)
        swapped[idx[outside & swapped_ok & ~swapped_out]] = True
        flag(swapped, LocationFlag.SWAPPED)
        beyond = np.zeros(n, dtype=bool)
        beyond[idx[outside & in_range[idx]]] = True
        flag(beyond, LocationFlag.OUTSIDE_COUNTRY)

    # Distance to the stated city, placed by the offline gazetteer (once per city).
    uid = np.full(n, -1, dtype=np.int64)
    resolved: dict[tuple[str, str], int] = {}
    normalised: dict[str, str] = {}
    for i in np.flatnonzero(in_range & ~null):
        if not cities[i].strip():
            continue
        if cities[i] not in normalised:
            normalised[cities[i]] = normalise_text(cities[i])
        key = (normalised[cities[i]], codes[i] if codes[i] != "?" else "")
        if key not in resolved:
            res = geocoder.resolve(AddressQuery(city=cities[i], country=key[1]))
            ok = res.status == "ok" and res.precision in (Precision.CITY, Precision.DISTRICT)
            resolved[key] = res.uid if ok else -1
        uid[i] = resolved[key]
    placed = np.flatnonzero(uid >= 0)
    if len(placed):
        d = haversine_km(lon[placed], lat[placed], np.asarray(gaz.places.lon)[uid[placed]],
                         np.asarray(gaz.places.lat)[uid[placed]])
        far = np.zeros(n, dtype=bool)
        for i in placed[d > far_km]:
            far[i] = not _in_chinese_unit(gaz, int(uid[i]), lon[i], lat[i])
        flag(far, LocationFlag.FAR_FROM_CITY)
    return listed()


def _each_distinct(values: Sequence[object] | None, n: int, fn) -> list:
    """``[fn(v) for v in values]`` (``values`` None: n empty strings), with ``fn`` called
    once per distinct value."""
    if values is None or not len(values):
        return [fn("")] * n
    seen: dict = {}
    out = []
    for v in values:
        try:
            r = seen[v]
        except KeyError:
            r = seen[v] = fn(v)
        except TypeError:  # unhashable
            r = fn(v)
        out.append(r)
    return out


def _in_chinese_unit(gaz: Gazetteer, uid: int, lon: float, lat: float) -> bool:
    """Is the nearest county seat to (lon, lat) part of Chinese unit ``uid``?"""
    code = gaz.places.adcode[uid]
    if not code or gaz.places.kind[uid] not in (Kind.PROVINCE, Kind.PREFECTURE):
        return False
    _, county = gaz.nearest(np.array([lon]), np.array([lat]), within="counties")
    if county[0] < 0:
        return False
    prefix = code[:2] if gaz.places.kind[uid] == Kind.PROVINCE else code[:4]
    return gaz.places.adcode[int(county[0])].startswith(prefix)
