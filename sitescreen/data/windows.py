"""Windowed fetch of global GeoTIFFs: only the pixels around the sites, over HTTP ranges.

The Aqueduct Floods tiles are 349 global 43200 x 21600 rasters; a portfolio needs a few
pixels of each. This module reads only the blocks around the sites from the upstream URL
(or a mirror) with GDAL ``/vsicurl/`` range requests and keeps them in the cache as a
*window file*: a GeoTIFF with the upstream file's name, grid, data type and nodata value,
tiled and sparse (``SPARSE_OK``), in which only the fetched windows are written; everything
else reads as nodata. Hazards therefore read a window file exactly as the full file, and
get the same values at every pixel it holds (``tests/test_data_windows.py`` checks this).

Windows are cells of :data:`CELL` x :data:`CELL` pixels of the dataset grid (catalog
``params.grid``), so which cells a set of sites needs is known without the network: the cell
of each site's pixel, padded by a search radius in km for hazards that look around the site
(the coastal nearest-land search, catalog ``nearest_land_max_km``).

Each window file has a provenance record ``<file>.windows.json``: upstream URL, origin
(``upstream`` or ``mirror``), the upstream file's size, ETag and Last-Modified, its layout
(block shape, compression, data type, nodata), the cells held, and one entry per fetch
(cells added, bytes transferred, requests, seconds). A later fetch reads only missing cells;
when the upstream file's ETag or size differs from the record, the window file is rebuilt
from the new upstream file alone, never mixed. A file is replaced atomically (temporary
file, then rename) after its windows were read completely, so an interrupted or failed fetch
leaves the previous window file (or none) and never a partial one.

Transfers: files are fetched in parallel by a bounded number of threads (one connection
each), with GDAL's own retries for transient HTTP statuses (429, 5xx), a per-request
timeout, a minimum transfer speed (a trickling server is cut off), an overall deadline and
a retry with backoff of a file whose transfer timed out or was cut. Bytes transferred are
GDAL's own network statistics (``CPL_VSIL_NETWORK_STATS_ENABLED``).
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import requests
from rasterio.errors import RasterioError
from rasterio.windows import Window

from sitescreen.catalog import CatalogEntry
from sitescreen.data.fetch import read_json_record
from sitescreen.data.sources import WINDOWS_SUFFIX
from sitescreen.errors import (
    CatalogError,
    DownloadError,
    HazardDataError,
    OfflineError,
    is_transient,
)
from sitescreen.raster import RasterInfo, pixel_index, raster_info, search_pad

__all__ = [
    "CELL",
    "WINDOWS_SUFFIX",
    "FetchSettings",
    "FileNeed",
    "WindowPlan",
    "WindowFetchReport",
    "grid_info",
    "needed_cells",
    "plan_windows",
    "fetch_windows",
    "read_record",
    "check_cover",
    "window_status",
]

log = logging.getLogger(__name__)

#: Side of a window cell in pixels: the unit the cache holds and fetches. Small, because a
#: striped upstream file costs whole strips (rows) per cell row: a river site needs one
#: pixel, so 4 rows, not 16; tiled files cost their tiles whatever the cell.
CELL = 4
#: Internal tiles of window files (a 512 x 512 grid of a 43200 x 21600 raster has 3,655
#: tiles: a 29 kB offset table, written once; unwritten tiles take no space).
LOCAL_BLOCK = 512
#: Planning estimate of the bytes a windowed fetch costs per 256 x 256-pixel block the
#: missing cells fall in (one compressed tile, or a share of the strips, of a hazard map;
#: 19-70 kB per site and file measured on synthetic global tiles, benchmarks/bench_fetch.py);
#: the header is estimated apart.
EST_BLOCK_BYTES = 24 * 1024
_EST_BLOCK_CELLS = 256 // CELL
EST_HEADER_BYTES = 64 * 1024
# Extra latitude (degrees) when padding a search box in columns: the nearest-land search
# groups the points of one 512-pixel block and scales columns at the block's mid latitude.
_LAT_MARGIN_DEG = LOCAL_BLOCK / 120.0 + 0.5
_EXTRA_PAD_PX = 2


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Connections, retries and limits of a windowed fetch.

    ``timeout_s`` bounds one HTTP request, ``low_speed_bytes``/``low_speed_s`` abort a
    request slower than that many bytes per second for that long, ``deadline_s`` bounds
    the whole fetch; ``retries`` is GDAL's per-request retry count for transient statuses
    (429, 500, 502, 503, 504) and also the number of times a file whose transfer timed out
    or was cut is tried again, after ``backoff_s`` x 2^attempt seconds.
    """

    workers: int = 4
    timeout_s: float = 60.0
    connect_timeout_s: float = 15.0
    low_speed_bytes: int = 1024
    low_speed_s: int = 20
    deadline_s: float = 1800.0
    retries: int = 3
    backoff_s: float = 1.0

    def gdal_options(self) -> dict[str, str]:
        return {
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
            "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
            "GDAL_HTTP_TIMEOUT": str(max(1, math.ceil(self.timeout_s))),
            "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, math.ceil(self.connect_timeout_s))),
            "GDAL_HTTP_LOW_SPEED_LIMIT": str(int(self.low_speed_bytes)),
            "GDAL_HTTP_LOW_SPEED_TIME": str(int(self.low_speed_s)),
            "GDAL_HTTP_MAX_RETRY": str(int(self.retries)),
            "GDAL_HTTP_RETRY_DELAY": str(self.backoff_s),
            "CPL_VSIL_NETWORK_STATS_ENABLED": "YES",
            "GDAL_TIFF_INTERNAL_MASK": "NO",
        }


# --------------------------------------------------------------------------------------------
# The grid and the cells sites need


def grid_info(entry: CatalogEntry) -> RasterInfo:
    """The dataset grid from catalog ``params.grid`` = [width, height, west, north, res]."""
    try:
        width, height, west, north, res = entry.params["grid"]
        width, height, west, north, res = int(width), int(height), float(west), \
            float(north), float(res)
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(
            f"dataset {entry.id!r}: params.grid must be [width, height, west, north, "
            f"resolution in degrees] for a windowed fetch; got {entry.params.get('grid')!r}"
        ) from exc
    return RasterInfo(path=entry.id, width=width, height=height,
                      transform=(res, 0.0, west, 0.0, -res, north),
                      block_shape=(LOCAL_BLOCK, LOCAL_BLOCK), dtype="float32", nodata=None,
                      nodata_declared=False)


def needed_cells(grid: RasterInfo, lon: np.ndarray, lat: np.ndarray, *,
                 pad_km: float = 0.0) -> np.ndarray:
    """Sorted cell ids (``cell_row * n_cell_cols + cell_col``) holding each site's pixel,
    and, with ``pad_km``, every pixel within that distance (plus a margin)."""
    lon = np.asarray(lon, dtype="float64").ravel()
    lat = np.asarray(lat, dtype="float64").ravel()
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return np.zeros(0, dtype=np.int64)
    rows, cols, inside = pixel_index(grid, lon[ok], lat[ok])
    rows, cols, lat_in = rows[inside], cols[inside], lat[ok][inside]
    ncc = -(-grid.width // CELL)
    if pad_km > 0:
        pad_r, pad_c = search_pad(grid, np.abs(lat_in) + _LAT_MARGIN_DEG, pad_km)
        pad_r = pad_r + _EXTRA_PAD_PX
        pad_c = pad_c + _EXTRA_PAD_PX
    else:
        pad_r = pad_c = np.zeros(len(rows), dtype=np.int64)
    pad_r = np.broadcast_to(pad_r, rows.shape)
    pad_c = np.broadcast_to(pad_c, rows.shape)
    r0 = np.maximum(0, rows - pad_r) // CELL
    r1 = np.minimum(grid.height - 1, rows + pad_r) // CELL
    c0 = np.maximum(0, cols - pad_c) // CELL
    c1 = np.minimum(grid.width - 1, cols + pad_c) // CELL
    # Each site's block of cells, all sites of one block shape at a time.
    shape = np.stack([r1 - r0 + 1, c1 - c0 + 1], axis=1)
    out = [np.zeros(0, dtype=np.int64)]
    for nr, nc in np.unique(shape, axis=0):
        sel = (shape[:, 0] == nr) & (shape[:, 1] == nc)
        rr = r0[sel][:, None, None] + np.arange(nr)[None, :, None]
        cc = c0[sel][:, None, None] + np.arange(nc)[None, None, :]
        out.append(np.unique((rr * ncc + cc).ravel()))
    return np.unique(np.concatenate(out)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Records


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + WINDOWS_SUFFIX)


def read_record(path: str | Path) -> dict | None:
    """The provenance record of a window file, or None when it has none (or is unreadable)."""
    return read_json_record(_record_path(Path(path)))


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
    os.replace(tmp, path)


_COVER_CACHE: dict[tuple[str, int], np.ndarray] = {}


def check_cover(path: str, lon: np.ndarray, lat: np.ndarray, *, entry: CatalogEntry,
                pad_km: float = 0.0) -> None:
    """Raise when ``path`` is a window file that lacks cells these sites need.

    A full file (no ``.windows.json`` record) passes. Without this check a site outside the
    fetched windows would silently read as no data.
    """
    record_file = _record_path(Path(path))
    try:
        stamp = record_file.stat().st_mtime_ns
    except OSError:
        return
    held = _COVER_CACHE.get((str(record_file), stamp))
    if held is None:
        rec = read_record(path) or {}
        held = np.asarray(sorted(rec.get("cells", [])), dtype=np.int64)
        _COVER_CACHE[(str(record_file), stamp)] = held
    need = needed_cells(grid_info(entry), lon, lat, pad_km=pad_km)
    lacking = np.setdiff1d(need, held, assume_unique=True)
    if len(lacking):
        raise HazardDataError(
            f"dataset {entry.id!r}: {Path(path).name} in the cache holds windows for other "
            f"sites; {len(lacking)} window(s) these sites need are missing. Fetch them with "
            f"'sitescreen data fetch {entry.id} --sites SITES' or run 'sitescreen screen ... "
            "--fetch'")


# --------------------------------------------------------------------------------------------
# Planning


@dataclass(frozen=True, slots=True)
class FileNeed:
    """One file of a windowed dataset: the cells the request needs and what is missing (no
    cells are listed for a full file: it holds them all, so the sites' cells are not
    worked out)."""

    name: str
    cells: tuple[int, ...]
    missing: tuple[int, ...]
    full: bool  # the whole upstream file is in the cache

    @property
    def complete(self) -> bool:
        return self.full or not self.missing

    def estimate_bytes(self, held_any: bool, ncc: int) -> int:
        if self.complete:
            return 0
        rows, cols = np.divmod(np.asarray(self.missing, dtype=np.int64), ncc)
        blocks = len(set(zip((rows // _EST_BLOCK_CELLS).tolist(),
                             (cols // _EST_BLOCK_CELLS).tolist(), strict=True)))
        return blocks * EST_BLOCK_BYTES + (0 if held_any else EST_HEADER_BYTES)


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """What a windowed fetch of one dataset would transfer for given sites."""

    dataset: str
    files: tuple[FileNeed, ...]
    cache_root: str
    pads: Mapping[str, float] = field(default_factory=dict)

    @property
    def missing_files(self) -> list[FileNeed]:
        return [f for f in self.files if not f.complete]

    @property
    def missing_cells(self) -> int:
        return sum(len(f.missing) for f in self.missing_files)

    #: Cells per row of the grid (to locate a cell id's block).
    n_cell_cols: int = 1

    @property
    def estimate_bytes(self) -> int:
        return sum(f.estimate_bytes(len(f.cells) != len(f.missing), self.n_cell_cols)
                   for f in self.files)

    @property
    def complete(self) -> bool:
        return not self.missing_files

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "files": len(self.files),
                "missing_files": len(self.missing_files), "missing_cells": self.missing_cells,
                "estimate_bytes": self.estimate_bytes}


def _file_names(folder: Path) -> frozenset[str]:
    """The names of the regular files in ``folder`` (empty when it does not exist)."""
    try:
        with os.scandir(folder) as it:
            return frozenset(e.name for e in it if e.is_file())
    except OSError:
        return frozenset()


def plan_windows(entry: CatalogEntry, cache_root: str | Path, needs: Mapping[str, float],
                 lon: np.ndarray, lat: np.ndarray) -> WindowPlan:
    """Which cells of which files ``needs`` (file name -> search radius in km) lack.

    No network: the cells come from the catalog grid, what is held from the records.
    """
    grid = grid_info(entry)
    folder = Path(cache_root) / entry.local_dir
    held_files = _file_names(folder)  # one listing, not two stats per file
    by_pad: dict[float, tuple[np.ndarray, tuple[int, ...]]] = {}
    files = []
    for name, pad in needs.items():
        if "/" in name or os.sep in name:  # in a subfolder: not in the listing
            present, recorded = (folder / name).is_file(), True
        else:
            present, recorded = name in held_files, name + WINDOWS_SUFFIX in held_files
        rec = read_record(folder / name) if present and recorded else None
        if present and rec is None:  # the whole file: it holds every cell
            files.append(FileNeed(name, (), (), True))
            continue
        if pad not in by_pad:  # the cells of a search radius, once for every file
            cells = needed_cells(grid, lon, lat, pad_km=pad)
            by_pad[pad] = cells, tuple(cells.tolist())
        cells, listed = by_pad[pad]
        held = np.asarray(rec.get("cells", []), dtype=np.int64) if rec else np.zeros(0, np.int64)
        files.append(FileNeed(name, listed, tuple(np.setdiff1d(cells, held).tolist()), False))
    return WindowPlan(entry.id, tuple(files), str(cache_root), dict(needs),
                      n_cell_cols=-(-grid.width // CELL))


# --------------------------------------------------------------------------------------------
# GDAL network statistics (bytes actually transferred), via the libgdal rasterio loaded


class _NetStats:
    """``VSINetworkStatsGetAsSerializedJSON`` of the libgdal rasterio uses (Linux: found in
    ``/proc/self/maps``, rasterio's own copy first); unavailable elsewhere, then bytes are
    reported as unknown (None)."""

    def __init__(self) -> None:
        self._lib = None
        try:
            with open("/proc/self/maps", encoding="utf-8") as maps:
                paths = {line.split()[-1] for line in maps if "libgdal" in line}
            # pyogrio may load a libgdal of its own; the counters are rasterio's copy's.
            for p in sorted(paths, key=lambda p: "rasterio" not in p):
                lib = ctypes.CDLL(p)
                fn = lib.VSINetworkStatsGetAsSerializedJSON
                fn.restype = ctypes.c_void_p
                fn.argtypes = [ctypes.c_void_p]
                lib.VSIFree.argtypes = [ctypes.c_void_p]
                self._lib = lib
                break
        except (OSError, AttributeError):
            self._lib = None

    def per_file(self) -> dict[str, tuple[int, int]]:
        """``/vsicurl/URL`` -> (GET requests, bytes downloaded) since the process started."""
        if self._lib is None:
            return {}
        ptr = self._lib.VSINetworkStatsGetAsSerializedJSON(None)
        if not ptr:
            return {}
        try:
            doc = json.loads(ctypes.string_at(ptr).decode("utf-8"))
        except ValueError:
            return {}
        finally:
            self._lib.VSIFree(ptr)
        files = doc.get("handlers", {}).get("vsicurl", {}).get("files", {})
        out = {}
        for name, st in files.items():
            get = st.get("methods", {}).get("GET", {})
            out[name] = (int(get.get("count", 0)), int(get.get("downloaded_bytes", 0)))
        return out

    def clear_cache(self, prefix: str) -> None:
        """Forget what GDAL cached of a URL (size, blocks), so a re-read sees the new file."""
        if self._lib is not None:
            try:
                fn = self._lib.VSICurlPartialClearCache
                fn.argtypes = [ctypes.c_char_p]
                fn(prefix.encode())
            except AttributeError:
                pass


_STATS: _NetStats | None = None
_STATS_LOCK = threading.Lock()


def _stats() -> _NetStats:
    global _STATS
    with _STATS_LOCK:
        if _STATS is None:
            _STATS = _NetStats()
        return _STATS


# --------------------------------------------------------------------------------------------
# Fetching


@dataclass(slots=True)
class WindowFetchReport:
    """What a windowed fetch did."""

    dataset: str
    files_fetched: int = 0
    files_cached: int = 0
    cells_fetched: int = 0
    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    rebuilt: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "files_fetched": self.files_fetched,
                "files_cached": self.files_cached, "cells_fetched": self.cells_fetched,
                "bytes": self.bytes, "requests": self.requests,
                "seconds": round(self.seconds, 3), "rebuilt": list(self.rebuilt)}


ProgressFn = Callable[[int, int, int], None]  # files done, files total, bytes so far


def fetch_windows(entry: CatalogEntry, plan: WindowPlan, *, mirror: str | None = None,
                  settings: FetchSettings | None = None, offline: bool = False,
                  progress: ProgressFn | None = None) -> WindowFetchReport:
    """Fetch the missing cells of ``plan`` into window files in the cache.

    Parameters
    ----------
    entry : CatalogEntry
    plan : WindowPlan
        From :func:`plan_windows`.
    mirror : str, optional
        A mirror base (http(s) URL or folder) standing in for the upstream ``base_url``.
    settings : FetchSettings, optional
    offline : bool
        Raise :class:`OfflineError` naming what is missing instead of fetching.

    Raises
    ------
    DownloadError
        A file could not be read (the message names the URL and the cause); window files
        already completed by this call are kept, the failed one is left as it was.
    """
    from sitescreen.data.datasets import source_url

    settings = settings or FetchSettings()
    todo = plan.missing_files
    report = WindowFetchReport(entry.id, files_cached=len(plan.files) - len(todo))
    if not todo:
        return report
    if offline:
        raise OfflineError(
            f"dataset {entry.id!r}: offline mode, and {len(todo)} of {len(plan.files)} files "
            f"lack {plan.missing_cells} windows for these sites (about "
            f"{plan.estimate_bytes / 1e6:.1f} MB); fetch them without --offline")
    start = time.monotonic()
    deadline = start + settings.deadline_s
    lock = threading.Lock()
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, settings.workers),
                            thread_name_prefix="windows") as pool:
        futures = {}
        for need in todo:
            url, origin = source_url(entry, need.name, mirror)
            futures[pool.submit(_fetch_file_retrying, entry, plan, need, url, origin,
                                settings, deadline)] = need
        try:
            for fut in as_completed(futures):
                result = fut.result()
                with lock:
                    done += 1
                    report.files_fetched += 1
                    report.cells_fetched += result["cells"]
                    report.bytes += result["bytes"] or 0
                    report.requests += result["requests"] or 0
                    if result["rebuilt"]:
                        report.rebuilt.append(futures[fut].name)
                    if progress:
                        progress(done, len(todo), report.bytes)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    report.seconds = time.monotonic() - start
    return report


def _gdal_messages(exc: BaseException) -> str:
    """GDAL's messages behind a rasterio error, innermost first (rasterio chains them)."""
    seen: list[str] = []
    x: BaseException | None = exc
    while x is not None and len(seen) < 6:
        text = str(x)
        if text and "See previous exception" not in text and text not in seen:
            seen.append(text)
        x = x.__cause__ or x.__context__
    return "; ".join(reversed(seen)) or type(exc).__name__


def _read_error(url: str, what: str, exc: BaseException, settings: FetchSettings,
                elapsed: float, diagnosis: str = "") -> DownloadError:
    """A clear error for a failed open or read: truncated, too slow or stalled, or other."""
    detail = diagnosis or _gdal_messages(exc)
    if "bytes, expected" in detail:
        return DownloadError(
            f"{_shown(url)}: {what}: the server sent fewer bytes than it announced (a "
            f"truncated transfer: {detail}); nothing of this file was kept", transient=True)
    if elapsed >= 0.9 * min(settings.timeout_s, settings.low_speed_s) or "timed out" in detail:
        return DownloadError(
            f"{_shown(url)}: {what}: no complete answer within the limits (request timeout "
            f"{settings.timeout_s:g} s, minimum speed {settings.low_speed_bytes} B/s over "
            f"{settings.low_speed_s} s): the server stalls or trickles ({detail}); nothing of "
            "this file was kept", transient=True)
    return DownloadError(f"{_shown(url)}: {what}: {detail}")


def _fetch_file_retrying(entry: CatalogEntry, plan: WindowPlan, need: FileNeed, url: str,
                         origin: str, settings: FetchSettings, deadline: float) -> dict:
    attempt = 0
    while True:
        if time.monotonic() > deadline:
            raise DownloadError(
                f"{_shown(url)}: overall deadline of {settings.deadline_s:g} s reached before "
                f"its windows were read; run the same command again (it keeps what is done) "
                "or raise the deadline")
        try:
            return _fetch_file(entry, plan, need, url, origin, settings)
        except DownloadError as exc:
            attempt += 1
            if attempt > settings.retries or not is_transient(exc):
                raise
            delay = settings.backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d of %d in %.1f s", _shown(url), exc, attempt,
                        settings.retries, delay)
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))


def _shown(url: str) -> str:
    from sitescreen.data.fetch import redact_url

    return redact_url(url)


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _identity(url: str, settings: FetchSettings) -> dict:
    """Size, ETag and Last-Modified of the upstream file (a HEAD request; stat for a folder)."""
    if not _is_http(url):
        try:
            st = os.stat(url)
        except OSError as exc:
            raise DownloadError(f"{url}: not in the mirror folder ({exc.strerror})") from exc
        return {"size": st.st_size, "etag": f"{st.st_size}-{st.st_mtime_ns}",
                "last_modified": datetime.fromtimestamp(st.st_mtime, UTC).isoformat()}
    try:
        r = requests.head(url, allow_redirects=True,
                          timeout=(settings.connect_timeout_s, settings.timeout_s))
    except requests.RequestException as exc:
        raise DownloadError(f"{_shown(url)}: HEAD request failed: {exc}") from exc
    if r.status_code != 200:
        raise DownloadError(f"{_shown(url)}: HTTP {r.status_code} to a HEAD request; check "
                            "the dataset's base_url or the mirror")
    ctype = r.headers.get("Content-Type", "")
    if ctype.startswith("text/html"):
        raise DownloadError(f"{_shown(url)}: the server answers with an HTML page "
                            f"({ctype}), not a GeoTIFF; check the URL or the mirror")
    size = r.headers.get("Content-Length")
    return {"size": int(size) if size and size.isdigit() else None,
            "etag": r.headers.get("ETag", ""), "last_modified": r.headers.get("Last-Modified", "")}


def _diagnose(url: str, settings: FetchSettings) -> str:
    """Why GDAL could not open a URL, from its first bytes: an HTML page, a status, or ""."""
    if not _is_http(url):
        return ""
    try:
        r = requests.get(url, headers={"Range": "bytes=0-1023"}, stream=True,
                         timeout=(settings.connect_timeout_s, settings.timeout_s))
        head, until = b"", time.monotonic() + settings.timeout_s
        # Byte by byte, so that the time bound holds: a chunk of n bytes from a trickling
        # server takes n times its interval (64 bytes at 8 B/s were 8 s, past any bound).
        for chunk in r.iter_content(1):
            head += chunk
            if len(head) >= 1024 or time.monotonic() > until:
                break
        r.close()
    except requests.RequestException as exc:
        return f"the first bytes could not be read: timed out ({exc})"
    if len(head) < 1024 and time.monotonic() > until:
        return (f"the server sent only {len(head)} bytes in {settings.timeout_s:g} s "
                "(timed out: it trickles)")
    if r.status_code not in (200, 206):
        return f"HTTP {r.status_code} to a range request"
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return (f"the server sent an HTML page (status {r.status_code}), not a GeoTIFF; the "
                "URL is wrong or the host shows an error page; check base_url or the mirror")
    if r.status_code == 200 and "Content-Range" not in r.headers:
        return "the server ignores HTTP range requests; windowed reads need them"
    if not head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return f"the file does not start like a TIFF (first bytes {head[:8]!r})"
    return ""


def _same_upstream(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a.get("size") == b.get("size") and (a.get("etag") or "") == (b.get("etag") or "")
            and (a.get("last_modified") or "") == (b.get("last_modified") or ""))


def _runs(cells: Iterable[int], ncc: int) -> list[tuple[int, int, int]]:
    """Cells grouped into horizontal runs (cell_row, first cell_col, last cell_col)."""
    out: list[tuple[int, int, int]] = []
    for c in sorted(cells):
        r, col = divmod(int(c), ncc)
        if out and out[-1][0] == r and out[-1][2] == col - 1:
            out[-1] = (r, out[-1][1], col)
        else:
            out.append((r, col, col))
    return out


def _rows_of(runs: list[tuple[int, int, int]], *, merge: bool
             ) -> list[list[tuple[int, int, int]]]:
    """Runs read together: all runs of one cell row when ``merge`` (striped files), else
    each run alone (tiled files: the span between runs would fetch tiles nobody needs)."""
    if not merge:
        return [[run] for run in runs]
    out: list[list[tuple[int, int, int]]] = []
    for run in runs:
        if out and out[-1][0][0] == run[0]:
            out[-1].append(run)
        else:
            out.append([run])
    return out


def _layout(ds: Any) -> dict:
    return {"block_shape": list(ds.block_shapes[0]), "dtype": ds.dtypes[0],
            "nodata": ds.nodata, "compression": ds.compression.value if ds.compression
            else None, "interleave": ds.interleaving.value if ds.interleaving else None,
            "width": ds.width, "height": ds.height, "crs": ds.crs.to_string() if ds.crs else ""}


def _local_nodata(dtype: str, nodata: float | None) -> float:
    """The nodata of a window file: the upstream one, else a value the fallback rule of
    :mod:`sitescreen.raster` also treats as no data (-9999; the type's minimum for ints)."""
    if nodata is not None:
        return float(nodata)
    if np.dtype(dtype).kind == "f":
        return -9999.0
    return float(np.iinfo(np.dtype(dtype)).min)


def _fetch_file(entry: CatalogEntry, plan: WindowPlan, need: FileNeed, url: str,
                origin: str, settings: FetchSettings) -> dict:
    grid = grid_info(entry)
    ncc = -(-grid.width // CELL)
    dest = Path(plan.cache_root) / entry.local_dir / need.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    identity = _identity(url, settings)
    old = read_record(dest) if dest.is_file() else None
    rebuild = old is None or not _same_upstream(old.get("upstream", {}), identity)
    if old is not None and rebuild:
        log.warning("%s changed upstream (size/ETag/Last-Modified differ from the record); "
                    "its windows are read again", _shown(url))
    cells = set(need.cells) if rebuild else set(need.missing)
    held = set() if rebuild else set(old.get("cells", []))
    gdal_path = f"/vsicurl/{url}" if _is_http(url) else url
    stats = _stats()
    stats.clear_cache(gdal_path)
    before = stats.per_file().get(gdal_path, (0, 0))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    t0 = time.monotonic()
    try:
        with rasterio.Env(**settings.gdal_options()):
            try:
                src = rasterio.open(gdal_path)
            except RasterioError as exc:
                elapsed = time.monotonic() - t0
                raise _read_error(url, "cannot open it as a GeoTIFF over HTTP range requests",
                                  exc, settings, elapsed, _diagnose(url, settings)) from exc
            with src:
                try:
                    info = raster_info(src)
                except HazardDataError as exc:
                    raise DownloadError(f"{_shown(url)}: {exc}") from exc
                if (info.width, info.height) != (grid.width, grid.height) or not np.allclose(
                        info.transform, grid.transform, rtol=0, atol=1e-9):
                    raise DownloadError(
                        f"{_shown(url)}: grid {info.width} x {info.height} with transform "
                        f"{info.transform} differs from the catalog grid {grid.width} x "
                        f"{grid.height} {grid.transform} (params.grid of {entry.id!r}); "
                        "run 'sitescreen data check' and update the catalog")
                layout = _layout(src)
                nodata = _local_nodata(info.dtype, info.nodata)
                if rebuild:
                    _create_window_file(tmp, src, info.dtype, nodata)
                else:
                    shutil.copyfile(dest, tmp)
                # Strips span the width: decode each strip once per cell row, not per run.
                striped = src.block_shapes[0][1] >= src.width
                with rasterio.open(tmp, "r+") as out:
                    for row_runs in _rows_of(_runs(cells, ncc), merge=striped):
                        r = row_runs[0][0]
                        row_off = r * CELL
                        h = min(CELL, grid.height - row_off)
                        span0 = row_runs[0][1] * CELL
                        span1 = min((row_runs[-1][2] + 1) * CELL, grid.width)
                        t_read = time.monotonic()
                        try:
                            arr = src.read(1, window=Window(span0, row_off, span1 - span0, h))
                        except RasterioError as exc:
                            raise _read_error(
                                url, f"reading rows {row_off}-{row_off + h - 1}, cols "
                                f"{span0}-{span1 - 1} failed", exc, settings,
                                time.monotonic() - t_read) from exc
                        for _, c0, c1 in row_runs:
                            col_off = c0 * CELL
                            w = min((c1 + 1) * CELL, grid.width) - col_off
                            out.write(arr[:, col_off - span0:col_off - span0 + w], 1,
                                      window=Window(col_off, row_off, w, h))
        after_identity = _identity(url, settings)
        if not _same_upstream(identity, after_identity):
            raise DownloadError(f"{_shown(url)}: the upstream file changed during the fetch "
                                "(size/ETag differ); run the fetch again")
        seconds = time.monotonic() - t0
        now = stats.per_file().get(gdal_path)
        # None: GDAL's counters are off in this process (switched off before the first
        # remote read); the transfer then goes unmeasured rather than reported as 0.
        requests_n = now[0] - before[0] if now else None
        nbytes = now[1] - before[1] if now else None
        fetches = [] if rebuild else list(old.get("fetches", []))
        fetches.append({"at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "cells_added": len(cells), "bytes": nbytes, "requests": requests_n,
                        "seconds": round(seconds, 3)})
        record = {
            "dataset": entry.id, "file": need.name, "version": entry.version,
            "origin": origin, "url": _shown(url), "upstream": identity, "layout": layout,
            "local_nodata": nodata, "cell": CELL,
            "grid": [grid.width, grid.height, grid.transform[2], grid.transform[5],
                     grid.transform[0]],
            "cells": sorted(held | cells), "fetches": fetches,
        }
        os.replace(tmp, dest)
        _write_json_atomic(_record_path(dest), record)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        stats.clear_cache(gdal_path)
    return {"cells": len(cells), "bytes": nbytes, "requests": requests_n, "rebuilt": rebuild
            and old is not None}


def _create_window_file(path: Path, src: Any, dtype: str, nodata: float) -> None:
    profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype=dtype,
                   crs=src.crs, transform=src.transform, nodata=nodata, tiled=True,
                   blockxsize=LOCAL_BLOCK, blockysize=LOCAL_BLOCK, compress="DEFLATE",
                   sparse_ok=True, BIGTIFF="NO")
    with rasterio.open(path, "w", **profile):
        pass


def window_status(entry: CatalogEntry, cache_root: str | Path) -> dict:
    """Window files of a dataset in the cache: count, cells, bytes on disk and transferred."""
    folder = Path(cache_root) / entry.local_dir
    out: dict = {"files": 0, "cells": 0, "bytes": 0, "transferred": 0, "origins": []}
    if not folder.is_dir():
        return out
    for side in sorted(folder.glob("*" + WINDOWS_SUFFIX)):
        rec = read_record(side.with_name(side.name[: -len(WINDOWS_SUFFIX)])) or {}
        tif = side.with_name(side.name[: -len(WINDOWS_SUFFIX)])
        if not tif.is_file():
            continue
        out["files"] += 1
        out["cells"] += len(rec.get("cells", []))
        out["bytes"] += tif.stat().st_size
        out["transferred"] += sum(int(f.get("bytes") or 0) for f in rec.get("fetches", []))
        origin = str(rec.get("origin") or "")
        if origin and origin not in out["origins"]:
            out["origins"].append(origin)
    return out
