"""SQLite geocoding cache: round trip, refresh semantics, concurrent writers."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from sitescreen.geocode import AddressQuery, GeocodeCache, GeocodeResult, Precision

REPO = Path(__file__).resolve().parents[1]
OK = GeocodeResult("ok", 121.4361, 31.1885, provider="amap", precision=Precision.ADDRESS,
                   confidence=0.9, datum="GCJ-02", query="上海市徐汇区虹梅路1900号",
                   matched="上海市徐汇区虹梅路1900号", candidates=("x", "y"))


def test_round_trip_and_keys(tmp_path):
    cache = GeocodeCache(tmp_path / "sub" / "g.sqlite")
    q = AddressQuery("上海市徐汇区虹梅路1900号", "Shanghai", "CN")
    assert cache.get("amap", q) is None
    cache.put("amap", q, OK)
    got = cache.get("amap", AddressQuery("上海市徐汇区虹梅路1900号 ", "shanghai", "cn"))
    assert got == OK  # same normalised key; every field kept, datum of origin included
    assert cache.get("nominatim", q) is None
    assert len(cache) == 1 and cache.stats() == {"amap": 1}
    mode = sqlite3.connect(tmp_path / "sub" / "g.sqlite").execute(
        "PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unresolved_is_stored_but_transient_is_not(tmp_path):
    cache = GeocodeCache(tmp_path / "g.sqlite")
    none = GeocodeResult.unresolved("amap", "q", "AMap found no match")
    flaky = GeocodeResult.unresolved("amap", "r", "timeout", transient=True)
    assert cache.put_many("amap", [("q", none), ("r", flaky)]) == 1
    got = cache.get("amap", "q")
    assert got.status == "unresolved" and math.isnan(got.lon) and got.reason == none.reason
    assert cache.get("amap", "r") is None


def test_replace_and_max_age(tmp_path):
    path = tmp_path / "g.sqlite"
    cache = GeocodeCache(path)
    cache.put("offline", "k", OK)
    newer = GeocodeResult.from_dict({**OK.to_dict(), "lon": 100.0})
    cache.put("offline", "k", newer)
    assert cache.get("offline", "k").lon == 100.0 and len(cache) == 1
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE geocodes SET created_at = created_at - 7200")
    assert GeocodeCache(path, max_age=3600).get("offline", "k") is None
    assert GeocodeCache(path).get("offline", "k") is not None
    assert cache.clear("offline") == 1 and len(cache) == 0


def test_threads_write_concurrently(tmp_path):
    cache = GeocodeCache(tmp_path / "g.sqlite")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                cache.put("offline", f"t{t}-{i}", OK)
                assert cache.get("offline", f"t{t}-{i}") is not None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(cache) == 200


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from sitescreen.geocode.cache import GeocodeCache
    from sitescreen.geocode.model import GeocodeResult
    cache = GeocodeCache({path!r}, timeout=30)
    tag = sys.argv[1]
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # start together
    for i in range(150):
        cache.put("nominatim", f"{{tag}}-{{i}}", GeocodeResult("ok", float(i), 1.0, provider=tag))
        cache.get("nominatim", f"{{tag}}-{{i // 2}}")
    print("done")
""")


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "shared.sqlite"
    script = WRITER.format(repo=str(REPO), path=str(path))
    procs = [subprocess.Popen([sys.executable, "-c", script, tag], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "done"
    cache = GeocodeCache(path)
    assert cache.stats() == {"nominatim": 300}
    assert cache.get("nominatim", "b-149").provider == "b"
    assert cache.get("nominatim", "a-7").lon == 7.0
