"""Fetch one URL into a local file: resumable, verified, atomic, with a provenance record.

A file is streamed to ``<dest>.part``, resumed with an HTTP ``Range`` request when a transfer
breaks, checked against its expected size and SHA-256, and only then renamed into place, so a
cache never holds a half-written or unverified file under its real name. Next to it a sidecar
``<file>.sha256.json`` records where it came from (url, origin, upstream url), its checksum,
size and retrieval time: datasets that upstream re-issues in place (IBTrACS) have no static
checksum, so the one seen at fetch time is what
:func:`sitescreen.data.datasets.verify_dataset` checks later.

This module moves one URL to one path and takes no catalog entry: :mod:`sitescreen.data.datasets`
decides which files a dataset has, where each comes from and where it goes, and calls
:func:`fetch` for each.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests

from sitescreen import __version__
from sitescreen.data.content import HTML_PREFIXES, MAGIC
from sitescreen.data.sources import SIDECAR_SUFFIX
from sitescreen.errors import CatalogError, ChecksumError, ContentError, DownloadError
from sitescreen.files import atomic_write

__all__ = [
    "FetchResult",
    "fetch",
    "retry_after_seconds",
    "redact_url",
    "sha256_file",
    "read_sidecar",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_RETRIES",
]

logger = logging.getLogger(__name__)

#: Refuse anything larger: the biggest catalog file (an Aqueduct Floods global tile) is well
#: under 1 GiB, so 8 GiB only stops a runaway or hostile server.
DEFAULT_MAX_BYTES = 8 * 1024**3
#: (connect, read) seconds; read is the longest silence tolerated between two chunks.
DEFAULT_TIMEOUT: tuple[float, float] = (15.0, 60.0)
DEFAULT_RETRIES = 5
#: Longest Retry-After (s) we honour; a server asking for more gets a clear error instead.
MAX_RETRY_AFTER = 300.0
_CHUNK = 1024 * 1024
#: Network reads: a connection reset loses at most the bytes of the read in progress.
_NET_CHUNK = 64 * 1024
_RETRY_STATUS = {408, 425, 429}  # and every 5xx
_SENSITIVE_KEY = re.compile(
    r"(key|token|secret|passw|pwd|sig|signature|credential|auth|session)", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)

ProgressFn = Callable[[int, int | None], None]
#: A content check: (file, its real name) -> what is wrong with it, or None.
ContentCheck = Callable[[Path, str], "str | None"]


# --------------------------------------------------------------------------------------------
# Value objects


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One file in the cache after :func:`fetch`.

    ``bytes`` is the file size; ``transferred`` what this call actually moved (0 when the
    file came from the cache, less than ``bytes`` after a resume).
    """

    path: Path
    url: str
    bytes: int
    sha256: str
    retrieved_at: str
    resumed: bool = False
    from_cache: bool = False
    transferred: int = 0
    origin: str = ""

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["path"] = str(self.path)
        return {k: v for k, v in d.items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FetchResult:
        return cls(**{**data, "path": Path(data["path"])})


# --------------------------------------------------------------------------------------------
# URLs


def redact_url(url: str) -> str:
    """A URL safe to print and store: no password, no key/token/signature values.

    >>> redact_url("https://me:pw@host/f.zip?token=abc&x=1")
    'https://me:***@host/f.zip?token=***&x=1'
    """
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https"):
        return str(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SENSITIVE_KEY.search(k) else v) for k, v in pairs],
                          safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _local_path(url: str) -> Path | None:
    """The local path a source names (plain path or file:// URL), None for http(s)."""
    parts = urlsplit(str(url))
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        return Path(url2pathname(parts.path))
    if parts.scheme == "" or len(parts.scheme) == 1:  # a plain path, or a Windows drive letter
        return Path(url)
    raise CatalogError(
        f"unsupported URL scheme {parts.scheme!r} in {redact_url(url)}: only http, https and "
        "local paths (file://) are allowed")

# --------------------------------------------------------------------------------------------
# Sidecars and hashing


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_json_record(record: str | Path) -> dict | None:
    """A JSON provenance record (a sidecar, a window record), or None when it is absent,
    unreadable or not an object: a file without a readable record counts as not fetched."""
    try:
        data = json.loads(Path(record).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_sidecar(path: str | Path) -> dict | None:
    """The provenance record of a cached file, or None when it has none (or it is unreadable)."""
    return read_json_record(_sidecar(Path(path)))


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write(path, (json.dumps(dict(data), indent=2, sort_keys=True) + "\n").encode())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _cached(dest: Path, url: str, sha256: str | None, expected_size: int | None,
            check: ContentCheck | None = None) -> FetchResult | None:
    """The cached file as a FetchResult when present and verified, else None.

    Verified means: the size is right, and the SHA-256 equals the catalog's (when given) or the
    sidecar's. When the sidecar's size and modification time still match the file, its recorded
    checksum is trusted without re-reading the file
    (:func:`sitescreen.data.datasets.verify_dataset` always re-reads): a global flood tile is
    hundreds of MB and every fetch would otherwise hash the whole cache.

    With a content ``check`` (datasets without a pinned checksum), a file whose sidecar does
    not record a passed check for this very version is checked now; one that fails is not
    the dataset (an error page stored by an older version, a cut transfer) and is fetched
    again.
    """
    if not dest.is_file():
        return None
    st = dest.stat()
    if check is not None:
        side = read_sidecar(dest) or {}
        if side.get("content_checked_mtime_ns") != st.st_mtime_ns:
            problem = check(dest, dest.name)
            if problem:
                logger.warning("%s: the cached file is not the dataset (%s); fetching it again",
                               dest, problem)
                return None
            if side:
                _write_json(_sidecar(dest), {**side, "content_checked_mtime_ns": st.st_mtime_ns})
    if expected_size is not None and st.st_size != expected_size:
        logger.warning("%s: cached size %d differs from the expected %d; fetching again",
                       dest, st.st_size, expected_size)
        return None
    side = read_sidecar(dest)
    want = sha256.lower() if sha256 else None
    if (side and side.get("size") == st.st_size
            and side.get("mtime_ns") == st.st_mtime_ns
            and (want is None or str(side.get("sha256", "")).lower() == want)):
        actual = str(side.get("sha256", ""))
    elif want or side:
        actual = sha256_file(dest)
        if actual != (want or str(side.get("sha256", "")).lower()):
            logger.warning("%s: cached file does not match its checksum; fetching again", dest)
            return None
        if side is None or side.get("mtime_ns") != st.st_mtime_ns:
            side = {**(side or {"url": redact_url(url), "retrieved_at": _now()}),
                    "sha256": actual, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            _write_json(_sidecar(dest), side)
    else:
        return None  # nothing to verify against: fetch again rather than trust it
    return FetchResult(path=dest, url=str(side.get("url", "")) if side else redact_url(url),
                       bytes=st.st_size, sha256=actual,
                       retrieved_at=str(side.get("retrieved_at", "")) if side else "",
                       from_cache=True, origin=str(side.get("origin", "")) if side else "")


# --------------------------------------------------------------------------------------------
# Content checks


_KINDS = {
    ".tif": "a GeoTIFF", ".tiff": "a GeoTIFF", ".zip": "a zip archive", ".csv": "a CSV file",
    ".gz": "a gzip file", ".nc": "a netCDF file",
}


def _kind(dest: Path) -> tuple[str, str | None]:
    suffix = dest.suffix.lower()
    return suffix, _KINDS.get(suffix)


def _check_content_type(url: str, dest: Path, content_type: str) -> None:
    suffix, kind = _kind(dest)
    if kind is None or not content_type:
        return
    ctype = content_type.split(";")[0].strip().lower()
    refused = ctype in ("text/html", "application/xhtml+xml")
    if suffix != ".csv":  # binary data never comes as text, XML or JSON
        refused = refused or ctype.startswith("text/") or ctype in (
            "application/xml", "application/json")
    elif ctype in ("application/xml", "application/json"):
        refused = True
    if refused:
        raise DownloadError(
            f"{redact_url(url)}: the server sent {ctype} instead of {kind} ({dest.name}); "
            "the URL may have moved or need a login. Check the dataset's homepage, or use a "
            "mirror (--mirror)")


def _sniff(url: str, dest: Path, head: bytes) -> None:
    """Refuse an HTML/XML error page or a file whose leading bytes are not the expected format."""
    suffix, kind = _kind(dest)
    if kind is None or not head:
        return
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    snippet = head[:60].decode("utf-8", "replace").replace("\n", " ")
    if text.startswith(HTML_PREFIXES):
        raise DownloadError(
            f"{redact_url(url)}: received an HTML/XML page instead of {kind} ({dest.name}); it "
            f"begins {snippet!r}. The URL may have moved or need a login")
    magic = MAGIC.get(suffix)
    if magic and len(head) >= 4 and not head.startswith(magic):
        raise DownloadError(
            f"{redact_url(url)}: the data is not {kind} ({dest.name}): it begins {head[:8]!r}")


# --------------------------------------------------------------------------------------------
# fetch


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid.

    >>> retry_after_seconds("3")
    3.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def fetch(url: str, dest: str | Path, *, sha256: str | None = None,
          expected_size: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
          timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
          retries: int = DEFAULT_RETRIES, resume: bool = True,
          progress: ProgressFn | None = None, session: requests.Session | None = None,
          backoff: float = 1.0, force: bool = False,
          sidecar: Mapping[str, Any] | None = None,
          check: ContentCheck | None = None) -> FetchResult:
    """Download ``url`` to ``dest`` (or copy a local file), verified and atomically.

    Parameters
    ----------
    url : str
        http(s) URL, ``file://`` URL or local path (a mirror folder).
    dest : path
        Final file name. Data streams to ``<dest>.part`` and is renamed only once verified.
    sha256, expected_size : optional
        Expected SHA-256 (hex) and size in bytes; a mismatch raises :class:`ChecksumError`
        and leaves neither the file nor the ``.part`` behind.
    max_bytes : int
        Refuse a larger file (from Content-Length, or while streaming).
    timeout : float or (connect, read)
        Seconds, passed to requests.
    retries : int
        Further attempts after connection errors, timeouts, broken transfers, HTTP 408, 425,
        429 (waiting as long as Retry-After asks, up to 300 s) and 5xx, with exponential
        back-off ``backoff * 2**attempt`` seconds.
    resume : bool
        Continue a ``.part`` left by an earlier attempt with ``Range: bytes=N-`` (and
        ``If-Range``, so a file changed upstream restarts from zero). A server answering 206
        is appended to; one answering 200 (no range support) is downloaded from the start.
    progress : callable(done, total), optional
        Called with bytes so far and the total (None when unknown).
    session : requests.Session, optional
        Reused for connection pooling; one is created (and closed) otherwise.
    force : bool
        Download even when a verified copy is cached.
    sidecar : mapping, optional
        Extra fields for the ``<dest>.sha256.json`` record (dataset, version, origin,
        upstream_url).
    check : callable(path, name) -> str or None, optional
        A content check (see :mod:`sitescreen.data.content`) for files without a pinned
        checksum: a download that fails it is removed and refused; a cached file that fails
        it is fetched again.

    Returns
    -------
    FetchResult

    Raises
    ------
    DownloadError
        Names the (redacted) URL and the cause: HTTP status, refused content, size cap,
        retries exhausted.
    ChecksumError
        Size or SHA-256 differs from what was expected.
    CatalogError
        The URL scheme is not http, https or file.
    """
    dest = Path(dest)
    local = _local_path(url)
    extra = dict(sidecar or {})
    if not force:
        hit = _cached(dest, url, sha256, expected_size, check)
        if hit is not None:
            logger.info("%s: cached and verified (%s)", dest, hit.sha256[:12])
            if progress:
                progress(hit.bytes, hit.bytes)
            return hit
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part_meta = dest.with_name(dest.name + ".part.json")
    try:
        if local is not None:
            transferred = _copy_local(local, part, dest, url=url, max_bytes=max_bytes,
                                      progress=progress)
            resumed, validators = False, {}
        else:
            own = session is None
            sess = session or requests.Session()
            try:
                transferred, resumed, validators = _download(
                    sess, url, part, part_meta, dest, expected_size=expected_size,
                    max_bytes=max_bytes, timeout=timeout, retries=retries, resume=resume,
                    progress=progress, backoff=backoff)
            finally:
                if own:
                    sess.close()
        size = part.stat().st_size
        if expected_size is not None and size != expected_size:
            raise ChecksumError(
                f"{redact_url(url)}: received {size} bytes, expected {expected_size}; the file "
                "was removed. Upstream may have changed the file: check the dataset version")
        actual = sha256_file(part)
        if sha256 and actual != sha256.lower():
            raise ChecksumError(
                f"{redact_url(url)}: SHA-256 {actual} does not match the expected {sha256.lower()}"
                "; the file was removed. Fetch again; if it persists, upstream changed the file")
        problem = check(part, dest.name) if check is not None else None
        if problem:
            raise ContentError(
                f"{redact_url(url)}: the server answered, but {problem}; {dest.name} was not "
                "kept. The URL may have moved or need a login, or the transfer was cut short: "
                "fetch again, or use a mirror (--mirror)")
    except ChecksumError:
        # A wrong file must not linger, neither as .part (it would be resumed) nor as a stale
        # copy under the real name.
        _remove(part, part_meta, dest, _sidecar(dest))
        raise
    except DownloadError:
        raise
    except OSError as exc:
        raise DownloadError(f"{redact_url(url)}: cannot write {part}: {exc}") from exc
    os.replace(part, dest)
    part_meta.unlink(missing_ok=True)
    st = dest.stat()
    retrieved_at = _now()
    record = {**extra, "url": redact_url(url) if local is None else str(local),
              "sha256": actual, "size": st.st_size, "retrieved_at": retrieved_at,
              "mtime_ns": st.st_mtime_ns, "sitescreen": __version__, **validators}
    if check is not None:
        record["content_checked_mtime_ns"] = st.st_mtime_ns
    record.setdefault("version", "")
    _write_json(_sidecar(dest), record)
    logger.info("%s: fetched %d bytes from %s (sha256 %s)", dest, st.st_size,
                record["url"], actual[:12])
    return FetchResult(path=dest, url=record["url"], bytes=st.st_size, sha256=actual,
                       retrieved_at=retrieved_at, resumed=resumed, from_cache=False,
                       transferred=transferred, origin=str(extra.get("origin", "")))


def _copy_local(src: Path, part: Path, dest: Path, *, url: str, max_bytes: int,
                progress: ProgressFn | None) -> int:
    if not src.is_file():
        raise DownloadError(f"{src}: no such file (source of {dest.name})")
    total = src.stat().st_size
    if total > max_bytes:
        raise DownloadError(f"{src}: {total} bytes exceeds the limit of {max_bytes} bytes")
    done = 0
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            while block := fin.read(_CHUNK):
                if done == 0:
                    _sniff(url, dest, block[:512])
                fout.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{src}: cannot copy to {part}: {exc}") from exc
    return done


def _download(sess: requests.Session, url: str, part: Path, part_meta: Path, dest: Path, *,
              expected_size: int | None, max_bytes: int, timeout: Any, retries: int,
              resume: bool, progress: ProgressFn | None,
              backoff: float) -> tuple[int, bool, dict]:
    """Stream into ``part`` with retries; return (bytes transferred, resumed, validators)."""
    shown = redact_url(url)
    if part.exists() and (not resume or _part_validators(part_meta, shown) is None):
        part.unlink()  # a .part of unknown origin cannot be trusted to continue
    transferred = 0
    resumed = False
    attempt = 0
    while True:
        try:
            got, was_resumed, validators = _attempt(
                sess, url, part, part_meta, dest, expected_size=expected_size,
                max_bytes=max_bytes, timeout=timeout, resume=resume, progress=progress)
            transferred += got
            resumed = resumed or was_resumed
            return transferred, resumed, validators
        except _Retry as exc:
            reason, wait, got = str(exc), exc.wait, getattr(exc, "got", 0)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            reason, wait, got = f"{type(exc).__name__}: {exc}", None, getattr(exc, "got", 0)
        except requests.RequestException as exc:
            raise DownloadError(f"{shown}: {type(exc).__name__}: {exc}") from exc
        transferred += got
        # An attempt that moved a good share of data before breaking is progress, not a failure:
        # a long download over a flaky link must not run out of retries while advancing.
        if got < _CHUNK or not resume or retries == 0:
            attempt += 1
        if attempt > retries:
            raise DownloadError(
                f"{shown}: giving up after {attempt} attempts; last error: {reason}. Run the "
                "fetch again to resume, or use a mirror (--mirror)", transient=True)
        if wait is None:
            wait = backoff * 2 ** max(attempt - 1, 0)
        elif wait > MAX_RETRY_AFTER:
            raise DownloadError(
                f"{shown}: the server asks to retry after {wait:.0f} s ({reason}); try later", transient=True)
        logger.warning("%s: %s; retry %d of %d in %.1f s", shown, reason, max(attempt, 1),
                       retries, wait)
        time.sleep(wait)


def _part_validators(part_meta: Path, shown_url: str) -> dict[str, str] | None:
    """ETag/Last-Modified of the response a .part came from; None when it is not this URL's."""
    try:
        meta = json.loads(part_meta.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("url") != shown_url:
        return None
    return {k: str(meta[k]) for k in ("etag", "last_modified") if meta.get(k)}


def _attempt(sess: requests.Session, url: str, part: Path, part_meta: Path, dest: Path, *,
             expected_size: int | None, max_bytes: int, timeout: Any,
             resume: bool, progress: ProgressFn | None) -> tuple[int, bool, dict]:
    shown = redact_url(url)
    offset = part.stat().st_size if (resume and part.exists()) else 0
    validators = (_part_validators(part_meta, shown) or {}) if offset else {}
    # identity: a gzip-encoded transfer would make Range offsets refer to the compressed bytes
    headers = {"Accept-Encoding": "identity", "User-Agent": f"sitescreen/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validators.get("etag") or validators.get("last_modified"):
            headers["If-Range"] = validators.get("etag") or validators["last_modified"]
    got = 0
    with sess.get(url, headers=headers, stream=True, timeout=timeout) as r:
        status = r.status_code
        if status == 416 and offset:
            m = _UNSATISFIED_RANGE.search(r.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == offset:
                return 0, True, validators  # the .part was already complete
            part.unlink(missing_ok=True)
            raise _Retry(f"HTTP 416 for a resume at byte {offset}; restarting", wait=0.0)
        if status in _RETRY_STATUS or status >= 500:
            raise _Retry(f"HTTP {status} {r.reason or ''}".strip(),
                         wait=retry_after_seconds(r.headers.get("Retry-After")))
        if status >= 400 or status not in (200, 206):
            hint = {404: "the file is not there (check the URL or the mirror layout "
                         "<mirror>/<dataset folder>/<file>)",
                    401: "the server wants credentials", 403: "access is denied"}.get(status, "")
            raise DownloadError(
                f"{shown}: HTTP {status} {r.reason or ''}".rstrip() + (f"; {hint}" if hint else ""))
        _check_content_type(url, dest, r.headers.get("Content-Type", ""))
        length = r.headers.get("Content-Length")
        if status == 206:
            m = _CONTENT_RANGE.search(r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"server sent range {r.headers.get('Content-Range')!r} for a "
                             f"request from byte {offset}; restarting", wait=0.0)
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode, start, resumed = "ab", offset, True
        else:
            total = int(length) if length and length.isdigit() else None
            mode, start, resumed = "wb", 0, False
            validators = {k: v for k, v in (("etag", r.headers.get("ETag")),
                                            ("last_modified", r.headers.get("Last-Modified")))
                          if v}
        if total is not None and total > max_bytes:
            _remove(part, part_meta)
            raise DownloadError(
                f"{shown}: {total} bytes exceeds the limit of {max_bytes} bytes; raise "
                "max_bytes if this file is expected to be that large")
        if total is not None and expected_size is not None and total != expected_size:
            _remove(part, part_meta)
            raise ChecksumError(
                f"{shown}: the server reports {total} bytes, the catalog expects "
                f"{expected_size}; upstream may have changed the file (check the version)")
        if status == 200:
            _write_json(part_meta, {"url": shown, **validators})
        # Count the bytes ourselves: urllib3's own length check raises inside a buffered read
        # and drops the bytes that did arrive, which a resume would then fetch again.
        r.raw.enforce_content_length = False
        done = start
        try:
            with open(part, mode) as fh:
                for chunk in r.iter_content(_NET_CHUNK):
                    if not chunk:
                        continue
                    if done == 0:
                        _sniff(url, dest, chunk[:512])
                    fh.write(chunk)
                    done += len(chunk)
                    got += len(chunk)
                    if done > max_bytes:
                        raise DownloadError(
                            f"{shown}: more than {max_bytes} bytes received; stopped")
                    if progress:
                        progress(done, total)
        except DownloadError:
            part.unlink(missing_ok=True)
            part_meta.unlink(missing_ok=True)
            raise
        except requests.RequestException as exc:
            exc.got = got  # type: ignore[attr-defined]  # counted by the caller
            raise
    if total is not None and done < total:
        err = _Retry(f"connection closed after {done} of {total} bytes")
        err.got = got  # type: ignore[attr-defined]
        raise err
    return got, resumed, validators
