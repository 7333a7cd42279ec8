"""A static file server with faults, for tests of HTTP transfers (pytest-httpserver).

:class:`FileHandler` honours Range requests (or ignores them, like a server without range
support), can cut the connection after N bytes while announcing the full Content-Length, and
can answer with a queue of error statuses first. Used by tests/test_fetch.py and
tests/test_datasets.py.
"""

from __future__ import annotations

import hashlib
import re

from werkzeug import Request, Response

GEOTIFF_HEAD = b"II*\x00\x08\x00\x00\x00"  # little-endian TIFF magic and first IFD offset


def payload(n: int, head: bytes = b"") -> bytes:
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


def serve(httpserver, path: str, handler: FileHandler) -> str:
    httpserver.expect_request(path).respond_with_handler(handler)
    return httpserver.url_for(path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ibtracs_body(rows: int, *, first_season: int = 1980, last_season: int = 2021) -> bytes:
    """A minimal IBTrACS v04r01 CSV: header, units row, ``rows`` track points whose seasons
    run from ``first_season`` to ``last_season`` (for content checks, not for wind models)."""
    header = "SID,SEASON,NUMBER,BASIN,ISO_TIME,LAT,LON,WMO_WIND,TRACK_TYPE,USA_WIND"
    units = " ,Year, , , ,degrees_north,degrees_east,kts, ,kts"
    span = last_season - first_season + 1
    lines = [header, units]
    for i in range(rows):
        season = first_season + i * span // rows
        lines.append(f"{season}001N10130,{season},1,WP,{season}-07-01 00:00:00,15.0,130.0, ,"
                     "main,35")
    return ("\n".join(lines) + "\n").encode()
