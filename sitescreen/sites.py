"""Read a portfolio of sites from GeoJSON, CSV or a table source into the site table.

A site needs either coordinates (WGS 84 longitude, latitude) or something to geocode (an
address or a city). :func:`read_sites` returns one row per site in a fixed column order
(:data:`OUTPUT_COLUMNS`); :func:`validate_sites` reads the same way but returns the report of
every problem in the file instead of raising. This module decodes the file, parses GeoJSON or
CSV, maps column names and aliases, normalises text and derives stable ids for sites without
one (GeoPackage layers and PostGIS tables are read by :mod:`sitescreen.site_sources` into
features, then checked here as GeoJSON features are); the checks themselves, the :class:`~sitescreen.site_checks.Problem` and
:class:`~sitescreen.site_checks.ValidationReport` objects and the ``on_invalid`` policy live in
:mod:`sitescreen.site_checks`.

Columns are parsed and checked whole (pandas/numpy), so a 100,000-row CSV reads in about a
second. GeoJSON features are unpacked one by one (JSON is nested), then checked the same
vectorised way.

Conventions
-----------
- ``feature N`` counts features from 1 (the first element of ``features`` is feature 1).
- ``row N`` is the spreadsheet row: the CSV header is row 1, the first site is row 2.
- GeoJSON is always WGS 84 longitude, latitude (RFC 7946 section 4); a legacy ``crs`` member
  naming anything else is an error, never silently reprojected.
- Polygon and MultiPolygon footprints are kept; the site location (``lon``/``lat``) is their
  representative point (:func:`shapely.point_on_surface`), which lies inside the footprint,
  unlike the centroid of a concave shape.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from sitescreen.errors import ConfigError, SiteValidationError
from sitescreen.outputs.run_folder import (
    GPKG_MAX_COLUMNS,
    MAX_INT64,
    is_reserved_output_name,
    max_site_properties,
)
from sitescreen.site_checks import (
    ON_INVALID,
    Issues,
    OnInvalid,
    Problem,
    ValidationReport,
    build_report,
    check_coordinate_pairs,
    check_coordinates,
    check_crs,
    check_duplicate_ids,
    check_geometry,
    check_locatable,
    check_text_fields,
    problem_kinds,
    write_problem_report,
)
from sitescreen.site_sources import SourceProblem, is_table_source, read_table, redact

__all__ = [
    "CORE_COLUMNS",
    "OUTPUT_COLUMNS",
    "SITE_KINDS",
    "DEFAULT_MAX_BYTES",
    "SiteWarning",
    "read_sites",
    "validate_sites",
    "derive_site_id",
]

logger = logging.getLogger(__name__)

#: Text columns every site has, in output order ("" when the input does not give them).
CORE_COLUMNS: tuple[str, ...] = (
    "site_id", "name", "company", "kind", "address", "city", "country")
#: Leading output columns; extras follow, then ``geometry``.
OUTPUT_COLUMNS: tuple[str, ...] = CORE_COLUMNS + ("lon", "lat", "location_source", "input_ref")
#: Known values of ``kind``; anything else is kept, with a warning.
SITE_KINDS: tuple[str, ...] = ("office", "data_center", "lab", "rnd_center")
#: Files above this size are refused before being read (512 MiB: a portfolio of a million
#: sites with names and addresses is a CSV of 100-200 MB).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

# Column names accepted for each canonical column, compared after _norm_key.
_ALIASES: dict[str, tuple[str, ...]] = {
    "site_id": ("site_id", "siteid", "id"),
    "name": ("name", "site_name"),
    "company": ("company",),
    "kind": ("kind",),
    "address": ("address",),
    "city": ("city",),
    "country": ("country",),
    "lon": ("lon", "longitude", "lng", "long", "x"),
    "lat": ("lat", "latitude", "y"),
}
_NUMBER_RE = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_DECIMAL_COMMA_RE = r"^\s*([+-]?\d+),(\d+)\s*$"


class SiteWarning(UserWarning):
    """Emitted by ``read_sites(..., on_invalid="warn")`` when sites are dropped or doubtful."""


# ----------------------------------------------------------------------------------------
# Public entry points


def read_sites(
    path: str | os.PathLike[str],
    *,
    on_invalid: OnInvalid = "raise",
    max_bytes: int = DEFAULT_MAX_BYTES,
    password: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a sites file, GeoPackage layer or PostGIS table into a GeoDataFrame (EPSG:4326).

    Parameters
    ----------
    path : str or path-like
        A ``.geojson``/``.json`` FeatureCollection, or a ``.csv``/``.tsv``/``.txt`` table
        (UTF-8, BOM allowed, delimiter ``,`` ``;`` or tab). Other suffixes are sniffed.
        Or a table source (:mod:`sitescreen.site_sources`): ``sites.gpkg:layer``, or
        ``postgresql://user@host/db?table=sites`` (or ``?query=...``).
    on_invalid : {"raise", "warn", "ignore"}
        ``"raise"``: any error raises :class:`~sitescreen.errors.SiteValidationError` listing
        every problem. ``"warn"``: sites with errors are dropped and one :class:`SiteWarning`
        lists them. ``"ignore"``: they are dropped silently (logged at DEBUG). Problems with
        the file as a whole (unreadable, empty, too big, no sites left) always raise.
    max_bytes : int
        Refuse files larger than this many bytes, before reading them.
    password : str, optional
        Database password of a PostGIS source when not in ``PGPASSWORD``/``~/.pgpass``.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns :data:`OUTPUT_COLUMNS` (``lon``/``lat`` float degrees, NaN when the site
        still needs geocoding; ``location_source`` ``"given"`` or ``""``; ``input_ref`` such
        as ``"feature 3"`` or ``"row 5"``), then extra input columns unchanged, then
        ``geometry`` (the input Point, Polygon, MultiPolygon or None). ``attrs`` holds
        ``source_path``, ``source_sha256``, ``source_format`` and ``source_meta`` (the
        top-level GeoJSON members other than ``type``/``features``). For a table source
        ``source_sha256`` is the digest of its rows (ids, geometries, properties) and
        ``source_path`` the source with any password redacted.

    Raises
    ------
    SiteValidationError
        As described under ``on_invalid``; ``.problems`` holds
        :class:`~sitescreen.site_checks.Problem` objects.
    ValueError
        For an unknown ``on_invalid``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_text("site_id,name,lon,lat,city\\nA,HQ,121.47,31.23,Shanghai\\n,Lab,,,Kyoto\\n")
    >>> gdf = read_sites(p)
    >>> gdf[["site_id", "lon", "location_source", "input_ref"]].values.tolist()
    [['A', 121.47, 'given', 'row 2'], ['site-64cefa7cbf', nan, '', 'row 3']]
    """
    report = validate_sites(path, on_invalid=on_invalid, max_bytes=max_bytes,
                            password=password)
    if report.sites is None:
        errors = list(report.errors)
        if len(errors) > SiteValidationError.MAX_SHOWN:  # too many to print: to a file
            saved = None if is_table_source(str(path)) else write_problem_report(report,
                                                                                   Path(path))
            raise SiteValidationError(report.source, errors, kinds=problem_kinds(errors),
                                      report_path=str(saved) if saved else None)
        raise SiteValidationError(report.source, errors)
    if on_invalid == "warn" and report.problems:
        warnings.warn(SiteWarning(report.format(max_problems=50)), stacklevel=2)
    elif on_invalid == "ignore" and report.problems:
        logger.debug("%s", report.format(max_problems=50))
    elif report.warnings:
        logger.warning("%s", report.format(max_problems=50))
    return report.sites


def validate_sites(
    path: str | os.PathLike[str],
    *,
    on_invalid: OnInvalid = "raise",
    max_bytes: int = DEFAULT_MAX_BYTES,
    password: str | None = None,
) -> ValidationReport:
    """Check a sites file and report every problem at once; never raises for bad content.

    Parameters are those of :func:`read_sites`. ``report.sites`` is what ``read_sites`` with
    the same options returns, or None where it would raise. The checks and the report are
    those of :mod:`sitescreen.site_checks`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_text("site_id,lon,lat\\nA,31.2,121.4\\n")
    >>> print(validate_sites(p).errors[0].hint)
    lat and lon look swapped: (lon 121.4, lat 31.2) is a valid position; exchange the two values
    """
    if on_invalid not in ON_INVALID:
        raise ValueError(f"invalid on_invalid: {on_invalid!r}; use one of {ON_INVALID}")
    if is_table_source(str(path)):
        source = redact(str(path))
        parsed = _parse_table(str(path), source, password=password)
    else:
        source = str(path)
        parsed = _parse(Path(path), max_bytes=max_bytes)
    return build_report(source, parsed.problems, parsed.frame, parsed.bad,
                        on_invalid=on_invalid)


def derive_site_id(company: str, name: str, address: str, city: str, country: str,
                   lon: float, lat: float) -> str:
    """A stable id for a site that has none: ``"site-"`` + 10 hex digits of SHA-1.

    Text is stripped, whitespace-collapsed and case-folded; coordinates are rounded to 6
    decimals (about 0.1 m) and empty when missing, so re-saving a file does not change ids.

    Examples
    --------
    >>> derive_site_id("ACME", "HQ", "", "Shanghai", "CN", float("nan"), float("nan"))
    'site-2403cf3ea7'
    >>> derive_site_id(" acme ", "hq", "", "SHANGHAI", "cn", float("nan"), float("nan"))
    'site-2403cf3ea7'
    """
    parts = [" ".join(str(s).split()).casefold() for s in (company, name, address, city, country)]
    parts += [f"{v:.6f}" if math.isfinite(v) else "" for v in (lon, lat)]
    return "site-" + hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()[:10]


# ----------------------------------------------------------------------------------------
# Parsing


@dataclass(slots=True)
class _Parsed:
    problems: list[Problem]
    frame: gpd.GeoDataFrame | None = None
    bad: np.ndarray | None = None


def _file_problem(source: str, message: str, hint: str = "", *, where: str = "",
                  field_: str = "") -> _Parsed:
    """A problem with the file as a whole; ``where`` defaults to the file's name."""
    return _Parsed([Problem("error", where or _source_name(source), field_, message, hint)])


def _source_name(source: str) -> str:
    """How problems name the source: a file by its name, a table source whole."""
    return source if is_table_source(source) else Path(source).name


def _parse(path: Path, *, max_bytes: int) -> _Parsed:
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return _file_problem(source, f"cannot open the file: {exc.strerror or exc}",
                             "check the path and the permissions")
    if size > max_bytes:
        return _file_problem(
            source, f"file is {size:,} bytes ({size / 2**20:.1f} MiB), more than the limit of "
            f"{max_bytes:,} bytes ({max_bytes / 2**20:.1f} MiB)",
            f"pass a larger max_bytes to read_sites/validate_sites (e.g. max_bytes={size + 1}) "
            "if the file is really meant to be this big")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _file_problem(source, f"cannot read the file: {exc.strerror or exc}")
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        return _file_problem(source, "file is empty" if not data else "file holds only blanks",
                             "write at least one site (GeoJSON FeatureCollection or CSV)")
    text = _decode(data)
    if isinstance(text, Problem):
        return _file_problem(source, text.message, text.hint)
    fmt = _format_of(path, text)
    parsed = _parse_geojson(source, text) if fmt == "geojson" else _parse_csv(source, text)
    if parsed.frame is not None:
        parsed.frame.attrs.update(source_path=str(path.resolve()), source_format=fmt,
                                  source_sha256=hashlib.sha256(data).hexdigest())
    return parsed


def _parse_table(raw: str, source: str, *, password: str | None) -> _Parsed:
    """A GeoPackage layer or PostGIS table, checked as GeoJSON features are."""
    try:
        rows = read_table(raw, password=password)
    except (SourceProblem, ConfigError) as exc:
        return _file_problem(source, getattr(exc, "message", str(exc)),
                             getattr(exc, "hint", ""), where=source)
    if not rows.features:
        return _file_problem(source, "the table has no rows (zero sites)",
                             "add at least one site", where=source)
    parsed = _parse_features(source, rows.features, rows.refs, rows.meta, [])
    if parsed.frame is not None:
        parsed.frame.attrs.update(source_path=source, source_format=rows.format,
                                  source_sha256=rows.digest)
    return parsed


def _decode(data: bytes) -> str | Problem:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Problem("error", "", "", "file is UTF-16 (it starts with a UTF-16 byte order "
                       "mark), not UTF-8", "re-save the file as UTF-8 (in Excel: 'CSV UTF-8')")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 1].hex().upper()
        return Problem(
            "error", "", "", f"file is not UTF-8: byte 0x{bad} at byte offset {exc.start} "
            f"(line {line}) is not valid UTF-8 (Windows-1252/Latin-1 or GBK text?)",
            "re-save the file as UTF-8 (in Excel: 'CSV UTF-8'), or convert it, e.g. "
            "`iconv -f GB18030 -t UTF-8` for Chinese or `iconv -f WINDOWS-1252 -t UTF-8` for "
            "Western European text")
    return text.removeprefix("\ufeff")


def _format_of(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return "geojson"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    return "geojson" if text.lstrip()[:1] in ("{", "[") else "csv"


def _norm_key(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _resolve_columns(columns: Sequence[object]) -> dict[str, object]:
    """Map canonical names to the input's column names (case-insensitive, aliases)."""
    by_key: dict[str, object] = {}
    for c in columns:
        by_key.setdefault(_norm_key(c), c)
    out: dict[str, object] = {}
    for canon, aliases in _ALIASES.items():
        for a in aliases:
            if a in by_key:
                out[canon] = by_key[a]
                break
    return out


# --- GeoJSON -----------------------------------------------------------------------------


def _parse_geojson(source: str, text: str) -> _Parsed:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        line_text = text.splitlines()[exc.lineno - 1] if text.splitlines() else ""
        snippet = line_text[max(0, exc.colno - 40):exc.colno + 20].strip()
        return _file_problem(
            source, f"invalid JSON: {exc.msg}" + (f", near {snippet!r}" if snippet else ""),
            "look for a missing comma, bracket or quote just before that position",
            where=f"line {exc.lineno}, column {exc.colno}")
    except RecursionError:
        return _file_problem(source, "invalid JSON: nested too deeply")
    if not isinstance(doc, dict):
        return _file_problem(
            source, f"top level is a JSON {type(doc).__name__ if doc is not None else 'null'}, "
            "not a GeoJSON object", 'wrap the features as {"type": "FeatureCollection", '
            '"features": [...]}', field_="type")
    gtype = doc.get("type")
    if gtype != "FeatureCollection":
        hint = ('wrap it as {"type": "FeatureCollection", "features": [...]}'
                if gtype in ("Feature", "Point", "Polygon", "MultiPolygon", "GeometryCollection")
                else "a sites file is a GeoJSON FeatureCollection")
        return _file_problem(source, f"top-level type is {gtype!r}, expected "
                             "'FeatureCollection'", hint, field_="type")
    features = doc.get("features")
    if not isinstance(features, list):
        return _file_problem(source, "'features' is missing or not a list"
                             if features is None else
                             f"'features' is a {type(features).__name__}, not a list",
                             "a FeatureCollection holds its sites in a 'features' array",
                             field_="features")
    file_problems: list[Problem] = []
    crs_problem = check_crs(doc.get("crs"), source)
    if crs_problem is not None:
        return _Parsed([crs_problem])
    if not features:
        return _file_problem(source, "the FeatureCollection has no features (zero sites)",
                             "add at least one site", field_="features")
    n = len(features)
    meta = {k: v for k, v in doc.items() if k not in ("type", "features")}
    return _parse_features(source, features, [f"feature {i + 1}" for i in range(n)], meta,
                           file_problems)


def _parse_features(source: str, features: list, refs: list[str], meta: dict,
                    file_problems: list[Problem]) -> _Parsed:
    """Check GeoJSON features (of a file, or made from the rows of a table source)."""
    issues = Issues()
    n = len(features)
    records: list[dict] = []
    not_feature = np.zeros(n, dtype=bool)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    has_coords = np.zeros(n, dtype=bool)
    geoms: list[Any] = [None] * n
    bad = np.zeros(n, dtype=bool)
    for i, feat in enumerate(features):
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            what = feat.get("type") if isinstance(feat, dict) else type(feat).__name__
            issues.add("error", i, "type", f"is not a GeoJSON Feature (type {what!r})",
                       'each element of "features" must be {"type": "Feature", ...}')
            bad[i] = True
            not_feature[i] = True
            records.append({})
            continue
        props = feat.get("properties")
        if props is None:
            props = {}
        elif not isinstance(props, dict):
            issues.add("error", i, "properties",
                       f"'properties' is a {type(props).__name__}, not an object")
            bad[i] = True
            props = {}
        records.append(props)
        geom = feat.get("geometry")
        if geom is None:
            continue
        ok, x, y, g = check_geometry(geom, i, issues)
        if not ok:
            bad[i] = True
            has_coords[i] = True  # it tried to give coordinates: do not ask for an address
            continue
        lon[i], lat[i], geoms[i], has_coords[i] = x, y, g, True

    # dtype=object keeps property values exactly as parsed (an int id stays an int).
    props_df = pd.DataFrame(records, index=pd.RangeIndex(n), dtype=object)
    # Point locations are checked column-wise; footprints were checked vertex by vertex.
    is_point = np.array([g is None for g in geoms]) & has_coords & ~bad
    bad |= check_coordinates(lon, lat, is_point, issues, "geometry.coordinates",
                             "geometry.coordinates", raw_lon=None, raw_lat=None)
    point_idx = np.flatnonzero(is_point & ~bad)
    geoms_arr = np.empty(n, dtype=object)
    for k, g in enumerate(geoms):  # element-wise: never let numpy look inside a geometry
        geoms_arr[k] = g
    geoms = geoms_arr
    geoms[point_idx] = shapely.points(lon[point_idx], lat[point_idx])
    return _finish(source, props_df, lon, lat, has_coords, geoms, bad, issues, refs, meta,
                   file_problems, quiet=not_feature)


# --- CSV ---------------------------------------------------------------------------------


def _sniff_delimiter(text: str) -> str:
    """Pick among ',', ';' and tab the one that splits the header into the most fields."""
    first = text.split("\n", 1)[0]
    counts = {d: len(next(csv.reader([first], delimiter=d), [])) for d in (",", ";", "\t")}
    best = max(counts.values())
    return next(d for d in (",", ";", "\t") if counts[d] == best)


def _parse_csv(source: str, text: str) -> _Parsed:
    delim = _sniff_delimiter(text)
    header = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")], delimiter=delim), [])
    cols = _resolve_columns(header)
    numeric_cells = [h for h in header if _NUMBER_RE.match(h)]
    if not (set(cols) - {"lon", "lat"}) and (numeric_cells or not cols):
        first = text.split("\n", 1)[0][:80]
        return _file_problem(
            source, "CSV has no header row" + (f": the first line {first!r} looks like data"
                                                if numeric_cells else
                                                f": none of {list(header)[:8]!r} is a known column"),
            "add a first line naming the columns, e.g. site_id,name,company,kind,address,city,"
            "country,lon,lat", where="row 1 (header)")
    dupes = sorted({_norm_key(h) for h in header
                    if [_norm_key(x) for x in header].count(_norm_key(h)) > 1 and h.strip()})
    if dupes:
        return _file_problem(source, f"CSV header repeats the column(s) {dupes}",
                             "give every column a distinct name", where="row 1 (header)")
    if ("lon" in cols) != ("lat" in cols):
        have, miss = ("lon", "lat") if "lon" in cols else ("lat", "lon")
        return _file_problem(source, f"CSV has a {have} column ({cols[have]!r}) but no {miss} "
                             "column", f"add a {miss} column (aliases: {_ALIASES[miss]})",
                             where="row 1 (header)", field_=miss)
    if "lon" not in cols and "address" not in cols and "city" not in cols:
        return _file_problem(
            source, f"CSV has neither lon/lat columns nor an address or city column "
            f"(columns: {list(header)!r})", "add lon and lat columns (WGS 84 degrees), or an "
            "address/city column to geocode", where="row 1 (header)")
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, keep_default_na=False,
                         na_filter=False, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        m = re.search(r"line (\d+)", msg)
        return _file_problem(source, f"CSV cannot be parsed: {msg}",
                             "check quotes and the number of delimiters on that line",
                             where=f"line {m.group(1)}" if m else "")
    df = df.fillna("")
    # Rows of only delimiters (";;;;" left by spreadsheets) are not sites.
    blank = np.ones(len(df), dtype=bool)
    for c in df.columns:
        blank &= (df[c].str.strip() == "").to_numpy()
    rows = np.flatnonzero(~blank)
    df = df.iloc[rows].reset_index(drop=True)
    refs = ("row " + pd.Series(rows + 2).astype(str)).tolist()
    n = len(df)
    if n == 0:
        return _file_problem(source, "CSV has a header but no data rows (zero sites)",
                             "add one row per site")
    issues = Issues()
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    has_coords = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    if "lon" in cols:
        raw_lon = df[cols["lon"]].str.strip()
        raw_lat = df[cols["lat"]].str.strip()
        if delim != ",":
            # Spreadsheets in many locales write 31,2 for 31.2 next to ';' delimiters.
            raw_lon = raw_lon.str.replace(_DECIMAL_COMMA_RE, r"\1.\2", regex=True)
            raw_lat = raw_lat.str.replace(_DECIMAL_COMMA_RE, r"\1.\2", regex=True)
        has_lon, has_lat = (raw_lon != "").to_numpy(), (raw_lat != "").to_numpy()
        bad |= check_coordinate_pairs(has_lon, has_lat, issues, str(cols["lon"]),
                                      str(cols["lat"]))
        has_coords = has_lon | has_lat
        lon = pd.to_numeric(raw_lon.where(has_lon, "nan"), errors="coerce").to_numpy(float)
        lat = pd.to_numeric(raw_lat.where(has_lat, "nan"), errors="coerce").to_numpy(float)
        both = has_lon & has_lat
        bad |= check_coordinates(lon, lat, both, issues, str(cols["lon"]), str(cols["lat"]),
                                 raw_lon=raw_lon.to_numpy(object),
                                 raw_lat=raw_lat.to_numpy(object))
    geoms = np.full(n, None, dtype=object)
    idx = np.flatnonzero(has_coords & ~bad)
    geoms[idx] = shapely.points(lon[idx], lat[idx])
    coord_cols = {cols.get("lon"), cols.get("lat")} - {None}
    props = df[[c for c in df.columns if c not in coord_cols]]
    return _finish(source, props, lon, lat, has_coords, geoms, bad, issues, refs,
                   {"delimiter": delim}, [])


# --- The site table ----------------------------------------------------------------------


def _text_column(s: pd.Series | None, n: int) -> np.ndarray:
    """Stripped text, "" for missing; non-text values (a numeric id) become their str()."""
    if s is None:
        return np.full(n, "", dtype=object)
    if not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        s = s.astype(object)
        s = s.where(s.notna(), "").map(lambda v: v if isinstance(v, str) else str(v))
    return s.fillna("").str.strip().to_numpy(object)


def _finish(source: str, props: pd.DataFrame, lon: np.ndarray, lat: np.ndarray,
            has_coords: np.ndarray, geoms: np.ndarray, bad: np.ndarray, issues: Issues,
            refs: list[str], meta: dict, file_problems: list[Problem],
            quiet: np.ndarray | None = None) -> _Parsed:
    """Build the output frame, check and derive ids, and turn issues into problems.

    ``quiet`` marks inputs already rejected as a whole (not a Feature): no further checks.
    ``bad`` is updated in place with the sites the table checks find bad.
    """
    n = len(refs)
    quiet = np.zeros(n, dtype=bool) if quiet is None else quiet
    cols = _resolve_columns(list(props.columns))
    cols.pop("lon", None)
    cols.pop("lat", None)
    core = {c: _text_column(props[cols[c]] if c in cols else None, n) for c in CORE_COLUMNS}
    cc = pd.Series(core["country"], dtype="str")
    is_code = cc.str.fullmatch(r"[A-Za-z]{2}").to_numpy(bool)
    core["country"] = np.where(is_code, cc.str.upper(), cc).astype(object)
    given_ids = core["site_id"].copy()

    # The order of these calls is the order of each site's problems in the report.
    bad |= check_locatable(has_coords, core["address"], core["city"], bad | quiet, issues)
    bad |= check_duplicate_ids(given_ids, refs, issues)
    _derive_ids(core, lon, lat, issues, refs)
    check_text_fields(core["name"], core["kind"], core["country"], quiet, issues,
                      known_kinds=SITE_KINDS)

    # Extras: every other input column, unchanged; renamed only when it would clash.
    used = {cols[c] for c in cols}
    taken = {str(c) for c in props.columns} | set(CORE_COLUMNS)
    extras: dict[str, pd.Series] = {}
    for c in props.columns:
        if c in used:
            continue
        name = str(c)
        if is_reserved_output_name(_norm_key(name)) or name in CORE_COLUMNS:
            new, k = f"src_{name}", 1
            while new in taken:
                k += 1
                new = f"src_{name}_{k}"
            taken.add(new)
            file_problems.append(Problem(
                "warning", _source_name(source), name, f"input column {name!r} is named like a "
                f"field sitescreen writes; it is kept as {new!r} in every output"))
            name = new
        extras[name] = props[c].reset_index(drop=True)

    _check_output_fit(extras, issues, source, file_problems, bad)

    frame = pd.DataFrame({c: core[c] for c in CORE_COLUMNS})
    frame["lon"] = np.where(np.isfinite(lon), lon, np.nan)
    frame["lat"] = np.where(np.isfinite(lat), lat, np.nan)
    frame["location_source"] = np.where(has_coords, "given", "")
    frame["input_ref"] = refs
    if extras:  # one concat: thousands of inserted columns would fragment the frame
        frame = pd.concat([frame, pd.DataFrame({k: v.array for k, v in extras.items()})],
                          axis=1)
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
                           crs="EPSG:4326")
    gdf.attrs["source_meta"] = meta

    return _Parsed(list(file_problems) + issues.problems(refs, given_ids), gdf, bad)


def _check_output_fit(extras: dict[str, pd.Series], issues: Issues, source: str,
                      file_problems: list[Problem], bad: np.ndarray) -> None:
    """Extra properties must fit every output: at most as many as a GeoPackage layer holds,
    and integers within 64 bits (checked here, before any hazard is sampled)."""
    room = max_site_properties(len(CORE_COLUMNS) + 3)  # + lon, lat, input_ref
    if len(extras) > room:
        file_problems.append(Problem(
            "error", Path(source).name, "", f"{len(extras)} extra properties: a GeoPackage "
            f"layer holds at most {GPKG_MAX_COLUMNS} columns, so at most {room} extra "
            "properties fit beside sitescreen's own",
            "drop the properties you do not need in the outputs, or combine them into one"))
    for name, col in extras.items():
        if col.dtype != object:
            continue
        big = np.flatnonzero([isinstance(v, int) and not isinstance(v, bool)
                              and not -MAX_INT64 - 1 <= v <= MAX_INT64 for v in col])
        if big.size:
            issues.add_many("error", big, name, [
                f"{col.iloc[i]} does not fit a 64-bit integer, the largest number the "
                "GeoPackage and table outputs store" for i in big],
                "write it as text (in quotes) or as a decimal number")
            bad[big] = True


def _derive_ids(core: dict[str, np.ndarray], lon: np.ndarray, lat: np.ndarray,
                issues: Issues, refs: list[str]) -> None:
    """Give sites without an id a derived one (in place), never one already in use.

    A repeat of another site's derived id gets ``-2``, ``-3``...; when the whole site repeats
    (same text and coordinates) it is also reported as a warning.
    """
    ids = core["site_id"]
    given = ids != ""
    keys = pd.Series(ids, dtype="str").str.casefold()
    used = set(keys[given])
    origin: dict[str, int] = {}
    for i in np.flatnonzero(~given):
        base = derive_site_id(core["company"][i], core["name"][i], core["address"][i],
                              core["city"][i], core["country"][i], lon[i], lat[i])
        cand, k = base, 1
        while cand.casefold() in used:
            k += 1
            cand = f"{base}-{k}"
        if k > 1 and base in origin:
            issues.add("warning", i, "site_id",
                       f"same company, name, address, city, country and coordinates as "
                       f"{refs[origin[base]]}; given the id {cand!r}",
                       "remove the repeated row, or give each site a distinct site_id")
        origin.setdefault(base, i)
        used.add(cand.casefold())
        ids[i] = cand
