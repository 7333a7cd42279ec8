"""Vectorised point sampling of WGS 84 GeoTIFFs, local or over HTTP (GDAL ``/vsicurl/``).

Hazard rasters such as the Aqueduct Floods tiles are global grids of 43200 x 21600 pixels;
a portfolio has a few dozen sites. :func:`sample_points` therefore reads only the blocks that
hold points: points are grouped by the raster's internal blocks (tiles or strips), and each
group is read with one windowed read aligned to those blocks. Dense point sets read whole
windows of up to ``_MAX_WINDOW_PIXELS`` pixels at once, so a million points cost a handful of
reads, not a million; sparse sites cost one block each, and over ``/vsicurl/`` one HTTP range
request each (plus the header). Decoded windows can be kept in a :class:`WindowCache` and
sampled values in a :class:`SampleCache`, so repeated calls over the same file are free.

Pixel convention: the pixel containing a point is ``floor`` of the inverse affine transform,
exactly as :func:`rasterio.transform.rowcol` computes it; a point on the far (east or south)
edge of the raster belongs to the last pixel.

No-data rule: a pixel is no data when it equals the band's declared nodata value or is not
finite. A raster that declares no nodata value is read under a stated fallback rule
(:data:`FALLBACK_NODATA_RULE`): NaN and values at or below -9999 (the sentinels -9999 and
-3.4e38 that GIS tools write by default) are no data. Such rasters are logged once and
:attr:`RasterInfo.nodata_declared` is False, so callers can flag the results.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import CRS as ProjCRS
from rasterio.errors import RasterioError
from rasterio.windows import Window
from scipy import ndimage

from sitescreen.data.sources import says_synthetic
from sitescreen.errors import HazardDataError
from sitescreen.geodesy import KM_PER_DEGREE, haversine_km

__all__ = [
    "GDAL_ENV",
    "FALLBACK_NODATA_RULE",
    "RasterInfo",
    "WindowCache",
    "SampleCache",
    "SAMPLES",
    "gdal_env",
    "raster_info",
    "sample_points",
    "sample_with_info",
    "nearest_valid",
    "nearest_valid_pixel",
    "pixel_index",
    "search_pad",
]

log = logging.getLogger(__name__)

#: GDAL configuration for every read. The first two keep GDAL from listing the remote
#: "directory" and probing sidecar files (.aux.xml, .ovr, .msk) over HTTP, which would cost a
#: request each; merged ranges and multiplexing cut round trips; the block cache keeps
#: decoded blocks for neighbouring windows; threads decode multi-block windows in parallel.
GDAL_ENV: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_NUM_THREADS": "ALL_CPUS",
    "VSI_CACHE": "TRUE",
    # GDAL decides once per process whether to count network bytes; a windowed fetch
    # (sitescreen.data.windows) reports them, so the first remote read must switch it on.
    "CPL_VSIL_NETWORK_STATS_ENABLED": "YES",
}

#: How rasters without a declared nodata value are read.
FALLBACK_NODATA_RULE = "no nodata declared: NaN and values <= -9999 are treated as no data"
_FALLBACK_NODATA_MAX = -9999.0

# Largest window read at once (pixels): 4 Mpx = 16 MB of float32, which bounds memory per
# read while letting dense point sets decode big windows in parallel.
_MAX_WINDOW_PIXELS = 2048 * 2048
# Within a group of blocks, read the blocks' bounding window in one go when every block of it
# holds points, or when at least this share of it does and the points are dense (at least
# _MIN_POINTS_PER_BLOCK per block of the window); otherwise read the occupied blocks one by
# one, so a scattered portfolio never decodes (or fetches over HTTP) a block without a site.
_MIN_OCCUPANCY = 0.5
_MIN_POINTS_PER_BLOCK = 1
# Decoded windows a single call keeps (so point chunks share windows) unless given a cache.
_CALL_CACHE_BYTES = 128 * 2**20
#: Up to this many points, :meth:`SampleCache.sample_many` reads several files at once, in
#: ``_FILE_THREADS`` threads: a few sites cost one block decode per file, which GDAL does
#: outside the GIL. More points already keep GDAL's own decoding threads busy.
_FEW_POINTS = 20_000
#: Up to this many points, :func:`_plan` reads each point's block on its own.
_FEW_PLAN_POINTS = 64
_FILE_THREADS = max(1, min(4, os.cpu_count() or 1))

_KM_PER_DEG = KM_PER_DEGREE

_WARNED_NO_NODATA: set[str] = set()


@contextmanager
def gdal_env() -> Iterator[None]:
    """Activate :data:`GDAL_ENV` (nested inside any environment the caller set)."""
    with rasterio.Env(**GDAL_ENV):
        yield


@dataclass(frozen=True, slots=True)
class RasterInfo:
    """What sampling needs to know about one band of a raster, checked on open.

    ``transform`` is the affine (a, b, c, d, e, f) in degrees; ``block_shape`` is
    (rows, cols) of the internal tiles or strips; ``version`` is a local file's size and
    modification time ("" for URLs), used to key caches.
    """

    path: str
    width: int
    height: int
    transform: tuple[float, float, float, float, float, float]
    block_shape: tuple[int, int]
    dtype: str
    nodata: float | None
    nodata_declared: bool
    version: str = ""
    #: The file declares itself synthetic (:data:`sitescreen.data.sources.SYNTHETIC_MARK`).
    synthetic: bool = False

    @property
    def nodata_rule(self) -> str:
        if self.nodata_declared:
            return f"declared nodata {self.nodata!r}; NaN also counts as no data"
        return FALLBACK_NODATA_RULE

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["transform"] = list(self.transform)
        d["block_shape"] = list(self.block_shape)
        return {k: v for k, v in d.items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict) -> RasterInfo:
        d = dict(data)
        d["transform"] = tuple(float(v) for v in d["transform"])
        d["block_shape"] = tuple(int(v) for v in d["block_shape"])
        d.setdefault("nodata", None)
        return cls(**d)


class WindowCache:
    """A small LRU of decoded windows, bounded in bytes.

    Keys are (path, version, band, row_off, col_off, height, width); windows are aligned to
    the raster's blocks, so the same window is requested again by later calls over the same
    file and is then not read twice. Pass one instance to several :func:`sample_points` calls
    to share it.
    """

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> np.ndarray | None:
        arr = self._items.get(key)
        if arr is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return arr

    def put(self, key: tuple, arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes:
            return
        if key in self._items:
            self._bytes -= self._items.pop(key).nbytes
        self._items[key] = arr
        self._bytes += arr.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def keys(self) -> list[tuple]:
        """The cached windows' keys: (path, version, band, row_off, col_off, height, width)."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


def _is_remote(path: str) -> bool:
    return path.startswith("/vsi") and not path.startswith("/vsimem/")


def _local_version(path: str) -> str:
    if _is_remote(path):
        return ""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}-{st.st_mtime_ns}"


def _is_wgs84(crs: Any) -> bool:
    try:
        if crs.to_epsg() == 4326:
            return True
        proj = ProjCRS.from_wkt(crs.to_wkt())
        return proj.equals(ProjCRS.from_epsg(4326), ignore_axis_order=True) or proj.equals(
            ProjCRS.from_user_input("OGC:CRS84"), ignore_axis_order=True)
    except Exception:  # an unparsable CRS is simply not WGS 84
        return False


def _refetch_hint(name: str) -> str:
    """How to get a damaged file again: the dataset named in its fetch sidecar, if any."""
    from sitescreen.data.sources import SIDECAR_SUFFIX

    try:
        dataset = json.loads(Path(name + SIDECAR_SUFFIX).read_text("utf-8")).get("dataset")
    except (OSError, ValueError, AttributeError):
        dataset = None
    if dataset:
        return f"'sitescreen data fetch {dataset} --force'"
    return ("'sitescreen data fetch DATASET --force' for the dataset it belongs to (or copy "
            "it again from its source)")


def _damage(name: str, detail: str = "") -> HazardDataError | None:
    """The error for a local GeoTIFF that is cut short (blocks past its end) or, when
    ``detail`` says GDAL failed on it, corrupt; None when nothing points to damage.

    A cut file otherwise surfaces as whatever GDAL trips over first, such as a missing
    coordinate reference system, which would send the user to gdal_edit for nothing.
    """
    if _is_remote(name) or not os.path.isfile(name):
        return None
    from sitescreen.data.content import TIFF_MAGIC, truncation_problem

    with open(name, "rb") as fh:
        head = fh.read(4)
    if not head.startswith(TIFF_MAGIC):
        return None
    problem = truncation_problem(name)
    if problem is None and not detail:
        return None
    return HazardDataError(
        f"raster {name} is truncated or corrupt ({problem or detail}); fetch it again with "
        f"{_refetch_hint(name)}")


def _check(ds: Any, name: str, band: int) -> RasterInfo:
    """Validate CRS, georeferencing and band; return the band's :class:`RasterInfo`."""
    if ds.crs is None and (damaged := _damage(name)) is not None:
        raise damaged
    if ds.crs is None:
        raise HazardDataError(
            f"raster {name} has no coordinate reference system; sitescreen samples rasters "
            "in WGS 84 longitude/latitude (EPSG:4326) only. If the grid is WGS 84, assign it "
            "with 'gdal_edit.py -a_srs EPSG:4326'; otherwise warp the file to EPSG:4326")
    if not _is_wgs84(ds.crs):
        raise HazardDataError(
            f"raster {name} is in {ds.crs.to_string() or ds.crs.to_wkt()[:80]}, not WGS 84 "
            "(EPSG:4326); warp it with 'gdalwarp -t_srs EPSG:4326' before sampling")
    t = ds.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise HazardDataError(
            f"raster {name} has a rotated or flipped geotransform {tuple(t)[:6]}; "
            "expected north-up (b = d = 0, a > 0, e < 0); warp it with gdalwarp")
    # A projected grid labelled EPSG:4326 (a common mistake when a CRS is assigned by hand)
    # has "degrees" in the millions: every site would silently fall outside and read as no
    # data. One pixel of slack admits grids registered on pixel edges or centres.
    slack = max(abs(t.a), abs(t.e)) + 1e-6
    west, east = t.c, t.c + t.a * ds.width
    north, south = t.f, t.f + t.e * ds.height
    if west < -180 - slack or east > 360 + slack or north > 90 + slack or south < -90 - slack:
        raise HazardDataError(
            f"raster {name} declares WGS 84 but spans longitude {west:.6g}..{east:.6g}, "
            f"latitude {south:.6g}..{north:.6g}, outside -180..360 and -90..90 degrees; its "
            "CRS is probably wrong (a projected grid in metres?): fix it with "
            "'gdal_edit.py -a_srs' and warp to EPSG:4326")
    if not 1 <= band <= ds.count:
        raise HazardDataError(f"raster {name} has {ds.count} band(s); band {band} requested")
    nodata = ds.nodatavals[band - 1]
    declared = nodata is not None
    if not declared and name not in _WARNED_NO_NODATA:
        _WARNED_NO_NODATA.add(name)
        log.warning("raster %s declares no nodata value; rule applied: %s", name,
                    FALLBACK_NODATA_RULE)
    bh, bw = ds.block_shapes[band - 1]
    return RasterInfo(
        path=name, width=ds.width, height=ds.height,
        transform=(t.a, t.b, t.c, t.d, t.e, t.f), block_shape=(int(bh), int(bw)),
        dtype=ds.dtypes[band - 1], nodata=None if nodata is None else float(nodata),
        nodata_declared=declared, version=_local_version(name),
        synthetic=says_synthetic(ds.tags()))


@contextmanager
def _opened(path_or_dataset: Any, band: int) -> Iterator[tuple[Any, RasterInfo]]:
    """Open (or borrow) a dataset inside :data:`GDAL_ENV` and validate it."""
    with gdal_env():
        if isinstance(path_or_dataset, (str, os.PathLike)):
            name = os.fspath(path_or_dataset)
            try:
                ds = rasterio.open(name)
            except RasterioError as exc:
                damaged = _damage(name)  # cut short? else GDAL's words below
                if damaged is not None:
                    raise damaged from exc
                hint = ("check the URL, the server's support for HTTP range requests and the "
                        "data mirror setting" if _is_remote(name) else
                        "check that the file exists and is a GeoTIFF")
                raise HazardDataError(f"cannot open raster {name}: {exc}; {hint}") from exc
            with ds:
                yield ds, _check(ds, name, band)
        else:
            ds = path_or_dataset
            yield ds, _check(ds, str(ds.name), band)


def raster_info(path_or_dataset: Any, *, band: int = 1) -> RasterInfo:
    """Open, validate (CRS is WGS 84, north-up grid) and describe one band of a raster.

    Raises
    ------
    HazardDataError
        If the raster cannot be opened, has no CRS, another CRS, or a rotated grid.
    """
    with _opened(path_or_dataset, band) as (_, info):
        return info


def _invalid(values: np.ndarray, info: RasterInfo) -> np.ndarray:
    """True where ``values`` (raw dtype) are no data under the raster's rule."""
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
    else:
        bad = np.zeros(values.shape, dtype=bool)
    if info.nodata_declared:
        nd = info.nodata
        if nd is not None and not math.isnan(nd):
            bad |= values == np.asarray(nd).astype(values.dtype)
    else:
        with np.errstate(invalid="ignore"):
            bad |= values <= _FALLBACK_NODATA_MAX
    return bad


def _pixel_index(info: RasterInfo, lon: np.ndarray, lat: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column (int64) and inside-mask of the pixel holding each point.

    Longitudes are wrapped into the raster's range when it spans the globe east-west, so
    180 and -180 both land in the first column of a -180..180 grid.
    """
    a, _, c, _, e, f = info.transform
    if abs(a * info.width - 360.0) < 1e-6 and not (
            np.nanmin(lon, initial=c) >= c and np.nanmax(lon, initial=c) < c + 360.0):
        lon = np.where(np.isfinite(lon), (lon - c) % 360.0 + c, lon)
    inv = ~rasterio.Affine(*info.transform)
    fcol = inv.a * lon + inv.c if inv.b == 0 else inv.a * lon + inv.b * lat + inv.c
    frow = inv.e * lat + inv.f if inv.d == 0 else inv.d * lon + inv.e * lat + inv.f
    # A point exactly on the east or south edge belongs to the last pixel, not outside.
    fcol[fcol == info.width] = info.width - 1
    frow[frow == info.height] = info.height - 1
    with np.errstate(invalid="ignore"):
        inside = (fcol >= 0) & (fcol < info.width) & (frow >= 0) & (frow < info.height)
    if inside.all():
        cols = fcol.astype(np.int64)  # truncation is floor for non-negative values
        rows = frow.astype(np.int64)
    else:
        cols = np.zeros(lon.shape, dtype=np.int64)
        rows = np.zeros(lon.shape, dtype=np.int64)
        cols[inside] = fcol[inside].astype(np.int64)
        rows[inside] = frow[inside].astype(np.int64)
    return rows, cols, inside


def pixel_index(info: RasterInfo, lon: np.ndarray, lat: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column (int64) and inside-mask of the pixel holding each point, as sampling
    computes them (``floor`` of the inverse transform; longitudes wrapped on global grids)."""
    return _pixel_index(info, np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64"))


def search_pad(info: RasterInfo, abs_lat: Any, max_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of padding that hold every pixel within ``max_km`` of a point at
    latitude ``abs_lat`` (degrees, absolute): the window :func:`nearest_valid_pixel` reads
    around a point. Columns are counted at the latitude ``max_km`` further poleward."""
    a, e = info.transform[0], info.transform[4]
    lat_max = np.minimum(89.0, np.asarray(abs_lat, dtype="float64") + max_km / _KM_PER_DEG)
    km_col_min = a * _KM_PER_DEG * np.cos(np.radians(lat_max))
    pad_r = np.full(np.shape(lat_max), int(math.ceil(max_km / (abs(e) * _KM_PER_DEG))) + 1)
    pad_c = np.ceil(max_km / km_col_min).astype(np.int64) + 1
    return pad_r.astype(np.int64), pad_c


def _plan(info: RasterInfo, rows: np.ndarray, cols: np.ndarray
          ) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Yield block-aligned windows (row_off, col_off, height, width) and the point indices
    (into ``rows``/``cols``) each one serves. Every point is served by exactly one window.

    Blocks are grouped into "super-tiles" of at most ``_MAX_WINDOW_PIXELS`` pixels; a
    super-tile's occupied blocks are read as one bounding window when they fill at least
    ``_MIN_OCCUPANCY`` of it and hold dense points (or fill it entirely), else block by
    block (scattered sites).
    """
    bh, bw = info.block_shape
    nbr = -(-info.height // bh)
    nbc = -(-info.width // bw)
    if len(rows) <= _FEW_PLAN_POINTS:
        # A handful of points (a re-run's new sites): one block each, without the
        # super-tile bookkeeping, which costs more than the reads it would merge.
        keys, inverse = np.unique((rows // bh) * nbc + cols // bw, return_inverse=True)
        for j, b in enumerate(keys.tolist()):
            r, c = divmod(b, nbc)
            row_off, col_off = r * bh, c * bw
            yield ((row_off, col_off, min(info.height, row_off + bh) - row_off,
                    min(info.width, col_off + bw) - col_off), np.flatnonzero(inverse == j))
        return
    kc = max(1, min(nbc, int(math.sqrt(_MAX_WINDOW_PIXELS)) // bw))
    kr = max(1, min(nbr, _MAX_WINDOW_PIXELS // (bw * kc) // bh))
    br = rows // bh
    bc = cols // bw
    nsc = -(-nbc // kc)
    nsuper = -(-nbr // kr) * nsc
    # Small integer keys let numpy's stable sort use radix sort: a million points sort in
    # milliseconds instead of the ~100 ms of a comparison sort on int64.
    key_dtype = np.uint16 if nsuper <= 2**16 else np.int64
    super_key = ((br // kr) * nsc + (bc // kc)).astype(key_dtype)
    block_key = br * nbc + bc
    occupied = np.zeros(nbr * nbc, dtype=bool)
    occupied[block_key] = True
    occupied = occupied.reshape(nbr, nbc)
    order = np.argsort(super_key, kind="stable")
    sk = super_key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    ends = np.r_[starts[1:], len(sk)]

    def window(r0: int, r1: int, c0: int, c1: int) -> tuple[int, int, int, int]:
        row_off, col_off = r0 * bh, c0 * bw
        return (row_off, col_off, min(info.height, (r1 + 1) * bh) - row_off,
                min(info.width, (c1 + 1) * bw) - col_off)

    for s, e in zip(starts, ends, strict=True):
        idx = order[s:e]
        k = int(sk[s])
        sr0, sc0 = (k // nsc) * kr, (k % nsc) * kc
        occ = occupied[sr0:sr0 + kr, sc0:sc0 + kc]
        occ_r = np.flatnonzero(occ.any(axis=1))
        occ_c = np.flatnonzero(occ.any(axis=0))
        r0, r1 = sr0 + int(occ_r[0]), sr0 + int(occ_r[-1])
        c0, c1 = sc0 + int(occ_c[0]), sc0 + int(occ_c[-1])
        n_occ = int(occ.sum())
        n_box = (r1 - r0 + 1) * (c1 - c0 + 1)
        if n_occ == n_box or (n_occ >= _MIN_OCCUPANCY * n_box
                              and len(idx) >= _MIN_POINTS_PER_BLOCK * n_box):
            yield window(r0, r1, c0, c1), idx
            continue
        bk_all = block_key[idx]
        sub = np.argsort(bk_all, kind="stable")
        bk = bk_all[sub]
        bstarts = np.flatnonzero(np.r_[True, bk[1:] != bk[:-1]])
        bends = np.r_[bstarts[1:], len(bk)]
        for bs, be in zip(bstarts, bends, strict=True):
            b = int(bk[bs])
            yield window(b // nbc, b // nbc, b % nbc, b % nbc), idx[sub[bs:be]]


def _read_window(ds: Any, info: RasterInfo, band: int, win: tuple[int, int, int, int],
                 cache: WindowCache) -> np.ndarray:
    key = (info.path, info.version, band, *win)
    arr = cache.get(key)
    if arr is None:
        row_off, col_off, h, w = win
        try:
            arr = ds.read(band, window=Window(col_off, row_off, w, h))
        except RasterioError as exc:
            damaged = _damage(info.path, f"GDAL cannot decode its blocks: {exc}")
            if damaged is not None:
                raise damaged from exc
            raise HazardDataError(
                f"cannot read window rows {row_off}-{row_off + h - 1}, cols "
                f"{col_off}-{col_off + w - 1} of raster {info.path}: {exc}") from exc
        cache.put(key, arr)
    return arr


def _as_points(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype="float64"),
                                       np.asarray(lat, dtype="float64"))
    return lon_a.ravel(), lat_a.ravel(), lon_a.shape


def sample_points(path_or_dataset: Any, lon: Any, lat: Any, *, band: int = 1,
                  window_cache: WindowCache | None = None,
                  chunk_size: int = 2_000_000) -> np.ndarray:
    """Value of the pixel holding each point, as float64; NaN at no data and outside.

    Parameters
    ----------
    path_or_dataset : str, os.PathLike or open rasterio dataset
        A local GeoTIFF, a GDAL path such as ``/vsicurl/http://host/file.tif``, or an open
        dataset (not closed here).
    lon, lat : array_like
        WGS 84 longitude and latitude in degrees, broadcast against each other. Non-finite
        coordinates give NaN.
    band : int
        1-based band index.
    window_cache : WindowCache, optional
        Decoded windows to reuse across calls; by default a private cache of at most
        128 MB for this call.
    chunk_size : int
        Points handled per pass, bounding the memory of index arrays.

    Returns
    -------
    numpy.ndarray
        float64 values shaped like the broadcast coordinates.

    Raises
    ------
    HazardDataError
        If the raster cannot be opened or read, has no CRS or is not in WGS 84.

    Notes
    -----
    Each needed block is read once (see the module notes); no data follows the module's
    rule, and :func:`sample_with_info` also returns the :class:`RasterInfo` saying which
    rule applied.

    Examples
    --------
    >>> sample_points("depth.tif", [114.1, 121.5], [22.5, 31.2])  # doctest: +SKIP
    array([0.42, nan])
    """
    return sample_with_info(path_or_dataset, lon, lat, band=band, window_cache=window_cache,
                            chunk_size=chunk_size)[0]


def sample_with_info(path_or_dataset: Any, lon: Any, lat: Any, *, band: int = 1,
                     window_cache: WindowCache | None = None,
                     chunk_size: int = 2_000_000) -> tuple[np.ndarray, RasterInfo]:
    """:func:`sample_points` and the raster's :class:`RasterInfo`, from one open."""
    x, y, shape = _as_points(lon, lat)
    out = np.full(x.shape, np.nan)
    cache = window_cache if window_cache is not None else WindowCache(_CALL_CACHE_BYTES)
    step = max(1, int(chunk_size))
    with _opened(path_or_dataset, band) as (ds, info):
        for s in range(0, len(x), step):
            xs, ys = x[s:s + step], y[s:s + step]
            rows, cols, inside = _pixel_index(info, xs, ys)
            pos = np.flatnonzero(inside)
            if not len(pos):
                continue
            vals = np.full(len(pos), np.nan)
            r_in, c_in = rows[pos], cols[pos]
            for (row_off, col_off, h, w), idx in _plan(info, r_in, c_in):
                arr = _read_window(ds, info, band, (row_off, col_off, h, w), cache)
                raw = arr[r_in[idx] - row_off, c_in[idx] - col_off]
                v = raw.astype("float64")
                v[_invalid(raw, info)] = np.nan
                vals[idx] = v
            out[s + pos] = vals
    return out.reshape(shape), info


def nearest_valid_pixel(path_or_dataset: Any, lon: Any, lat: Any, *, max_km: float,
                        band: int = 1, window_cache: WindowCache | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`nearest_valid`, also returning the centre of the pixel used.

    Returns
    -------
    values, distance_km, pixel_lon, pixel_lat : numpy.ndarray
        For a point whose own pixel is valid: its value, distance 0 and the point's own
        coordinates. For a no-data point with a valid pixel within ``max_km``: that pixel's
        value, the great-circle distance from the point to the pixel centre (km), and the
        pixel centre. Otherwise NaN in all four.
    """
    if not max_km >= 0:
        raise ValueError(f"max_km must be a non-negative distance in km, got {max_km!r}")
    x, y, shape = _as_points(lon, lat)
    cache = window_cache if window_cache is not None else WindowCache(_CALL_CACHE_BYTES)
    values = np.full(x.shape, np.nan)
    dist = np.full(x.shape, np.nan)
    plon = np.full(x.shape, np.nan)
    plat = np.full(x.shape, np.nan)
    with _opened(path_or_dataset, band) as (ds, info):
        values[:] = sample_points(ds, x, y, band=band, window_cache=cache)
        ok = ~np.isnan(values)
        dist[ok], plon[ok], plat[ok] = 0.0, x[ok], y[ok]
        rows, cols, inside = _pixel_index(info, x, y)
        need = np.flatnonzero(inside & ~ok)
        if len(need) and max_km > 0:
            _search(ds, info, band, cache, x, y, rows, cols, need, float(max_km),
                    values, dist, plon, plat)
    return (values.reshape(shape), dist.reshape(shape), plon.reshape(shape),
            plat.reshape(shape))


def _search(ds: Any, info: RasterInfo, band: int, cache: WindowCache,
            x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray,
            need: np.ndarray, max_km: float, values: np.ndarray, dist: np.ndarray,
            plon: np.ndarray, plat: np.ndarray) -> None:
    """Fill the outputs for ``need`` (no-data points) from a Euclidean distance transform.

    Points are grouped by block; each group's window is the block padded by the search
    radius in pixels. One :func:`scipy.ndimage.distance_transform_edt` per window (with km
    sampling along rows and columns at the window's mid latitude) gives every pixel's
    nearest valid pixel; the exact great-circle distance to its centre decides the cut-off.
    """
    a, _, c, _, e, f = info.transform
    bh, bw = info.block_shape
    key = (rows[need] // bh) * (-(-info.width // bw)) + cols[need] // bw
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ends = np.r_[starts[1:], len(k)]
    km_row = abs(e) * _KM_PER_DEG
    for s, t in zip(starts, ends, strict=True):
        idx = need[order[s:t]]
        r, cc = rows[idx], cols[idx]
        pad_r, pad_c = (int(v) for v in search_pad(info, float(np.abs(y[idx]).max()), max_km))
        r0 = max(0, int(r.min()) - pad_r)
        r1 = min(info.height, int(r.max()) + pad_r + 1)
        c0 = max(0, int(cc.min()) - pad_c)
        c1 = min(info.width, int(cc.max()) + pad_c + 1)
        arr = _read_window(ds, info, band, (r0, c0, r1 - r0, c1 - c0), cache)
        invalid = _invalid(arr, info)
        if invalid.all():
            continue
        mid_lat = f + e * (r0 + r1) / 2
        km_col = a * _KM_PER_DEG * max(math.cos(math.radians(mid_lat)), 1e-6)
        _, (ir, ic) = ndimage.distance_transform_edt(
            invalid, sampling=(km_row, km_col), return_distances=True, return_indices=True)
        nr = ir[r - r0, cc - c0]
        nc = ic[r - r0, cc - c0]
        cen_lon = c + a * (nc + c0 + 0.5)
        cen_lat = f + e * (nr + r0 + 0.5)
        d = haversine_km(x[idx], y[idx], cen_lon, cen_lat)
        hit = d <= max_km
        sel = idx[hit]
        values[sel] = arr[nr[hit], nc[hit]].astype("float64")
        dist[sel] = d[hit]
        plon[sel] = cen_lon[hit]
        plat[sel] = cen_lat[hit]


def nearest_valid(path_or_dataset: Any, lon: Any, lat: Any, *, max_km: float,
                  band: int = 1, window_cache: WindowCache | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Value at each point, or at the nearest valid pixel within ``max_km`` of it.

    Meant for coastal grids, where a site on the shore may fall in a sea (no-data) pixel.
    The nearest valid pixel is found on the grid by a Euclidean distance transform with
    kilometre spacing at the window's latitude; the returned distance is the great-circle
    distance from the point to that pixel's centre.

    Returns
    -------
    values : numpy.ndarray
        float64; NaN where neither the pixel nor any pixel within ``max_km`` is valid.
    distance_km : numpy.ndarray
        0 where the point's own pixel is valid, the distance in km where a neighbour was
        used, NaN where nothing was found.

    Examples
    --------
    >>> nearest_valid("coast.tif", [121.9], [30.9], max_km=2.0)  # doctest: +SKIP
    (array([0.8]), array([0.93]))
    """
    values, dist, _, _ = nearest_valid_pixel(path_or_dataset, lon, lat, max_km=max_km,
                                             band=band, window_cache=window_cache)
    return values, dist


def _coords_digest(lon: np.ndarray, lat: np.ndarray, decimals: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.round(np.asarray(lon, dtype="float64"), decimals).tobytes())
    h.update(np.round(np.asarray(lat, dtype="float64"), decimals).tobytes())
    h.update(str(np.shape(lon)).encode())
    return h.hexdigest()


class SampleCache:
    """In-process cache of sampled values, keyed by (path or URL, dataset version, band,
    coordinates rounded to ``decimals`` degrees).

    ``version`` is the dataset version the caller knows (e.g. the catalog's); for local
    files the file's size and modification time are added, so a rewritten file is re-read.
    Returned arrays are read-only and shared between callers. The cache is an LRU bounded
    by entry count and by the bytes of the arrays it holds.
    """

    def __init__(self, max_entries: int = 4096, *, max_bytes: int = 512 * 2**20,
                 decimals: int = 6) -> None:
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_bytes)
        self.decimals = int(decimals)
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._sizes: dict[tuple, int] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # callers may sample from several threads

    def key(self, path: str, lon: Any, lat: Any, *, version: str = "", band: int = 1,
            digest: str | None = None) -> tuple:
        """The cache key; ``digest`` is :meth:`digest` of these points when already known."""
        if digest is None:
            digest = self.digest(lon, lat)
        return (str(path), f"{version}|{_local_version(str(path))}", band, digest)

    def digest(self, lon: Any, lat: Any) -> str:
        """The points' part of a key (coordinates rounded to ``decimals``)."""
        x, y, _ = _as_points(lon, lat)
        return _coords_digest(x, y, self.decimals)

    def get_or_compute(self, key: tuple, compute: Any) -> Any:
        """Cached result for ``key``, else ``compute()`` stored (arrays made read-only)."""
        with self._lock:
            if key in self._items:
                self.hits += 1
                self._items.move_to_end(key)
                return self._items[key]
            self.misses += 1
        result = compute()  # outside the lock: other threads sample other files meanwhile
        size = 0
        for arr in result if isinstance(result, tuple) else (result,):
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)
                size += arr.nbytes
        with self._lock:
            if key not in self._items:
                self._items[key] = result
                self._sizes[key] = size
                self._bytes += size
            while self._items and (len(self._items) > self.max_entries
                                   or self._bytes > self.max_bytes):
                old, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
        return result

    def sample(self, path: str, lon: Any, lat: Any, *, version: str = "", band: int = 1,
               window_cache: WindowCache | None = None) -> np.ndarray:
        """:func:`sample_points`, memoised."""
        return self.sample_with_info(path, lon, lat, version=version, band=band,
                                     window_cache=window_cache)[0]

    def sample_with_info(self, path: str, lon: Any, lat: Any, *, version: str = "",
                         band: int = 1, window_cache: WindowCache | None = None
                         ) -> tuple[np.ndarray, RasterInfo]:
        """:func:`sample_with_info`, memoised."""
        return self.get_or_compute(
            self.key(path, lon, lat, version=version, band=band),
            lambda: sample_with_info(path, lon, lat, band=band, window_cache=window_cache))

    def sample_many(self, paths: Sequence[str], lon: Any, lat: Any, *, version: str = "",
                    band: int = 1) -> list[tuple[np.ndarray, RasterInfo]]:
        """:meth:`sample_with_info` of each file at the same points, in order. Few points
        (up to ``_FEW_POINTS``) are read from several files at once, in threads, when the
        caller is the main thread."""
        x, y, _ = _as_points(lon, lat)
        digest = self.digest(x, y)  # once for every file, not once per file

        def one(path: str) -> tuple[np.ndarray, RasterInfo]:
            return self.get_or_compute(
                self.key(path, x, y, version=version, band=band, digest=digest),
                lambda: sample_with_info(path, x, y, band=band))

        # Only from the main thread: a caller already running layers in threads (the Prefect
        # flow's task runner) gets no threads of threads, where GDAL was seen to crash.
        if len(paths) < 2 or len(x) > _FEW_POINTS or _FILE_THREADS < 2 or \
                threading.current_thread() is not threading.main_thread():
            return [one(p) for p in paths]
        with ThreadPoolExecutor(_FILE_THREADS, thread_name_prefix="sample") as pool:
            return list(pool.map(one, paths))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._sizes.clear()
            self._bytes = 0

    def keys(self) -> list[tuple]:
        """The cached samples' keys: (path, version, band, coordinates digest, ...)."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


#: The process-wide sample cache hazards share (bounded; call ``SAMPLES.clear()`` to drop).
SAMPLES: SampleCache = SampleCache()
