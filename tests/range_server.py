"""A threaded static file server on 127.0.0.1 with HTTP Range, ETag and faults.

Used by the windowed-fetch tests (tests/test_data_windows.py) and the benchmark
(benchmarks/bench_fetch.py) to stand in for the Aqueduct Floods upstream host. It serves the
files of one folder (and its subfolders) under their paths, answers ``HEAD`` and
single-range ``GET`` requests
(``206`` with ``Content-Range``; ``416`` when the range starts past the end), sends ``ETag``
and ``Last-Modified``, and logs every request with the bytes of body it sent.

Faults (``server.fault``) imitate what real hosts do: ``html`` answers every GET with an HTML
error page and status 200; ``truncate`` announces the full ``Content-Length`` and closes the
connection half-way; ``416`` refuses every range; ``stall`` sends the headers and then
nothing; ``trickle`` sends a few bytes per second.
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["RangeServer", "Request"]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes sent


class RangeServer:
    """Serve ``root`` at ``http://127.0.0.1:<port>/<prefix>``; use as a context manager."""

    def __init__(self, root: str | Path, *, prefix: str = "") -> None:
        self.root = Path(root)
        self.prefix = prefix.strip("/")
        self.log: list[Request] = []
        self.fault: str | None = None
        self.etags: dict[str, str] = {}  # file name -> ETag override
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle's algorithm on, each
            # response waits for the client's delayed ACK (40 ms on Linux).
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                server._serve(self, head=True)

            def do_GET(self) -> None:
                server._serve(self, head=False)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that give up (timeouts under test) reset connections

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/" + (f"{self.prefix}/" if self.prefix else "")

    # -- figures ---------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.log.clear()

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return sum(r.sent for r in self.log)

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.log)

    def sent_per_file(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for r in self.log:
                out[r.path] = out.get(r.path, 0) + r.sent
        return out

    # -- serving ---------------------------------------------------------------------------
    def _record(self, req: Request) -> None:
        with self._lock:
            self.log.append(req)

    def _etag(self, name: str, st: os.stat_result) -> str:
        return self.etags.get(name) or f'"{st.st_size:x}-{st.st_mtime_ns:x}"'

    def _serve(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        method = "HEAD" if head else "GET"
        rng = h.headers.get("Range")
        path = h.path.split("?", 1)[0].lstrip("/")
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return self._status(h, method, path, rng, 404)
            path = path[len(self.prefix) + 1:]
        file = self.root / path
        if ".." in path.split("/") or not file.is_file():
            return self._status(h, method, path, rng, 404)
        st = file.stat()
        size = st.st_size
        if self.fault == "html" and not head:
            body = b"<!DOCTYPE html><html><body><h1>Service unavailable</h1></body></html>"
            h.send_response(200)
            h.send_header("Content-Type", "text/html")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return self._record(Request(method, path, rng, 200, len(body)))
        start, end, status = 0, size - 1, 200
        if rng and not head:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if self.fault == "416" or m is None or int(m.group(1)) >= size:
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{size}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return self._record(Request(method, path, rng, 416, 0))
            start = int(m.group(1))
            end = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
            status = 206
        length = end - start + 1
        h.send_response(status)
        h.send_header("Content-Type", "image/tiff")
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", self._etag(path, st))
        h.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        h.send_header("Content-Length", str(length))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        h.end_headers()
        if head:
            return self._record(Request(method, path, rng, status, 0))
        sent = 0
        try:
            with file.open("rb") as f:
                f.seek(start)
                if self.fault == "stall":
                    self._stop.wait(30)
                    h.close_connection = True
                    return
                if self.fault == "truncate":
                    length = max(1, length // 2)
                    h.close_connection = True
                while sent < length:
                    n = min(4 if self.fault == "trickle" else 65536, length - sent)
                    chunk = f.read(n)
                    if not chunk:
                        break
                    h.wfile.write(chunk)
                    sent += len(chunk)
                    if self.fault == "trickle":
                        h.wfile.flush()
                        if self._stop.wait(0.5):
                            break
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._record(Request(method, path, rng, status, sent))
            if self.fault == "truncate":
                time.sleep(0)  # the handler closes the connection after this response

    def _status(self, h: BaseHTTPRequestHandler, method: str, path: str, rng: str | None,
                status: int) -> None:
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()
        self._record(Request(method, path, rng, status, 0))
