"""Geocode a sites GeoDataFrame: fill missing coordinates, record where every one came from.

Order of precedence, per site:

1. coordinates in the sites file ("given") always win;
2. an overrides file (CSV ``site_id,lon,lat[,note]``) pins sites that have none;
3. geocoders, tried in order: the first "ok" answer wins (cached answers count, unless
   ``refresh``); ambiguous or unresolved sites keep NaN coordinates, with the reason and the
   candidates in their row.

Every site, whatever the source, gets ``location_flags`` from :mod:`.checks`.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from sitescreen.errors import GeocodeError, SiteValidationError
from sitescreen.geocode.cache import GeocodeCache
from sitescreen.geocode.checks import FlagMemo, location_flags
from sitescreen.geocode.model import AddressQuery, Geocoder, GeocodeResult, Precision
from sitescreen.geocode.offline import OfflineGeocoder

__all__ = ["geocode_sites", "geocode_problems", "read_overrides", "Override", "GEOCODE_COLUMNS",
           "cache_name", "UNRESOLVED", "is_located"]

log = logging.getLogger(__name__)

#: Columns added (or overwritten) by :func:`geocode_sites`, besides lon/lat and geometry.
GEOCODE_COLUMNS = (
    "location_source", "geocoder", "geocode_precision", "geocode_confidence", "geocode_datum",
    "geocode_query", "geocode_status", "geocode_matched", "geocode_candidates",
    "geocode_reason", "location_flags",
)

#: ``location_source`` of a site that could not be placed (its lon/lat are NaN).
UNRESOLVED = "unresolved"


def is_located(sites: pd.DataFrame) -> np.ndarray:
    """The one definition of a located site: finite lon and lat, and a ``location_source``
    other than :data:`UNRESOLVED` (each tested where the table has the column). Every other site is unresolved:
    it is never sampled and is counted apart from the screened sites in every output.

    >>> import pandas as pd
    >>> is_located(pd.DataFrame({"lon": [1.0, None, 2.0], "lat": [1.0, 2.0, 3.0],
    ...                          "location_source": ["input", "input", "unresolved"]})).tolist()
    [True, False, False]
    """
    ok = np.ones(len(sites), dtype=bool)
    for col in ("lon", "lat"):
        if col in sites:
            ok &= np.isfinite(pd.to_numeric(sites[col], errors="coerce").to_numpy("float64"))
    if "location_source" in sites:
        ok &= sites["location_source"].astype(str).ne(UNRESOLVED).to_numpy()
    return ok


@dataclass(frozen=True, slots=True)
class Override:
    """A pinned position: WGS 84 lon/lat, a note, and the CSV row it came from."""

    site_id: str
    lon: float
    lat: float
    note: str = ""
    row: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"site_id": self.site_id, "lon": self.lon, "lat": self.lat, "note": self.note,
                "row": self.row}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Override:
        return cls(**data)  # type: ignore[arg-type]


def read_overrides(path: str | os.PathLike[str]) -> dict[str, Override]:
    """Read an overrides CSV: ``site_id,lon,lat[,note]`` (WGS 84 degrees, UTF-8).

    ``longitude``/``latitude`` are accepted as column names too.

    Raises
    ------
    SiteValidationError
        Listing every bad row (missing id, non-numeric or out-of-range coordinate, an id
        given twice) or a missing column.
    """
    source = str(path)
    try:
        text = Path(path).read_text("utf-8-sig")
    except OSError as exc:
        raise SiteValidationError(source, [f"cannot read the overrides file: {exc.strerror}"]) \
            from exc
    except UnicodeDecodeError as exc:
        raise SiteValidationError(source, ["the overrides file is not UTF-8 text"]) from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or ()}
    col = {"site_id": fields.get("site_id"),
           "lon": fields.get("lon") or fields.get("longitude"),
           "lat": fields.get("lat") or fields.get("latitude"),
           "note": fields.get("note")}
    missing = [k for k in ("site_id", "lon", "lat") if col[k] is None]
    if missing:
        raise SiteValidationError(source, [
            f"missing column(s) {', '.join(missing)}; expected a header "
            f"'site_id,lon,lat[,note]', got {list(reader.fieldnames or [])}"])
    out: dict[str, Override] = {}
    problems: list[str] = []
    for row_no, row in enumerate(reader, start=2):
        sid = (row.get(col["site_id"]) or "").strip()
        if not sid and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        where = f"row {row_no}"
        if not sid:
            problems.append(f"{where}: site_id is empty")
            continue
        values = {}
        for k, lo, hi in (("lon", -180.0, 180.0), ("lat", -90.0, 90.0)):
            raw = (row.get(col[k]) or "").strip()
            try:
                v = float(raw)
            except ValueError:
                problems.append(f"{where} ({sid}): {k} {raw!r} is not a number")
                continue
            if not (math.isfinite(v) and lo <= v <= hi):
                problems.append(f"{where} ({sid}): {k} {v} is outside [{lo:g}, {hi:g}]")
                continue
            values[k] = v
        if sid in out:
            problems.append(f"{where}: site_id {sid!r} is already pinned in row {out[sid].row}")
            continue
        if len(values) == 2:
            note = (row.get(col["note"]) or "").strip() if col["note"] else ""
            out[sid] = Override(sid, values["lon"], values["lat"], note, row_no)
    if problems:
        raise SiteValidationError(source, problems)
    return out


def cache_name(geocoder: Geocoder) -> str:
    """Cache namespace of a geocoder: its name, and its version when it has one."""
    version = getattr(geocoder, "version", "")
    return f"{geocoder.name}@{version}" if version else geocoder.name


def _text_column(frame: pd.DataFrame, name: str) -> list[str]:
    """A column as text: "" for a missing value, ``str(v)`` for any other."""
    if name not in frame:
        return [""] * len(frame)
    col = frame[name]
    if isinstance(col.dtype, pd.StringDtype) or \
            pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        return col.fillna("").astype(object).tolist()  # text already: no per-value work
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in col.tolist()]


def _geocode_one(query: AddressQuery, geocoders: Sequence[Geocoder],
                 cache: GeocodeCache | None, refresh: bool) -> GeocodeResult:
    attempts: list[GeocodeResult] = []
    for g in geocoders:
        result = None
        if cache is not None and not refresh:
            result = cache.get(cache_name(g), query)
        if result is None:
            result = g.geocode(query)
            if cache is not None:
                cache.put(cache_name(g), query, result)
        if result.ok:
            if attempts:  # say why earlier providers did not answer
                before = "; ".join(f"{a.provider}: {a.status}" for a in attempts)
                reason = "; ".join(r for r in (result.reason, f"after {before}") if r)
                result = GeocodeResult.from_dict({**result.to_dict(), "reason": reason})
            return result
        attempts.append(result)
    if not attempts:
        return GeocodeResult.unresolved("", query.text, "no geocoder configured")
    ambiguous = [a for a in attempts if a.status == "ambiguous"]
    return GeocodeResult(
        status="ambiguous" if ambiguous else "unresolved",
        provider=",".join(a.provider for a in attempts), query=query.text,
        candidates=tuple(c for a in (ambiguous or attempts) for c in a.candidates),
        reason="; ".join(f"{a.provider}: {a.reason}" for a in attempts if a.reason),
        transient=any(a.transient for a in attempts))


def geocode_sites(
    sites: gpd.GeoDataFrame,
    *,
    geocoders: Sequence[Geocoder] | None = None,
    cache: GeocodeCache | None = None,
    overrides: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> gpd.GeoDataFrame:
    """A copy of ``sites`` with coordinates filled in and their provenance recorded.

    Parameters
    ----------
    sites : as read by :func:`sitescreen.sites.read_sites` (``site_id``, ``address``,
        ``city``, ``country``, ``name``, ``lon``, ``lat``, ``geometry``; missing text columns
        count as empty).
    geocoders : providers in order (default: the offline geocoder only).
    cache : stored answers; sites with a cached answer are not sent again.
    overrides : CSV ``site_id,lon,lat[,note]`` pinning sites that have no coordinates.
    refresh : ignore cached answers (new answers are still stored).
    progress : called as ``progress(done, total)`` over the sites that need geocoding.

    Returns
    -------
    geopandas.GeoDataFrame
        Same rows and order; ``lon``/``lat`` filled where found (NaN otherwise); ``geometry``
        a Point where there was none; plus :data:`GEOCODE_COLUMNS`: ``location_source``
        ("given", "override", "geocoded", "unresolved"), ``geocoder``,
        ``geocode_precision``, ``geocode_confidence``, ``geocode_datum``, ``geocode_query``,
        ``geocode_status``, ``geocode_matched``, ``geocode_candidates`` and
        ``location_flags`` ("; "-joined), ``geocode_reason``.

    Raises
    ------
    SiteValidationError
        For a bad overrides file.
    GeocoderAuthError
        When a provider refuses its key (answers so far are kept in the cache).
    """
    geocoders = list(geocoders) if geocoders is not None else [OfflineGeocoder()]
    out = sites.copy()
    n = len(out)
    site_ids = _text_column(out, "site_id")
    lon = pd.to_numeric(out["lon"], errors="coerce").to_numpy("float64", copy=True) \
        if "lon" in out else np.full(n, np.nan)
    lat = pd.to_numeric(out["lat"], errors="coerce").to_numpy("float64", copy=True) \
        if "lat" in out else np.full(n, np.nan)
    given = np.isfinite(lon) & np.isfinite(lat)
    pinned = read_overrides(overrides) if overrides is not None else {}
    unknown = sorted(set(pinned) - set(site_ids))
    if unknown:
        log.warning("overrides for unknown site ids ignored: %s", ", ".join(unknown[:20]))

    cols: dict[str, np.ndarray] = {c: np.full(n, "", dtype=object) for c in GEOCODE_COLUMNS}
    cols["geocode_confidence"] = np.full(n, math.nan)
    # Sites with coordinates, all at once; the others one by one below.
    _fill(cols, given, source="given", geocoder="", precision=Precision.COORDINATES,
          confidence=1.0, datum="WGS84", status="ok")
    if pinned:
        ignored = given & np.isin(np.asarray(site_ids, dtype=object), list(pinned))
        cols["geocode_reason"][ignored] = "override ignored: the sites file gives coordinates"
    queries: dict[str, AddressQuery] = {}
    members: dict[str, list[int]] = {}
    countries, cities = _text_column(out, "country"), _text_column(out, "city")
    rest = out.iloc[np.flatnonzero(~given)]
    addresses, names = _text_column(rest, "address"), _text_column(rest, "name")
    for k, i in enumerate(np.flatnonzero(~given).tolist()):
        sid = site_ids[i]
        if sid in pinned:
            o = pinned[sid]
            lon[i], lat[i] = o.lon, o.lat
            _fill(cols, i, source="override", geocoder="override", precision=Precision.OVERRIDE,
                  confidence=1.0, datum="WGS84", status="ok",
                  reason=o.note or f"pinned by {Path(str(overrides)).name} row {o.row}")
        else:
            q = AddressQuery(addresses[k], cities[i], countries[i], names[k])
            queries.setdefault(q.key, q)
            members.setdefault(q.key, []).append(i)

    total = sum(len(v) for v in members.values())
    done = 0
    if progress is not None:
        progress(0, total)
    for key, q in queries.items():
        if q.is_empty:
            result = GeocodeResult.unresolved("", "", "no address, city or name to geocode; "
                                              "give coordinates or pin the site")
        else:
            result = _geocode_one(q, geocoders, cache, refresh)
        for i in members[key]:
            if result.ok:
                lon[i], lat[i] = result.lon, result.lat
            _fill(cols, i, source="geocoded" if result.ok else UNRESOLVED,
                  geocoder=result.provider, precision=result.precision,
                  confidence=result.confidence if result.ok else math.nan,
                  datum=result.datum if result.ok else "", status=result.status,
                  query=result.query, matched=result.matched,
                  candidates="; ".join(result.candidates), reason=result.reason)
        done += len(members[key])
        if progress is not None:
            progress(done, total)
        if result.status != "ok":
            log.info("site(s) %s not geocoded: %s", ", ".join(site_ids[i] for i in members[key]),
                     result.reason)

    try:
        if cache is not None:  # flags of sites seen before come from the memo beside it
            cols["location_flags"] = FlagMemo(cache.path.parent).flags(lon, lat, countries,
                                                                       cities)
        else:
            cols["location_flags"] = np.array(["; ".join(f) for f in location_flags(
                lon, lat, country=countries, city=cities)], dtype=object)
    except GeocodeError as exc:  # the gazetteer could not load: report, do not fail the run
        log.warning("location checks skipped: %s", exc)
        cols["location_flags"] = np.full(n, "", dtype=object)

    out["lon"] = lon
    out["lat"] = lat
    for c in GEOCODE_COLUMNS:
        out[c] = cols[c]
    out["geocode_confidence"] = out["geocode_confidence"].astype("float64")
    geometry = out.geometry if isinstance(out, gpd.GeoDataFrame) and \
        out._geometry_column_name in out else gpd.GeoSeries([None] * n, index=out.index)
    geoms = np.asarray(geometry.array, dtype=object).copy() if n else np.zeros(0, object)
    fill = (shapely.is_missing(geoms) | shapely.is_empty(geoms)) & np.isfinite(lon) & \
        np.isfinite(lat)
    if fill.any():
        geoms[fill] = shapely.points(lon[fill], lat[fill])
    crs = getattr(sites, "crs", None) or "EPSG:4326"
    result_frame = gpd.GeoDataFrame(out.drop(columns=[geometry.name], errors="ignore"),
                                    geometry=gpd.GeoSeries(geoms, index=out.index, crs=crs),
                                    crs=crs)
    result_frame.attrs = dict(sites.attrs)
    return result_frame


def _fill(cols: dict[str, np.ndarray], i: int | np.ndarray, *, source: str, geocoder: str,
          precision: Precision, confidence: float, datum: str, status: str, query: str = "", matched: str = "",
          candidates: str = "", reason: str = "") -> None:
    cols["location_source"][i] = source
    cols["geocoder"][i] = geocoder
    cols["geocode_precision"][i] = Precision(precision).value
    cols["geocode_confidence"][i] = confidence
    cols["geocode_datum"][i] = datum
    cols["geocode_query"][i] = query
    cols["geocode_status"][i] = status
    cols["geocode_matched"][i] = matched
    cols["geocode_candidates"][i] = candidates
    cols["geocode_reason"][i] = reason


def geocode_problems(sites: pd.DataFrame, geocoder: Geocoder | None = None) -> list:
    """What geocoding would say about each site without coordinates, as report warnings.

    Runs ``geocoder`` (default: the offline one, no cache, no network) on every site that has
    no coordinates, before any screening: addresses it cannot place, places ambiguously (with
    the candidates), places only at province or country precision, or places while ignoring
    or not understanding part of the text become warnings of the site's row.

    Parameters
    ----------
    sites : the site table of :func:`sitescreen.sites.validate_sites` (``input_ref``,
        ``site_id``, ``location_source``, ``address``, ``city``, ``country``, ``name``); its
        index is the site's position in the input.

    Returns
    -------
    list of :class:`sitescreen.site_checks.Problem`
    """
    from sitescreen.site_checks import Problem

    geocoder = geocoder or OfflineGeocoder()
    todo = sites.loc[sites["location_source"].ne("given")]
    answers: dict[str, GeocodeResult] = {}
    out = []
    text = {c: _text_column(todo, c) for c in ("address", "city", "country", "name",
                                               "site_id", "input_ref")}
    for k, index in enumerate(todo.index):
        q = AddressQuery(text["address"][k], text["city"][k], text["country"][k],
                         text["name"][k])
        if q.is_empty:
            continue
        if q.key not in answers:
            answers[q.key] = geocoder.geocode(q)
        r = answers[q.key]
        where = f"{text['input_ref'][k]} (site_id {text['site_id'][k]!r})"
        field_ = "address" if text["address"][k] else "city"
        fix = "correct the address or city, or pin the site with an overrides file (--overrides)"
        if r.status == "ambiguous":
            cands = "; ".join(r.candidates[:6])
            out.append(Problem("warning", where, field_, f"address is ambiguous: {r.reason}"
                               + (f"; candidates: {cands}" if cands else ""),
                               "add the province or district that tells them apart, or pin "
                               "the site with an overrides file (--overrides)", int(index)))
        elif r.status != "ok":
            out.append(Problem("warning", where, field_, f"address cannot be located: "
                               f"{r.reason}", fix, int(index)))
        elif r.precision in (Precision.PROVINCE, Precision.COUNTRY):
            out.append(Problem("warning", where, field_, f"located only at {r.precision.value} "
                               f"precision ({r.matched}); hazards vary within it"
                               + (f"; {r.reason}" if r.reason else ""), fix, int(index)))
        elif any(w in r.reason for w in _DOUBT_WORDS):
            out.append(Problem("warning", where, field_, f"located at {r.matched} "
                               f"({r.precision.value}), but {r.reason}", fix, int(index)))
    return out


# Words of an offline geocoder reason that mean part of the address was not used.
_DOUBT_WORDS = ("ignored", "not matched", "did you mean", "most prominent")
