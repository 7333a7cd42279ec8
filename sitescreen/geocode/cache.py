"""Persistent geocoding cache: one SQLite file, safe for several processes at once.

Rows are keyed by (provider, normalised query) and hold the provider's answer: WGS 84
lon/lat, the datum the provider answered in, precision, confidence, status, the matched
place, the candidates and when it was asked. Online providers are slow, rate-limited and
sometimes paid for, so a site is only ever sent once unless ``refresh`` is asked for.

SQLite runs in WAL mode (readers never block the writer) with a busy timeout, so a Prefect
flow with several workers, or two CLI runs, can share one cache file. Transient failures
(timeouts, server errors) are never stored. API keys are never part of a row.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from sitescreen.errors import GeocodeError
from sitescreen.geocode.model import GeocodeResult

__all__ = ["GeocodeCache", "DEFAULT_CACHE_PATH"]

log = logging.getLogger(__name__)

DEFAULT_CACHE_PATH = Path("cache") / "geocode.sqlite"
_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS geocodes (
    provider    TEXT NOT NULL,
    query_key   TEXT NOT NULL,
    status      TEXT NOT NULL,
    lon         REAL,
    lat         REAL,
    datum       TEXT NOT NULL DEFAULT 'WGS84',
    precision   TEXT NOT NULL DEFAULT '',
    confidence  REAL NOT NULL DEFAULT 0,
    query       TEXT NOT NULL DEFAULT '',
    matched     TEXT NOT NULL DEFAULT '',
    candidates  TEXT NOT NULL DEFAULT '[]',
    reason      TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    PRIMARY KEY (provider, query_key)
) WITHOUT ROWID;
"""
_COLUMNS = ("status", "lon", "lat", "datum", "precision", "confidence", "query", "matched",
            "candidates", "reason", "source", "created_at")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class GeocodeCache:
    """Geocoding answers on disk, keyed by (provider, normalised query).

    Parameters
    ----------
    path : SQLite file (created with its folder when missing); default
        ``cache/geocode.sqlite``.
    max_age : seconds after which a stored answer is ignored (None: kept forever).
    timeout : seconds a writer waits for another process's lock before failing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sitescreen.geocode import AddressQuery, GeocodeResult
    >>> cache = GeocodeCache(pathlib.Path(tempfile.mkdtemp()) / "g.sqlite")
    >>> q = AddressQuery("Xuhui District, Shanghai", country="CN")
    >>> cache.put("offline", q, GeocodeResult("ok", 121.44, 31.19, provider="offline"))
    >>> cache.get("offline", q).lon
    121.44
    >>> cache.get("nominatim", q) is None
    True
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 max_age: float | None = None, timeout: float = 30.0) -> None:
        if path is None:  # <SITESCREEN_HOME>/cache/geocode.sqlite (sitescreen.home)
            from sitescreen.home import cache_dir

            path = cache_dir() / DEFAULT_CACHE_PATH.name
        self.path = Path(path)
        self.max_age = max_age
        self.timeout = float(timeout)
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._initialised = False

    def __repr__(self) -> str:
        return f"GeocodeCache({str(self.path)!r})"

    # ------------------------------------------------------------------- connections
    def _connect(self) -> sqlite3.Connection:
        """One connection per thread and process (sqlite3 connections are not shareable)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        deadline = time.monotonic() + self.timeout
        pause = 0.01
        while True:
            try:
                conn = self._open()
                break
            except sqlite3.OperationalError as exc:
                # Switching a new file to WAL takes an exclusive lock without calling the
                # busy handler, so two processes opening the cache at once must retry.
                if not _is_busy(exc) or time.monotonic() + pause > deadline:
                    raise self._open_error(exc) from exc
                time.sleep(pause * (1 + random.random()))
                pause = min(pause * 2, 0.5)
            except sqlite3.Error as exc:
                raise self._open_error(exc) from exc
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            # WAL lets readers go on while another process writes.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.debug("geocode cache %s: journal mode %s (WAL unavailable)", self.path, mode)
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._init_lock:
                if not self._initialised:
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                    self._initialised = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_error(self, exc: sqlite3.Error) -> GeocodeError:
        return GeocodeError(
            f"cannot open the geocoding cache {self.path}: {exc}; check the folder is "
            "writable and no other program holds it, or pass another cache path")

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> GeocodeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- access
    @staticmethod
    def _key(query) -> str:
        return query if isinstance(query, str) else query.key

    def get(self, provider: str, query) -> GeocodeResult | None:
        """The stored answer of ``provider`` to ``query`` (an AddressQuery or its key)."""
        return self.get_many(provider, [query]).get(self._key(query))

    def get_many(self, provider: str, queries: Iterable) -> dict[str, GeocodeResult]:
        """Stored answers for many queries at once: {query key: result}."""
        keys = list(dict.fromkeys(self._key(q) for q in queries))
        out: dict[str, GeocodeResult] = {}
        if not keys:
            return out
        conn = self._connect()
        oldest = time.time() - self.max_age if self.max_age is not None else -math.inf
        cols = ", ".join(_COLUMNS)
        try:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                chunk = keys[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT query_key, {cols} FROM geocodes "
                    f"WHERE provider = ? AND query_key IN ({marks})", [provider, *chunk])
                for key, *values in rows:
                    row = dict(zip(_COLUMNS, values, strict=True))
                    if row["created_at"] < oldest:
                        continue
                    out[key] = _to_result(row, provider)
        except sqlite3.Error as exc:
            raise GeocodeError(f"geocoding cache {self.path} unreadable: {exc}") from exc
        return out

    def put(self, provider: str, query, result: GeocodeResult) -> None:
        """Store one answer (transient failures are skipped)."""
        self.put_many(provider, [(query, result)])

    def put_many(self, provider: str, items: Iterable[tuple[object, GeocodeResult]]) -> int:
        """Store answers in one transaction; returns how many were stored."""
        now = time.time()
        rows = []
        for query, r in items:
            if r.transient:
                continue
            rows.append((provider, self._key(query), r.status, _num(r.lon), _num(r.lat),
                         r.datum, r.precision.value, r.confidence, r.query, r.matched,
                         json.dumps(list(r.candidates), ensure_ascii=False), r.reason,
                         r.provider, now))
        if not rows:
            return 0
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO geocodes (provider, query_key, status, lon, lat, "
                    "datum, precision, confidence, query, matched, candidates, reason, source, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise GeocodeError(
                f"could not write to the geocoding cache {self.path}: {exc}; another process "
                f"may hold it longer than {self.timeout:g} s") from exc
        return len(rows)

    def clear(self, provider: str | None = None) -> int:
        """Delete stored answers (of one provider, or all); returns how many."""
        conn = self._connect()
        if provider is None:
            cur = conn.execute("DELETE FROM geocodes")
        else:
            cur = conn.execute("DELETE FROM geocodes WHERE provider = ?", (provider,))
        return cur.rowcount

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM geocodes").fetchone()[0])

    def stats(self) -> dict[str, int]:
        """Number of stored answers per provider."""
        rows = self._connect().execute(
            "SELECT provider, COUNT(*) FROM geocodes GROUP BY provider ORDER BY provider")
        return {p: int(n) for p, n in rows}


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _to_result(row: dict, provider: str) -> GeocodeResult:
    return GeocodeResult(
        status=row["status"],
        lon=math.nan if row["lon"] is None else row["lon"],
        lat=math.nan if row["lat"] is None else row["lat"],
        provider=row["source"] or provider, precision=row["precision"],
        confidence=row["confidence"], datum=row["datum"], query=row["query"],
        matched=row["matched"], candidates=tuple(json.loads(row["candidates"] or "[]")),
        reason=row["reason"])
