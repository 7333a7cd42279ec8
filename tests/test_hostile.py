"""Hostile inputs beyond the sites file: archives, rasters, catalogs, output names, API keys.

What other modules already cover is not repeated here: archive members escaping with ``..``,
absolute paths and drive letters, symlinks and zip bombs (tests/test_archive.py); rasters
with no CRS, a projected CRS or no nodata value (tests/test_raster.py); output file names
escaping the run folder (tests/test_outputs.py); the AMap client hiding its key
(tests/test_geocode_online.py). This module adds the cases those leave open, each through
the public function a user's input reaches.
"""

from __future__ import annotations

import json
import logging
import stat
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine
from werkzeug import Request, Response

from sitescreen import pipeline
from sitescreen.catalog import load_catalog
from sitescreen.data.archive import extract_zip
from sitescreen.errors import CatalogError, GeocoderAuthError, HazardDataError, UnsafePathError
from sitescreen.geocode import GeocodeCache, default_geocoders, geocode_sites
from sitescreen.geocode.http import RetryPolicy
from sitescreen.manifest import build_manifest
from sitescreen.raster import raster_info, sample_points
from sitescreen.sites import read_sites
from sitescreen.synthetic import DemoArea, ibtracs

SHANGHAI = DemoArea("Shanghai", 121.47, 31.23, 0.1, coastal=True)
AMAP_KEY = "hostile-test-key-7f3a9c0e51d2b64"


# ------------------------------------------------------------------------------- archives


def _zip(path: Path, members: dict[str | zipfile.ZipInfo, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["..\\evil.txt", "sub\\..\\..\\evil.txt", "sub/./../../evil.txt"])
def test_archive_members_escaping_with_backslashes_or_dots_are_refused(tmp_path, name):
    z = _zip(tmp_path / "a.zip", {"fine.txt": b"f", name: b"evil"})
    with pytest.raises(UnsafePathError, match="would be written outside"):
        extract_zip(z, tmp_path / "out" / "data")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "out").exists()  # refused before anything was created


def test_archive_device_or_fifo_member_is_refused(tmp_path):
    fifo = zipfile.ZipInfo("pipe")
    fifo.create_system = 3  # unix: the mode bits below count
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    z = _zip(tmp_path / "a.zip", {"data.csv": b"a\n", fifo: b""})
    with pytest.raises(UnsafePathError, match="'pipe' is a special file"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out" / "data.csv").exists()


def test_archive_member_clashing_with_a_folder_fails_cleanly(tmp_path):
    z = _zip(tmp_path / "a.zip", {"a/b.txt": b"1", "a/b.txt/c.txt": b"2"})
    with pytest.raises(HazardDataError, match="cannot extract"):
        extract_zip(z, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no .extract-* left


# -------------------------------------------------------------------------------- rasters


def _patch_tiff_size(path: Path, n: int) -> None:
    """Rewrite a classic little-endian TIFF's width, height and rows per strip to ``n`` and
    its pixel size to a global grid of n x n: a header claiming n x n pixels."""
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for i in range(struct.unpack_from("<H", raw, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", raw, at)[0]
        if tag in (256, 257, 278):  # ImageWidth, ImageLength, RowsPerStrip: LONG n
            struct.pack_into("<HHII", raw, at, tag, 4, 1, n)
        elif tag == 33550:  # ModelPixelScaleTag: doubles at an offset
            struct.pack_into("<dd", raw, struct.unpack_from("<I", raw, at + 8)[0], 360 / n, 180 / n)
    path.write_bytes(bytes(raw))


def _peak_numpy_bytes(fn) -> tuple[object, int]:
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


POINTS = ([121.4, 116.4, -70.6], [31.2, 39.9, -33.4])


def test_a_sparse_million_by_million_raster_is_read_by_windows_only(tmp_path):
    """A valid header for 10^12 pixels (tiled, no tile written): only 3 tiles are decoded."""
    path = tmp_path / "huge.tif"
    n = 1_000_000
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=Affine(360 / n, 0, -180, 0, -180 / n, 90),
                       nodata=255, tiled=True, blockxsize=4096, blockysize=4096,
                       compress="deflate", sparse_ok=True, BIGTIFF="YES"):
        pass
    assert path.stat().st_size < 5 * 2**20

    values, peak = _peak_numpy_bytes(lambda: sample_points(path, *POINTS))

    assert np.isnan(values).all()  # unwritten tiles read as the nodata value
    assert peak < 200 * 2**20  # three 16 MiB windows at most, never the 1 TB grid


def test_a_header_claiming_one_strip_of_a_million_squared_pixels_is_refused(tmp_path):
    path = tmp_path / "claims.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="uint8", crs="EPSG:4326", transform=Affine(3.6, 0, -180, 0, -1.8, 90),
                       nodata=255, compress="deflate", tiled=False, blockysize=100) as ds:
        ds.write(np.full((1, 100, 100), 7, dtype="uint8"))
    _patch_tiff_size(path, 1_000_000)

    def sample():
        with pytest.raises(HazardDataError, match="claims.tif"):
            sample_points(path, *POINTS)

    _, peak = _peak_numpy_bytes(sample)
    assert peak < 200 * 2**20


def test_a_header_claiming_billions_of_tiles_is_refused_on_open(tmp_path):
    path = tmp_path / "tiles.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=Affine(11.25, 0, -180, 0, -5.625, 90), nodata=255,
                       tiled=True, blockxsize=16, blockysize=16) as ds:
        ds.write(np.full((1, 32, 32), 7, dtype="uint8"))
    _patch_tiff_size(path, 1_000_000)  # 62,500 x 62,500 tiles of 16 x 16
    with pytest.raises(HazardDataError, match="cannot open raster .*tiles.tif"):
        sample_points(path, *POINTS)


def test_a_projected_grid_labelled_wgs84_is_refused_not_read_as_no_data(tmp_path):
    """Web Mercator metres under an EPSG:4326 label: every site would fall 'outside'."""
    path = tmp_path / "mislabelled.tif"
    with rasterio.open(path, "w", driver="GTiff", width=50, height=50, count=1,
                       dtype="float32", crs="EPSG:4326", nodata=-9999.0,
                       transform=Affine(1000.0, 0, 13_500_000.0, 0, -1000.0, 3_700_000.0)) as ds:
        ds.write(np.ones((1, 50, 50), dtype="float32"))
    with pytest.raises(HazardDataError, match=r"spans longitude 1\.35e\+07\.\.1\.355e\+07") as err:
        sample_points(path, [121.4], [31.2])
    assert "mislabelled.tif" in str(err.value) and "gdal_edit.py -a_srs" in str(err.value)


def test_a_global_grid_from_0_to_360_with_half_pixel_overshoot_is_accepted(tmp_path):
    path = tmp_path / "g360.tif"
    with rasterio.open(path, "w", driver="GTiff", width=36, height=18, count=1,
                       dtype="float32", crs="EPSG:4326", nodata=-9999.0,
                       transform=Affine(10.0, 0, -5.0, 0, -10.0, 95.0)) as ds:
        ds.write(np.arange(36 * 18, dtype="float32").reshape(1, 18, 36))
    assert raster_info(path).width == 36


# ------------------------------------------------------------------------------- catalogs


def _user_catalog(path: Path, base_url: str) -> Path:
    path.write_text(
        "[datasets.ibtracs_wp]\n"
        'title = "IBTrACS WP, from a shared catalog"\npublisher = "NOAA"\nversion = "v04r01"\n'
        'license = "public domain"\ncitation = "Knapp et al. 2010"\n'
        f"base_url = {json.dumps(base_url)}\n"
        'local_dir = "ibtracs"\nfamily = "tc_change"\nfiles = ["ibtracs.WP.list.v04r01.csv"]\n',
        encoding="utf-8")
    return path


@pytest.mark.parametrize("base_url, scheme", [
    ("file:///etc/", "file"),
    ("ftp://user:pa55word@ftp.example.org/pub/?token=t0k3n", "ftp"),
    ("s3://bucket/ibtracs/", "s3"),
    ("/srv/mirror/ibtracs/", "(none)"),
    ("javascript:alert(1)", "javascript"),
])
def test_a_user_catalog_with_a_non_http_base_url_is_refused(tmp_path, base_url, scheme):
    path = _user_catalog(tmp_path / "catalog.toml", base_url)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    msg = str(err.value)
    assert "'ibtracs_wp'" in msg and f"scheme {scheme!r}" in msg and "--mirror" in msg
    assert str(path) in msg
    assert "pa55word" not in msg and "t0k3n" not in msg


@pytest.mark.parametrize("base_url", ["https://mirror.example.org/ibtracs/",
                                      "HTTP://mirror.example.org/ibtracs/"])
def test_a_user_catalog_with_an_http_base_url_is_used(tmp_path, base_url):
    cat = load_catalog(_user_catalog(tmp_path / "catalog.toml", base_url))
    assert cat.dataset("ibtracs_wp").base_url == base_url
    assert cat.sources == ("packaged", str(tmp_path / "catalog.toml"))


def test_every_packaged_base_url_is_http_or_https():
    for entry in load_catalog().datasets.values():
        assert entry.base_url.startswith(("https://", "http://")), entry.id


# ----------------------------------------------------------------- pipeline: names and keys


@pytest.fixture(scope="module")
def typhoon_data(tmp_path_factory) -> Path:
    """A data folder holding only the synthetic IBTrACS file (all the typhoon layer reads)."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    ibtracs.write(root, [SHANGHAI], seed=3)
    return root


def _sites(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                    encoding="utf-8")
    return path


def _feature(site_id: str, *, lon: float | None = None, lat: float | None = None,
             address: str = "") -> dict:
    geometry = {"type": "Point", "coordinates": [lon, lat]} if lon is not None else None
    return {"type": "Feature", "geometry": geometry,
            "properties": {"site_id": site_id, "name": f"site {site_id}", "address": address,
                           "city": "Shanghai", "country": "CN"}}


@pytest.mark.parametrize("run_id", ["../escaped", "/tmp/sitescreen-abs-run"])
def test_a_run_id_with_path_separators_is_refused_by_the_pipeline(tmp_path, typhoon_data,
                                                                   run_id):
    sites = _sites(tmp_path / "sites.geojson", [_feature("sh-1", lon=121.45, lat=31.22)])
    out = tmp_path / "work" / "results"
    with pytest.raises(UnsafePathError, match="plain folder name"):  # refused up front
        pipeline.make_request(sites=str(sites), data=str(typhoon_data), out=str(out),
                              hazards=["typhoon"], scenarios=["pessimistic"], years=[2030],
                              cache_dir=str(tmp_path / "cache"), run_id=run_id, report=False)
    assert not (tmp_path / "work").exists()
    assert not Path("/tmp/sitescreen-abs-run").exists()


def _amap_server(httpserver) -> None:
    """AMap v3 geocoding whose answers depend on the address: one match, a server error,
    an error message echoing the key, an HTML page echoing the request URL."""

    def handle(request: Request) -> Response:
        address = request.args.get("address", "")
        assert request.args.get("key") == AMAP_KEY
        if "Hongmei" in address:
            return Response(json.dumps({
                "status": "1", "info": "OK", "infocode": "10000", "count": "1",
                "geocodes": [{"formatted_address": "上海市徐汇区虹梅路1900号", "country": "中国",
                              "province": "上海市", "city": "上海市", "district": "徐汇区",
                              "location": "121.398373,31.168163", "level": "门牌号"}]}),
                content_type="application/json")
        if "Broken" in address:
            return Response(f"internal error for key {AMAP_KEY}", status=500)
        if "Echo" in address:
            return Response(json.dumps({"status": "0", "info": f"INVALID_PARAMS key={AMAP_KEY}",
                                        "infocode": "20000"}), content_type="application/json")
        return Response(f"<html>proxy error for {request.url}</html>", content_type="text/html")

    httpserver.expect_request("/v3/geocode/geo").respond_with_handler(handle)


def _amap(httpserver):
    return default_geocoders(["amap"], amap={
        "base_url": httpserver.url_for(""), "min_interval": 0, "timeout": 2,
        "retry": RetryPolicy(max_retries=1, backoff=0.01, max_backoff=0.02)})


def test_the_amap_key_never_reaches_logs_outputs_or_the_cache(tmp_path, httpserver, monkeypatch,
                                                              caplog, typhoon_data):
    """A run geocoded with AMap (key from the environment): the key is in no log line, no
    output file and no cache file, whatever the provider answered."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SITESCREEN_AMAP_KEY", AMAP_KEY)
    _amap_server(httpserver)
    sites_path = _sites(tmp_path / "sites.geojson", [
        _feature("ok", address="1900 Hongmei Road, Xuhui District"),
        _feature("broken", address="1 Broken Road"),
        _feature("echo", address="2 Echo Road"),
        _feature("proxy", address="3 Proxy Road"),
        _feature("given", lon=121.45, lat=31.22),
    ])
    cache = tmp_path / "cache"
    out = tmp_path / "results"
    request = pipeline.make_request(sites=str(sites_path), data=str(typhoon_data), out=str(out),
                                    hazards=["typhoon"], scenarios=["pessimistic"],
                                    years=[2030], geocoders=["amap"], cache_dir=str(cache),
                                    run_id="amap-run")
    # The pipeline's steps, as pipeline.screen and the flow run them, with the AMap client
    # pointed at the local server.
    sites = geocode_sites(read_sites(sites_path), geocoders=_amap(httpserver),
                          cache=GeocodeCache(cache / "geocode.sqlite"))
    assert sites.set_index("site_id")["geocode_status"].to_dict() == {
        "ok": "ok", "broken": "unresolved", "echo": "unresolved", "proxy": "unresolved",
        "given": "ok"}
    catalog = pipeline.catalog_for(request)
    data = pipeline.open_data(request)
    lon, lat = pipeline.coordinates(sites)
    store = pipeline.result_store(request)
    results = []
    for layer in pipeline.plan_layers(catalog, request):
        cached = pipeline.check_layer(layer, lon=lon, lat=lat, request=request)
        computed = pipeline.assess_missing(layer, cached, lon=lon, lat=lat, request=request)
        results.append(pipeline.complete_layer(store, cached, lon, lat, computed))
    table, shares = pipeline.summarise(sites, results, request)
    manifest = build_manifest(request=request.to_dict(), run_id="amap-run", catalog=catalog,
                              data=data, sites=sites, results=results, timings={})
    run_dir = pipeline.write_outputs(sites, table, shares, manifest, request)

    reasons = " | ".join(sites["geocode_reason"])
    assert "HTTP 500" in reasons and "INVALID_PARAMS key=***" in reasons and "key=***" in reasons
    written = [p for p in [*run_dir.rglob("*"), *cache.rglob("*")] if p.is_file()]
    assert {"manifest.json", "report.md", "sites.geojson", "geocode.sqlite"} <= {
        p.name for p in written}
    for path in written:
        assert AMAP_KEY.encode() not in path.read_bytes(), path
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert "/v3/geocode/geo" in logged  # urllib3 logged the requests, redacted
    assert AMAP_KEY not in logged


def test_a_rejected_amap_key_stops_the_run_without_showing_the_key(tmp_path, httpserver,
                                                                   monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SITESCREEN_AMAP_KEY", AMAP_KEY)
    httpserver.expect_request("/v3/geocode/geo").respond_with_json(
        {"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"})
    sites = read_sites(_sites(tmp_path / "sites.geojson",
                              [_feature("a", address="1900 Hongmei Road")]))

    with pytest.raises(GeocoderAuthError) as err:
        geocode_sites(sites, geocoders=_amap(httpserver),
                      cache=GeocodeCache(tmp_path / "geocode.sqlite"))

    chain, exc = [], err.value
    while exc is not None:
        chain.append(f"{exc!r} {exc}")
        exc = exc.__cause__ or exc.__context__
    text = "\n".join(chain)
    assert "INVALID_USER_KEY" in text and "SITESCREEN_AMAP_KEY" in text
    assert AMAP_KEY not in text
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert AMAP_KEY not in logged
    assert AMAP_KEY.encode() not in (tmp_path / "geocode.sqlite").read_bytes()
