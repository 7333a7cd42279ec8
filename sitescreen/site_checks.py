"""Checks on a sites file, and the report that lists every problem at once.

:mod:`sitescreen.sites` reads a file into a site table; the functions here look at what it read
and record what is wrong: coordinates that are missing, not numbers, NaN, infinite, out of
range, swapped or the (0, 0) placeholder; GeoJSON geometries of an unknown type, empty, with
vertices out of range or self-intersecting; a legacy ``crs`` other than WGS 84; sites with
nothing to geocode; duplicate ids; blank names, unknown kinds and country names that are not
ISO codes. Each problem names the feature or row, the field, the bad value and what to do.
:func:`build_report` applies the ``on_invalid`` policy and returns a :class:`ValidationReport`.

This module does not read files and does not import :mod:`sitescreen.sites`, so the reader can
use it without an import cycle.

Checks run on whole columns (numpy), not site by site, except the per-feature GeoJSON geometry
check. They record problems against 0-based site positions in an :class:`Issues` collector,
because the ``where`` text (``"row 7 (site_id 'x')"``) needs the site ids, which are known only
once the whole table is read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import shape as _shape

__all__ = [
    "ON_INVALID",
    "OnInvalid",
    "Problem",
    "ValidationReport",
    "Issues",
    "check_crs",
    "check_geometry",
    "check_coordinate_pairs",
    "check_coordinates",
    "check_locatable",
    "check_duplicate_ids",
    "check_text_fields",
    "check_text_values",
    "check_weights",
    "normalise_countries",
    "normalise_kinds",
    "KIND_SPELLINGS",
    "build_report",
]

#: What to do with sites that have errors: see :func:`sitescreen.sites.read_sites`.
OnInvalid = Literal["raise", "warn", "ignore"]
ON_INVALID: tuple[str, ...] = ("raise", "warn", "ignore")

# Legacy GeoJSON "crs" names that mean WGS 84 longitude, latitude.
_WGS84_NAMES = {
    "urn:ogc:def:crs:ogc:1.3:crs84", "urn:ogc:def:crs:ogc::crs84", "crs84", "ogc:crs84",
    "epsg:4326", "urn:ogc:def:crs:epsg::4326", "urn:ogc:def:crs:epsg:4326",
    "http://www.opengis.net/def/crs/ogc/1.3/crs84",
    "http://www.opengis.net/def/crs/epsg/0/4326",
}
_FOOTPRINT_TYPES = ("Polygon", "MultiPolygon")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a sites file.

    Attributes
    ----------
    severity : {"error", "warning", "note"}
        Errors stop ``read_sites(on_invalid="raise")``; warnings never do; notes say what
        the reader did for you (mapped country names, read thousands separators).
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

    Examples
    --------
    >>> print(Problem("warning", "row 2", "name", "name is blank", "give each site a name"))
    warning: row 2, field 'name': name is blank (hint: give each site a name)
    """

    severity: Literal["error", "warning", "note"]
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
    def notes(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "note")

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
        ordered = self.errors + self.warnings + self.notes
        shown = ordered if max_problems is None else ordered[:max_problems]
        lines = [head, *(f"  - {p}" for p in shown)]
        if len(shown) < len(ordered):
            lines.append(f"  ... and {len(ordered) - len(shown)} more; problems by kind:")
            lines += [f"    {count} x {kind}" for kind, count in problem_kinds(ordered)[:15]]
        return "\n".join(lines)


# Quoted values and numbers, but not ranges such as -90..90 (part of the kind, not a value).
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"
                     r"(?![\d.])")


def problem_kinds(problems: Sequence[Problem]) -> list[tuple[str, int]]:
    """Problems grouped by kind (severity, field and message with its values blanked),
    most frequent first: what a file with thousands of bad rows shows instead of each row.

    Examples
    --------
    >>> ps = [Problem("error", f"row {i}", "lat", f"latitude {90 + i} is outside -90..90")
    ...       for i in range(1, 4)]
    >>> problem_kinds(ps)
    [("error, field 'lat': latitude … is outside -90..90", 3)]
    """
    counts: dict[str, int] = {}
    for p in problems:
        key = f"{p.severity}, field '{p.field}': " if p.field else f"{p.severity}: "
        key += _VALUES.sub("…", p.message)
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def write_problem_report(report: ValidationReport, source: Path) -> Path | None:
    """Write every problem of ``report`` to ``<source>.problems.txt`` beside the input (else
    in the system's temporary folder); the path, or None when neither takes the file."""
    import tempfile

    text = report.format(max_problems=None) + "\n"
    for folder in (source.parent, Path(tempfile.gettempdir())):
        target = folder / f"{source.name}.problems.txt"
        try:
            target.write_text(text, "utf-8")
            return target
        except OSError:
            continue
    return None


@dataclass(slots=True)
class Issues:
    """Site-level problems gathered before the site ids (and so the ``where`` text) exist.

    Each item is ``(severity, index, field, message, hint)`` with ``index`` the 0-based
    position of the site in the input. Items keep the order they were added in; the report
    lists the problems of one site in that order.
    """

    items: list[tuple[str, int, str, str, str]] = field(default_factory=list)

    def add(self, severity: str, index: int, field_: str, message: str, hint: str = "") -> None:
        self.items.append((severity, int(index), field_, message, hint))

    def add_many(self, severity: str, indices: np.ndarray, field_: str,
                 messages: Sequence[str], hint: str | Sequence[str] = "") -> None:
        hints = [hint] * len(indices) if isinstance(hint, str) else hint
        for i, m, h in zip(indices, messages, hints, strict=True):
            self.items.append((severity, int(i), field_, m, h))

    def problems(self, refs: Sequence[str], site_ids: Sequence[str]) -> list[Problem]:
        """The items as :class:`Problem` objects located by ``refs`` and the given ``site_ids``.

        ``refs[i]`` is the input reference of site ``i`` (``"row 5"``); a non-empty
        ``site_ids[i]`` (as given in the input, not derived) is added to it.
        """
        out = []
        for severity, i, f, message, hint in self.items:
            sid = site_ids[i]
            where = f"{refs[i]} (site_id {sid!r})" if sid else refs[i]
            out.append(Problem(severity, where, f, message, hint, i))
        return out


# ----------------------------------------------------------------------------------------
# GeoJSON checks


def check_crs(crs: object, source: str) -> Problem | None:
    """A problem when a legacy GeoJSON ``crs`` member names anything but WGS 84 lon/lat.

    RFC 7946 (section 4) fixes GeoJSON coordinates to WGS 84 longitude, latitude; older files
    may still carry a ``crs`` member. sitescreen never reprojects silently.

    Examples
    --------
    >>> check_crs({"type": "name", "properties": {"name": "EPSG:4326"}}, "s.geojson") is None
    True
    >>> check_crs({"type": "name", "properties": {"name": "EPSG:3857"}}, "s.geojson").field
    'crs'
    """
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


def check_geometry(geom: object, i: int, issues: Issues) -> tuple[bool, float, float, Any]:
    """Check and unpack one GeoJSON geometry of site ``i``.

    Parameters
    ----------
    geom : object
        The parsed ``geometry`` member (not None).
    i : int
        0-based position of the site, for :class:`Issues`.
    issues : Issues
        Receives the problems found.

    Returns
    -------
    (ok, lon, lat, footprint)
        ``ok`` False when a problem was recorded (then lon/lat are NaN). For a Point, lon/lat
        are its first two numbers (an altitude is ignored) and ``footprint`` is None; their
        range is left to :func:`check_coordinates`. For a Polygon or MultiPolygon, checked
        here vertex by vertex, ``footprint`` is the shapely geometry and lon/lat its
        representative point (:func:`shapely.point_on_surface`: inside the footprint, unlike
        the centroid of a concave shape).
    """
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
        return _check_footprint(gtype, coords, i, issues)
    if gtype is None:
        issues.add("error", i, "geometry.type", "geometry has no 'type'",
                   "use Point, or Polygon/MultiPolygon for a footprint")
    else:
        issues.add("error", i, "geometry.type", f"unsupported geometry type {gtype!r}",
                   "use Point, or Polygon/MultiPolygon for a footprint")
    return False, np.nan, np.nan, None


def _check_footprint(gtype: str, coords: object, i: int,
                     issues: Issues) -> tuple[bool, float, float, Any]:
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
    if _crosses_antimeridian(g):
        g = _split_at_antimeridian(g)
        issues.add("warning", i, fc, f"{gtype} crosses the antimeridian (an edge jumps more "
                   "than 180 degrees of longitude); it is read the short way across 180 "
                   "degrees and split there",
                   "RFC 7946 section 3.1.9 asks for footprints split at 180 degrees into a "
                   "MultiPolygon; check the site is meant to be there")
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


def _crosses_antimeridian(g: Any) -> bool:
    """True when a ring has an edge jumping more than 180 degrees of longitude: drawn the
    short way across 180 degrees, not the long way round the globe (RFC 7946 3.1.9)."""
    rings = shapely.get_rings(shapely.get_parts(g))
    return any(bool((np.abs(np.diff(shapely.get_coordinates(r)[:, 0])) > 180).any())
               for r in rings)


def _split_at_antimeridian(g: Any) -> Any:
    """The footprint in 0..360 longitudes, cut at 180 and each side put back in -180..180.

    The representative point then lies inside the footprint, near 180 degrees, instead of
    half a world away (a Fiji estate read the long way round has its point in the Atlantic).

    Examples
    --------
    >>> ring = [(179.8, -17.2), (-179.8, -17.2), (-179.8, -16.8), (179.8, -16.8)]
    >>> parts = _split_at_antimeridian(shapely.Polygon(ring))
    >>> [tuple(round(v, 1) for v in p.bounds) for p in parts.geoms]
    [(179.8, -17.2, 180.0, -16.8), (-180.0, -17.2, -179.8, -16.8)]
    """
    east = shapely.transform(g, lambda xy: np.column_stack(
        [np.where(xy[:, 0] < 0, xy[:, 0] + 360.0, xy[:, 0]), xy[:, 1]]))
    west_half = shapely.box(0.0, -90.0, 180.0, 90.0)
    east_half = shapely.box(180.0, -90.0, 360.0, 90.0)
    parts = [shapely.intersection(east, west_half),
             shapely.transform(shapely.intersection(east, east_half),
                               lambda xy: xy - np.array([360.0, 0.0]))]
    polys = [q for p in parts for q in shapely.get_parts(p)
             if shapely.get_type_id(q) == 3 and not q.is_empty]
    return shapely.MultiPolygon(polys)


# ----------------------------------------------------------------------------------------
# Coordinate checks (vectorised)


def check_coordinate_pairs(has_lon: np.ndarray, has_lat: np.ndarray, issues: Issues,
                           f_lon: str, f_lat: str) -> np.ndarray:
    """Errors for table rows giving one coordinate without the other.

    Parameters
    ----------
    has_lon, has_lat : numpy.ndarray of bool
        Whether each row's longitude/latitude cell is non-empty.
    issues : Issues
        Receives one error per such row, on the missing column.
    f_lon, f_lat : str
        The input's names of the longitude and latitude columns, for the messages.

    Returns
    -------
    numpy.ndarray of bool
        The rows found bad.

    Examples
    --------
    >>> issues = Issues()
    >>> check_coordinate_pairs(np.array([True, True]), np.array([True, False]), issues,
    ...                        "lng", "lat").tolist()
    [False, True]
    >>> issues.items[0][1:4]
    (1, 'lat', 'lat is empty but lng is given')
    """
    bad = np.zeros(len(has_lon), dtype=bool)
    for have, miss, f_have, f_miss in ((has_lon, has_lat, f_lon, f_lat),
                                       (has_lat, has_lon, f_lat, f_lon)):
        idx = np.flatnonzero(have & ~miss)
        issues.add_many("error", idx, f_miss,
                        [f"{f_miss} is empty but {f_have} is given"] * len(idx),
                        "give both coordinates, or neither and an address")
        bad[idx] = True
    return bad


def check_coordinates(lon: np.ndarray, lat: np.ndarray, mask: np.ndarray, issues: Issues,
                      f_lon: str, f_lat: str, *, raw_lon: np.ndarray | None,
                      raw_lat: np.ndarray | None) -> np.ndarray:
    """Vectorised not-a-number/NaN/infinite/range/(0, 0) checks of site positions.

    Parameters
    ----------
    lon, lat : numpy.ndarray of float
        Positions in degrees (NaN where a table cell did not parse as a number).
    mask : numpy.ndarray of bool
        The sites to check (those giving both coordinates).
    issues : Issues
        Receives the problems found.
    f_lon, f_lat : str
        Field names for the problems; equal for GeoJSON (``"geometry.coordinates"``), where
        messages then quote the whole position and the hint for a swap recalls [lon, lat].
    raw_lon, raw_lat : numpy.ndarray of str or None
        The cell text of a table, so that ``"abc"`` is reported as not a number and a
        literal ``nan`` as NaN; None for GeoJSON numbers.

    Returns
    -------
    numpy.ndarray of bool
        The sites found bad. A position out of range is reported as swapped when the
        exchanged (lon, lat) is valid, as projected when the value exceeds 1000.

    Examples
    --------
    >>> issues = Issues()
    >>> check_coordinates(np.array([31.2, 0.0]), np.array([121.4, 0.0]), np.array([True, True]),
    ...                   issues, "lon", "lat", raw_lon=None, raw_lat=None).tolist()
    [True, True]
    >>> [item[3] for item in issues.items]  # doctest: +NORMALIZE_WHITESPACE
    ['latitude 121.4 is outside -90..90',
     'coordinates (0, 0) look like a placeholder ("null island" in the Gulf of Guinea)']
    """
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


# ----------------------------------------------------------------------------------------
# Site table checks (vectorised)


def check_locatable(has_coords: np.ndarray, address: np.ndarray, city: np.ndarray,
                    skip: np.ndarray, issues: Issues) -> np.ndarray:
    """Errors for sites with no coordinates and nothing to geocode (no address, no city).

    Parameters
    ----------
    has_coords : numpy.ndarray of bool
        Whether the site tried to give coordinates (even bad ones: those are reported
        elsewhere and do not also need an address).
    address, city : numpy.ndarray of str
        Stripped text, ``""`` when missing.
    skip : numpy.ndarray of bool
        Sites not to check: already bad, or rejected as a whole.
    issues : Issues
        Receives one error per site found.

    Returns
    -------
    numpy.ndarray of bool
        The sites found bad.
    """
    nothing = ~has_coords & (address == "") & (city == "") & ~skip
    idx = np.flatnonzero(nothing)
    issues.add_many("error", idx, "geometry",
                    ["has no coordinates and no address or city to geocode"] * len(idx),
                    "give coordinates, or an address/city so the site can be geocoded")
    return nothing


def check_duplicate_ids(ids: np.ndarray, refs: Sequence[str], issues: Issues) -> np.ndarray:
    """Errors for given site ids repeated in the input, compared ignoring case.

    The first site with an id is kept; each later one is an error naming the first.

    Parameters
    ----------
    ids : numpy.ndarray of str
        Stripped given ids, ``""`` where the input gives none (never duplicates).
    refs : sequence of str
        Input reference of each site (``"row 5"``), for the messages.
    issues : Issues
        Receives one error per repeated id.

    Returns
    -------
    numpy.ndarray of bool
        The sites found bad.

    Examples
    --------
    >>> issues = Issues()
    >>> check_duplicate_ids(np.array(["a", "", "A", ""], dtype=object),
    ...                     ["row 2", "row 3", "row 4", "row 5"], issues).tolist()
    [False, False, True, False]
    >>> issues.items[0][3]
    "duplicate site_id 'A': row 2 has 'a', which differs only in letter case or spaces"
    """
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
    return dup


def check_text_fields(name: np.ndarray, kind: np.ndarray, country: np.ndarray,
                      skip: np.ndarray, issues: Issues, *,
                      known_kinds: Sequence[str]) -> None:
    """Warnings (never errors) for blank names, unknown kinds and non-ISO countries.

    Parameters
    ----------
    name, kind, country : numpy.ndarray of str
        Stripped text, ``""`` when missing; ``country`` as normalised by the reader
        (two-letter codes upper-cased).
    skip : numpy.ndarray of bool
        Sites whose name is not checked (rejected as a whole).
    issues : Issues
        Receives the warnings.
    known_kinds : sequence of str
        The known values of ``kind`` (:data:`sitescreen.sites.SITE_KINDS`).
    """
    idx = np.flatnonzero((name == "") & ~skip)
    issues.add_many("warning", idx, "name", ["name is blank"] * len(idx),
                    "give each site a name so reports can be read")
    known = tuple(known_kinds)
    idx = np.flatnonzero((kind != "") & ~np.isin(kind, known))
    issues.add_many("warning", idx, "kind", [f"kind {kind[k]!r} is not one of {known}"
                                             for k in idx], "the site is kept as it is")
    is_code = pd.Series(country, dtype="str").str.fullmatch(r"[A-Za-z]{2}").to_numpy(bool)
    idx = np.flatnonzero((country != "") & ~is_code)
    issues.add_many("warning", idx, "country",
                    [f"country {country[k]!r} is not an ISO 3166-1 alpha-2 code" for k in idx],
                    "use two-letter codes such as 'CN', 'HK', 'SG', 'JP'")


#: Common spellings of the known kinds, compared case-insensitively after collapsing spaces,
#: hyphens, underscores and "&".
KIND_SPELLINGS: dict[str, str] = {
    **{k: "data_center" for k in (
        "data center", "data centre", "datacenter", "datacentre", "dc", "idc", "aidc",
        "computing center", "computing centre", "ai computing center", "数据中心", "计算中心",
        "智算中心", "机房")},
    **{k: "office" for k in (
        "offices", "head office", "headquarters", "headquarter", "hq", "regional office",
        "办公室", "办公", "总部")},
    **{k: "lab" for k in ("laboratory", "labs", "research lab", "实验室")},
    **{k: "rnd_center" for k in (
        "r d", "r and d", "rnd", "r d center", "r d centre", "rnd center", "rnd centre",
        "research and development", "research center", "research centre",
        "research and development center", "研发中心", "研究院")},
}


def _kind_key(text: str) -> str:
    return " ".join(re.sub(r"[\s_\-&/]+", " ", text.lower()).split())


def normalise_kinds(kind: np.ndarray, known: Sequence[str]) -> tuple[np.ndarray, str]:
    """Known kinds for common spellings ("Data Center" -> "data_center"), and a note.

    Returns the mapped column and a sentence listing each mapping once ("" when none);
    spellings that differ only in case, spaces or underscores go without saying.

    Examples
    --------
    >>> out, note = normalise_kinds(np.array(["Data Center", "office", "DC", "warehouse"],
    ...                                      dtype=object), ("office", "data_center"))
    >>> out.tolist(), note
    (['data_center', 'office', 'data_center', 'warehouse'], "kind spellings read as known kinds: 'DC' -> 'data_center' (1 site)")
    """
    known_keys = {_kind_key(k): k for k in known}
    out = kind.copy()
    mapped: dict[tuple[str, str], int] = {}
    for i, v in enumerate(kind):
        if not v or v in known:
            continue
        key = _kind_key(v)
        target = known_keys.get(key) or KIND_SPELLINGS.get(key)
        if target in known:
            out[i] = target
            if _kind_key(target) != key:  # "Office" -> "office" goes without saying
                mapped[(v, target)] = mapped.get((v, target), 0) + 1
    return out, _mapping_note("kind spellings read as known kinds", mapped)


def normalise_countries(country: np.ndarray,
                        lookup: Callable[[str], str | None]) -> tuple[np.ndarray, str]:
    """ISO 3166-1 alpha-2 codes for country names ("China" -> "CN"), and a note.

    ``lookup`` gives the code of a name or None; two-letter codes are upper-cased without it.
    Names it does not know are kept (and warned about by :func:`check_text_fields`).
    """
    out = country.copy()
    mapped: dict[tuple[str, str], int] = {}
    cache: dict[str, str | None] = {}
    for i, v in enumerate(country):
        if not v:
            continue
        if len(v) == 2 and v.isascii() and v.isalpha():
            out[i] = v.upper()
            continue
        if v not in cache:
            cache[v] = lookup(v)
        code = cache[v]
        if code:
            out[i] = code
            mapped[(v, code)] = mapped.get((v, code), 0) + 1
    return out, _mapping_note("country names read as ISO 3166-1 codes", mapped)


def _mapping_note(what: str, mapped: dict[tuple[str, str], int]) -> str:
    if not mapped:
        return ""
    parts = [f"{a!r} -> {b!r} ({n} site{'s' if n != 1 else ''})" for (a, b), n in
             sorted(mapped.items(), key=lambda kv: -kv[1])[:12]]
    more = f", and {len(mapped) - 12} more" if len(mapped) > 12 else ""
    return f"{what}: {', '.join(parts)}{more}"


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def check_text_values(columns: dict[str, Sequence[object]], skip: np.ndarray,
                      issues: Issues) -> np.ndarray:
    """Errors for text holding a NUL character or a lone UTF-16 surrogate.

    A NUL cuts the text short in the GeoPackage and CSV outputs; a lone surrogate (from a
    JSON escape such as ``"\\ud800"``) is not Unicode text and cannot be written as UTF-8.

    Parameters
    ----------
    columns : column name to its values (non-text values are skipped).
    skip : sites not to check (rejected as a whole).
    issues : receives one error per site and column.

    Returns
    -------
    numpy.ndarray of bool
        The sites found bad.
    """
    bad = np.zeros(len(skip), dtype=bool)
    for name, values in columns.items():
        if not _may_hold_bad_text(values):
            continue  # the usual case: one search of the whole column
        for i, v in enumerate(list(values)):
            if skip[i] or not isinstance(v, str):
                continue
            m = _BAD_TEXT.search(v)
            if m is None:
                continue
            if m.group() == "\x00":
                issues.add("error", i, str(name), f"{name} holds a NUL character (byte 0x00) "
                           f"at position {m.start() + 1}",
                           "remove it: output formats cut text at a NUL, and the file may be "
                           "partly binary or saved in the wrong encoding")
            else:
                issues.add("error", i, str(name), f"{name} holds a lone UTF-16 surrogate "
                           f"(\\u{ord(m.group()):04x}) at position {m.start() + 1}, which is not "
                           "valid Unicode text", "fix the \\u escape in the file: a surrogate "
                           "must be followed by its pair (\\ud83d\\ude00), or write the "
                           "character itself")
            bad[i] = True
    return bad


def _may_hold_bad_text(values: Sequence[object] | pd.Series) -> bool:
    """Whether any text of a column holds a NUL or a lone surrogate, in one search: Arrow
    text (valid UTF-8) can only hold the NUL."""
    if isinstance(values, pd.Series) and getattr(values.dtype, "storage", None) == "pyarrow":
        return bool(values.str.contains("\x00", regex=False, na=False).any())
    return _BAD_TEXT.search("".join([v for v in values if isinstance(v, str)])) is not None


_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_COMMA_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_DOT_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
_SPACE_THOUSANDS = re.compile(r"^[+-]?\d{1,3}([ \u00a0\u202f'’]\d{3})+([.,]\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_NOT_FINITE = re.compile(r"^[+-]?(inf|infinity|nan)$", re.IGNORECASE)


def _weight_value(v: object, decimal_comma: bool) -> tuple[float, str, bool]:
    """(value, problem or "", used a thousands separator) of one weight cell."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or \
            (isinstance(v, str) and not v.strip()):
        return math.nan, "is blank", False
    if isinstance(v, bool):
        return math.nan, f"is {str(v).lower()}, not a number", False
    grouped = False
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str):
        t = v.strip()
        if _NOT_FINITE.match(t):
            return math.nan, f"{t!r} is not a finite number", False
        if _PLAIN_NUMBER.match(t):
            text = t
        elif _SPACE_THOUSANDS.match(t):
            text = re.sub(r"[ \u00a0\u202f'’]", "", t).replace(",", ".")
            grouped = True
        elif _COMMA_THOUSANDS.match(t):
            if decimal_comma and t.count(",") == 1 and "." not in t:
                return math.nan, (f"{t!r} is ambiguous: a thousands separator "
                                  f"({t.replace(',', '')}) or a decimal comma "
                                  f"({t.replace(',', '.')})"), False
            text, grouped = t.replace(",", ""), True
        elif decimal_comma and _DOT_THOUSANDS.match(t):
            text, grouped = t.replace(".", "").replace(",", "."), True
        elif decimal_comma and _DECIMAL_COMMA.match(t):
            text = t.replace(",", ".")
        else:
            return math.nan, f"{t!r} is not a number", False
        x = float(text)
    else:
        return math.nan, f"is a {type(v).__name__}, not a number", False
    if not math.isfinite(x):
        return math.nan, f"{x} is not a finite number", False
    if x < 0:
        return math.nan, f"{v!r} is negative", False
    return x, "", grouped


def check_weights(values: Sequence[object], skip: np.ndarray, issues: Issues, field_: str, *,
                  decimal_comma: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a weight column (asset value, headcount) as numbers >= 0, before any hazard.

    Blank cells, text, negative, infinite and NaN values are errors; thousands separators
    are read when unambiguous ("1,200,000,000"; "1.200.000,5" and "1,2" with a decimal
    comma, i.e. next to ``;`` delimiters, where "1,200" is refused as ambiguous).

    Returns
    -------
    (weights, bad, grouped)
        The values (NaN where bad), the sites found bad, and examples of cells read with a
        thousands separator.

    Examples
    --------
    >>> issues = Issues()
    >>> w, bad, grouped = check_weights(["1,200,000,000", "", "-5", "inf", 3], np.zeros(5, bool),
    ...                                 issues, "asset_value")
    >>> w.tolist()[0], bad.tolist(), grouped
    (1200000000.0, [False, True, True, True, False], ['1,200,000,000'])
    >>> [item[3] for item in issues.items]
    ['asset_value is blank', "asset_value '-5' is negative", "asset_value 'inf' is not a finite number"]
    """
    n = len(values)
    out = np.full(n, np.nan)
    bad = np.zeros(n, dtype=bool)
    grouped: list[str] = []
    for i, v in enumerate(values):
        if skip[i]:
            continue
        x, problem, g = _weight_value(v, decimal_comma)
        if problem:
            issues.add("error", i, field_, f"{field_} {problem}",
                       "give a number >= 0 in every row (0 for a site that carries none), "
                       "without currency signs or units; or screen without --weight")
            bad[i] = True
        else:
            out[i] = x
            if g and len(grouped) < 3:
                grouped.append(str(v).strip())
    return out, bad, grouped


# ----------------------------------------------------------------------------------------
# The report


def build_report(source: str, problems: Sequence[Problem], frame: gpd.GeoDataFrame | None,
                 bad: np.ndarray | None, *, on_invalid: OnInvalid) -> ValidationReport:
    """Apply the ``on_invalid`` policy to a read site table and its problems.

    Parameters
    ----------
    source : str
        The file, as the user named it (the report's first words).
    problems : sequence of Problem
        Everything found, in any order of sites; listed file problems first, then by site
        position (each site's own problems in the order given).
    frame : geopandas.GeoDataFrame or None
        The table as read, one row per input site; None when the file could not be read.
    bad : numpy.ndarray of bool or None
        Rows of ``frame`` that have errors.
    on_invalid : {"raise", "warn", "ignore"}
        With ``"raise"`` any error leaves ``sites`` None; otherwise the bad rows are dropped
        (index reset, ``attrs`` kept) and ``sites`` is None only when no row is left.

    Returns
    -------
    ValidationReport
    """
    ordered = tuple(sorted(problems, key=lambda p: -1 if p.index is None else p.index))
    if frame is None:
        return ValidationReport(source, ordered, None, 0)
    if on_invalid == "raise" and any(p.severity == "error" for p in ordered):
        return ValidationReport(source, ordered, None, len(frame))
    kept = frame.loc[~bad].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    if len(kept) == 0:
        ordered = ordered + (Problem(
            "error", source, "", f"no valid sites left: all {len(frame)} have errors",
            "fix the errors listed above"),)
        return ValidationReport(source, ordered, None, len(frame))
    return ValidationReport(source, ordered, kept, len(frame))
