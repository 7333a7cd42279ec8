"""Read IBTrACS v04r01 CSV best tracks into numpy arrays.

The CSV layout (NOAA NCEI, IBTrACS v04r01 technical documentation): a header row, a second
row of units (skipped), one row per track point, missing values written as a single space.
Only the columns the wind model needs are read (``SID``, ``SEASON``, ``BASIN``, ``ISO_TIME``,
``LAT``, ``LON``, ``TRACK_TYPE``, ``USA_WIND``, ``WMO_WIND`` and, when present,
``WMO_AGENCY``, ``USA_RMW``, ``USA_POCI``, ``USA_PRES``), and only main tracks are kept.

Maximum sustained wind: agencies average over different periods. The reader returns one
wind per point as a **1-minute sustained wind at 10 m over the sea, in m/s**:

- ``USA_WIND`` (JTWC / NHC, 1-minute, knots) is used as is when present;
- otherwise ``WMO_WIND`` from the WMO regional centre is converted to a 1-minute wind.
  RSMC Tokyo (the WMO agency of the western Pacific) and the southern-hemisphere centres
  report 10-minute means: ``1-min = 10-min x 1.14`` (the WMO factor for at-sea conditions
  quoted in the project REFERENCE; WMO TD-1555, Harper et al. 2010, would give 1/0.93 =
  1.075, so 1.14 is the upper, conservative choice). New Delhi reports 3-minute means,
  converted with ``1.14 ** (log(10/3) / log(10))`` (gust factors grow about with the
  logarithm of the averaging-time ratio, Durst 1960). HURDAT and CPHC report 1-minute
  winds (no conversion). A blank ``WMO_AGENCY`` (or no such column) is read as 10-minute.

``wind_source`` chooses explicitly: ``"usa_then_wmo"`` (default, as above), ``"usa"`` (JTWC
only) or ``"wmo"`` (WMO agency only, converted). Negative winds (``-999`` sentinels in some
re-encoded files) are missing.

Parsed tracks are cached in-process by path, size and modification time, so the nine
scenario-year calls of a run parse the 100 MB file once.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sitescreen.errors import HazardDataError

__all__ = [
    "Tracks",
    "read_ibtracs",
    "clear_track_cache",
    "KNOT_MS",
    "NMILE_KM",
    "TEN_TO_ONE_MINUTE",
    "REQUIRED_COLUMNS",
    "file_key",
]

log = logging.getLogger(__name__)

#: One knot in m/s (exact: 1852 m per hour).
KNOT_MS = 1852.0 / 3600.0
#: One nautical mile in km.
NMILE_KM = 1.852
#: 1-minute sustained wind = 10-minute mean x this, at sea (WMO guidance quoted in REFERENCE).
TEN_TO_ONE_MINUTE = 1.14

REQUIRED_COLUMNS = ("SID", "SEASON", "BASIN", "ISO_TIME", "LAT", "LON", "TRACK_TYPE",
                    "USA_WIND", "WMO_WIND")
OPTIONAL_COLUMNS = ("WMO_AGENCY", "USA_RMW", "USA_POCI", "USA_PRES")
_NUMERIC = ("SEASON", "LAT", "LON", "USA_WIND", "WMO_WIND", "USA_RMW", "USA_POCI", "USA_PRES")

#: Agencies whose WMO_WIND is already a 1-minute wind.
_ONE_MINUTE_AGENCIES = frozenset({"hurdat_atl", "hurdat_epa", "cphc", "atcf"})
_THREE_MINUTE_AGENCIES = frozenset({"newdelhi"})

WindSource = Literal["usa_then_wmo", "usa", "wmo"]
_WIND_SOURCES = ("usa_then_wmo", "usa", "wmo")

#: Per-point wind origin codes in :attr:`Tracks.wind_origin`.
WIND_NONE, WIND_USA, WIND_WMO = 0, 1, 2


@dataclass(frozen=True, slots=True, eq=False)
class Tracks:
    """Best-track points of main tracks, ordered by storm then time.

    Storm-level arrays have one entry per storm; point-level arrays one per track point,
    with ``storm`` indexing the storm arrays.

    Attributes
    ----------
    source : str
        The file read.
    sid : ndarray of str, (n_storms,)
        IBTrACS storm identifier.
    season : ndarray of int, (n_storms,)
        Storm season (the calendar year in the northern hemisphere).
    storm : ndarray of int, (n_points,)
        Index into ``sid``/``season``.
    time_h : ndarray of float, (n_points,)
        Hours since 1970-01-01 00:00 UTC.
    lat, lon : ndarray of float, (n_points,)
        Degrees north / east as written (longitudes may be -180..180 or 0..360).
    vmax_ms : ndarray of float, (n_points,)
        1-minute sustained wind at 10 m over the sea, m/s; NaN when missing.
    rmw_km : ndarray of float, (n_points,)
        Radius of maximum wind from ``USA_RMW`` in km; NaN when missing or absent.
    wind_origin : ndarray of int8, (n_points,)
        0 no wind, 1 ``USA_WIND``, 2 converted ``WMO_WIND``.
    basin : ndarray of str, (n_points,)
        IBTrACS basin code of the point.
    wind_source : str
        The wind source rule used.
    """

    source: str
    sid: np.ndarray
    season: np.ndarray
    storm: np.ndarray
    time_h: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    vmax_ms: np.ndarray
    rmw_km: np.ndarray
    wind_origin: np.ndarray
    basin: np.ndarray
    wind_source: str = "usa_then_wmo"

    @property
    def n_storms(self) -> int:
        return len(self.sid)

    @property
    def n_points(self) -> int:
        return len(self.storm)

    def summary(self) -> dict:
        """Counts for manifests: storms, points, seasons and where each wind came from."""
        seasons = (int(self.season.min()), int(self.season.max())) if self.n_storms else None
        return {
            "file": self.source,
            "n_storms": self.n_storms,
            "n_points": self.n_points,
            "seasons": list(seasons) if seasons else [],
            "wind_source": self.wind_source,
            "points_wind_usa": int(np.count_nonzero(self.wind_origin == WIND_USA)),
            "points_wind_wmo_converted": int(np.count_nonzero(self.wind_origin == WIND_WMO)),
            "points_without_wind": int(np.count_nonzero(self.wind_origin == WIND_NONE)),
        }


_CACHE: OrderedDict[tuple, Tracks] = OrderedDict()
_CACHE_MAX = 4
_LOCK = threading.Lock()


def clear_track_cache() -> None:
    """Forget every parsed track file (tests; a file replaced within the same second)."""
    with _LOCK:
        _CACHE.clear()


def read_ibtracs(path: str | Path, *, wind_source: WindSource = "usa_then_wmo",
                 wmo_to_one_minute: float = TEN_TO_ONE_MINUTE,
                 track_types: tuple[str, ...] = ("main", "PROVISIONAL"),
                 use_cache: bool = True) -> Tracks:
    """Read an IBTrACS v04r01 CSV file.

    Parameters
    ----------
    path : str or Path
        ``ibtracs.<BASIN>.list.v04r01.csv``.
    wind_source : {"usa_then_wmo", "usa", "wmo"}, keyword-only
        Which wind to use (see the module docstring).
    wmo_to_one_minute : float, keyword-only
        1-minute / 10-minute factor for WMO 10-minute winds (default 1.14).
    track_types : tuple of str, keyword-only
        ``TRACK_TYPE`` values kept. ``main`` is the primary track; ``PROVISIONAL`` marks
        main tracks of recent storms not yet finalised. Spur tracks (alternative positions
        of a merging or splitting system) are always dropped: they would count a storm twice.
    use_cache : bool, keyword-only
        Reuse an earlier parse of the same unchanged file in this process.

    Returns
    -------
    Tracks

    Raises
    ------
    HazardDataError
        The file is missing, lacks a required column, has a row of the wrong length, or a
        value that is not a number / time; the message names the file, line and column.
    """
    if wind_source not in _WIND_SOURCES:
        raise HazardDataError(
            f"unknown IBTrACS wind source {wind_source!r}; expected one of {', '.join(_WIND_SOURCES)}")
    if not (math.isfinite(wmo_to_one_minute) and 0.5 < wmo_to_one_minute < 2.0):
        raise HazardDataError(
            f"10-minute to 1-minute wind factor {wmo_to_one_minute!r} is implausible; "
            "expected about 1.05-1.15")
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise HazardDataError(f"IBTrACS file {path} cannot be read: {exc.strerror}; "
                              "fetch it with 'sitescreen data fetch ibtracs_wp'") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, wind_source,
           float(wmo_to_one_minute), tuple(track_types))
    if use_cache:
        with _LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    tracks = _parse(path, wind_source=wind_source, wmo_factor=float(wmo_to_one_minute),
                    track_types=tuple(track_types))
    if use_cache:
        with _LOCK:
            _CACHE[key] = tracks
            while len(_CACHE) > _CACHE_MAX:
                _CACHE.popitem(last=False)
    return tracks


def _head(path: Path) -> tuple[list[str], list[str] | None]:
    """The header row and the second row (units in a genuine IBTrACS file)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            second = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HazardDataError(f"{path}: cannot read the IBTrACS header: {exc}") from exc
    if not header:
        raise HazardDataError(f"{path}: empty file; expected an IBTrACS v04r01 CSV")
    return [h.strip() for h in header], second


def _parse(path: Path, *, wind_source: str, wmo_factor: float,
           track_types: tuple[str, ...]) -> Tracks:
    header, second = _head(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise HazardDataError(
            f"{path}: not an IBTrACS v04r01 CSV: missing columns {missing} "
            f"(line 1 has {len(header)} columns, starting {header[:5]})")
    # The units row has "Year" under SEASON; a file without it starts its data on line 2.
    season_pos = header.index("SEASON")
    has_units = bool(second) and len(second) > season_pos and second[season_pos].strip() == "Year"
    if second is not None and not has_units:
        log.warning("%s: line 2 is not the IBTrACS units row; reading it as data", path)
    first_data_line = 3 if has_units else 2
    wanted = set(REQUIRED_COLUMNS) | {c for c in OPTIONAL_COLUMNS if c in header}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HazardDataError(f"{path}: cannot read: {exc.strerror}") from exc
    _check_field_counts(path, raw, len(header))
    try:
        df = pd.read_csv(
            io.BytesIO(raw), header=0, skiprows=[1] if has_units else None, index_col=False,
            usecols=lambda c: c.strip() in wanted, dtype=str, keep_default_na=False,
            na_filter=False, engine="c", encoding="utf-8-sig")
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise HazardDataError(f"{path}: malformed IBTrACS CSV: {exc}") from exc
    del raw
    df.columns = [c.strip() for c in df.columns]
    lines = np.arange(len(df)) + first_data_line

    def text(col: str) -> np.ndarray:
        return df[col].str.strip().to_numpy(dtype=object)

    def number(col: str) -> np.ndarray:
        if col not in df:
            return np.full(len(df), np.nan)
        s = df[col].str.strip()
        blank = (s == "").to_numpy()
        values = pd.to_numeric(s.where(~blank), errors="coerce").to_numpy(dtype="float64")
        bad = np.flatnonzero(~blank & np.isnan(values))
        if bad.size:
            i = bad[0]
            raise HazardDataError(
                f"{path}, line {lines[i]}: column {col} holds {df[col].iloc[i]!r}, not a number "
                f"({bad.size} such value{'s' if bad.size > 1 else ''} in the file); "
                "blanks must be a single space")
        return values

    nums = {c: number(c) for c in _NUMERIC}
    track_type = text("TRACK_TYPE")
    keep = np.isin(track_type, list(track_types))
    sid = text("SID")
    for col, arr in (("SID", sid), ("ISO_TIME", text("ISO_TIME"))):
        empty = np.flatnonzero(keep & (arr == ""))
        if empty.size:
            raise HazardDataError(f"{path}, line {lines[empty[0]]}: column {col} is blank")
    for col in ("SEASON", "LAT", "LON"):
        gap = np.flatnonzero(keep & np.isnan(nums[col]))
        if gap.size:
            raise HazardDataError(f"{path}, line {lines[gap[0]]}: column {col} is blank")
    bad_lat = np.flatnonzero(keep & (np.abs(nums["LAT"]) > 90))
    bad_lon = np.flatnonzero(keep & ((nums["LON"] < -180) | (nums["LON"] > 360)))
    for col, bad in (("LAT", bad_lat), ("LON", bad_lon)):
        if bad.size:
            i = bad[0]
            raise HazardDataError(f"{path}, line {lines[i]}: {col} {nums[col][i]} is out of range")
    times = pd.to_datetime(df["ISO_TIME"].str.strip(), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad_t = np.flatnonzero(keep & times.isna().to_numpy())
    if bad_t.size:
        i = bad_t[0]
        raise HazardDataError(
            f"{path}, line {lines[i]}: ISO_TIME {df['ISO_TIME'].iloc[i]!r} is not "
            "'YYYY-MM-DD HH:MM:SS'")
    time_h = (times.to_numpy(dtype="datetime64[s]").astype("int64") / 3600.0)

    usa = nums["USA_WIND"] * KNOT_MS
    usa[~(usa >= 0)] = np.nan
    wmo = nums["WMO_WIND"] * KNOT_MS
    wmo[~(wmo >= 0)] = np.nan
    agency = text("WMO_AGENCY") if "WMO_AGENCY" in df else np.full(len(df), "", dtype=object)
    factor = np.full(len(df), wmo_factor)
    factor[np.isin(agency, list(_ONE_MINUTE_AGENCIES))] = 1.0
    factor[np.isin(agency, list(_THREE_MINUTE_AGENCIES))] = wmo_factor ** (
        math.log(10 / 3) / math.log(10))
    wmo = wmo * factor
    if wind_source == "usa":
        vmax = usa
        origin = np.where(np.isnan(usa), WIND_NONE, WIND_USA)
    elif wind_source == "wmo":
        vmax = wmo
        origin = np.where(np.isnan(wmo), WIND_NONE, WIND_WMO)
    else:
        vmax = np.where(np.isnan(usa), wmo, usa)
        origin = np.where(~np.isnan(usa), WIND_USA, np.where(np.isnan(wmo), WIND_NONE, WIND_WMO))
    rmw = nums["USA_RMW"] * NMILE_KM
    rmw[~(rmw > 0)] = np.nan

    idx = np.flatnonzero(keep)
    sid_k = sid[idx]
    # Storms in order of first appearance; points sorted by storm then time (stable).
    codes, uniques = pd.factorize(sid_k, sort=False)
    order = np.lexsort((time_h[idx], codes))
    idx = idx[order]
    codes = codes[order]
    first = np.searchsorted(codes, np.arange(len(uniques)))
    season = nums["SEASON"][idx][first].astype("int64") if len(idx) else np.zeros(0, "int64")
    tracks = Tracks(
        source=str(path),
        sid=np.asarray(uniques, dtype=str),
        season=season,
        storm=codes.astype(np.int64),
        time_h=time_h[idx],
        lat=nums["LAT"][idx],
        lon=nums["LON"][idx],
        vmax_ms=vmax[idx],
        rmw_km=rmw[idx],
        wind_origin=origin[idx].astype(np.int8),
        basin=text("BASIN")[idx].astype(str),
        wind_source=wind_source,
    )
    dropped = len(df) - int(keep.sum())
    log.info("read %s: %d storms, %d points (%d non-main rows dropped)",
             path, tracks.n_storms, tracks.n_points, dropped)
    return tracks


def _check_field_counts(path: Path, raw: bytes, n_fields: int) -> None:
    """Every line must have as many fields as the header (vectorised comma count).

    pandas would otherwise take a row with one field too many as having an index column, or
    fill a short row with blanks, shifting or losing values without a word.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    if len(data) and data[-1] != ord("\n"):
        ends = np.append(ends, len(data))
    commas = np.concatenate([[0], np.cumsum(data == ord(","), dtype=np.int64)])
    per_line = np.diff(np.concatenate([[0], commas[ends]]))
    starts = np.concatenate([[0], ends[:-1] + 1])
    blank = (ends - starts) <= 1  # empty lines (or a lone carriage return) are skipped
    bad = np.flatnonzero((per_line != n_fields - 1) & ~blank)
    if bad.size:
        i = int(bad[0])
        raise HazardDataError(
            f"{path}: malformed IBTrACS CSV: line {i + 1} has {int(per_line[i]) + 1} fields, "
            f"the header has {n_fields} ({bad.size} such line{'s' if bad.size > 1 else ''})")


def file_key(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime) identifying one version of a file, for cache keys."""
    p = Path(path)
    st = os.stat(p)
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)
