"""Tests of sitescreen.data.datasets: catalog file names, and fetching, verifying and describing
datasets in a cache, from a real local HTTP server (pytest-httpserver) or a local mirror.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from file_server import FileHandler, ibtracs_body, serve, sha

from sitescreen.catalog import CatalogEntry, load_catalog
from sitescreen.data.datasets import (
    VerifyStatus,
    dataset_status,
    expand_files,
    fetch_dataset,
    resolve_mirror,
    verify_dataset,
)
from sitescreen.data.sources import DataOrigin, DataSource
from sitescreen.errors import (
    CatalogError,
    ChecksumError,
    ConfigError,
    DownloadError,
    OfflineError,
    UnsafePathError,
)

# ----------------------------------------------------------------------------- catalog files


def test_expand_files_lists_every_aqueduct_floods_tile_the_screening_reads():
    floods = load_catalog().dataset("aqueduct_floods")
    names = expand_files(floods)

    # riverine: 9 baseline + 2 pathways x 5 GCMs x 3 years x 9 RPs; coastal: 10 + 2 x 3 x 10
    assert len(names) == 9 + 270 + 10 + 60 == len(set(names))
    assert "inunriver_historical_000000000WATCH_1980_rp00002.tif" in names
    assert "inunriver_rcp8p5_MIROC-ESM-CHEM_2080_rp01000.tif" in names
    assert "inunriver_rcp4p5_00IPSL-CM5A-LR_2050_rp00100.tif" in names
    assert "inuncoast_rcp4p5_wtsub_2050_rp0100_0.tif" in names
    assert "inuncoast_historical_wtsub_hist_rp1000_0.tif" in names
    # upstream writes the 1.5-year coastal tile without the trailing "_0"
    assert "inuncoast_rcp8p5_wtsub_2030_rp0001_5.tif" in names
    assert not any("rp0001_5_0" in n for n in names)
    assert not any("rcp2p6" in n or "rcp6p0" in n for n in names)


def test_expand_files_filters_by_hazard():
    floods = load_catalog().dataset("aqueduct_floods")
    river = expand_files(floods, hazards=["river_flood"])
    coast = expand_files(floods, hazards=["coastal_flood"])

    assert len(river) == 279 and all(n.startswith("inunriver_") for n in river)
    assert len(coast) == 70 and all(n.startswith("inuncoast_") for n in coast)
    with pytest.raises(CatalogError, match="no files for hazards \\['typhoon'\\]"):
        expand_files(floods, hazards=["typhoon"])


def test_expand_files_fills_generic_templates_and_keeps_plain_names():
    cat = load_catalog()
    storm = expand_files(cat.dataset("storm_rp"))
    assert len(storm) == 5 * 28
    assert "STORM_FIXED_RETURN_PERIODS_constant_50_YR_RP.tif" in storm
    assert expand_files(cat.dataset("ibtracs_wp")) == ["ibtracs.WP.list.v04r01.csv"]


def _entry(base_url: str, files: list[str], **extra) -> CatalogEntry:
    return CatalogEntry.from_dict("toy", {
        "title": "Toy data", "publisher": "Test", "version": "1", "license": "CC0",
        "citation": "none", "base_url": base_url, "local_dir": "toy", "family": "toy",
        "files": files, **extra})


def test_a_catalog_file_name_cannot_leave_the_cache(tmp_path):
    entry = _entry("https://example.org/", ["../../etc/passwd"])
    with pytest.raises(UnsafePathError, match="would leave the dataset folder"):
        fetch_dataset(entry, tmp_path, offline=True)


def test_a_catalog_url_with_another_scheme_is_refused(tmp_path):
    entry = _entry("ftp://example.org/pub/", ["a.csv"])
    with pytest.raises(CatalogError, match="scheme 'ftp'"):
        fetch_dataset(entry, tmp_path)


# ----------------------------------------------------------------------------- datasets


def test_fetch_dataset_from_upstream_records_origin_and_verifies(httpserver, tmp_path):
    a, b = b"x,y\n1,2\n", b"x,y\n3,4\n"
    serve(httpserver, "/up/a.csv", FileHandler(a, content_type="text/csv"))
    serve(httpserver, "/up/b.csv", FileHandler(b, content_type="text/csv"))
    entry = _entry(httpserver.url_for("/up/"), ["a.csv", "b.csv"])
    cache = tmp_path / "cache"
    seen = []

    results = fetch_dataset(entry, cache, progress=lambda n, d, t: seen.append((n, d, t)))

    assert [r.path for r in results] == [cache / "toy" / "a.csv", cache / "toy" / "b.csv"]
    assert ("b.csv", len(b), len(b)) in seen
    side = json.loads((cache / "toy" / "a.csv.sha256.json").read_text())
    assert side["origin"] == "upstream" and side["upstream_url"] == httpserver.url_for("/up/a.csv")
    src = DataSource.for_cache(cache)
    assert src.origin is DataOrigin.UPSTREAM
    assert src.require(entry, "a.csv") == str(cache.resolve() / "toy" / "a.csv")
    assert [v.status for v in verify_dataset(entry, cache)] == [VerifyStatus.OK] * 2

    (cache / "toy" / "b.csv").write_bytes(b"x,y\n9,9\n")  # same size, different content
    checked = {v.file: v.status for v in verify_dataset(entry, cache)}
    assert checked == {"a.csv": VerifyStatus.OK, "b.csv": VerifyStatus.MISMATCH}


def test_fetch_dataset_uses_an_http_mirror_laid_out_by_local_dir(httpserver, tmp_path):
    data = b"SID,SEASON\n,Year\n"
    handler = FileHandler(data, content_type="text/csv")
    serve(httpserver, "/mirror/toy/a.csv", handler)
    entry = _entry("https://upstream.invalid/data/", ["a.csv", "b.csv"])

    results = fetch_dataset(entry, tmp_path, mirror=httpserver.url_for("/mirror"), files=["a.*"])

    assert len(results) == 1 and results[0].origin == "mirror" and len(handler.ranges) == 1
    src = DataSource.for_cache(tmp_path)
    assert src.origin is DataOrigin.MIRROR and src.origin_of(entry, "a.csv") is DataOrigin.MIRROR
    assert src.to_dict()["file_origins"] == {"toy/a.csv": "mirror"}
    st = dataset_status(entry, tmp_path)
    assert (st.state, st.present, st.expected, st.missing) == ("partial", 1, 2, ("b.csv",))


def test_a_file_missing_from_a_local_mirror_is_an_error_not_a_fallback(tmp_path):
    (tmp_path / "mirror" / "toy").mkdir(parents=True)
    entry = _entry("https://upstream.invalid/data/", ["a.csv"])

    with pytest.raises(DownloadError, match="a.csv is not in the mirror") as err:
        fetch_dataset(entry, tmp_path / "cache", mirror=tmp_path / "mirror")
    assert "upstream.invalid" in str(err.value)


def test_offline_mode_lists_every_missing_file(tmp_path):
    entry = _entry("https://upstream.invalid/", ["a.csv", "b.csv", "c.csv"])
    (tmp_path / "mirror" / "toy").mkdir(parents=True)
    (tmp_path / "mirror" / "toy" / "b.csv").write_text("k\n1\n")
    fetch_dataset(entry, tmp_path / "cache", mirror=tmp_path / "mirror", files=["b.csv"])

    with pytest.raises(OfflineError) as err:
        fetch_dataset(entry, tmp_path / "cache", offline=True)

    msg = str(err.value)
    assert "2 of 3 files" in msg and "a.csv" in msg and "c.csv" in msg and "b.csv" not in msg
    cached = fetch_dataset(entry, tmp_path / "cache", offline=True, files=["b.csv"])
    assert cached[0].from_cache and cached[0].origin == "mirror"


def test_mirror_resolution_order(tmp_path, monkeypatch):
    one, two, three = (tmp_path / n for n in ("one", "two", "three"))
    for p in (one, two, three):
        p.mkdir()
    monkeypatch.setenv("SITESCREEN_MIRROR", str(two))

    assert resolve_mirror(one, config={"mirror": str(three)}) == str(one)
    assert resolve_mirror(None, config={"mirror": str(three)}) == str(two)
    monkeypatch.delenv("SITESCREEN_MIRROR")
    assert resolve_mirror(None, config={"data": {"mirror": str(three)}}) == str(three)
    assert resolve_mirror(None) is None
    assert resolve_mirror("https://m.example/base/") == "https://m.example/base"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_mirror(tmp_path / "nope")
    with pytest.raises(ConfigError, match="unsupported scheme 's3'"):
        resolve_mirror("s3://bucket/x")


def test_the_catalog_checksum_applies_to_a_single_file_dataset(httpserver, tmp_path):
    data = b"k\n1\n"
    serve(httpserver, "/up/a.csv", FileHandler(data, content_type="text/csv"))
    good = _entry(httpserver.url_for("/up/"), ["a.csv"], sha256=sha(data), size=len(data))
    bad = replace(good, sha256="f" * 64)

    with pytest.raises(ChecksumError):
        fetch_dataset(bad, tmp_path)
    assert not (tmp_path / "toy" / "a.csv").exists()
    assert fetch_dataset(good, tmp_path)[0].sha256 == sha(data)


# ------------------------------------------------------- content checks (no pinned checksum)

_WP = "ibtracs.WP.list.v04r01.csv"
_GOOD = ibtracs_body(20_000)
_HTML = (b"<!-- cdn edge -->\n<html><head><title>Service unavailable</title></head>"
         b"<body>Please try later</body></html>\n")
_JSON = b'{"error": {"code": 503, "message": "rate limit exceeded"}}\n'
_BY_BYTES = _GOOD[: len(_GOOD) // 2]  # cut mid-row
_BY_LINES = _GOOD[: _GOOD.rindex(b"\n", 0, len(_GOOD) // 2) + 1]  # cut at a row boundary


@pytest.mark.parametrize("body, fragment", [
    (_HTML, "HTML/XML page"),
    (_JSON, "JSON document"),
    (_BY_BYTES, "truncated"),
    (_BY_LINES, "seasons end in"),
], ids=["html-page", "json-error", "cut-mid-row", "cut-at-row"])
def test_a_served_body_that_is_not_ibtracs_is_refused(httpserver, tmp_path, body, fragment):
    serve(httpserver, f"/m/ibtracs/{_WP}", FileHandler(body, content_type="text/csv"))
    entry = load_catalog().dataset("ibtracs_wp")
    cache = tmp_path / "cache"

    with pytest.raises(DownloadError, match=fragment) as info:
        fetch_dataset(entry, cache, mirror=httpserver.url_for("/m"))

    assert httpserver.url_for("/m") in str(info.value)
    assert not (cache / "ibtracs").exists() or list((cache / "ibtracs").iterdir()) == []


def test_an_invalid_cached_file_is_replaced_by_the_next_fetch(httpserver, tmp_path):
    entry = load_catalog().dataset("ibtracs_wp")
    cache = tmp_path / "cache"
    bad = cache / "ibtracs" / _WP
    bad.parent.mkdir(parents=True)
    bad.write_bytes(_JSON)  # stored by a version without content checks, sidecar and all
    (cache / "ibtracs" / f"{_WP}.sha256.json").write_text(json.dumps(
        {"url": "http://old/", "sha256": sha(_JSON), "size": len(_JSON),
         "mtime_ns": bad.stat().st_mtime_ns, "origin": "upstream"}))
    assert [v.status for v in verify_dataset(entry, cache)] == [VerifyStatus.INVALID]
    handler = FileHandler(_GOOD, content_type="text/csv")
    serve(httpserver, f"/m/ibtracs/{_WP}", handler)

    (res,) = fetch_dataset(entry, cache, mirror=httpserver.url_for("/m"))

    assert not res.from_cache and len(handler.ranges) == 1
    assert bad.read_bytes() == _GOOD
    assert [v.status for v in verify_dataset(entry, cache)] == [VerifyStatus.OK]
    again = fetch_dataset(entry, cache, mirror=httpserver.url_for("/m"))
    assert again[0].from_cache and len(handler.ranges) == 1  # checked once, then trusted


def test_a_truncated_geotiff_is_refused_and_a_whole_one_accepted(httpserver, tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    tif = tmp_path / "src.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=512, height=512, count=1,
                       dtype="float32", crs="EPSG:4326", transform=Affine(.01, 0, 0, 0, -.01, 10),
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(np.random.default_rng(1).random((512, 512), dtype="float32"), 1)
    data = tif.read_bytes()
    entry = _entry(httpserver.url_for("/up/"), ["t.tif"])
    serve(httpserver, "/up/t.tif", FileHandler(data[: len(data) // 2], content_type="image/tiff"))

    with pytest.raises(DownloadError, match="truncated"):
        fetch_dataset(entry, tmp_path / "cache")

    httpserver.clear()
    serve(httpserver, "/up/t.tif", FileHandler(data, content_type="image/tiff"))
    (res,) = fetch_dataset(entry, tmp_path / "cache")
    assert res.path.read_bytes() == data
