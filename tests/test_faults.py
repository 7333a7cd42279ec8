"""Faults during a run: the network, the cache, the disk, the process itself.

Covered elsewhere and not repeated: downloads dropped mid-transfer and resumed, 5xx and 429
with Retry-After, checksum mismatches and a same-size corrupted cache file
(tests/test_fetch.py); geocoder 429, 5xx, timeouts and refused connections
(tests/test_geocode_online.py); a writer failing inside ``write_run``
(tests/test_outputs.py); two processes writing the geocode cache (test_geocode_cache.py).

Added here: a transfer that stalls past the read timeout (download and geocoder) and a
connection dropped before any answer; truncated and bit-rotted cache files found by
``verify_dataset`` and fetched again; a real "file too large" while writing outputs
(RLIMIT_FSIZE in a subprocess); the CLI killed with SIGKILL at several moments and started
again; two runs at once on one cache. Process tests run the real CLI in subprocesses on a
small synthetic pack.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from small_pack import site, sites_doc, small_pack

from sitescreen.catalog import CatalogEntry
from sitescreen.data.datasets import VerifyStatus, fetch_dataset, verify_dataset
from sitescreen.data.fetch import fetch
from sitescreen.errors import DownloadError
from sitescreen.geocode import AddressQuery, AMapGeocoder, GeocodeCache, geocode_sites
from sitescreen.geocode.http import RetryPolicy
from sitescreen.sites import read_sites

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- a scripted TCP server


class ScriptedServer:
    """A threaded HTTP/1.1 server: connection i gets behaviour ``script[i]`` (the last one
    repeats). Behaviours are callables ``(conn, request) -> None``; the server records each
    request's line and headers."""

    def __init__(self, script: list[Callable]) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            behaviour = self.script[min(len(self.requests), len(self.script) - 1)]
            request = self._read(conn)
            self.requests.append(request)
            threading.Thread(target=self._answer, args=(conn, behaviour, request),
                             daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket) -> dict:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        line, *headers = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        return {"line": line, **{k.strip().lower(): v.strip() for k, v in
                                 (h.split(":", 1) for h in headers if ":" in h)}}

    @staticmethod
    def _answer(conn: socket.socket, behaviour: Callable, request: dict) -> None:
        try:
            behaviour(conn, request)
        except OSError:
            pass  # the client gave up first: that is the point of several behaviours
        finally:
            conn.close()


def drop(conn, request) -> None:
    """Close the connection without a byte of answer."""


def stall(seconds: float) -> Callable:
    def behaviour(conn, request) -> None:
        time.sleep(seconds)
    return behaviour


def respond(body: bytes, *, status: str = "200 OK", headers: dict | None = None,
            stall_after: int | None = None, stall_for: float = 0.0) -> Callable:
    """Answer ``body`` (announcing its full length); optionally stop sending after
    ``stall_after`` bytes and stay silent for ``stall_for`` seconds."""
    def behaviour(conn, request) -> None:
        head = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
        conn.sendall(f"HTTP/1.1 {status}\r\n".encode()
                     + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + b"\r\n")
        if stall_after is None:
            conn.sendall(body)
            return
        conn.sendall(body[:stall_after])
        time.sleep(stall_for)
    return behaviour


@pytest.fixture
def scripted():
    servers = []

    def make(*script: Callable) -> ScriptedServer:
        servers.append(ScriptedServer(list(script)))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- network: fetch


def test_a_download_stalling_past_the_read_timeout_is_resumed(scripted, tmp_path):
    data = bytes(range(256)) * 1200  # 307,200 bytes
    cut = 3 * 65536 + 1000
    server = scripted(
        respond(data, headers={"Content-Type": "text/csv", "ETag": '"v1"'},
                stall_after=cut, stall_for=2.0),
        lambda conn, req: respond(
            data[int(re.match(r"bytes=(\d+)-", req["range"]).group(1)):],
            status="206 Partial Content",
            headers={"Content-Type": "text/csv", "ETag": '"v1"', "Content-Range":
                     f"bytes {req['range'][6:-1]}-{len(data) - 1}/{len(data)}"})(conn, req))

    res = fetch(server.url("/a.csv"), tmp_path / "a.csv", sha256=_sha(data), retries=2,
                backoff=0.0, timeout=(2.0, 0.3))

    assert (tmp_path / "a.csv").read_bytes() == data and res.resumed
    assert len(server.requests) == 2 and "range" not in server.requests[0]
    offset = int(re.match(r"bytes=(\d+)-", server.requests[1]["range"]).group(1))
    assert 3 * 65536 <= offset <= cut  # the bytes that arrived before the stall were kept
    assert server.requests[1]["if-range"] == '"v1"'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.csv.sha256.json"]


def test_a_server_that_never_answers_fails_after_the_retries_naming_the_url(scripted, tmp_path):
    server = scripted(stall(3.0))
    url = server.url("/t.tif")

    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "t.tif", retries=1, backoff=0.0, timeout=(1.0, 0.3))

    msg = str(err.value)
    assert url in msg and "giving up after 2 attempts" in msg and "timed out" in msg.lower()
    assert "Run the fetch again to resume" in msg
    assert len(server.requests) == 2
    assert not (tmp_path / "t.tif").exists()


def test_a_connection_dropped_before_any_answer_is_retried(scripted, tmp_path):
    data = b"SID,SEASON\n,Year\n1945A,1945\n"
    server = scripted(drop, respond(data, headers={"Content-Type": "text/csv"}))

    res = fetch(server.url("/x.csv"), tmp_path / "x.csv", retries=1, backoff=0.0,
                timeout=(2.0, 2.0))

    assert res.bytes == len(data) and len(server.requests) == 2


# ------------------------------------------------------------------------ network: geocoding

AMAP_OK = json.dumps({
    "status": "1", "info": "OK", "infocode": "10000", "count": "1",
    "geocodes": [{"formatted_address": "上海市徐汇区虹梅路1900号", "country": "中国",
                  "province": "上海市", "city": "上海市", "district": "徐汇区",
                  "location": "121.398373,31.168163", "level": "门牌号"}]}).encode()
QUERY = AddressQuery("1900 Hongmei Road, Xuhui District, Shanghai", "Shanghai", "CN")


def _amap(server: ScriptedServer, *, timeout: float = 2.0, retries: int = 2) -> AMapGeocoder:
    return AMapGeocoder(key="fault-test-key", base_url=server.url(""), min_interval=0,
                        timeout=timeout, retry=RetryPolicy(max_retries=retries, backoff=0.01,
                                                           max_backoff=0.02))


@pytest.mark.parametrize("first", [drop, stall(1.5)], ids=["dropped", "stalled"])
def test_geocoding_survives_a_dropped_or_stalled_request(scripted, first):
    server = scripted(first, respond(AMAP_OK, headers={"Content-Type": "application/json"}))
    g = _amap(server, timeout=0.3)

    r = g.geocode(QUERY)

    assert r.status == "ok" and g.requests_sent == 2 == len(server.requests)
    assert r.lon == pytest.approx(121.3938, abs=0.002)  # GCJ-02 answer converted to WGS 84


def test_a_geocoder_that_keeps_failing_is_not_cached_and_is_asked_again_later(scripted,
                                                                              tmp_path):
    sites_file = tmp_path / "sites.geojson"
    sites_file.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None,
         "properties": {"site_id": "hq", "name": "HQ", "address": QUERY.address,
                        "city": "Shanghai", "country": "CN"}}]}), encoding="utf-8")
    sites = read_sites(sites_file)
    cache = GeocodeCache(tmp_path / "geocode.sqlite")
    down = scripted(drop)

    first = geocode_sites(sites, geocoders=[_amap(down, retries=1)], cache=cache)

    row = first.iloc[0]
    assert row["location_source"] == "unresolved" and "cannot connect" in row["geocode_reason"]
    assert len(down.requests) == 2 and len(cache) == 0  # a transient failure is not stored
    up = scripted(respond(AMAP_OK, headers={"Content-Type": "application/json"}))
    second = geocode_sites(sites, geocoders=[_amap(up)], cache=cache)
    assert second.iloc[0]["location_source"] == "geocoded" and len(up.requests) == 1
    assert len(cache) == 1


# ------------------------------------------------------------------------------- the cache


def _entry(base_url: str, files: list[str], **extra) -> CatalogEntry:
    return CatalogEntry.from_dict("toy", {
        "title": "Toy data", "publisher": "Test", "version": "1", "license": "CC0",
        "citation": "none", "base_url": base_url, "local_dir": "toy", "family": "toy",
        "files": files, **extra})


@pytest.fixture
def toy(httpserver, tmp_path):
    """Two files served over HTTP and fetched into a cache; returns (entry, cache, data)."""
    data = {"a.csv": b"x,y\n" + b"1,2\n" * 5000, "b.csv": b"x,y\n" + b"3,4\n" * 7000}
    for name, body in data.items():
        httpserver.expect_request(f"/up/{name}").respond_with_data(body, content_type="text/csv")
    entry = _entry(httpserver.url_for("/up/"), sorted(data))
    cache = tmp_path / "cache"
    fetch_dataset(entry, cache, retries=0)
    return entry, cache, data


def _requests_for(httpserver, name: str) -> int:
    return sum(1 for req, _ in httpserver.log if req.path.endswith(name))


def test_a_truncated_cached_file_is_found_and_fetched_again(httpserver, toy):
    entry, cache, data = toy
    path = cache / "toy" / "b.csv"
    with open(path, "r+b") as fh:  # what a crash or a full disk while copying leaves
        fh.truncate(len(data["b.csv"]) // 3)

    checked = {v.file: v for v in verify_dataset(entry, cache)}
    assert checked["a.csv"].status is VerifyStatus.OK
    assert checked["b.csv"].status is VerifyStatus.MISMATCH
    assert "fetch again" in checked["b.csv"].message

    results = {r.path.name: r for r in fetch_dataset(entry, cache, retries=0)}

    assert results["a.csv"].from_cache and not results["b.csv"].from_cache
    assert _requests_for(httpserver, "b.csv") == 2 and _requests_for(httpserver, "a.csv") == 1
    assert path.read_bytes() == data["b.csv"]
    assert all(v.ok for v in verify_dataset(entry, cache))


def test_bit_rot_keeping_size_and_mtime_is_found_by_verify_and_repaired_by_force(httpserver,
                                                                                 toy):
    entry, cache, data = toy
    path = cache / "toy" / "a.csv"
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit, same size
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same modification time

    checked = {v.file: v.status for v in verify_dataset(entry, cache)}
    assert checked == {"a.csv": VerifyStatus.MISMATCH, "b.csv": VerifyStatus.OK}
    fetch_dataset(entry, cache, retries=0, force=True, files=["a.csv"])
    assert path.read_bytes() == data["a.csv"] and _requests_for(httpserver, "a.csv") == 2
    assert all(v.ok for v in verify_dataset(entry, cache))


def test_a_corrupt_file_without_a_sidecar_is_checked_against_the_catalog(httpserver, tmp_path):
    body = b"k\n" + b"1\n" * 1000
    httpserver.expect_request("/up/a.csv").respond_with_data(body, content_type="text/csv")
    entry = _entry(httpserver.url_for("/up/"), ["a.csv"], sha256=_sha(body))
    path = tmp_path / "toy" / "a.csv"
    path.parent.mkdir()
    path.write_bytes(body[:-1] + b"9")  # placed by hand, wrong content, no provenance record

    assert verify_dataset(entry, tmp_path)[0].status is VerifyStatus.MISMATCH
    (res,) = fetch_dataset(entry, tmp_path, retries=0)
    assert not res.from_cache and path.read_bytes() == body


# -------------------------------------------------------------------------------- the disk

FULL_DISK = r"""
import resource, signal, sys
from pathlib import Path
from sitescreen.errors import OutputError
from sitescreen.outputs.run_folder import write_run

out, failing = Path(sys.argv[1]), sys.argv[2]
# The disk "fills" at 64 KiB per file: writes beyond fail with EFBIG, as on a full quota.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

def gpkg(path):  # a writer streaming its file, like the GeoPackage writer
    with open(path, "wb") as fh:
        for _ in range(64):
            fh.write(b"g" * 4096)

files = {"sites.geojson": b'{"type": "FeatureCollection", "features": []}\n',
         "summary.csv": b"hazard,pct\n"}
files[failing] = gpkg if failing.endswith(".gpkg") else b"x" * 200_000
files["manifest.json"] = b"{}\n"
try:
    write_run(out, "20250201T000000Z-bbbbbb", files)
except OutputError as exc:
    print(exc)
    sys.exit(3)
print("written")
"""


@pytest.mark.parametrize("failing", ["charts/map.png", "sites.gpkg"])
def test_a_full_disk_while_writing_outputs_keeps_the_previous_run(tmp_path, failing):
    from sitescreen.outputs.run_folder import latest_run, write_run

    out = tmp_path / "results"
    first = write_run(out, "20250101T000000Z-aaaaaa", {"summary.csv": b"previous\n"})

    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(out), failing],
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.strip() == (
        f"writing {failing} of run 20250201T000000Z-bbbbbb in {out} failed: File too large; "
        "nothing of this run was kept")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["20250101T000000Z-aaaaaa", "LATEST",
                                                     "latest"]
    assert latest_run(out) == first and os.readlink(out / "latest") == first.name
    assert (first / "summary.csv").read_bytes() == b"previous\n"


# -------------------------------------------------------------------------------- processes

SITES = sites_doc(
    site("sh-1", "Shanghai office", lon=121.45, lat=31.22),
    site("sh-2", "Yangpu lab", lon=121.52, lat=31.28),
    site("sh-3", "Xuhui office", address="Xuhui District"),
    site("bj-1", "Beijing office", lon=116.38, lat=39.92, city="Beijing"),
)
COMPARED = ["summary.csv", "site_results.csv", "sites.geojson"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    sites = root / "sites.geojson"
    sites.write_text(json.dumps(SITES), encoding="utf-8")
    return {"root": root, "pack": small_pack(tmp_path_factory), "sites": sites}


def _cli(world: dict, cwd: Path, **popen) -> subprocess.Popen:
    """``sitescreen screen`` without Prefect; cache (``SITESCREEN_HOME=cwd``: "cache") and
    output ("results") are relative to ``cwd``, so runs in different folders have identical manifests. Charts and
    the report are left out (--no-report): they are rendered from the same tables, and their
    reproducibility is tested in test_invariants.py."""
    cwd.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "sitescreen.cli", "screen", str(world["sites"]), "--data",
            str(world["pack"]), "--no-prefect", "--out", "results", "--scenario", "pessimistic",
            "--year", "2050", "--hazard", "water_stress", "--hazard", "river_flood",
            "--no-report"]
    env = {**os.environ, "SITESCREEN_HOME": str(cwd)}
    return subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **popen)


def _finish(proc: subprocess.Popen) -> str:
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _run_dir(stdout: str, cwd: Path) -> Path:
    return cwd / re.search(r"^results: (\S+)$", stdout, re.MULTILINE).group(1)


def _normalised(run_dir: Path, name: str) -> bytes:
    return (run_dir / name).read_bytes().replace(run_dir.name.encode(), b"RUN-ID")


def _manifest(run_dir: Path) -> dict:
    m = json.loads((run_dir / "manifest.json").read_text("utf-8"))
    for key in ("run_id", "created_at", "timings_s"):
        m.pop(key)
    m["request"].pop("cache_dir")  # each run's own SITESCREEN_HOME/cache (absolute)
    return m


def _assert_same_results(run: Path, reference: Path) -> None:
    for name in COMPARED:
        assert _normalised(run, name) == _normalised(reference, name), name
    assert _manifest(run) == _manifest(reference)


def _kill_when(proc: subprocess.Popen, ready: Callable[[float], bool], what: str) -> None:
    """SIGKILL ``proc`` as soon as ``ready(seconds since start)`` holds."""
    start = time.monotonic()
    while not ready(time.monotonic() - start):
        assert proc.poll() is None, f"run ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() - start < 180, f"no {what} within 180 s"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill at {what}"


def _killed_and_restarted(world: dict) -> dict:
    """Kill the CLI at three moments, each restart meeting what the last kill left behind:
    1. while importing; 2. once the result store holds its first layer; 3. while the outputs
    are being written (a hidden .tmp-* run folder exists). Then run it to the end."""
    cwd = world["root"] / "killed"
    store, out = cwd / "cache" / "results", cwd / "results"
    moments = [(lambda t: t >= 0.5, "0.5 s"),
               (lambda t: bool(list(store.glob("*/part-*.parquet"))), "the first stored layer"),
               (lambda t: bool(list(out.glob(".tmp-*"))), "writing the outputs")]
    for ready, what in moments:
        _kill_when(_cli(world, cwd), ready, what)
    left = {p.name for p in out.glob(".tmp-*")}
    had_latest = (out / "latest").exists()
    run = _run_dir(_finish(_cli(world, cwd)), cwd)
    return {"cwd": cwd, "run": run, "left": left, "had_latest": had_latest}


class _Background:
    """Run ``fn`` in a thread; ``join()`` returns its result or raises its error. The kill
    sequence runs beside the other process tests: each CLI run keeps one core busy."""

    def __init__(self, fn: Callable[[], dict]) -> None:
        self.result: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], dict]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:  # re-raised in the test that joins
            self.error = exc

    def join(self) -> dict:
        self.thread.join(600)
        assert not self.thread.is_alive(), "kill sequence still running after 600 s"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(scope="module")
def killed(world):
    background = _Background(lambda: _killed_and_restarted(world))
    yield background
    background.thread.join(600)  # never leave its processes behind


@pytest.fixture(scope="module")
def reference(world, killed) -> dict:  # slow: two CLI runs, beside the kill sequence
    """Two runs started at once in one folder: same cache, same output folder."""
    cwd = world["root"] / "together"
    procs = [_cli(world, cwd) for _ in range(2)]
    runs = [_run_dir(_finish(p), cwd) for p in procs]
    return {"cwd": cwd, "runs": runs}


@pytest.mark.slow
def test_two_runs_at_once_on_one_cache_both_complete_with_equal_results(reference):
    cwd, (a, b) = reference["cwd"], reference["runs"]
    assert a != b and a.parent == b.parent == cwd / "results"
    _assert_same_results(a, b)
    assert (cwd / "results" / "latest").resolve() in (a.resolve(), b.resolve())
    assert not list((cwd / "results").glob(".tmp-*"))

    # The result store: every part readable, one row per site location after merging.
    store = cwd / "cache" / "results"
    layers = [d for d in store.iterdir() if d.is_dir() and d.name != "snapshots"]
    assert len(layers) == 2  # water stress and river flood for one narrative and year
    # The run's snapshot: one or two parts (one per run), each readable, 4 locations.
    (snapshot,) = (store / "snapshots").iterdir()
    snap_parts = sorted(snapshot.glob("part-*.arrow"))
    assert 1 <= len(snap_parts) <= 2
    assert pd.concat([pa.ipc.open_file(pa.memory_map(str(p))).read_pandas()
                      for p in snap_parts])["loc"].nunique() == 4
    for layer in layers:
        parts = sorted(layer.glob("part-*.parquet"))
        assert 1 <= len(parts) <= 2 and json.loads((layer / "meta.json").read_text())
        rows = pd.concat([pd.read_parquet(p) for p in parts])
        assert rows["loc"].nunique() == 4 and len(rows) in (4, 8)
    # The geocode cache: intact, and holding the one address-only site.
    with sqlite3.connect(cwd / "cache" / "geocode.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(GeocodeCache(cwd / "cache" / "geocode.sqlite")) >= 1


def _full_disk() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited by exec: writes fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.RLIM_INFINITY))


@pytest.mark.slow
def test_the_cli_on_a_full_disk_fails_cleanly_and_keeps_earlier_runs(world, reference):
    cwd = reference["cwd"]
    before = {p.name: p.stat().st_mtime_ns for p in (cwd / "results").iterdir()}
    latest = os.readlink(cwd / "results" / "latest")

    proc = _cli(world, cwd, preexec_fn=_full_disk)
    stdout, stderr = proc.communicate(timeout=240)

    assert proc.returncode == 2, stderr[-3000:]
    # A probe write finds the full disk before any hazard is sampled (the write-time
    # messages of a disk filling up during the outputs are tested above).
    assert re.search(r"^error: the output folder \(--out\) results refuses writes \(File too "
                     r"large\): free space there .*; nothing was computed$", stderr,
                     re.MULTILINE), stderr[-3000:]
    assert "sites sampled" not in stderr
    assert "Traceback" not in stderr
    after = {p.name: p.stat().st_mtime_ns for p in (cwd / "results").iterdir()}
    assert after == before and os.readlink(cwd / "results" / "latest") == latest
    for run in reference["runs"]:
        _assert_same_results(run, reference["runs"][0])


@pytest.mark.slow
def test_a_run_killed_at_any_step_completes_when_started_again(killed, reference):
    result = killed.join()
    out, run = result["cwd"] / "results", result["run"]
    assert len(result["left"]) == 1  # SIGKILL cannot clean up; a hidden folder is no run
    assert not result["had_latest"]  # no killed run was ever published

    _assert_same_results(run, reference["runs"][0])
    assert (out / "latest").resolve() == run.resolve()
    assert {p.name for p in out.iterdir()} == {run.name, "latest", "LATEST", *result["left"]}
    expected = {p.relative_to(reference["runs"][0]).as_posix()
                for p in reference["runs"][0].rglob("*")} - {"changes.json", "changes.csv"}
    assert expected <= {p.relative_to(run).as_posix() for p in run.rglob("*")}
