"""Read and validate a portfolio of sites from GeoJSON or CSV.

A site needs either coordinates (WGS 84 longitude, latitude) or something to geocode (an
address or a city). :func:`read_sites` returns one row per site in a fixed column order;
:func:`validate_sites` reports every problem in the file at once, each naming the feature or
row, the field, the bad value and what to do.

Checks run on whole columns (pandas/numpy), so a 100,000-row CSV reads in about a second. GeoJSON
features are unpacked one by one (JSON is nested), then checked the same vectorised way.

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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import shape as _shape

from .errors import SiteValidationError

__all__ = [
    "CORE_COLUMNS",
    "OUTPUT_COLUMNS",
    "SITE_KINDS",
    "DEFAULT_MAX_BYTES",
    "Problem",
    "ValidationReport",
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
#: Files above this size are refused before being read (50 MiB).
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

OnInvalid = Literal["raise", "warn", "ignore"]
_ON_INVALID = ("raise", "warn", "ignore")

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
# Names an extra column may not take, because the output already uses them.
_RESERVED = {"lon", "lat", "location_source", "input_ref", "geometry"}
# Legacy GeoJSON "crs" names that mean WGS 84 longitude, latitude.
_WGS84_NAMES = {
    "urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84", "crs84", "ogc:crs84",
    "epsg:4326", "urn:ogc:def:crs:epsg::4326", "urn:ogc:def:crs:epsg:4326",
    "http://www.opengis.net/def/crs/ogc/1.3/crs84",
    "http://www.opengis.net/def/crs/epsg/0/4326",
}
_FOOTPRINT_TYPES = ("Polygon", "MultiPolygon")
_NUMBER_RE = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_DECIMAL_COMMA_RE = r"^\s*([+-]?\d+),(\d+)\s*$"


class SiteWarning(UserWarning):
    """Emitted by ``read_sites(..., on_invalid="warn")`` when sites are dropped or doubtful."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a sites file.

    Attributes
    ----------
    severity : {"error", "warning"}
        Errors stop ``read_sites(on_invalid="raise")``; warnings never do.
    where : str
        The place in the input, e.g. ``"feature 3 (site_id 'st-sh-01')"``, ``"row 7"`` or
        ``"line 4, column 12"``; the file name for problems with the file as a whole.
    field : str
        The property, column or member at fault (``"lat"``, ``"geometry"``), or ``""``.
    message : str
        What is wrong, quoting the bad value.
    hint : str
        What to do about it, or ``""``.
    index : int or None
        0-based position of the site in the input; None for problems with the whole file.
    """

    severity: Literal["error", "warning"]
    where: str
    field: str
    message: str
    hint: str = ""
    index: int | None = None

    def __str__(self) -> str:
        head = f"{self.where}, field {self.field!r}" if self.field else self.where
        text = f"{self.severity}: {head}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Every problem found in a sites file, and the sites ``read_sites`` would return.

    ``sites`` is None when ``read_sites`` with the same options would raise (a file-level
    error, or any error with ``on_invalid="raise"``).
    """

    source: str
    problems: tuple[Problem, ...]
    sites: gpd.GeoDataFrame | None = field(default=None, compare=False, repr=False)
    n_input: int = 0

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n_input": self.n_input,
                "problems": [p.to_dict() for p in self.problems]}

    def format(self, *, max_problems: int | None = 200) -> str:
        """Human-readable text: a summary line, then one line per problem.

        Parameters
        ----------
        max_problems : int or None
            Show at most this many problems (errors first), then a count of the rest.
        """
        n_err, n_warn = len(self.errors), len(self.warnings)
        n_ok = 0 if self.sites is None else len(self.sites)
        head = (f"{self.source}: {self.n_input} site{'s' if self.n_input != 1 else ''} read, "
                f"{n_err} error{'s' if n_err != 1 else ''}, "
                f"{n_warn} warning{'s' if n_warn != 1 else ''}")
        if self.sites is not None and n_ok != self.n_input:
            head += f"; {n_ok} site{'s' if n_ok != 1 else ''} kept"
        ordered = self.errors + self.warnings
        shown = ordered if max_problems is None else ordered[:max_problems]
        lines = [head, *(f"  - {p}" for p in shown)]
        if len(shown) < len(ordered):
            lines.append(f"  ... and {len(ordered) - len(shown)} more")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Public entry points


def read_sites(
    path: str | os.PathLike[str],
    *,
    on_invalid: OnInvalid = "raise",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> gpd.GeoDataFrame:
    """Read a GeoJSON or CSV sites file into a GeoDataFrame (EPSG:4326).

    Parameters
    ----------
    path : str or path-like
        A ``.geojson``/``.json`` FeatureCollection, or a ``.csv``/``.tsv``/``.txt`` table
        (UTF-8, BOM allowed, delimiter ``,`` ``;`` or tab). Other suffixes are sniffed.
    on_invalid : {"raise", "warn", "ignore"}
        ``"raise"``: any error raises :class:`~sitescreen.errors.SiteValidationError` listing
        every problem. ``"warn"``: sites with errors are dropped and one :class:`SiteWarning`
        lists them. ``"ignore"``: they are dropped silently (logged at DEBUG). Problems with
        the file as a whole (unreadable, empty, too big, no sites left) always raise.
    max_bytes : int
        Refuse files larger than this many bytes, before reading them.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns :data:`OUTPUT_COLUMNS` (``lon``/``lat`` float degrees, NaN when the site
        still needs geocoding; ``location_source`` ``"given"`` or ``""``; ``input_ref`` such
        as ``"feature 3"`` or ``"row 5"``), then extra input columns unchanged, then
        ``geometry`` (the input Point, Polygon, MultiPolygon or None). ``attrs`` holds
        ``source_path``, ``source_sha256``, ``source_format`` and ``source_meta`` (the
        top-level GeoJSON members other than ``type``/``features``).

    Raises
    ------
    SiteValidationError
        As described under ``on_invalid``; ``.problems`` holds :class:`Problem` objects.
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
    report = validate_sites(path, on_invalid=on_invalid, max_bytes=max_bytes)
    if report.sites is None:
        raise SiteValidationError(report.source, list(report.errors))
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
) -> ValidationReport:
    """Check a sites file and report every problem at once; never raises for bad content.

    Parameters are those of :func:`read_sites`. ``report.sites`` is what ``read_sites`` with
    the same options returns, or None where it would raise.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_text("site_id,lon,lat\\nA,31.2,121.4\\n")
    >>> print(validate_sites(p).errors[0].hint)
    lat and lon look swapped: (lon 121.4, lat 31.2) is a valid position; exchange the two values
    """
    if on_invalid not in _ON_INVALID:
        raise ValueError(f"invalid on_invalid: {on_invalid!r}; use one of {_ON_INVALID}")
    source = str(path)
    parsed = _parse(Path(path), max_bytes=max_bytes)
    problems = _sorted(parsed.problems)
    if parsed.frame is None:
        return ValidationReport(source, problems, None, 0)
    frame, bad = parsed.frame, parsed.bad
    has_error = any(p.severity == "error" for p in problems)
    if on_invalid == "raise" and has_error:
        return ValidationReport(source, problems, None, len(frame))
    kept = frame.loc[~bad].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    if len(kept) == 0:
        problems = problems + (Problem(
            "error", source, "", f"no valid sites left: all {len(frame)} have errors",
            "fix the errors listed above"),)
        return ValidationReport(source, problems, None, len(frame))
    return ValidationReport(source, problems, kept, len(frame))


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


@dataclass(slots=True)
class _Issues:
    """Site-level problems gathered before the site ids (and so the ``where`` text) exist."""

    items: list[tuple[str, int, str, str, str]] = field(default_factory=list)

    def add(self, severity: str, index: int, field_: str, message: str, hint: str = "") -> None:
        self.items.append((severity, int(index), field_, message, hint))

    def add_many(self, severity: str, indices: np.ndarray, field_: str,
                 messages: Sequence[str], hint: str | Sequence[str] = "") -> None:
        hints = [hint] * len(indices) if isinstance(hint, str) else hint
        for i, m, h in zip(indices, messages, hints, strict=True):
            self.items.append((severity, int(i), field_, m, h))


def _file_problem(source: str, message: str, hint: str = "", *, where: str = "",
                  field_: str = "") -> _Parsed:
    """A problem with the file as a whole; ``where`` defaults to the file's name."""
    return _Parsed([Problem("error", where or Path(source).name, field_, message, hint)])


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
    crs_problem = _check_crs(doc.get("crs"), source)
    if crs_problem is not None:
        return _Parsed([crs_problem])
    if not features:
        return _file_problem(source, "the FeatureCollection has no features (zero sites)",
                             "add at least one site", field_="features")

    issues = _Issues()
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
        ok, x, y, g = _parse_geometry(geom, i, issues)
        if not ok:
            bad[i] = True
            has_coords[i] = True  # it tried to give coordinates: do not ask for an address
            continue
        lon[i], lat[i], geoms[i], has_coords[i] = x, y, g, True

    # dtype=object keeps property values exactly as parsed (an int id stays an int).
    props_df = pd.DataFrame(records, index=pd.RangeIndex(n), dtype=object)
    # Point locations are checked column-wise; footprints were checked vertex by vertex.
    is_point = np.array([g is None for g in geoms]) & has_coords & ~bad
    bad |= _check_coordinates(lon, lat, is_point, issues, "geometry.coordinates",
                              "geometry.coordinates", raw_lon=None, raw_lat=None)
    point_idx = np.flatnonzero(is_point & ~bad)
    geoms_arr = np.empty(n, dtype=object)
    for k, g in enumerate(geoms):  # element-wise: never let numpy look inside a geometry
        geoms_arr[k] = g
    geoms = geoms_arr
    geoms[point_idx] = shapely.points(lon[point_idx], lat[point_idx])
    meta = {k: v for k, v in doc.items() if k not in ("type", "features")}
    return _finish(source, props_df, lon, lat, has_coords, geoms, bad, issues,
                   [f"feature {i + 1}" for i in range(n)], meta, file_problems,
                   quiet=not_feature)


def _check_crs(crs: object, source: str) -> Problem | None:
    if crs is None:
        return None
    name = None
    if isinstance(crs, dict):
        props = crs.get("properties")
        if crs.get("type") == "name" and isinstance(props, dict):
            name = props.get("name")
        elif crs.get("type") == "EPSG" and isinstance(props, dict):
            name = f"EPSG:{props.get('code')}"
        else:
            name = json.dumps(crs, ensure_ascii=False)[:120]
    else:
        name = str(crs)
    if isinstance(name, str) and name.strip().lower() in _WGS84_NAMES:
        return None
    return Problem(
        "error", Path(source).name, "crs", f"declares CRS {name!r}; GeoJSON coordinates must "
        "be WGS 84 longitude, latitude (RFC 7946), and sitescreen does not reproject",
        "reproject to WGS 84 and drop the 'crs' member, e.g. "
        "`ogr2ogr -f GeoJSON -t_srs EPSG:4326 out.geojson in.geojson`")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _all_numbers(coords: object, depth: int) -> bool:
    if depth == 0:
        return (isinstance(coords, list) and len(coords) >= 2
                and all(_is_number(v) for v in coords))
    return isinstance(coords, list) and all(_all_numbers(c, depth - 1) for c in coords)


def _parse_geometry(geom: object, i: int, issues: _Issues) -> tuple[bool, float, float, Any]:
    """Unpack one GeoJSON geometry: (ok, lon, lat, shapely footprint or None for a Point)."""
    f = "geometry"
    if not isinstance(geom, dict):
        issues.add("error", i, f, f"geometry is a {type(geom).__name__}, not a GeoJSON object")
        return False, np.nan, np.nan, None
    gtype = geom.get("type")
    coords = geom.get("coordinates")
    if gtype == "Point":
        fc = "geometry.coordinates"
        if coords is None or coords == []:
            issues.add("error", i, fc, "Point has empty coordinates",
                       "give [longitude, latitude], or set geometry to null and give an address")
            return False, np.nan, np.nan, None
        if not isinstance(coords, list) or len(coords) < 2:
            issues.add("error", i, fc, f"Point coordinates {coords!r} are not "
                       "[longitude, latitude]", "give two numbers: [lon, lat]")
            return False, np.nan, np.nan, None
        if not all(_is_number(v) for v in coords):
            issues.add("error", i, fc, f"Point coordinates {coords!r} are not numbers",
                       "write numbers without quotes, e.g. [121.47, 31.23]")
            return False, np.nan, np.nan, None
        # Altitude (a third number) is allowed by RFC 7946 and ignored here.
        return True, float(coords[0]), float(coords[1]), None
    if gtype in _FOOTPRINT_TYPES:
        return _parse_footprint(geom, gtype, coords, i, issues)
    if gtype is None:
        issues.add("error", i, "geometry.type", "geometry has no 'type'",
                   "use Point, or Polygon/MultiPolygon for a footprint")
    else:
        issues.add("error", i, "geometry.type", f"unsupported geometry type {gtype!r}",
                   "use Point, or Polygon/MultiPolygon for a footprint")
    return False, np.nan, np.nan, None


def _parse_footprint(geom: dict, gtype: str, coords: object, i: int,
                     issues: _Issues) -> tuple[bool, float, float, Any]:
    fc = "geometry.coordinates"
    if coords is None or coords == [] or coords == [[]]:
        issues.add("error", i, fc, f"{gtype} has empty coordinates",
                   "give the footprint rings, or a Point")
        return False, np.nan, np.nan, None
    if not _all_numbers(coords, 2 if gtype == "Polygon" else 3):
        issues.add("error", i, fc, f"{gtype} coordinates are not nested lists of "
                   "[longitude, latitude] numbers", "write numbers without quotes")
        return False, np.nan, np.nan, None
    try:
        g = _shape({"type": gtype, "coordinates": coords})
    except (ValueError, TypeError, IndexError, shapely.errors.GEOSException) as exc:
        issues.add("error", i, fc, f"{gtype} cannot be built: {exc}",
                   "each ring needs at least 4 positions, the first repeated as the last")
        return False, np.nan, np.nan, None
    xy = shapely.get_coordinates(g)
    if g.is_empty or len(xy) == 0:
        issues.add("error", i, fc, f"{gtype} has empty coordinates")
        return False, np.nan, np.nan, None
    if not np.isfinite(xy).all():
        issues.add("error", i, fc, f"{gtype} has NaN or infinite vertex coordinates")
        return False, np.nan, np.nan, None
    xmin, ymin, xmax, ymax = g.bounds
    if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
        swap = -180 <= ymin and ymax <= 180 and -90 <= xmin and xmax <= 90
        issues.add("error", i, fc, f"{gtype} vertices reach outside longitude -180..180 / "
                   f"latitude -90..90 (bounds {xmin:.10g}, {ymin:.10g}, {xmax:.10g}, {ymax:.10g})",
                   "vertices look like [lat, lon]; GeoJSON wants [lon, lat]" if swap else
                   "the footprint looks projected; reproject it to WGS 84 lon/lat")
        return False, np.nan, np.nan, None
    if not g.is_valid:
        reason = shapely.is_valid_reason(g)
        issues.add("error", i, "geometry", f"{gtype} is invalid: {reason}",
                   "fix the footprint so no edge crosses another (e.g. shapely.make_valid), "
                   "or give a Point instead" if "intersection" in reason.lower() else
                   "each ring needs at least 4 positions (3 distinct corners), the first repeated "
                   "as the last; or give a Point instead")
        return False, np.nan, np.nan, None
    rep = g.representative_point()
    return True, float(rep.x), float(rep.y), g


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
    issues = _Issues()
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
        for have, miss, f_have, f_miss in ((has_lon, has_lat, cols["lon"], cols["lat"]),
                                           (has_lat, has_lon, cols["lat"], cols["lon"])):
            idx = np.flatnonzero(have & ~miss)
            issues.add_many("error", idx, str(f_miss),
                            [f"{f_miss} is empty but {f_have} is given"] * len(idx),
                            "give both coordinates, or neither and an address")
            bad[idx] = True
        has_coords = has_lon | has_lat
        lon = pd.to_numeric(raw_lon.where(has_lon, "nan"), errors="coerce").to_numpy(float)
        lat = pd.to_numeric(raw_lat.where(has_lat, "nan"), errors="coerce").to_numpy(float)
        both = has_lon & has_lat
        bad |= _check_coordinates(lon, lat, both, issues, str(cols["lon"]), str(cols["lat"]),
                                  raw_lon=raw_lon.to_numpy(object),
                                  raw_lat=raw_lat.to_numpy(object))
    geoms = np.full(n, None, dtype=object)
    idx = np.flatnonzero(has_coords & ~bad)
    geoms[idx] = shapely.points(lon[idx], lat[idx])
    coord_cols = {cols.get("lon"), cols.get("lat")} - {None}
    props = df[[c for c in df.columns if c not in coord_cols]]
    return _finish(source, props, lon, lat, has_coords, geoms, bad, issues, refs,
                   {"delimiter": delim}, [])


# --- Shared checks and assembly ------------------------------------------------------------


def _check_coordinates(lon: np.ndarray, lat: np.ndarray, mask: np.ndarray, issues: _Issues,
                       f_lon: str, f_lat: str, *, raw_lon: np.ndarray | None,
                       raw_lat: np.ndarray | None) -> np.ndarray:
    """Vectorised range/NaN/placeholder checks; returns the mask of sites found bad."""
    bad = np.zeros(len(lon), dtype=bool)
    same = f_lon == f_lat  # GeoJSON: both live in geometry.coordinates

    def fmt(raw: np.ndarray | None, values: np.ndarray, idx: np.ndarray) -> list[str]:
        if raw is not None:
            return [repr(str(raw[k])) for k in idx]
        return [f"{values[k]:.10g}" for k in idx]

    for name, vals, raw, f in (("longitude", lon, raw_lon, f_lon),
                               ("latitude", lat, raw_lat, f_lat)):
        if raw is not None:
            cand = np.flatnonzero(mask & np.isnan(vals))
            nan_word = np.zeros(len(vals), dtype=bool)
            nan_word[cand] = [str(raw[k]).lower() in ("nan", "+nan", "-nan") for k in cand]
            non_num = mask & np.isnan(vals) & ~nan_word
            idx = np.flatnonzero(non_num)
            issues.add_many("error", idx, f, [f"{name} {v} is not a number"
                                              for v in fmt(raw, vals, idx)],
                            "write a decimal number of degrees, e.g. 121.4737")
            bad[idx] = True
        else:
            non_num = np.zeros(len(vals), dtype=bool)
        idx = np.flatnonzero(mask & np.isnan(vals) & ~non_num & ~bad)
        issues.add_many("error", idx, f, [f"{name} is NaN"] * len(idx),
                        "give a real coordinate, or leave the site without coordinates "
                        "and give an address")
        bad[idx] = True
        idx = np.flatnonzero(mask & np.isinf(vals))
        issues.add_many("error", idx, f, [f"{name} is infinite"] * len(idx),
                        "give a real coordinate in degrees")
        bad[idx] = True
    ok = mask & np.isfinite(lon) & np.isfinite(lat)
    out_lat = ok & (np.abs(lat) > 90)
    out_lon = ok & (np.abs(lon) > 180)
    swap_ok = (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
    for sel, name, f, lim in ((out_lon, "longitude", f_lon, 180), (out_lat, "latitude", f_lat, 90)):
        idx = np.flatnonzero(sel)
        vals = lat if name == "latitude" else lon
        msgs = [f"{name} {vals[k]:.10g} is outside -{lim}..{lim}"
                + (f" (position [{lon[k]:.10g}, {lat[k]:.10g}])" if same else "") for k in idx]
        hints = [(f"lat and lon look swapped: (lon {lat[k]:.10g}, lat {lon[k]:.10g}) is a valid "
                  "position; exchange the two values" + ("; GeoJSON order is [lon, lat]"
                                                          if same else ""))
                 if swap_ok[k] else
                 ("the value looks projected (metres?); give WGS 84 degrees"
                  if abs(vals[k]) > 1000 else f"{name} must be within -{lim}..{lim} degrees")
                 for k in idx]
        issues.add_many("error", idx, f, msgs, hints)
        bad[idx] = True
    null_island = ok & (lon == 0) & (lat == 0)
    idx = np.flatnonzero(null_island)
    issues.add_many("error", idx, f_lon if same else f"{f_lon}/{f_lat}",
                    ["coordinates (0, 0) look like a placeholder (\"null island\" in the "
                     "Gulf of Guinea)"] * len(idx),
                    "give the real position, or leave coordinates empty and give an address")
    bad[idx] = True
    return bad


def _text_column(s: pd.Series | None, n: int) -> np.ndarray:
    """Stripped text, "" for missing; non-text values (a numeric id) become their str()."""
    if s is None:
        return np.full(n, "", dtype=object)
    if not pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        s = s.astype(object)
        s = s.where(s.notna(), "").map(lambda v: v if isinstance(v, str) else str(v))
    return s.fillna("").str.strip().to_numpy(object)


def _finish(source: str, props: pd.DataFrame, lon: np.ndarray, lat: np.ndarray,
            has_coords: np.ndarray, geoms: np.ndarray, bad: np.ndarray, issues: _Issues,
            refs: list[str], meta: dict, file_problems: list[Problem],
            quiet: np.ndarray | None = None) -> _Parsed:
    """Build the output frame, check ids and text fields, and turn issues into problems.

    ``quiet`` marks inputs already rejected as a whole (not a Feature): no further checks.
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

    # A site needs coordinates or something to geocode.
    nothing = ~has_coords & (core["address"] == "") & (core["city"] == "") & ~quiet
    idx = np.flatnonzero(nothing & ~bad)
    issues.add_many("error", idx, "geometry",
                    ["has no coordinates and no address or city to geocode"] * len(idx),
                    "give coordinates, or an address/city so the site can be geocoded")
    bad[idx] = True

    _check_ids(core, lon, lat, bad, issues, refs)

    idx = np.flatnonzero((core["name"] == "") & ~quiet)
    issues.add_many("warning", idx, "name", ["name is blank"] * len(idx),
                    "give each site a name so reports can be read")
    kinds = core["kind"]
    idx = np.flatnonzero((kinds != "") & ~np.isin(kinds, SITE_KINDS))
    issues.add_many("warning", idx, "kind", [f"kind {kinds[k]!r} is not one of {SITE_KINDS}"
                                             for k in idx], "the site is kept as it is")
    cc = core["country"]
    idx = np.flatnonzero((cc != "") & ~is_code)
    issues.add_many("warning", idx, "country",
                    [f"country {cc[k]!r} is not an ISO 3166-1 alpha-2 code" for k in idx],
                    "use two-letter codes such as 'CN', 'HK', 'SG', 'JP'")

    # Extras: every other input column, unchanged; renamed only when it would clash.
    used = {cols[c] for c in cols}
    extras: dict[str, pd.Series] = {}
    for c in props.columns:
        if c in used:
            continue
        name = str(c)
        if _norm_key(name) in _RESERVED or name in CORE_COLUMNS:
            new = f"src_{name}"
            file_problems.append(Problem("warning", Path(source).name, name, f"input column {name!r} "
                                         f"clashes with an output column; kept as {new!r}"))
            name = new
        extras[name] = props[c].reset_index(drop=True)

    frame = pd.DataFrame({c: core[c] for c in CORE_COLUMNS})
    frame["lon"] = np.where(np.isfinite(lon), lon, np.nan)
    frame["lat"] = np.where(np.isfinite(lat), lat, np.nan)
    frame["location_source"] = np.where(has_coords, "given", "")
    frame["input_ref"] = refs
    for name, s in extras.items():
        frame[name] = s.array
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
                           crs="EPSG:4326")
    gdf.attrs["source_meta"] = meta

    problems = list(file_problems)
    for severity, i, f, message, hint in issues.items:
        sid = given_ids[i]
        where = f"{refs[i]} (site_id {sid!r})" if sid else refs[i]
        problems.append(Problem(severity, where, f, message, hint, i))
    return _Parsed(problems, gdf, bad)


def _check_ids(core: dict[str, np.ndarray], lon: np.ndarray, lat: np.ndarray, bad: np.ndarray,
               issues: _Issues, refs: list[str]) -> None:
    """Find duplicate given ids; derive ids for the rest (in place)."""
    ids = core["site_id"]
    given = ids != ""
    keys = pd.Series(ids, dtype="str").str.casefold()
    dup = keys.duplicated(keep="first").to_numpy() & given
    if dup.any():
        first_of = {}
        for i in np.flatnonzero(given):
            first_of.setdefault(keys[i], i)
        for i in np.flatnonzero(dup):
            j = first_of[keys[i]]
            same = ids[i] == ids[j]
            issues.add("error", i, "site_id",
                       f"duplicate site_id {ids[i]!r}: {refs[j]} has "
                       + ("the same id" if same else f"{ids[j]!r}, which differs only in "
                          "letter case or spaces"),
                       "give every site a distinct id (ids are compared ignoring case and "
                       "surrounding spaces)")
            bad[i] = True
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


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda p: -1 if p.index is None else p.index))
