"""Tests of sitescreen.data.fetch against a real local HTTP server (pytest-httpserver).

The server is :class:`file_server.FileHandler`: it honours Range requests or ignores them, cuts
connections after N bytes and answers with queued error statuses first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from file_server import GEOTIFF_HEAD, FileHandler, payload, serve, sha

from sitescreen.data.fetch import FetchResult, fetch, redact_url
from sitescreen.errors import CatalogError, ChecksumError, DownloadError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_streams_verifies_and_records_a_sidecar(httpserver, tmp_path):
    data = payload(200_000, GEOTIFF_HEAD)
    url = serve(httpserver, "/v2/tile.tif", FileHandler(data, content_type="image/tiff"))
    dest = tmp_path / "floods" / "tile.tif"

    res = fetch(url, dest, sha256=sha(data), expected_size=len(data),
                sidecar={"dataset": "x", "version": "v2", "origin": "upstream"})

    assert dest.read_bytes() == data
    assert (res.path, res.bytes, res.sha256) == (dest, 200_000, sha(data))
    assert not res.from_cache and not res.resumed and res.transferred == 200_000
    side = json.loads((tmp_path / "floods" / "tile.tif.sha256.json").read_text())
    assert side["url"] == url and side["sha256"] == sha(data) and side["size"] == 200_000
    assert side["version"] == "v2" and side["origin"] == "upstream" and side["etag"] == '"v1"'
    assert side["retrieved_at"] == res.retrieved_at
    assert _leftovers(dest.parent) == ["tile.tif", "tile.tif.sha256.json"]


def test_fetch_is_idempotent_and_skips_a_verified_file(httpserver, tmp_path):
    data = payload(50_000)
    handler = FileHandler(data, content_type="text/csv")
    url = serve(httpserver, "/a.csv", handler)
    first = fetch(url, tmp_path / "a.csv")
    second = fetch(url, tmp_path / "a.csv", sha256=sha(data))

    assert len(handler.ranges) == 1  # the second call made no request
    assert second.from_cache and second.transferred == 0
    assert (second.sha256, second.retrieved_at) == (first.sha256, first.retrieved_at)


def test_a_corrupted_cached_file_is_fetched_again(httpserver, tmp_path):
    data = payload(30_000)
    handler = FileHandler(data, content_type="text/csv")
    url = serve(httpserver, "/a.csv", handler)
    fetch(url, tmp_path / "a.csv")
    (tmp_path / "a.csv").write_bytes(b"x" * 30_000)  # same size, new mtime, wrong content

    res = fetch(url, tmp_path / "a.csv")

    assert len(handler.ranges) == 2 and not res.from_cache
    assert (tmp_path / "a.csv").read_bytes() == data


def test_resume_after_a_dropped_connection_uses_range(httpserver, tmp_path):
    data = payload(300_000, GEOTIFF_HEAD)
    handler = FileHandler(data, drop_after=100_000, drops=1)
    url = serve(httpserver, "/t.tif", handler)

    res = fetch(url, tmp_path / "t.tif", sha256=sha(data), retries=2, backoff=0.0)

    assert (tmp_path / "t.tif").read_bytes() == data
    assert handler.ranges == [None, "bytes=100000-"]
    assert handler.if_ranges[1] == '"v1"'  # a changed upstream file would restart from zero
    assert sum(handler.sent) == 300_000 < 2 * len(data)
    assert res.resumed and res.transferred == 300_000
    assert not (tmp_path / "t.tif.part").exists()


def test_resume_across_calls_keeps_the_part_file(httpserver, tmp_path):
    data = payload(120_000, GEOTIFF_HEAD)
    handler = FileHandler(data, drop_after=40_000, drops=1)
    url = serve(httpserver, "/t.tif", handler)

    with pytest.raises(DownloadError, match="giving up after 1 attempts") as err:
        fetch(url, tmp_path / "t.tif", retries=0)
    assert url in str(err.value)
    assert (tmp_path / "t.tif.part").stat().st_size == 40_000
    assert not (tmp_path / "t.tif").exists()

    res = fetch(url, tmp_path / "t.tif", sha256=sha(data), retries=0)

    assert handler.ranges[-1] == "bytes=40000-"
    assert res.resumed and res.transferred == 80_000
    assert (tmp_path / "t.tif").read_bytes() == data


def test_a_complete_part_file_answered_with_416_is_finished_without_data(httpserver, tmp_path):
    data = payload(20_000, GEOTIFF_HEAD)
    handler = FileHandler(data)
    url = serve(httpserver, "/t.tif", handler)
    (tmp_path / "t.tif.part").write_bytes(data)  # e.g. interrupted just before the rename
    (tmp_path / "t.tif.part.json").write_text(json.dumps({"url": url, "etag": '"v1"'}))

    res = fetch(url, tmp_path / "t.tif", sha256=sha(data))

    assert handler.ranges == ["bytes=20000-"] and handler.sent == [0]
    assert res.transferred == 0 and (tmp_path / "t.tif").read_bytes() == data


def test_attempts_that_advance_do_not_use_up_the_retries(httpserver, tmp_path):
    data = np.random.default_rng(0).bytes(4 * 2**20)
    handler = FileHandler(data, content_type="text/csv", drop_after=int(1.5 * 2**20), drops=2)
    url = serve(httpserver, "/big.csv", handler)

    res = fetch(url, tmp_path / "big.csv", sha256=sha(data), retries=1, backoff=0.0)

    assert len(handler.ranges) == 3 and res.resumed
    assert sum(handler.sent) == len(data)


def test_a_server_without_range_support_restarts_from_zero(httpserver, tmp_path):
    data = payload(90_000, GEOTIFF_HEAD)
    handler = FileHandler(data, honour_range=False, drop_after=30_000, drops=1)
    url = serve(httpserver, "/t.tif", handler)

    res = fetch(url, tmp_path / "t.tif", sha256=sha(data), retries=1, backoff=0.0)

    assert handler.ranges == [None, "bytes=30000-"]  # asked, but got a 200 with everything
    assert not res.resumed and res.transferred == 120_000
    assert (tmp_path / "t.tif").read_bytes() == data


def test_checksum_mismatch_leaves_no_file_behind(httpserver, tmp_path):
    data = payload(10_000, GEOTIFF_HEAD)
    url = serve(httpserver, "/t.tif", FileHandler(data))

    with pytest.raises(ChecksumError, match="does not match") as err:
        fetch(url, tmp_path / "t.tif", sha256="0" * 64)

    assert url in str(err.value) and sha(data) in str(err.value)
    assert _leftovers(tmp_path) == []


def test_size_announced_by_the_server_is_checked_before_downloading(httpserver, tmp_path):
    handler = FileHandler(payload(10_000, GEOTIFF_HEAD))
    url = serve(httpserver, "/t.tif", handler)

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
    data = payload(5_000, GEOTIFF_HEAD)
    handler = FileHandler(data, statuses=[500, 503])
    url = serve(httpserver, "/t.tif", handler)

    res = fetch(url, tmp_path / "t.tif", retries=2, backoff=0.01)

    assert len(handler.ranges) == 3 and res.sha256 == sha(data)


def test_retries_exhausted_names_the_last_error(httpserver, tmp_path):
    url = serve(httpserver, "/t.tif", FileHandler(b"", statuses=[502, 502, 502]))

    with pytest.raises(DownloadError, match=r"giving up after 3 attempts; last error: HTTP 502"):
        fetch(url, tmp_path / "t.tif", retries=2, backoff=0.0)


def test_429_waits_as_retry_after_asks(httpserver, tmp_path):
    data = payload(5_000)
    handler = FileHandler(data, content_type="text/csv", statuses=[429], retry_after="1")
    url = serve(httpserver, "/a.csv", handler)

    res = fetch(url, tmp_path / "a.csv", retries=1, backoff=30.0)  # the header wins over backoff

    assert len(handler.ranges) == 2 and res.bytes == 5_000


def test_429_with_a_very_long_retry_after_is_an_error(httpserver, tmp_path):
    url = serve(httpserver, "/a.csv", FileHandler(b"", statuses=[429], retry_after="3600"))

    with pytest.raises(DownloadError, match="retry after 3600 s"):
        fetch(url, tmp_path / "a.csv", retries=3)


def test_an_html_page_served_instead_of_a_geotiff_is_refused(httpserver, tmp_path):
    page = b"<!DOCTYPE html><html><body>Service moved</body></html>"
    url = serve(httpserver, "/t.tif", FileHandler(page, content_type="text/html; charset=utf-8"))

    with pytest.raises(DownloadError, match="text/html instead of a GeoTIFF") as err:
        fetch(url, tmp_path / "t.tif")

    assert url in str(err.value)
    assert _leftovers(tmp_path) == []


def test_an_html_page_with_a_binary_content_type_is_sniffed(httpserver, tmp_path):
    page = b"\n  <html><head><title>403</title></head></html>"
    url = serve(httpserver, "/t.zip", FileHandler(page, content_type="application/octet-stream"))

    with pytest.raises(DownloadError, match="HTML/XML page instead of a zip archive"):
        fetch(url, tmp_path / "t.zip")
    assert _leftovers(tmp_path) == []


def test_a_csv_served_as_text_plain_is_accepted(httpserver, tmp_path):
    text = b"SID,SEASON\n,Year\n1945A,1945\n"
    url = serve(httpserver, "/x.csv", FileHandler(text, content_type="text/plain"))

    assert fetch(url, tmp_path / "x.csv").bytes == len(text)


def test_the_size_cap_refuses_a_large_file(httpserver, tmp_path):
    url = serve(httpserver, "/t.tif", FileHandler(payload(20_000, GEOTIFF_HEAD)))

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

    res = fetch(src.as_uri(), tmp_path / "cache" / "a.csv", sha256=sha(b"a,b\n1,2\n"))

    assert (tmp_path / "cache" / "a.csv").read_bytes() == b"a,b\n1,2\n"
    assert res.url == str(src) and res.transferred == 8


def test_fetch_result_round_trips_through_a_dict(tmp_path):
    r = FetchResult(path=tmp_path / "a", url="u", bytes=3, sha256="ab", retrieved_at="t",
                    resumed=True, transferred=2, origin="mirror")
    assert FetchResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
