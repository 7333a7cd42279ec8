"""Tests for sitescreen.raster on real GeoTIFFs written to tmp_path (and served over HTTP)."""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine, rowcol
from werkzeug import Request, Response

from sitescreen.errors import HazardDataError
from sitescreen.geodesy import haversine_km
from sitescreen.raster import (
    FALLBACK_NODATA_RULE,
    SampleCache,
    WindowCache,
    nearest_valid,
    nearest_valid_pixel,
    raster_info,
    sample_points,
    sample_with_info,
)

RES = 0.01
WEST, NORTH = 100.0, 40.0


def write_tif(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:4326",
              nodata: float | None = -9999.0, block: int = 64, res: float = RES,
              west: float = WEST, north: float = NORTH) -> Path:
    profile = {"driver": "GTiff", "height": data.shape[0], "width": data.shape[1], "count": 1,
               "dtype": data.dtype.name, "transform": Affine(res, 0, west, 0, -res, north),
               "tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate"}
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture
def grid(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 300 x 500 float32 raster (64 x 64 tiles) with a patch of no data."""
    rng = np.random.default_rng(42)
    data = rng.uniform(0, 5, (300, 500)).astype("float32")
    data[100:140, 200:260] = -9999.0
    return write_tif(tmp_path / "grid.tif", data), data


def naive(path: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Reference: rasterio's rowcol on each point and a full read."""
    with rasterio.open(path) as ds:
        rows, cols = rowcol(ds.transform, lon, lat)
        data = ds.read(1)
        nodata = ds.nodata
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < data.shape[0]) & (cols >= 0) & (cols < data.shape[1])
    out = np.full(len(lon), np.nan)
    out[inside] = data[rows[inside], cols[inside]]
    out[out == nodata] = np.nan
    return out


def test_sample_points_equals_naive_reference_on_random_points(grid):
    path, _ = grid
    rng = np.random.default_rng(7)
    # Points spread a little beyond the raster (100..105 E, 37..40 N) to cover "outside".
    lon = rng.uniform(99.8, 105.2, 20_000)
    lat = rng.uniform(36.8, 40.2, 20_000)
    got = sample_points(path, lon, lat)
    want = naive(path, lon, lat)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got).sum() > 100  # outside points and the no-data patch


def test_sample_points_values_by_hand(grid):
    path, data = grid
    # Pixel (row 5, col 7) spans lon 100.07-100.08, lat 39.95-39.94; its centre is inside.
    lon = np.array([100.075, 102.3, 100.0, 104.999, 99.99, np.nan])
    lat = np.array([39.945, 38.75, 40.0, 37.001, 39.0, 39.0])
    got = sample_points(path, lon, lat)
    assert got[0] == pytest.approx(float(data[5, 7]))
    assert math.isnan(got[1])  # row 125, col 230: inside the no-data patch
    assert got[2] == pytest.approx(float(data[0, 0]))  # north-west corner
    assert got[3] == pytest.approx(float(data[299, 499]))
    assert math.isnan(got[4]) and math.isnan(got[5])  # outside; NaN coordinate


def test_point_on_far_edge_belongs_to_last_pixel(grid):
    path, data = grid
    got = sample_points(path, [105.0, 100.0], [38.5, 37.0])
    assert got[0] == pytest.approx(float(data[150, 499]))
    assert got[1] == pytest.approx(float(data[299, 0]))


def test_shape_follows_broadcast_coordinates(grid):
    path, data = grid
    got = sample_points(path, np.array([[100.005, 100.015]]), 39.995)
    assert got.shape == (1, 2)
    np.testing.assert_allclose(got[0], data[0, :2])


def test_reads_only_blocks_holding_points(tmp_path):
    data = np.arange(1024 * 1024, dtype="float32").reshape(1024, 1024)
    path = write_tif(tmp_path / "big.tif", data, block=64)
    cache = WindowCache()
    # Three sites in three far-apart 64 x 64 blocks, two sites sharing one block.
    lon = WEST + (np.array([10, 12, 500, 1000]) + 0.5) * RES
    lat = NORTH - (np.array([20, 30, 700, 3]) + 0.5) * RES
    got = sample_points(path, lon, lat, window_cache=cache)
    np.testing.assert_array_equal(got, data[[20, 30, 700, 3], [10, 12, 500, 1000]])
    windows = sorted(k[3:] for k in cache.keys())
    assert windows == [(0, 0, 64, 64), (0, 960, 64, 64), (640, 448, 64, 64)]
    # Sampling again with the same cache reads nothing new.
    sample_points(path, lon, lat, window_cache=cache)
    assert cache.hits == 3


def test_dense_points_read_few_large_windows(tmp_path):
    data = np.arange(1024 * 1024, dtype="float32").reshape(1024, 1024)
    path = write_tif(tmp_path / "dense.tif", data, block=64)
    rng = np.random.default_rng(0)
    lon = rng.uniform(WEST, WEST + 10.24, 50_000)
    lat = rng.uniform(NORTH - 10.24, NORTH, 50_000)
    cache = WindowCache()
    got = sample_points(path, lon, lat, window_cache=cache, chunk_size=7_000)
    np.testing.assert_array_equal(got, naive(path, lon, lat))
    # 1024 x 1024 fits in one window: read once, then reused by the other chunks.
    assert len(cache) == 1 and cache.misses == 1


def test_raster_without_nodata_uses_stated_rule(tmp_path):
    data = np.array([[1.5, -9999.0], [np.nan, -3.4e38]], dtype="float32")
    path = write_tif(tmp_path / "nonodata.tif", data, nodata=None, block=16)
    lon = WEST + np.array([0.5, 1.5, 0.5, 1.5]) * RES
    lat = NORTH - np.array([0.5, 0.5, 1.5, 1.5]) * RES
    values, info = sample_with_info(path, lon, lat)
    assert values[0] == 1.5
    assert np.isnan(values[1:]).all()
    assert info.nodata_declared is False and info.nodata_rule == FALLBACK_NODATA_RULE


@pytest.mark.parametrize("crs", [None, "EPSG:3857"])
def test_missing_or_other_crs_is_refused(tmp_path, crs):
    path = write_tif(tmp_path / f"crs-{crs}.tif".replace(":", ""),
                     np.zeros((32, 32), "float32"), crs=crs, block=16)
    with pytest.raises(HazardDataError, match=re.escape(path.name)):
        sample_points(path, [100.1], [39.9])
    with pytest.raises(HazardDataError, match="EPSG:4326"):
        raster_info(path)


def test_unreadable_file_is_a_hazard_data_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(HazardDataError, match="bad.tif"):
        sample_points(bad, [0.0], [0.0])


def test_global_raster_wraps_longitude(tmp_path):
    data = np.arange(18 * 36, dtype="float32").reshape(18, 36)  # 10-degree cells
    path = write_tif(tmp_path / "world.tif", data, res=10.0, west=-180.0, north=90.0, block=16)
    got = sample_points(path, [180.0, -180.0, 185.0, -175.0, 179.9], [5.0] * 5)
    assert got[0] == got[1] == data[8, 0]
    assert got[2] == got[3] == data[8, 0]
    assert got[4] == data[8, 35]


def test_nearest_valid_takes_land_pixel_within_limit(tmp_path):
    # Latitude 30.0-30.1: one pixel is 0.01 deg; sea (no data) on the east half.
    data = np.full((10, 40), -9999.0, dtype="float32")
    data[:, :20] = np.arange(20, dtype="float32")  # land: value = column
    path = write_tif(tmp_path / "coast.tif", data, north=30.1, block=16)
    lon = WEST + np.array([5.5, 20.5, 30.5, 22.5]) * RES  # land; 1, 11 and 3 px off shore
    lat = np.full(4, 30.055)  # centre of row 4
    values, dist = nearest_valid(path, lon, lat, max_km=3.0)
    one_px = haversine_km(lon[1], 30.055, WEST + 19.5 * RES, 30.055)
    assert float(one_px) == pytest.approx(0.01 * math.pi / 180 * 6371.0088
                                          * math.cos(math.radians(30.055)), rel=1e-6)
    assert values[0] == 5.0 and dist[0] == 0.0
    assert values[1] == 19.0 and dist[1] == pytest.approx(float(one_px))
    assert math.isnan(values[2]) and math.isnan(dist[2])  # 11 px = 10.6 km > 3 km
    assert values[3] == 19.0 and dist[3] == pytest.approx(3 * float(one_px), rel=1e-4)  # 2.9 km
    _, _, plon, plat = nearest_valid_pixel(path, lon, lat, max_km=3.0)
    assert plon[1] == pytest.approx(WEST + 19.5 * RES) and plat[1] == pytest.approx(30.055)
    assert plon[0] == lon[0] and math.isnan(plon[2])


def test_sample_cache_reuses_and_notices_rewritten_file(tmp_path):
    path = write_tif(tmp_path / "c.tif", np.full((16, 16), 2.0, "float32"), block=16)
    cache = SampleCache()
    a = cache.sample(str(path), [100.05], [39.95], version="v1")
    b = cache.sample(str(path), [100.0500000001], [39.95], version="v1")  # rounds the same
    assert a[0] == 2.0 and b is a and cache.hits == 1
    assert not a.flags.writeable
    write_tif(path, np.full((16, 16), 3.0, "float32"), block=16)
    assert cache.sample(str(path), [100.05], [39.95], version="v1")[0] == 3.0


# -- HTTP range reads through GDAL /vsicurl/ -----------------------------------------------

class RangeServer:
    """Serves files with HTTP range support and logs every byte range sent."""

    def __init__(self, httpserver) -> None:
        self.httpserver = httpserver
        self.sent: list[tuple[str, int, int]] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def serve(self, url_path: str, file: Path) -> str:
        blob = file.read_bytes()

        def handler(request: Request) -> Response:
            size = len(blob)
            with self._lock:
                self.requests.append(f"{request.method} {request.path}")
            if request.method == "HEAD":
                resp = Response(b"", 200)
                resp.headers["Content-Length"] = str(size)
                resp.headers["Accept-Ranges"] = "bytes"
                return resp
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
            if not m:
                with self._lock:
                    self.sent.append((url_path, 0, size - 1))
                return Response(blob, 200)
            a = int(m[1])
            b = min(int(m[2]) if m[2] else size - 1, size - 1)
            if a >= size:
                return Response(b"", 416, headers={"Content-Range": f"bytes */{size}"})
            with self._lock:
                self.sent.append((url_path, a, b))
            return Response(blob[a:b + 1], 206, headers={
                "Content-Range": f"bytes {a}-{b}/{size}", "Accept-Ranges": "bytes"})

        self.httpserver.expect_request(url_path).respond_with_handler(handler)
        return "/vsicurl/" + self.httpserver.url_for(url_path)

    def bytes_sent(self) -> int:
        return sum(b - a + 1 for _, a, b in self.sent)


@pytest.fixture
def range_server(httpserver):
    return RangeServer(httpserver)


def test_vsicurl_reads_only_a_small_fraction(tmp_path, range_server):
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 3, (1024, 1024)).astype("float32")  # ~4 MB, barely compressible
    path = write_tif(tmp_path / "remote.tif", data, block=128)
    url = range_server.serve("/v2/remote.tif", path)
    lon = np.array([100.55, 104.01, 108.9, 100.56])
    lat = np.array([39.5, 35.2, 30.1, 39.49])
    remote = sample_points(url, lon, lat)
    np.testing.assert_array_equal(remote, sample_points(path, lon, lat))
    assert not np.isnan(remote).any()
    size = path.stat().st_size
    assert range_server.sent, "GDAL made no range request"
    assert all(a > 0 or b < size - 1 for _, a, b in range_server.sent)  # never the whole file
    assert range_server.bytes_sent() < 0.15 * size


def test_vsicurl_missing_file_is_a_hazard_data_error(range_server):
    range_server.httpserver.expect_request("/v2/absent-file.tif").respond_with_data(
        "Not Found", status=404)
    url = "/vsicurl/" + range_server.httpserver.url_for("/v2/absent-file.tif")
    with pytest.raises(HazardDataError, match="absent-file.tif"):
        sample_points(url, [0.0], [0.0])


def test_sparse_global_tiles_over_http_cost_bounded_bytes_per_site(tmp_path, range_server):
    from sitescreen.synthetic import DemoArea
    from sitescreen.synthetic.aqueduct_floods import river_name, write

    rng = np.random.default_rng(11)
    areas = [DemoArea(f"city{i}", float(rng.uniform(-120, 140)), float(rng.uniform(-40, 55)))
             for i in range(40)]
    names = [river_name("rcp8p5", "0000GFDL-ESM2M", 2050, 100),
             river_name("historical", "000000000WATCH", 1980, 100)]
    files = write(tmp_path, areas, seed=5, only=names)
    lon = np.array([a.lon for a in areas]) + 0.01
    lat = np.array([a.lat for a in areas]) - 0.01
    sent_total = 0
    for f in files:
        url = range_server.serve(f"/aqueduct/{f.name}", f)
        before = range_server.bytes_sent()
        remote = sample_points(url, lon, lat)
        sent_total += range_server.bytes_sent() - before
        local = sample_points(f, lon, lat)
        np.testing.assert_array_equal(remote, local)
        assert not np.isnan(local).any()  # every site lies in a written area
    # A site costs its compressed tile plus the 16 kB chunks of the tile index that hold its
    # tile's offset and size: GDAL never fetches the file or the whole index in one go, and
    # sites sharing index chunks cost less.
    per_site = sent_total / (len(files) * len(areas))
    assert per_site < 40_000, per_site
    assert all(b - a + 1 <= 65_536 for _, a, b in range_server.sent)
    assert sent_total < sum(f.stat().st_size for f in files)


def test_sample_cache_is_bounded_in_bytes(tmp_path):
    path = write_tif(tmp_path / "b.tif", np.ones((16, 16), "float32"), block=16)
    cache = SampleCache(max_bytes=3 * 80)  # room for three 10-point float64 results
    for i in range(5):
        cache.sample(str(path), np.full(10, 100.01 + i * 0.01), np.full(10, 39.95))
    assert len(cache) == 3 and cache.misses == 5


def test_cleared_caches_hold_no_bytes(tmp_path):
    path = write_tif(tmp_path / "b.tif", np.ones((16, 16), "float32"), block=16)
    cache = SampleCache(max_bytes=3 * 80)
    for i in range(3):
        cache.sample(str(path), np.full(10, 100.01 + i * 0.01), np.full(10, 39.95))
    cache.clear()
    for i in range(3):  # after clear() the full budget is free again: nothing is evicted
        cache.sample(str(path), np.full(10, 100.2 + i * 0.01), np.full(10, 39.95))
    assert len(cache) == 3
    windows = WindowCache(max_bytes=1000)
    windows.put(("a",), np.zeros(100, "float64"))
    windows.clear()
    windows.put(("b",), np.zeros(100, "float64"))
    assert len(windows) == 1 and windows.get(("b",)) is not None


def test_sample_many_reads_files_in_threads_with_the_same_values(tmp_path):
    rng = np.random.default_rng(5)
    paths = [str(write_tif(tmp_path / f"m{k}.tif", rng.uniform(0, 9, (300, 500)).astype(
        "float32"), block=32)) for k in range(12)]
    lon = rng.uniform(WEST, WEST + 5, 40)
    lat = rng.uniform(NORTH - 3, NORTH, 40)
    seen: set[str] = set()
    cache = SampleCache()
    real = cache.get_or_compute

    def recording(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return real(*args, **kwargs)

    cache.get_or_compute = recording
    got = cache.sample_many(paths, lon, lat, version="v")
    assert [info.path for _, info in got] == paths  # in the order asked
    for (values, _), path in zip(got, paths, strict=True):
        np.testing.assert_array_equal(values, naive(Path(path), lon, lat))
    assert any(name.startswith("sample") for name in seen)  # several files at once
    assert cache.misses == 12 and len(cache) == 12
    assert cache.sample(paths[3], lon, lat, version="v") is got[3][0]  # the same keys
    again = cache.sample_many(paths, lon, lat, version="v")
    assert all(v is w for (v, _), (w, _) in zip(got, again, strict=True))


@pytest.mark.parametrize("keep", [0.005, 0.3, 0.6, 0.95], ids=lambda k: f"cut-at-{k:.0%}")
def test_a_truncated_geotiff_is_diagnosed_as_truncated(grid, tmp_path, keep):
    path, data = grid
    raw = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[: max(16, int(len(raw) * keep))])
    lon = np.linspace(WEST + RES / 2, WEST + RES * (data.shape[1] - 0.5), 40)
    lat = np.linspace(NORTH - RES / 2, NORTH - RES * (data.shape[0] - 0.5), 40)
    lon, lat = np.meshgrid(lon, lat)

    with pytest.raises(HazardDataError) as err:
        sample_points(cut, lon, lat)

    msg = str(err.value)
    assert "cut.tif" in msg and "is truncated or corrupt" in msg, msg
    assert "fetch it again with 'sitescreen data fetch" in msg
    assert "coordinate reference system" not in msg and "gdal_edit" not in msg


def test_corrupt_image_data_is_diagnosed_as_corrupt(grid, tmp_path):
    path, data = grid
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid: mid + 4096] = bytes(4096)  # zeroed compressed blocks: what bit rot leaves
    bad = tmp_path / "rot.tif"
    bad.write_bytes(bytes(raw))
    lon, lat = np.meshgrid(np.linspace(WEST + RES / 2, WEST + RES * (data.shape[1] - 0.5), 60),
                           np.linspace(NORTH - RES / 2, NORTH - RES * (data.shape[0] - 0.5), 60))

    with pytest.raises(HazardDataError, match="rot.tif is truncated or corrupt"):
        sample_points(bad, lon, lat)
