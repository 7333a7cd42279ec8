"""Tests of sitescreen.download against a real local HTTP server (pytest-httpserver).

The handler below honours Range requests (or ignores them, like a server without range
support), can cut the connection after N bytes while announcing the full Content-Length, and
can answer with a queue of error statuses first.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from werkzeug import Request, Response

from sitescreen.catalog import CatalogEntry, load_catalog
from sitescreen.datasources import DataOrigin, DataSource
from sitescreen.download import (
    FetchResult,
    VerifyStatus,
    dataset_status,
    expand_files,
    fetch,
    fetch_dataset,
    redact_url,
    resolve_mirror,
    verify_dataset,
)
from sitescreen.errors import (
    CatalogError,
    ChecksumError,
    ConfigError,
    DownloadError,
    OfflineError,
    UnsafePathError,
)

GEOTIFF_HEAD = b"II*\x00\x08\x00\x00\x00"  # little-endian TIFF magic and first IFD offset


def _payload(n: int, head: bytes = b"") -> bytes:
    body = bytes((i * 7 + i // 251) % 256 for i in range(n - len(head)))
    return head + body


class FileHandler:
    """Serve ``data`` like a static file server, with optional faults."""

    def __init__(self, data: bytes, *, content_type: str = "application/octet-stream",
                 honour_range: bool = True, drop_after: int | None = None, drops: int = 0,
                 statuses: list[int] | None = None, retry_after: str | None = None,
                 etag: str = '"v1"') -> None:
        self.data = data
        self.content_type = content_type
        self.honour_range = honour_range
        self.drop_after = drop_after
        self.drops = drops
        self.statuses = list(statuses or [])
        self.retry_after = retry_after
        self.etag = etag
        self.ranges: list[str | None] = []
        self.if_ranges: list[str | None] = []
        self.sent: list[int] = []

    def __call__(self, request: Request) -> Response:
        self.ranges.append(request.headers.get("Range"))
        self.if_ranges.append(request.headers.get("If-Range"))
        if self.statuses:
            status = self.statuses.pop(0)
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            self.sent.append(0)
            return Response("try later", status=status, headers=headers)
        start, status = 0, 200
        headers = {"Content-Type": self.content_type, "ETag": self.etag}
        rng = request.headers.get("Range")
        if rng and self.honour_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(self.data):
                self.sent.append(0)
                return Response(status=416,
                                headers={"Content-Range": f"bytes */{len(self.data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
        body = self.data[start:]
        headers["Content-Length"] = str(len(body))
        if self.drops > 0 and self.drop_after is not None:
            self.drops -= 1
            body = body[: self.drop_after]  # then the connection closes: a short read
        self.sent.append(len(body))

        def chunks():
            for i in range(0, len(body), 16384):
                yield body[i:i + 16384]

        return Response(chunks(), status=status, headers=headers, direct_passthrough=True)


def _serve(httpserver, path: str, handler: FileHandler) -> str:
    httpserver.expect_request(path).respond_with_handler(handler)
    return httpserver.url_for(path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ------------------------------------------------------------------------------------- fetch


def test_fetch_streams_verifies_and_records_a_sidecar(httpserver, tmp_path):
    data = _payload(200_000, GEOTIFF_HEAD)
    url = _serve(httpserver, "/v2/tile.tif", FileHandler(data, content_type="image/tiff"))
    dest = tmp_path / "floods" / "tile.tif"

    res = fetch(url, dest, sha256=_sha(data), expected_size=len(data),
                sidecar={"dataset": "x", "version": "v2", "origin": "upstream"})

    assert dest.read_bytes() == data
    assert (res.path, res.bytes, res.sha256) == (dest, 200_000, _sha(data))
    assert not res.from_cache and not res.resumed and res.transferred == 200_000
    side = json.loads((tmp_path / "floods" / "tile.tif.sha256.json").read_text())
    assert side["url"] == url and side["sha256"] == _sha(data) and side["size"] == 200_000
    assert side["version"] == "v2" and side["origin"] == "upstream" and side["etag"] == '"v1"'
    assert side["retrieved_at"] == res.retrieved_at
    assert _leftovers(dest.parent) == ["tile.tif", "tile.tif.sha256.json"]


def test_fetch_is_idempotent_and_skips_a_verified_file(httpserver, tmp_path):
    data = _payload(50_000)
    handler = FileHandler(data, content_type="text/csv")
    url = _serve(httpserver, "/a.csv", handler)
    first = fetch(url, tmp_path / "a.csv")
    second = fetch(url, tmp_path / "a.csv", sha256=_sha(data))

    assert len(handler.ranges) == 1  # the second call made no request
    assert second.from_cache and second.transferred == 0
    assert (second.sha256, second.retrieved_at) == (first.sha256, first.retrieved_at)


def test_a_corrupted_cached_file_is_fetched_again(httpserver, tmp_path):
    data = _payload(30_000)
    handler = FileHandler(data, content_type="text/csv")
    url = _serve(httpserver, "/a.csv", handler)
    fetch(url, tmp_path / "a.csv")
    (tmp_path / "a.csv").write_bytes(b"x" * 30_000)  # same size, new mtime, wrong content

    res = fetch(url, tmp_path / "a.csv")

    assert len(handler.ranges) == 2 and not res.from_cache
    assert (tmp_path / "a.csv").read_bytes() == data


def test_resume_after_a_dropped_connection_uses_range(httpserver, tmp_path):
    data = _payload(300_000, GEOTIFF_HEAD)
    handler = FileHandler(data, drop_after=100_000, drops=1)
    url = _serve(httpserver, "/t.tif", handler)

    res = fetch(url, tmp_path / "t.tif", sha256=_sha(data), retries=2, backoff=0.0)

    assert (tmp_path / "t.tif").read_bytes() == data
    assert handler.ranges == [None, "bytes=100000-"]
    assert handler.if_ranges[1] == '"v1"'  # a changed upstream file would restart from zero
    assert sum(handler.sent) == 300_000 < 2 * len(data)
    assert res.resumed and res.transferred == 300_000
    assert not (tmp_path / "t.tif.part").exists()


def test_resume_across_calls_keeps_the_part_file(httpserver, tmp_path):
    data = _payload(120_000, GEOTIFF_HEAD)
    handler = FileHandler(data, drop_after=40_000, drops=1)
    url = _serve(httpserver, "/t.tif", handler)

    with pytest.raises(DownloadError, match="giving up after 1 attempts") as err:
        fetch(url, tmp_path / "t.tif", retries=0)
    assert url in str(err.value)
    assert (tmp_path / "t.tif.part").stat().st_size == 40_000
    assert not (tmp_path / "t.tif").exists()

    res = fetch(url, tmp_path / "t.tif", sha256=_sha(data), retries=0)

    assert handler.ranges[-1] == "bytes=40000-"
    assert res.resumed and res.transferred == 80_000
    assert (tmp_path / "t.tif").read_bytes() == data


def test_a_complete_part_file_answered_with_416_is_finished_without_data(httpserver, tmp_path):
    data = _payload(20_000, GEOTIFF_HEAD)
    handler = FileHandler(data)
    url = _serve(httpserver, "/t.tif", handler)
    (tmp_path / "t.tif.part").write_bytes(data)  # e.g. interrupted just before the rename
    (tmp_path / "t.tif.part.json").write_text(json.dumps({"url": url, "etag": '"v1"'}))

    res = fetch(url, tmp_path / "t.tif", sha256=_sha(data))

    assert handler.ranges == ["bytes=20000-"] and handler.sent == [0]
    assert res.transferred == 0 and (tmp_path / "t.tif").read_bytes() == data


def test_attempts_that_advance_do_not_use_up_the_retries(httpserver, tmp_path):
    data = np.random.default_rng(0).bytes(4 * 2**20)
    handler = FileHandler(data, content_type="text/csv", drop_after=int(1.5 * 2**20), drops=2)
    url = _serve(httpserver, "/big.csv", handler)

    res = fetch(url, tmp_path / "big.csv", sha256=_sha(data), retries=1, backoff=0.0)

    assert len(handler.ranges) == 3 and res.resumed
    assert sum(handler.sent) == len(data)


def test_a_server_without_range_support_restarts_from_zero(httpserver, tmp_path):
    data = _payload(90_000, GEOTIFF_HEAD)
    handler = FileHandler(data, honour_range=False, drop_after=30_000, drops=1)
    url = _serve(httpserver, "/t.tif", handler)

    res = fetch(url, tmp_path / "t.tif", sha256=_sha(data), retries=1, backoff=0.0)

    assert handler.ranges == [None, "bytes=30000-"]  # asked, but got a 200 with everything
    assert not res.resumed and res.transferred == 120_000
    assert (tmp_path / "t.tif").read_bytes() == data


def test_checksum_mismatch_leaves_no_file_behind(httpserver, tmp_path):
    data = _payload(10_000, GEOTIFF_HEAD)
    url = _serve(httpserver, "/t.tif", FileHandler(data))

    with pytest.raises(ChecksumError, match="does not match") as err:
        fetch(url, tmp_path / "t.tif", sha256="0" * 64)

    assert url in str(err.value) and _sha(data) in str(err.value)
    assert _leftovers(tmp_path) == []


def test_size_announced_by_the_server_is_checked_before_downloading(httpserver, tmp_path):
    handler = FileHandler(_payload(10_000, GEOTIFF_HEAD))
    url = _serve(httpserver, "/t.tif", handler)

    with pytest.raises(ChecksumError, match="reports 10000 bytes, the catalog expects 9999"):
        fetch(url, tmp_path / "t.tif", expected_size=9_999)
    assert _leftovers(tmp_path) == []


def test_404_fails_at_once_naming_the_url(httpserver, tmp_path):
    httpserver.expect_request("/missing.tif").respond_with_data("no", status=404)
    url = httpserver.url_for("/missing.tif")

    with pytest.raises(DownloadError, match="HTTP 404") as err:
        fetch(url, tmp_path / "missing.tif", retries=3, backoff=0.0)

    assert url in str(err.value)
    assert len(httpserver.log) == 1  # a 404 is not retried
    assert _leftovers(tmp_path) == []


def test_5xx_is_retried_until_success(httpserver, tmp_path):
    data = _payload(5_000, GEOTIFF_HEAD)
    handler = FileHandler(data, statuses=[500, 503])
    url = _serve(httpserver, "/t.tif", handler)

    res = fetch(url, tmp_path / "t.tif", retries=2, backoff=0.01)

    assert len(handler.ranges) == 3 and res.sha256 == _sha(data)


def test_retries_exhausted_names_the_last_error(httpserver, tmp_path):
    url = _serve(httpserver, "/t.tif", FileHandler(b"", statuses=[502, 502, 502]))

    with pytest.raises(DownloadError, match=r"giving up after 3 attempts; last error: HTTP 502"):
        fetch(url, tmp_path / "t.tif", retries=2, backoff=0.0)


def test_429_waits_as_retry_after_asks(httpserver, tmp_path):
    data = _payload(5_000)
    handler = FileHandler(data, content_type="text/csv", statuses=[429], retry_after="1")
    url = _serve(httpserver, "/a.csv", handler)

    res = fetch(url, tmp_path / "a.csv", retries=1, backoff=30.0)  # the header wins over backoff

    assert len(handler.ranges) == 2 and res.bytes == 5_000


def test_429_with_a_very_long_retry_after_is_an_error(httpserver, tmp_path):
    url = _serve(httpserver, "/a.csv", FileHandler(b"", statuses=[429], retry_after="3600"))

    with pytest.raises(DownloadError, match="retry after 3600 s"):
        fetch(url, tmp_path / "a.csv", retries=3)


def test_an_html_page_served_instead_of_a_geotiff_is_refused(httpserver, tmp_path):
    page = b"<!DOCTYPE html><html><body>Service moved</body></html>"
    url = _serve(httpserver, "/t.tif", FileHandler(page, content_type="text/html; charset=utf-8"))

    with pytest.raises(DownloadError, match="text/html instead of a GeoTIFF") as err:
        fetch(url, tmp_path / "t.tif")

    assert url in str(err.value)
    assert _leftovers(tmp_path) == []


def test_an_html_page_with_a_binary_content_type_is_sniffed(httpserver, tmp_path):
    page = b"\n  <html><head><title>403</title></head></html>"
    url = _serve(httpserver, "/t.zip", FileHandler(page, content_type="application/octet-stream"))

    with pytest.raises(DownloadError, match="HTML/XML page instead of a zip archive"):
        fetch(url, tmp_path / "t.zip")
    assert _leftovers(tmp_path) == []


def test_a_csv_served_as_text_plain_is_accepted(httpserver, tmp_path):
    text = b"SID,SEASON\n,Year\n1945A,1945\n"
    url = _serve(httpserver, "/x.csv", FileHandler(text, content_type="text/plain"))

    assert fetch(url, tmp_path / "x.csv").bytes == len(text)


def test_the_size_cap_refuses_a_large_file(httpserver, tmp_path):
    url = _serve(httpserver, "/t.tif", FileHandler(_payload(20_000, GEOTIFF_HEAD)))

    with pytest.raises(DownloadError, match="exceeds the limit of 10000 bytes"):
        fetch(url, tmp_path / "t.tif", max_bytes=10_000)
    assert _leftovers(tmp_path) == []


def test_credentials_are_redacted_in_errors(httpserver, tmp_path):
    httpserver.expect_request("/f.csv").respond_with_data("no", status=403)
    url = httpserver.url_for("/f.csv") + "?api_key=SECRET123&page=2"

    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "f.csv")

    assert "SECRET123" not in str(err.value) and "api_key=***&page=2" in str(err.value)
    assert redact_url("https://u:pw@h/x?X-Amz-Signature=abc") == \
        "https://u:***@h/x?X-Amz-Signature=***"


def test_other_url_schemes_are_refused(tmp_path):
    with pytest.raises(CatalogError, match="unsupported URL scheme 'ftp'"):
        fetch("ftp://example.org/a.csv", tmp_path / "a.csv")


def test_a_local_file_is_copied_and_verified(tmp_path):
    src = tmp_path / "mirror" / "a.csv"
    src.parent.mkdir()
    src.write_bytes(b"a,b\n1,2\n")

    res = fetch(src.as_uri(), tmp_path / "cache" / "a.csv", sha256=_sha(b"a,b\n1,2\n"))

    assert (tmp_path / "cache" / "a.csv").read_bytes() == b"a,b\n1,2\n"
    assert res.url == str(src) and res.transferred == 8


def test_fetch_result_round_trips_through_a_dict(tmp_path):
    r = FetchResult(path=tmp_path / "a", url="u", bytes=3, sha256="ab", retrieved_at="t",
                    resumed=True, transferred=2, origin="mirror")
    assert FetchResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


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
    _serve(httpserver, "/up/a.csv", FileHandler(a, content_type="text/csv"))
    _serve(httpserver, "/up/b.csv", FileHandler(b, content_type="text/csv"))
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
    _serve(httpserver, "/mirror/toy/a.csv", handler)
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
    _serve(httpserver, "/up/a.csv", FileHandler(data, content_type="text/csv"))
    good = _entry(httpserver.url_for("/up/"), ["a.csv"], sha256=_sha(data), size=len(data))
    bad = replace(good, sha256="f" * 64)

    with pytest.raises(ChecksumError):
        fetch_dataset(bad, tmp_path)
    assert not (tmp_path / "toy" / "a.csv").exists()
    assert fetch_dataset(good, tmp_path)[0].sha256 == _sha(data)
