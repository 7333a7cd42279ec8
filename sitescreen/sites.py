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
import gzip
import hashlib
import io
import json
import logging
import math
import os
import re
import stat
import warnings
import zipfile
import zlib
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
    check_text_values,
    check_weights,
    normalise_countries,
    normalise_kinds,
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
    "site_id": ("site_id", "siteid", "id", "site_code", "站点编号"),
    "name": ("name", "site_name", "site", "facility", "facility_name", "名称", "站点名称"),
    "company": ("company", "company_name", "公司"),
    "kind": ("kind", "type", "site_type", "facility_type", "category", "类型"),
    "address": ("address", "street_address", "addr", "地址"),
    "city": ("city", "城市"),
    "country": ("country", "country_region", "国家"),
    "lon": ("lon", "longitude", "lng", "long", "x", "经度", "東經", "东经"),
    "lat": ("lat", "latitude", "y", "纬度", "緯度", "北纬"),
}
# Names of columns that hold coordinates sitescreen does not read (other datums, combined
# "lat, lon" cells, projected metres): refused rather than silently geocoding such a site.
_COORDINATE_LIKE = re.compile(
    r"(^|_)(lon|lng|long|longitude|lat|latitude|easting|northing|coord|coords|coordinates|"
    r"gps|wgs84|gcj02|bd09|x_coord|y_coord|point_x|point_y)(_|$|\d)|经度|纬度|緯度|坐标|座標")
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
    sheet: str | None = None,
    weight: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a sites file, GeoPackage layer or PostGIS table into a GeoDataFrame (EPSG:4326).

    Parameters
    ----------
    path : str or path-like
        A ``.geojson``/``.json`` FeatureCollection, or a ``.csv``/``.tsv``/``.txt`` table
        (UTF-8, BOM allowed, delimiter ``,`` ``;`` or tab). Other suffixes are sniffed.
        Or a table source (:mod:`sitescreen.site_sources`): ``sites.gpkg:layer``, or
        ``postgresql://user@host/db?table=sites`` (or ``?query=...``).
        Files may also be an Excel ``.xlsx`` workbook, or any of these gzip-compressed
        (``.csv.gz``, ``.geojson.gz``); a CSV may carry Excel's ``sep=;`` line, and ``#``
        comment lines above the header are skipped. The content decides, not the suffix;
        other binary files are named in the error.
    on_invalid : {"raise", "warn", "ignore"}
        ``"raise"``: any error raises :class:`~sitescreen.errors.SiteValidationError` listing
        every problem. ``"warn"``: sites with errors are dropped and one :class:`SiteWarning`
        lists them. ``"ignore"``: they are dropped silently (logged at DEBUG). Problems with
        the file as a whole (unreadable, empty, too big, no sites left) always raise.
    max_bytes : int
        Refuse files larger than this many bytes (decompressed, for gzip), before reading
        them; no more than this is ever read. Only regular files are read (not a FIFO or a
        device such as ``/dev/zero``).
    password : str, optional
        Database password of a PostGIS source when not in ``PGPASSWORD``/``~/.pgpass``.
    sheet : str, optional
        The sheet of an Excel workbook to read (default: the first).
    weight : str, optional
        A column to read as weights (numbers >= 0, see
        :func:`~sitescreen.site_checks.check_weights`); its values become floats.

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
                            password=password, sheet=sheet, weight=weight)
    if report.sites is None:
        errors = list(report.errors)
        if len(errors) > SiteValidationError.MAX_SHOWN:  # too many to print: to a file
            saved = None if is_table_source(str(path)) else write_problem_report(report,
                                                                                   Path(path))
            raise SiteValidationError(report.source, errors, kinds=problem_kinds(errors),
                                      report_path=str(saved) if saved else None)
        raise SiteValidationError(report.source, errors)
    doubtful = report.errors + report.warnings
    if on_invalid == "warn" and doubtful:
        warnings.warn(SiteWarning(report.format(max_problems=50)), stacklevel=2)
    elif on_invalid == "ignore" and doubtful:
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
    sheet: str | None = None,
    weight: str | None = None,
    geocode: bool = False,
) -> ValidationReport:
    """Check a sites file and report every problem at once; never raises for bad content.

    Parameters are those of :func:`read_sites`. ``report.sites`` is what ``read_sites`` with
    the same options returns, or None where it would raise. The checks and the report are
    those of :mod:`sitescreen.site_checks`. With ``geocode=True`` the offline geocoder also
    looks at every site without coordinates, and addresses it cannot place, or places only
    ambiguously, coarsely or by ignoring parts of them, are reported as warnings with the
    candidates (:func:`sitescreen.geocode.frame.geocode_problems`).

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
        parsed = _parse_table(str(path), source, password=password, weight=weight)
    else:
        source = str(path)
        parsed = _parse(Path(path), max_bytes=max_bytes, sheet=sheet, weight=weight)
    problems = list(parsed.problems)
    if geocode and parsed.frame is not None:
        from sitescreen.geocode.frame import geocode_problems

        problems += geocode_problems(parsed.frame)
    return build_report(source, problems, parsed.frame, parsed.bad, on_invalid=on_invalid)


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


def _parse(path: Path, *, max_bytes: int, sheet: str | None = None,
           weight: str | None = None) -> _Parsed:
    source = str(path)
    try:
        st = path.stat()
    except OSError as exc:
        return _file_problem(source, f"cannot open the file: {exc.strerror or exc}",
                             "check the path and the permissions")
    if not stat.S_ISREG(st.st_mode):
        what = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        return _file_problem(source, f"is {what}, not a regular file; sitescreen reads sites "
                             "only from files saved on disk (a pipe or device could be endless)",
                             "save the sites to a .csv, .xlsx or .geojson file and pass its path")
    if st.st_size > max_bytes:
        return _too_big(source, st.st_size, max_bytes)
    try:
        with path.open("rb") as fh:  # bounded: a file growing while read is cut at the limit
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return _file_problem(source, f"cannot read the file: {exc.strerror or exc}")
    if len(data) > max_bytes:
        return _too_big(source, len(data), max_bytes, more=True)
    raw = data
    name = path.name.lower()
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                data = gz.read(max_bytes + 1)
        except (OSError, EOFError, zlib.error) as exc:
            return _file_problem(source, f"this is a gzip file that cannot be decompressed: "
                                 f"{exc}", "check the file is complete (re-download or "
                                 "re-compress it)")
        if len(data) > max_bytes:
            return _file_problem(source, f"this gzip file decompresses to more than the limit "
                                 f"of {max_bytes:,} bytes ({max_bytes / 2**20:.1f} MiB)",
                                 "pass a larger max_bytes to read_sites/validate_sites if the "
                                 "file is really meant to be this big")
        name = name.removesuffix(".gz").removesuffix(".gzip")
        if data[:2] == b"\x1f\x8b":
            return _file_problem(source, "this gzip file holds another gzip file",
                                 "decompress it once (gunzip) and pass the inner file")
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        return _file_problem(source, "file is empty" if not data else "file holds only blanks",
                             "write at least one site (GeoJSON FeatureCollection or CSV)")
    binary = _binary_kind(data)
    if binary is not None and binary[0] == "xlsx":
        parsed = _parse_xlsx(source, data, sheet)
        fmt = "xlsx"
    elif binary is not None:
        return _file_problem(source, f"this is {binary[0]}, not a sites file (CSV, Excel .xlsx "
                             "or GeoJSON)", binary[1])
    else:
        text = _decode(data)
        if isinstance(text, Problem):
            return _file_problem(source, text.message, text.hint)
        fmt = _format_of(name, text)
        parsed = _parse_geojson(source, text) if fmt == "geojson" else _parse_csv(source, text)
    if parsed.frame is not None and weight is not None:
        _check_weight(source, parsed, weight)
    if parsed.frame is not None:
        parsed.frame.attrs.update(source_path=str(path.resolve()), source_format=fmt,
                                  source_sha256=hashlib.sha256(raw).hexdigest())
    return parsed


def _parse_table(raw: str, source: str, *, password: str | None,
                 weight: str | None = None) -> _Parsed:
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
        if weight is not None:
            _check_weight(source, parsed, weight)
    return parsed


def _too_big(source: str, size: int, max_bytes: int, *, more: bool = False) -> _Parsed:
    what = (f"more than {max_bytes:,} bytes were read" if more else
            f"file is {size:,} bytes ({size / 2**20:.1f} MiB)")
    return _file_problem(
        source, f"{what}, more than the limit of {max_bytes:,} bytes "
        f"({max_bytes / 2**20:.1f} MiB)",
        f"pass a larger max_bytes to read_sites/validate_sites (e.g. max_bytes={size + 1}), or "
        "--max-bytes on the command line, if the file is really meant to be this big")


# Leading bytes of file types analysts pass by mistake: what the file is, and what to do.
_EXPORT = "export the sites as CSV UTF-8, .xlsx or GeoJSON"
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Excel .xls workbook (or another Office "
     "97-2003 file)", "save it as .xlsx or CSV UTF-8"),
    (b"%PDF", "a PDF document", _EXPORT),
    (b"SQLite format 3\x00", "an SQLite database (a GeoPackage?)",
     "export the layer with `ogr2ogr -f GeoJSON sites.geojson FILE`"),
    (b"PAR1", "a Parquet file", _EXPORT),
    (b"\x89PNG", "a PNG image", _EXPORT), (b"\xff\xd8\xff", "a JPEG image", _EXPORT),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the sites file from it"),
    (b"Rar!", "a RAR archive", "extract the sites file from it"),
    (b"BZh", "a bzip2 file", "decompress it (bunzip2), or compress with gzip instead"),
    (b"\xfd7zXZ\x00", "an xz file", "decompress it (unxz), or compress with gzip instead"),
    (b"\x00\x00\x27\x0a", "an ESRI shapefile (.shp)",
     "export it with `ogr2ogr -f GeoJSON sites.geojson FILE.shp`"),
)


def _binary_kind(data: bytes) -> tuple[str, str] | None:
    """(what the file is, what to do) for a file that is not text; ("xlsx", "") for an Excel
    workbook; None for text."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, ValueError):
            return "a damaged ZIP archive (or a damaged Excel workbook)", \
                "check the file is complete, or save it again"
        if "xl/workbook.xml" in names:
            return "xlsx", ""
        if any(n.startswith("word/") for n in names):
            return "a Word document", _EXPORT
        if "content.xml" in names and "mimetype" in names:
            return "an OpenDocument file (.ods?)", "save it as .xlsx or CSV UTF-8"
        return "a ZIP archive", "extract the sites file from it (unzip) and pass that"
    for magic, what, todo in _MAGIC:
        if data.startswith(magic):
            return what, todo
    return None


def _utf_width(data: bytes) -> str | None:
    """"UTF-16LE", "UTF-32BE"... when text looks like it without a byte order mark (ASCII
    letters with zero bytes between them), else None."""
    head = data[:4096]
    if len(head) < 8 or b"\x00" not in head:
        return None
    n = len(head) // 4 * 4
    zeros = [head[k:n:4].count(0) / (n // 4) for k in range(4)]
    if min(zeros[1:]) > 0.9:
        return "UTF-32LE"
    if min(zeros[:3]) > 0.9:
        return "UTF-32BE"
    even, odd = head[0:n:2].count(0) / (n // 2), head[1:n:2].count(0) / (n // 2)
    if odd > 0.7 and even < 0.3:
        return "UTF-16LE"
    if even > 0.7 and odd < 0.3:
        return "UTF-16BE"
    return None


def _looks_binary(data: bytes) -> bool:
    """Many control bytes (other than tab, newline, carriage return): not text at all."""
    head = data[:4096]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return controls > max(4, len(head) // 20)


def _decode(data: bytes) -> str | Problem:
    resave = "re-save the file as UTF-8 (in Excel: 'CSV UTF-8')"
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return Problem("error", "", "", "file is UTF-32 (it starts with a UTF-32 byte order "
                       "mark), not UTF-8", resave)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Problem("error", "", "", "file is UTF-16 (it starts with a UTF-16 byte order "
                       "mark), not UTF-8", resave)
    width = _utf_width(data)
    if width is not None:
        return Problem("error", "", "", f"file looks like {width[:6]} text without a byte order "
                       "mark (zero bytes between the letters), not UTF-8",
                       f"{resave}, or convert it, e.g. `iconv -f {width} -t UTF-8`")
    if _looks_binary(data):
        return Problem("error", "", "", "this is a binary file, not text: not a sites file "
                       "(CSV, Excel .xlsx or GeoJSON)", _EXPORT)
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
    text = text.removeprefix("\ufeff")
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")  # classic Mac OS line endings
    return text


def _format_of(name: str, text: str) -> str:
    suffix = Path(name).suffix
    if suffix in (".geojson", ".json"):
        return "geojson"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    return "geojson" if text.lstrip()[:1] in ("{", "[") else "csv"


_UNITS = re.compile(r"\s*[(\[（【][^)\]）】]*[)\]）】]\s*|°")
_UNIT_SUFFIX = re.compile(r"_(deg|degrees|dd|wgs84|wgs_84|e|n)$")


def _norm_key(name: object) -> str:
    """Column name key: case, spaces, hyphens and units ("Longitude (deg E)") dropped."""
    key = re.sub(r"[\s\-]+", "_", _UNITS.sub(" ", str(name)).strip().lower()).strip("_")
    return _UNIT_SUFFIX.sub("", key)


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
    pcols = _resolve_columns(list(props_df.columns))
    if "lon" in pcols and "lat" in pcols:
        # Features without geometry that carry lon/lat properties are located by them.
        need = ~has_coords & ~bad & ~not_feature
        f_lon, f_lat = str(pcols["lon"]), str(pcols["lat"])
        plon, plat, phas, pbad = _table_coordinates(
            pd.Series(_text_column(props_df[pcols["lon"]], n)),
            pd.Series(_text_column(props_df[pcols["lat"]], n)), issues, f_lon, f_lat,
            decimal_comma=False, only=need)
        if phas.any():
            lon[phas], lat[phas] = plon[phas], plat[phas]
            has_coords |= phas
            bad |= pbad
            k = int(phas.sum())
            file_problems.append(Problem(
                "note", Path(source).name, "geometry", f"{k} feature{'s' if k != 1 else ''} "
                f"without geometry located by {'their' if k != 1 else 'its'} {f_lon!r}/{f_lat!r} "
                "properties (WGS 84 degrees)"))
            props_df = props_df.drop(columns=[pcols["lon"], pcols["lat"]])
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


_SEP_LINE = re.compile(r"^\s*sep=(.)\s*$", re.IGNORECASE)


def _preamble(text: str) -> tuple[str, int, str | None]:
    """Drop what spreadsheets and exports put above the header.

    Returns the text from the header on, the number of lines dropped, and the delimiter of an
    Excel ``sep=;`` line (else None). Comment lines (``#``) and blank lines are dropped.
    """
    skipped, delim = 0, None
    while text:
        line, _, rest = text.partition("\n")
        stripped = line.strip().strip("\r")
        m = _SEP_LINE.match(stripped) if skipped == 0 or delim is None else None
        if m and delim is None:
            delim = m.group(1)
        elif not (stripped.startswith("#") or not stripped.strip(",;\t")):
            break
        text, skipped = rest, skipped + 1
    return text, skipped, delim


def _check_header(source: str, header: list[str], *, what: str = "CSV",
                  row: int = 1) -> tuple[dict[str, object], _Parsed | None]:
    """The canonical columns of a table header, or the problem that stops reading it."""
    cols = _resolve_columns(header)
    at = f"row {row} (header)"
    numeric_cells = [h for h in header if _NUMBER_RE.match(h)]
    if not (set(cols) - {"lon", "lat"}) and (numeric_cells or not cols):
        first = ",".join(header)[:80]
        return cols, _file_problem(
            source, f"{what} has no header row" + (f": the first line {first!r} looks like data"
                                                  if numeric_cells else
                                                  f": none of {list(header)[:8]!r} is a known "
                                                  "column"),
            "add a first line naming the columns, e.g. site_id,name,company,kind,address,city,"
            "country,lon,lat", where=at)
    keys = [_norm_key(h) for h in header]
    dupes = sorted({k for k, h in zip(keys, header, strict=True)
                    if keys.count(k) > 1 and str(h).strip()})
    if dupes:
        return cols, _file_problem(source, f"{what} header repeats the column(s) {dupes}",
                                   "give every column a distinct name", where=at)
    if ("lon" in cols) != ("lat" in cols):
        have, miss = ("lon", "lat") if "lon" in cols else ("lat", "lon")
        return cols, _file_problem(
            source, f"{what} has a {have} column ({cols[have]!r}) but no {miss} column",
            f"add a {miss} column (aliases: {_ALIASES[miss]})", where=at,
            field_=miss)
    if "lon" not in cols and "address" not in cols and "city" not in cols:
        return cols, _file_problem(
            source, f"{what} has neither lon/lat columns nor an address or city column "
            f"(columns: {list(header)!r})", "add lon and lat columns (WGS 84 degrees), or an "
            "address/city column to geocode", where=at)
    return cols, None


def _parse_csv(source: str, text: str) -> _Parsed:
    text, skipped, delim = _preamble(text)
    if not text.strip():
        return _file_problem(source, "file holds no table (only comment or sep= lines)",
                             "write a header line and one line per site")
    delim = delim or _sniff_delimiter(text)
    header = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")], delimiter=delim), [])
    cols, problem = _check_header(source, header, row=1 + skipped)
    if problem is not None:
        return problem
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, keep_default_na=False,
                         na_filter=False, skip_blank_lines=True, engine="python"
                         if "\x00" in text else "c")
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        m = re.search(r"line (\d+)", msg)
        return _file_problem(source, f"CSV cannot be parsed: {msg}",
                             "check quotes and the number of delimiters on that line",
                             where=f"line {int(m.group(1)) + skipped}" if m else "")
    meta = {"delimiter": delim} | ({"skipped_lines": skipped} if skipped else {})
    return _parse_cells(source, df, cols, first_row=2 + skipped, meta=meta,
                        decimal_comma=delim != ",")


def _cell_text(v: object) -> str:
    """An Excel cell as the text a CSV export would hold."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _parse_xlsx(source: str, data: bytes, sheet: str | None) -> _Parsed:
    """An Excel workbook: the first sheet (or ``sheet``), read as a CSV export of it."""
    import openpyxl  # only when a workbook is read

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for bad workbooks
        return _file_problem(source, f"this is an Excel workbook that cannot be read: {exc}",
                             "open it in Excel and save it again, or export the sheet as CSV")
    try:
        names = wb.sheetnames
        if sheet is not None and sheet not in names:
            return _file_problem(source, f"the workbook has no sheet {sheet!r}; its sheets: "
                                 f"{', '.join(map(repr, names))}", "pass one of them to --sheet")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows = [[_cell_text(v) for v in row] for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    where = f"sheet {ws.title!r}"
    skipped = 0
    while skipped < len(rows) and (not any(c.strip() for c in rows[skipped])
                                   or rows[skipped][0].lstrip().startswith("#")):
        skipped += 1
    if skipped == len(rows):
        return _file_problem(source, f"{where} of the workbook is empty",
                             "put the sites on the first sheet, or pass --sheet NAME"
                             + (f" (sheets: {', '.join(map(repr, names))})"
                                if len(names) > 1 else ""))
    header = rows[skipped]
    while header and not header[-1].strip():
        header = header[:-1]  # formatted but empty columns at the right
    cols, problem = _check_header(source, header, what=where, row=skipped + 1)
    if problem is not None:
        return problem
    width = len(header)
    body = [(r + [""] * width)[:width] for r in rows[skipped + 1:]]
    df = pd.DataFrame(body, columns=header, dtype=object).astype(str) if body else \
        pd.DataFrame(columns=header, dtype=str)
    return _parse_cells(source, df, cols, first_row=skipped + 2, what=where,
                        meta={"sheet": ws.title}, decimal_comma=False)


def _parse_numbers(raw: pd.Series, *, decimal_comma: bool) -> np.ndarray:
    """Cell text to float (NaN where it is not a number)."""
    if decimal_comma:
        # Spreadsheets in many locales write 31,2 for 31.2 next to ';' delimiters.
        raw = raw.str.replace(_DECIMAL_COMMA_RE, r"\1.\2", regex=True)
    return pd.to_numeric(raw.where(raw != "", "nan"), errors="coerce").to_numpy(float, copy=True)


def _table_coordinates(raw_lon: pd.Series, raw_lat: pd.Series, issues: Issues, f_lon: str,
                       f_lat: str, *, decimal_comma: bool, only: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lon, lat, has_coords, bad) from two text columns; ``only`` limits the rows checked."""
    n = len(raw_lon)
    only = np.ones(n, dtype=bool) if only is None else only
    raw_lon, raw_lat = raw_lon.str.strip(), raw_lat.str.strip()
    has_lon = (raw_lon != "").to_numpy() & only
    has_lat = (raw_lat != "").to_numpy() & only
    bad = check_coordinate_pairs(has_lon, has_lat, issues, f_lon, f_lat)
    has_coords = has_lon | has_lat
    lon = _parse_numbers(raw_lon, decimal_comma=decimal_comma)
    lat = _parse_numbers(raw_lat, decimal_comma=decimal_comma)
    lon[~has_lon], lat[~has_lat] = np.nan, np.nan
    if decimal_comma:
        raw_lon = raw_lon.str.replace(_DECIMAL_COMMA_RE, r"\1.\2", regex=True)
        raw_lat = raw_lat.str.replace(_DECIMAL_COMMA_RE, r"\1.\2", regex=True)
    bad |= check_coordinates(lon, lat, has_lon & has_lat, issues, f_lon, f_lat,
                             raw_lon=raw_lon.to_numpy(object), raw_lat=raw_lat.to_numpy(object))
    return lon, lat, has_coords, bad


def _parse_cells(source: str, df: pd.DataFrame, cols: dict[str, object], *, first_row: int,
                 meta: dict, decimal_comma: bool, what: str = "CSV") -> _Parsed:
    """A table of text cells (a CSV, or a sheet exported as one) into the site table."""
    df = df.fillna("")
    # Rows of only delimiters (";;;;" left by spreadsheets) are not sites: the rows still
    # blank are narrowed column by column (a filled first column ends the search).
    blank = np.arange(len(df))
    for c in df.columns:
        if not len(blank):
            break
        blank = blank[(df[c].iloc[blank].str.strip() == "").to_numpy(bool)]
    rows = np.setdiff1d(np.arange(len(df)), blank, assume_unique=True)
    if len(blank):
        df = df.iloc[rows].reset_index(drop=True)
    refs = ("row " + pd.Series(rows + first_row).astype(str)).tolist()
    n = len(df)
    if n == 0:
        return _file_problem(source, f"{what} has a header but no data rows (zero sites)",
                             "add one row per site")
    issues = Issues()
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    has_coords = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    if "lon" in cols:
        lon, lat, has_coords, bad = _table_coordinates(
            df[cols["lon"]], df[cols["lat"]], issues, str(cols["lon"]), str(cols["lat"]),
            decimal_comma=decimal_comma)
    geoms = np.full(n, None, dtype=object)
    idx = np.flatnonzero(has_coords & ~bad)
    geoms[idx] = shapely.points(lon[idx], lat[idx])
    coord_cols = {cols.get("lon"), cols.get("lat")} - {None}
    props = df[[c for c in df.columns if c not in coord_cols]]
    return _finish(source, props, lon, lat, has_coords, geoms, bad, issues, refs, meta, [])


# --- Weights ------------------------------------------------------------------------------


def _check_weight(source: str, parsed: _Parsed, weight: str) -> None:
    """Read the ``weight`` column as numbers (in place), recording every bad cell."""
    frame = parsed.frame
    name = Path(source).name
    col = weight if weight in frame.columns else next(
        (c for c in frame.columns if _norm_key(c) == _norm_key(weight)), None)
    if col is None:
        import difflib

        columns = [str(c) for c in frame.columns if c not in ("geometry", "input_ref",
                                                                "location_source")]
        close = difflib.get_close_matches(weight, columns, n=1, cutoff=0.6)
        parsed.problems.append(Problem(
            "error", name, weight, f"weight field {weight!r} is not a column of the file; "
            f"columns: {', '.join(columns)}",
            f"did you mean {close[0]!r}?" if close else "pass one of the columns to --weight"))
        parsed.frame, parsed.bad = None, None
        return
    issues = Issues()
    decimal_comma = frame.attrs.get("source_meta", {}).get("delimiter", ",") != ","
    values, bad, grouped = check_weights(frame[col].tolist(), parsed.bad, issues, str(col),
                                         decimal_comma=decimal_comma)
    parsed.problems.extend(issues.problems(frame["input_ref"].tolist(),
                                           frame["site_id"].tolist()))
    parsed.bad |= bad
    frame[col] = values
    ok = ~parsed.bad
    if ok.any() and not (values[ok] > 0).any():
        parsed.problems.append(Problem(
            "error", name, str(col), f"weight {col!r} is 0 for every site, so weighted shares "
            "would divide by zero", "check the column holds the amounts, or screen without "
            "--weight"))
    if grouped:
        parsed.problems.append(Problem(
            "note", name, str(col), f"thousands separators read in {col!r} (e.g. "
            f"{grouped[0]!r} as {_weight_example(grouped[0], decimal_comma)})"))


def _weight_example(text: str, decimal_comma: bool) -> str:
    v = check_weights([text], np.zeros(1, bool), Issues(), "w",
                      decimal_comma=decimal_comma)[0][0]
    return f"{v:.15g}"


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
    # NUL and lone surrogates first: such text breaks the string columns built below.
    text_bad = check_text_values({str(c): props[c] for c in props.columns}, quiet,
                                 issues)
    if text_bad.any():
        props = props.astype(object).map(_clean_text)
    bad |= text_bad
    cols = _resolve_columns(list(props.columns))
    cols.pop("lon", None)
    cols.pop("lat", None)
    core = {c: _text_column(props[cols[c]] if c in cols else None, n) for c in CORE_COLUMNS}
    from sitescreen.geocode.gazetteer import country_code_of  # the small country list only

    core["country"], country_note = normalise_countries(core["country"], country_code_of)
    core["kind"], kind_note = normalise_kinds(core["kind"], SITE_KINDS)
    name = Path(source).name
    file_problems.extend(Problem("note", name, f, note) for f, note in
                         (("country", country_note), ("kind", kind_note)) if note)
    given_ids = core["site_id"].copy()

    # The order of these calls is the order of each site's problems in the report.
    bad |= check_locatable(has_coords, core["address"], core["city"], bad | quiet, issues)
    unused = _unused_coordinate_columns(props, cols, has_coords | quiet)
    if unused:
        return _file_problem(
            source, f"column(s) {', '.join(map(repr, unused))} look like coordinates but are "
            "not read as lon/lat, and sites without lon/lat would be geocoded from their address "
            "instead", "name the columns lon and lat (WGS 84 degrees; 'longitude', 'lng', 'x', "
            "'经度' and units in brackets are understood), or remove them to geocode the "
            "addresses", where="row 1 (header)" if refs[0].startswith("row") else name)
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


def _clean_text(v: object) -> object:
    """Text with NUL and lone surrogates replaced by U+FFFD (the site is already an error)."""
    if isinstance(v, str):
        return re.sub("[\x00\ud800-\udfff]", "\ufffd", v)
    return v


def _unused_coordinate_columns(props: pd.DataFrame, cols: dict[str, object],
                               located: np.ndarray) -> list[str]:
    """Columns named like coordinates that are not read, with a value in a row to geocode."""
    out = []
    used = set(cols.values())
    for c in props.columns:
        if c in used or not _COORDINATE_LIKE.search(_norm_key(c)):
            continue
        values = props[c].reset_index(drop=True)
        filled = values.map(lambda v: v is not None and str(v).strip() not in ("", "nan",
                                                                                "None"))
        if (filled.to_numpy(bool) & ~located).any():
            out.append(str(c))
    return out


def _derive_ids(core: dict[str, np.ndarray], lon: np.ndarray, lat: np.ndarray,
                issues: Issues, refs: list[str]) -> None:
    """Give sites without an id a derived one (in place), never one already in use.

    A repeat of another site's derived id gets ``-2``, ``-3``...; when the whole site repeats
    (same text and coordinates) it is also reported as a warning.
    """
    ids = core["site_id"]
    given = ids != ""
    if given.all():
        return
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
