"""Is this file the dataset? Content checks for downloads without a pinned checksum.

A server may answer 200 with an HTML login page, a JSON error body labelled ``text/csv``, or
a body cut short under a consistent ``Content-Length``. Where the catalog pins a SHA-256 the
checksum settles it; elsewhere (IBTrACS is re-issued as seasons are added, flood tiles have
no published checksums) a file is accepted only when its content looks like the dataset:

- every file: not an HTML/XML page, not a JSON body, the magic bytes of its format;
- GeoTIFF and NetCDF: GDAL opens it, and every GeoTIFF block lies inside the file (a cut
  file has blocks past its end);
- zip: the central directory at the end of the archive is readable (a cut zip has none);
- CSV: the last line has as many fields as the header (a cut file ends mid-row);
- IBTrACS (catalog ``params.content = "ibtracs-csv"``): the header has the required
  columns, the second row is the units row, the seasons reach ``params.last_season_at_least``
  and the row count lies within ``params.rows``.

:func:`sitescreen.data.fetch.fetch` runs the check before renaming a download into place and
on a cached file not yet checked; ``sitescreen data verify`` runs the same check.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MAGIC", "HTML_PREFIXES", "content_problem", "ibtracs_problem", "tiff_problem",
           "truncation_problem"]

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: Leading bytes of each binary format, by file suffix.
MAGIC: dict[str, tuple[bytes, ...]] = {
    ".tif": TIFF_MAGIC, ".tiff": TIFF_MAGIC,
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
    ".gz": (b"\x1f\x8b",),
    ".nc": (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n"),
}
HTML_PREFIXES = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--", b"<meta", b"<title")


def content_problem(path: str | Path, params: Mapping[str, Any] | None = None, *,
                    name: str | None = None) -> str | None:
    """What is wrong with the content of ``path``, or None when it looks like its format.

    Parameters
    ----------
    path : path
        A downloaded or cached file; its suffix says what it should be.
    params : mapping, optional
        The catalog entry's ``params``: ``content = "ibtracs-csv"`` adds the IBTrACS checks.
    name : str, optional
        The file's real name when ``path`` is a temporary one (``<name>.part``).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "tracks.csv"
    >>> _ = p.write_text('{"error": "rate limited"}')
    >>> content_problem(p)
    'it is a JSON document, not a CSV table: it begins \\'{"error": "rate limited"}\\''
    """
    path = Path(path)
    suffix = Path(name or path.name).suffix.lower()
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return f"it cannot be read: {exc.strerror}"
    if not head:
        return "it is empty"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    snippet = repr(head[:60].decode("utf-8", "replace").replace("\n", " "))
    if text.lower().startswith(HTML_PREFIXES):
        return f"it is an HTML/XML page, not the data: it begins {snippet}"
    if text.startswith((b"{", b"[")) and suffix != ".json":
        what = "a CSV table" if suffix == ".csv" else f"a {suffix[1:]} file"
        return f"it is a JSON document, not {what}: it begins {snippet}"
    magic = MAGIC.get(suffix)
    if magic and not head.startswith(magic):
        return f"its first bytes {head[:8]!r} are not those of a {suffix[1:]} file"
    if suffix in (".tif", ".tiff"):
        return tiff_problem(path)
    if suffix == ".nc":
        return _gdal_problem(path)
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            return f"the zip archive is truncated or corrupt ({exc})"
        return None
    if suffix == ".csv":
        if (params or {}).get("content") == "ibtracs-csv":
            return ibtracs_problem(path, params or {})
        return _csv_tail_problem(path)
    return None


def tiff_problem(path: str | Path) -> str | None:
    """A GeoTIFF cut short (its directory, tag data or image blocks lie past the end of the
    file), or one GDAL cannot open; None when it looks whole."""
    import rasterio
    from rasterio.errors import RasterioError

    problem = truncation_problem(path)
    if problem:
        return problem
    try:
        with rasterio.open(path):
            pass
    except RasterioError as exc:
        return f"GDAL cannot open it as a GeoTIFF: {exc}"
    return None


def truncation_problem(path: str | Path) -> str | None:
    """Whether a TIFF's first directory, its tag values or its blocks lie past the end of the
    file (what a cut download or copy leaves); None when everything is inside."""
    path = Path(path)
    try:
        end = _tiff_extent(path)
    except (OSError, struct.error, ValueError) as exc:
        return f"its TIFF structure cannot be read ({exc})"
    size = path.stat().st_size
    if end > size:
        return (f"it is truncated: its TIFF structure reaches byte {end:,} but the file has "
                f"{size:,} bytes")
    return None


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4,
                    12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_OFFSETS_AND_COUNTS = ((273, 279), (324, 325))  # strips, tiles


def _tiff_extent(path: Path) -> int:
    """The furthest byte the first image directory of a TIFF or BigTIFF refers to: the
    directory itself, its tag values and its strips or tiles (empty ones, offset 0, skipped)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        order = "<" if head[:2] == b"II" else ">"
        big = struct.unpack_from(order + "H", head, 2)[0] == 43
        ifd = struct.unpack_from(order + ("Q" if big else "I"), head, 8 if big else 4)[0]
        if ifd + (8 if big else 2) > size:
            return ifd + (8 if big else 2)
        fh.seek(ifd)
        n = struct.unpack(order + ("Q" if big else "H"), fh.read(8 if big else 2))[0]
        entry, inline = (20, 8) if big else (12, 4)
        table_end = ifd + (8 if big else 2) + n * entry
        if table_end > size:
            return table_end
        raw = fh.read(n * entry)
        furthest, arrays = table_end, {}
        for i in range(n):
            if big:
                tag, typ, count, value = struct.unpack_from(order + "HHQQ", raw, i * entry)
            else:
                tag, typ, count, value = struct.unpack_from(order + "HHII", raw, i * entry)
            nbytes = _TIFF_TYPE_SIZES.get(typ, 1) * count
            if nbytes > inline:
                furthest = max(furthest, value + nbytes)
            if tag in (273, 279, 324, 325) and value + nbytes <= size:
                arrays[tag] = (typ, count, value, nbytes <= inline)
        for off_tag, cnt_tag in _OFFSETS_AND_COUNTS:
            if off_tag in arrays and cnt_tag in arrays:
                offs = _tiff_array(fh, order, raw, arrays[off_tag], big)
                cnts = _tiff_array(fh, order, raw, arrays[cnt_tag], big)
                ends = [o + c for o, c in zip(offs, cnts, strict=False) if o and c]
                furthest = max([furthest, *ends])
    return furthest


def _tiff_array(fh, order: str, raw: bytes, spec: tuple, big: bool) -> list[int]:
    typ, count, value, inline = spec
    code = {3: "H", 4: "I", 16: "Q"}.get(typ, "I")
    if inline:  # values stored in the entry itself
        packed = struct.pack(order + ("Q" if big else "I"), value)
        return list(struct.unpack_from(order + code * count, packed))
    fh.seek(value)
    return list(struct.unpack(order + code * count, fh.read(struct.calcsize(code) * count)))


def _gdal_problem(path: Path) -> str | None:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path):
            return None
    except RasterioError as exc:
        return f"GDAL cannot open it: {exc}"


def _fields(line: bytes) -> int:
    import csv

    return len(next(csv.reader([line.decode("utf-8", "replace")]), []))


def _csv_tail_problem(path: Path) -> str | None:
    """A cut CSV ends mid-row: its last line has fewer fields than the header."""
    with open(path, "rb") as fh:
        header = fh.readline().rstrip(b"\r\n")
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        tail = fh.read().rstrip(b"\r\n").rsplit(b"\n", 1)[-1].rstrip(b"\r")
    if not header:
        return "it has no header line"
    want, got = _fields(header), _fields(tail)
    if tail != header and got != want:
        return (f"it is truncated or corrupt: its last line has {got} fields, the header "
                f"{want}")
    return None


def ibtracs_problem(path: str | Path, params: Mapping[str, Any]) -> str | None:
    """The IBTrACS v04r01 checks: columns, units row, seasons, row count (see module notes)."""
    import pandas as pd

    from sitescreen.hazards._ibtracs import REQUIRED_COLUMNS

    path = Path(path)
    with open(path, "rb") as fh:
        header = [h.strip() for h in fh.readline().decode("utf-8-sig", "replace").split(",")]
        units = fh.readline().decode("utf-8", "replace").split(",")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return (f"it is not an IBTrACS v04r01 CSV: the header lacks {', '.join(missing)} "
                f"(it begins {header[:4]})")
    pos = header.index("SEASON")
    if len(units) <= pos or units[pos].strip() != "Year":
        return "it is not an IBTrACS v04r01 CSV: line 2 is not the units row ('Year' under SEASON)"
    tail = _csv_tail_problem(path)
    if tail:
        return tail
    try:
        seasons = pd.read_csv(path, usecols=["SEASON"], skiprows=[1], dtype=str,
                              keep_default_na=False)["SEASON"]
    except (ValueError, pd.errors.ParserError) as exc:
        return f"it is not a readable IBTrACS CSV: {exc}"
    season = pd.to_numeric(seasons.str.strip(), errors="coerce")
    last = season.max()
    want_last = int(params.get("last_season_at_least", 0))
    if not last >= want_last:
        return (f"its seasons end in {last if last == last else 'none'}, but the file should "
                f"reach at least {want_last}: it is cut short or an old issue")
    lo, hi = (int(v) for v in params.get("rows", (1, 10**9)))
    if not lo <= len(season) <= hi:
        return (f"it has {len(season):,} track points, outside the plausible {lo:,}-{hi:,} "
                "for this file")
    return None
