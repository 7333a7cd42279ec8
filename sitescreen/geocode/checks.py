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

A site's flags depend on its coordinates and stated country and city only, so
:class:`FlagMemo` keeps them in the cache folder between runs: a re-run checks (and loads the
gazetteer for) only the sites it has not seen.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from sitescreen import geodesy
from sitescreen.files import atomic_write
from sitescreen.geocode import model as model_module
from sitescreen.geocode.gazetteer import (
    GREATER_CHINA,
    Gazetteer,
    Kind,
    cache_path,
    haversine_km,
    load_gazetteer,
)
from sitescreen.geocode.model import AddressQuery, Precision, normalise_text
from sitescreen.geocode.offline import OfflineGeocoder

__all__ = ["FlagMemo", "LocationFlag", "location_flags", "outside_country"]

log = logging.getLogger(__name__)

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
    country_of = gaz.country[np.maximum(uid, 0)]
    foreign_nearest = (uid >= 0) & ~np.isin(country_of, list(members))
    # Distance to the nearest place of another country: the nearest place overall when it is
    # foreign; otherwise at least as far as the nearest own place (so the ratio test passes).
    other = np.where(foreign_nearest, anywhere, own)
    with np.errstate(invalid="ignore"):
        out = (own > country_km) | ((own > _BORDER_KM) & (own > _BORDER_RATIO * other))
    return out | ~ok


def location_flags(lon: ArrayLike, lat: ArrayLike, *, country: Sequence[object] | None = None,
                   city: Sequence[object] | None = None, far_km: float = 50.0,
                   country_km: float = 150.0, geocoder: OfflineGeocoder | None = None,
                   resolved: dict[tuple[str, str], int] | None = None
                   ) -> list[tuple[str, ...]]:
    """Flags (see the module docstring) for each site, in input order.

    Parameters
    ----------
    lon, lat : WGS 84 degrees, NaN when unknown.
    country : stated ISO alpha-2 codes (or names), "" or None when unknown.
    city : stated city names.
    far_km : distance from the stated city beyond which a site is flagged.
    country_km : see :func:`outside_country`.
    geocoder : offline geocoder used to place the stated cities (default: a new one).
    resolved : stated cities placed before by this geocoder, ``(normalised city, ISO code or
        "") -> place uid`` (-1: not placed at a city or district); used and extended in
        place, so that a caller can keep it between runs (:class:`FlagMemo` does). A city
        found there needs no name lookup, so the gazetteer's index is never read.

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

    def flag(at: np.ndarray, what: LocationFlag) -> None:
        """Flag the sites at indices ``at`` (or where a mask of every site is true)."""
        if at.dtype == bool:
            at = np.flatnonzero(at)
        value = what.value
        for i in at.tolist():
            flags.setdefault(i, []).append(value)

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

    # Country checks, one vectorised pass per stated country: the codes are factorised once
    # and the sites grouped by code in one stable sort (each group in input order).
    codes = np.array(_each_distinct(countries, n, lambda c: gaz.country_code(c) or "?" if c
                                    else ""), dtype=object)
    code_of, code_names = pd.factorize(codes)
    flag(code_of == _position(code_names, "?"), LocationFlag.UNKNOWN_COUNTRY)
    for cc, idx in _groups(np.where(finite, code_of, -1), code_names):
        if cc in ("", "?"):
            continue
        outside = outside_country(lon[idx], lat[idx], cc, country_km=country_km, gazetteer=gaz)
        swapped_ok = _in_range(lat[idx], lon[idx])
        swapped_out = outside_country(lat[idx], lon[idx], cc, country_km=country_km,
                                      gazetteer=gaz)
        outside &= ~null[idx]  # null island already says it
        flag(idx[outside & swapped_ok & ~swapped_out], LocationFlag.SWAPPED)
        flag(idx[outside & in_range[idx]], LocationFlag.OUTSIDE_COUNTRY)

    # Distance to the stated city, placed by the offline gazetteer (once per city): once per
    # distinct (city text, code) pair, in order of first appearance, as a loop over the sites
    # would (the first text of a normalised city is the one resolved).
    uid = np.full(n, -1, dtype=np.int64)
    resolved = {} if resolved is None else resolved
    city_of, city_names = pd.factorize(np.array(cities, dtype=object))
    stated = np.array([bool(c.strip()) for c in city_names], dtype=bool)
    todo = np.flatnonzero(in_range & ~null)
    todo = todo[stated[city_of[todo]]] if len(city_names) else todo[:0]
    pair = city_of[todo].astype(np.int64) * max(len(code_names), 1) + code_of[todo]
    pairs, first, pair_of = np.unique(pair, return_index=True, return_inverse=True)
    pair_uid = np.empty(len(pairs), dtype=np.int64)
    normalised: dict[str, str] = {}
    for j in np.argsort(first, kind="stable").tolist():
        i = int(todo[first[j]])
        if cities[i] not in normalised:
            normalised[cities[i]] = normalise_text(cities[i])
        key = (normalised[cities[i]], codes[i] if codes[i] != "?" else "")
        if key not in resolved:
            res = geocoder.resolve(AddressQuery(city=cities[i], country=key[1]))
            ok = res.status == "ok" and res.precision in (Precision.CITY, Precision.DISTRICT)
            resolved[key] = res.uid if ok else -1
        pair_uid[j] = resolved[key]
    uid[todo] = pair_uid[pair_of.ravel()]
    placed = np.flatnonzero(uid >= 0)
    if len(placed):
        d = haversine_km(lon[placed], lat[placed], gaz.lon[uid[placed]], gaz.lat[uid[placed]])
        beyond = placed[d > far_km]
        flag(beyond[~_in_chinese_unit(gaz, uid[beyond], lon[beyond], lat[beyond])],
             LocationFlag.FAR_FROM_CITY)
    return listed()


def _position(names: np.ndarray, name: str) -> int:
    """Index of ``name`` among factorised ``names``, -1 when absent."""
    at = np.flatnonzero(names == name)
    return int(at[0]) if len(at) else -1


def _groups(labels: np.ndarray, names: np.ndarray):
    """``(name, indices)`` per label of ``labels`` (-1 skipped), sorted by name; the indices
    ascending."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(names) + 1), side="left")
    for k in sorted(range(len(names)), key=lambda k: names[k]):
        if bounds[k + 1] > bounds[k]:
            yield names[k], order[bounds[k]:bounds[k + 1]]


def _each_distinct(values: Sequence[object] | None, n: int, fn) -> list:
    """``[fn(v) for v in values]`` (``values`` None: n empty strings), with ``fn`` called
    once per distinct value."""
    if values is None or not len(values):
        return [fn("")] * n
    try:
        seen = dict.fromkeys(values)
    except TypeError:  # an unhashable value: one at a time
        pass
    else:
        for v in seen:
            seen[v] = fn(v)
        return list(map(seen.__getitem__, values))
    seen = {}
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


def _in_chinese_unit(gaz: Gazetteer, uid: np.ndarray, lon: np.ndarray, lat: np.ndarray
                     ) -> np.ndarray:
    """Is the nearest county seat to each (lon, lat) part of the Chinese unit ``uid`` (a
    province or prefecture: the first 2 or 4 digits of its adcode)? One KD-tree query."""
    uid = np.asarray(uid, dtype=np.int64)
    out = np.zeros(len(uid), dtype=bool)
    kind = gaz.kind[uid]
    unit = np.flatnonzero(((kind == Kind.PROVINCE) | (kind == Kind.PREFECTURE))
                          & (gaz.adcode[uid] != ""))
    if not len(unit):
        return out
    _, county = gaz.nearest(lon[unit], lat[unit], within="counties")
    found = county >= 0
    unit, county = unit[found], county[found]
    # adcodes (six digits) as rows of 6 code points: a prefix compare compares the first
    # columns.
    digits = np.asarray(gaz.adcode, dtype="U6").view(np.uint32).reshape(-1, 6)
    mine, theirs = digits[uid[unit]], digits[county]
    width = np.where(kind[unit] == Kind.PROVINCE, 2, 4)
    same = (mine == theirs) | (np.arange(6) >= width[:, None])
    out[unit] = same.all(axis=1)
    return out


#: The modules whose code decides the flags: this one, :func:`normalise_text`'s (the stated
#: city's key) and :func:`haversine_km`'s (the distances).
_FLAG_MODULES = (__name__, model_module.__name__, geodesy.__name__)


@functools.cache
def _code_fingerprint() -> str:
    """SHA-256 of the :data:`_FLAG_MODULES` source files, computed once per process."""
    digest = hashlib.sha256()
    for name in _FLAG_MODULES:
        digest.update(Path(sys.modules[name].__file__).read_bytes())
    return digest.hexdigest()


_FLAG_KEYS = ("lon", "lat", "country", "city")


class FlagMemo:
    """The joined :func:`location_flags` of sites seen before, kept in ``folder``.

    Keyed by the exact coordinates and the stated country and city text; the file name
    carries a fingerprint of this module and of the text normalisation and distance code it
    uses (:data:`_FLAG_MODULES`, computed once per process), the offline geocoder (its code
    and settings), the kept gazetteer (:func:`~sitescreen.geocode.gazetteer.cache_path`,
    named by its code and source packages) and the distances, so any change starts a new
    memo. Beside it, under
    the same fingerprint without the distances, the stated cities placed so far (the
    ``resolved`` of :func:`location_flags`): new sites in known cities are checked without
    the gazetteer's name index. Without a kept gazetteer (``SITESCREEN_GAZETTEER_CACHE=off``)
    nothing is kept here either. At most ``max_rows`` sites and as many cities are kept (the
    latest run's first).
    """

    def __init__(self, folder: str | Path, *, far_km: float = 50.0, country_km: float = 150.0,
                 geocoder: OfflineGeocoder | None = None, max_rows: int = 1_000_000) -> None:
        self.geocoder = geocoder or OfflineGeocoder()
        self.far_km, self.country_km, self.max_rows = float(far_km), float(country_km), max_rows
        gazetteer = cache_path(self.geocoder.cities)
        ident = "|".join((_code_fingerprint(), self.geocoder.version,
                          gazetteer.name if gazetteer else ""))
        cities = hashlib.sha256(ident.encode()).hexdigest()[:16]
        digest = hashlib.sha256(
            f"{ident}|{self.far_km!r}|{self.country_km!r}".encode()).hexdigest()[:16]
        #: None: nothing is kept (no kept gazetteer to name the memo after).
        self.path = Path(folder) / f"location-flags-{digest}.parquet" if gazetteer else None
        self.cities_path = Path(folder) / f"location-cities-{cities}.json" if gazetteer \
            else None

    def flags(self, lon: np.ndarray, lat: np.ndarray, country: Sequence[str],
              city: Sequence[str]) -> np.ndarray:
        """``"; "``-joined flags per site (object array), as :func:`location_flags` gives
        them; only the sites not in the memo are checked, and then the memo is rewritten.

        Raises
        ------
        GeocodeError
            When sites need checking and the gazetteer cannot load.
        """
        keys = pd.DataFrame({"lon": np.asarray(lon, "float64"), "lat": np.asarray(lat, "float64"),
                             "country": pd.array(list(country), dtype=object),
                             "city": pd.array(list(city), dtype=object)})
        if self.path is None:
            return np.array(["; ".join(f) for f in location_flags(
                lon, lat, country=list(country), city=list(city), far_km=self.far_km,
                country_km=self.country_km, geocoder=self.geocoder)], dtype=object)
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        out = np.full(len(keys), None, dtype=object)
        kept = self._read()
        if kept is not None:
            at = pd.Index(kept["hash"].to_numpy()).get_indexer(hashes)
            hit = at >= 0
            rows = kept.iloc[at[hit]]
            same = np.ones(int(hit.sum()), dtype=bool)  # a hash is no proof: compare the keys
            for c in _FLAG_KEYS:
                mine, theirs = keys[c].to_numpy()[hit], rows[c].to_numpy()
                same &= (mine == theirs) | (pd.isna(mine) & pd.isna(theirs))
            idx = np.flatnonzero(hit)[same]
            out[idx] = rows["flags"].to_numpy(object)[same]
        todo = np.flatnonzero(pd.isna(out))
        if not len(todo):
            return out
        resolved = self._read_cities()
        known = len(resolved)
        found = location_flags(keys["lon"].to_numpy()[todo], keys["lat"].to_numpy()[todo],
                               country=keys["country"].to_numpy()[todo].tolist(),
                               city=keys["city"].to_numpy()[todo].tolist(), far_km=self.far_km,
                               country_km=self.country_km, geocoder=self.geocoder,
                               resolved=resolved)
        out[todo] = ["; ".join(f) for f in found]
        self._write(keys.assign(hash=hashes, flags=out), kept)
        if len(resolved) > known:
            self._write_cities(resolved)
        return out

    def _read_cities(self) -> dict[tuple[str, str], int]:
        if self.cities_path is None or not self.cities_path.is_file():
            return {}
        try:
            rows = json.loads(self.cities_path.read_bytes())
            return {(str(city), str(cc)): int(uid) for city, cc, uid in rows}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("stated-city memo %s unreadable (%s); placing the cities again",
                        self.cities_path, exc)
            return {}

    def _write_cities(self, resolved: dict[tuple[str, str], int]) -> None:
        rows = [[city, cc, uid] for (city, cc), uid in resolved.items()][-self.max_rows:]
        try:
            atomic_write(self.cities_path, json.dumps(rows, ensure_ascii=False).encode())
        except OSError as exc:  # the memo only saves time; never fail a run over it
            log.warning("cannot keep the stated cities in %s: %s", self.cities_path, exc)

    def _read(self) -> pd.DataFrame | None:
        if self.path is None or not self.path.is_file():
            return None
        try:
            kept = pd.read_parquet(self.path)
        except (OSError, ValueError) as exc:
            log.warning("location flag memo %s unreadable (%s); checking every site", self.path,
                        exc)
            return None
        if list(kept.columns) != [*_FLAG_KEYS, "hash", "flags"] or \
                not kept["hash"].is_unique:
            return None
        return kept

    def _write(self, now: pd.DataFrame, kept: pd.DataFrame | None) -> None:
        frame = now if kept is None else pd.concat([now, kept], ignore_index=True)
        frame = frame[~frame["hash"].duplicated()].head(self.max_rows)
        frame = frame.astype({"country": str, "city": str, "flags": str})
        try:
            atomic_write(self.path, lambda tmp: frame.to_parquet(tmp, index=False))
        except OSError as exc:  # the memo only saves time; never fail a run over it
            log.warning("cannot keep the location flags in %s: %s", self.path, exc)

