"""Fetch catalog datasets into a local cache: resumable, verified, idempotent.

A file is streamed to ``<dest>.part``, resumed with an HTTP ``Range`` request when a transfer
breaks, checked against its expected size and SHA-256, and only then renamed into place, so a
cache never holds a half-written or unverified file under its real name. Next to it a sidecar
``<file>.sha256.json`` records where it came from (url, origin, upstream url), its checksum,
size and retrieval time: datasets that upstream re-issues in place (IBTrACS) have no static
checksum, so the one seen at fetch time is what ``verify`` checks later.

The cache is laid out as ``<cache_root>/<entry.local_dir>/<file>``, the layout of a data pack
and of a mirror, so a cache folder is itself a :class:`~sitescreen.datasources.DataSource`
root and a mirror base can stand in for every upstream base.
"""

from __future__ import annotations

import email.utils
import fnmatch
import hashlib
import json
import logging
import os
import re
import string
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from itertools import product
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests

from . import __version__
from .catalog import CatalogEntry
from .datasources import EXTRACTED_SUFFIX, SIDECAR_SUFFIX, DataOrigin
from .errors import (
    CatalogError,
    ChecksumError,
    ConfigError,
    DownloadError,
    OfflineError,
    UnsafePathError,
)
from .scenarios import Narrative, pathway_for

__all__ = [
    "FetchResult",
    "VerifyResult",
    "VerifyStatus",
    "DatasetStatus",
    "fetch",
    "fetch_dataset",
    "verify_dataset",
    "dataset_status",
    "expand_files",
    "remote_files",
    "format_file_name",
    "resolve_mirror",
    "source_url",
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
DatasetProgressFn = Callable[[str, int, int | None], None]


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


class VerifyStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"
    UNVERIFIED = "unverified"  # present, but no catalog checksum and no sidecar to check


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The check of one cached file against the catalog checksum or its sidecar."""

    dataset: str
    file: str
    path: Path
    status: VerifyStatus
    expected_sha256: str = ""
    actual_sha256: str = ""
    size: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["path"] = str(self.path)
        d["status"] = self.status.value
        return {k: v for k, v in d.items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerifyResult:
        return cls(**{**data, "path": Path(data["path"]),
                      "status": VerifyStatus(data["status"])})


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    """What the cache holds of one dataset, from file presence and sidecars (no hashing)."""

    dataset: str
    version: str
    expected: int
    present: int
    missing: tuple[str, ...]
    bytes: int
    origins: tuple[str, ...]
    retrieved_at: str = ""
    extracted: bool | None = None  # archives only: are the catalog files extracted?

    @property
    def state(self) -> str:
        """``cached`` (every file), ``partial`` or ``missing`` (none)."""
        if self.present == 0:
            return "missing"
        if self.present < self.expected or self.extracted is False:
            return "partial"
        return "cached"

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["missing"] = list(self.missing)
        d["origins"] = list(self.origins)
        d["state"] = self.state
        return {k: v for k, v in d.items() if v not in (None, "")}


# --------------------------------------------------------------------------------------------
# File names from the catalog


def format_file_name(template: str, **values: Any) -> str:
    """Fill a catalog file template, applying the upstream naming quirks.

    Aqueduct Floods coastal tiles write the return period with one decimal digit,
    ``rp0002_0``, ``rp0100_0``; the catalog template splits that as ``rp{rp_coast}_{slr}``
    with ``slr = "0"``. The 1.5-year tile already carries its decimal, and upstream names it
    ``rp0001_5`` (``rp0001_5_perc_05`` for the 5th sea-level percentile), not ``rp0001_5_0``.

    >>> format_file_name("inuncoast_{p}_rp{rp_coast}_{slr}.tif", p="rcp8p5", rp_coast="0001_5",
    ...                  slr="0")
    'inuncoast_rcp8p5_rp0001_5.tif'
    >>> format_file_name("inuncoast_{p}_rp{rp_coast}_{slr}.tif", p="rcp8p5", rp_coast="0002",
    ...                  slr="0_perc_05")
    'inuncoast_rcp8p5_rp0002_0_perc_05.tif'
    """
    try:
        name = template.format(**values)
    except (KeyError, ValueError, IndexError) as exc:
        raise CatalogError(f"file template {template!r}: cannot fill with {values}: {exc}") from exc
    if name.startswith("inuncoast_"):
        name = re.sub(r"(_rp\d{4}_[1-9])_0((?:_perc_\d{2})?\.tif)$", r"\1\2", name)
    return name


def _template_fields(template: str) -> list[str]:
    out = []
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None and field_name not in out:
            out.append(field_name)
    return out


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _flood_combos(entry: CatalogEntry) -> list[dict[str, list]]:
    """Value sets for the Aqueduct Floods templates: future tiles and the two baselines."""
    p = entry.params
    try:
        years = [int(y) for y in p["years"]]
        pathways: list[str] = []
        for narrative in Narrative:
            for year in years:
                code = pathway_for(entry.family, narrative, year).code
                if code not in pathways:
                    pathways.append(code)
        future = {
            "pathway": pathways, "model": _as_list(p["river_models"]), "year": years,
            "rp": _as_list(p["river_return_periods"]),
            "subsidence": _as_list(p["coast_subsidence"]),
            "rp_coast": _as_list(p["coast_return_periods"]), "slr": _as_list(p["coast_slr"]),
        }
        historical = str(p.get("historical_pathway", "historical"))
        hist_river = {
            "pathway": [historical], "model": _as_list(p["river_historical_model"]),
            "year": [p.get("river_historical_year", 1980)],
            "rp": _as_list(p["river_return_periods"]),
        }
        hist_coast = {
            "pathway": [historical], "subsidence": _as_list(p["coast_subsidence"]),
            "year": [p.get("coast_historical_year", "hist")],
            "rp_coast": _as_list(p["coast_return_periods"]), "slr": _as_list(p["coast_slr"]),
        }
    except KeyError as exc:
        raise CatalogError(
            f"dataset {entry.id!r}: params lack {exc.args[0]!r}, needed to list its files"
        ) from None
    return [hist_river, hist_coast, future]


def expand_files(entry: CatalogEntry, *, hazards: Iterable[str] | None = None) -> list[str]:
    """Every file name of a dataset the screening reads, templates filled from ``params``.

    Plain names are returned as they are. A template's ``{field}`` takes its values from
    ``params[field]`` (a list or one value), except for the Aqueduct Floods family, whose
    pathways come from the scenario crosswalk (the pathways the narratives map to) and whose
    baseline tiles (riverine 1980 with the WATCH model, coastal ``hist``) are added.

    Parameters
    ----------
    entry : CatalogEntry
    hazards : iterable of str, optional
        Only the files these hazards read, by the globs in ``params["hazard_files"]``
        (e.g. ``["river_flood"]``). A dataset without that table ignores the filter.

    Returns
    -------
    list of str
        Relative file names in a stable order, without duplicates.

    Examples
    --------
    >>> from sitescreen.catalog import load_catalog
    >>> floods = load_catalog().dataset("aqueduct_floods")
    >>> names = expand_files(floods, hazards=["coastal_flood"])
    >>> len(names), names[0]
    (70, 'inuncoast_historical_wtsub_hist_rp0001_5.tif')
    """
    templates = list(entry.files)
    if not any("{" in t for t in templates):
        names = templates
    else:
        combos = (_flood_combos(entry) if entry.family == "aqueduct_floods"
                  else [{k: _as_list(v) for k, v in entry.params.items()}])
        names = []
        for template in templates:
            wanted = _template_fields(template)
            matched = False
            for combo in combos:
                if not set(wanted) <= set(combo):
                    continue
                matched = True
                for values in product(*(combo[f] for f in wanted)):
                    fill = dict(zip(wanted, values, strict=True))
                    names.append(format_file_name(template, **fill))
            if not matched:
                raise CatalogError(
                    f"dataset {entry.id!r}: file template {template!r} uses fields {wanted} "
                    f"that its params do not all provide")
        names = list(dict.fromkeys(names))
    if hazards is not None:
        table = entry.params.get("hazard_files")
        if isinstance(table, Mapping):
            hazards = list(hazards)
            unknown = [h for h in hazards if h not in table]
            if unknown:
                raise CatalogError(
                    f"dataset {entry.id!r} has no files for hazards {unknown}; "
                    f"known: {', '.join(sorted(table))}")
            globs = [g for h in hazards for g in _as_list(table[h])]
            names = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    for name in names:
        _check_relpath(entry, name)
    return names


def remote_files(entry: CatalogEntry, *, hazards: Iterable[str] | None = None) -> list[str]:
    """The files to download: the archive when the dataset ships as one, else its files."""
    if entry.archive:
        return [entry.archive]
    return expand_files(entry, hazards=hazards)


def _select(entry: CatalogEntry, patterns: Sequence[str] | None,
            hazards: Iterable[str] | None = None) -> list[str]:
    names = remote_files(entry, hazards=hazards)
    if not patterns:
        return names
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        sample = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CatalogError(
            f"dataset {entry.id!r}: no file matches {list(patterns)}; its files are named "
            f"like {sample}")
    return chosen


def _check_relpath(entry: CatalogEntry, relpath: str) -> None:
    parts = relpath.replace("\\", "/").split("/")
    if (not relpath or relpath.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relpath)
            or ".." in parts):
        raise UnsafePathError(
            f"dataset {entry.id!r}: file name {relpath!r} would leave the dataset folder; "
            "catalog file names must be relative and must not contain '..'")
    for part in entry.local_dir.replace("\\", "/").split("/"):
        if part in ("", "..") or re.match(r"^[A-Za-z]:", part):
            raise UnsafePathError(
                f"dataset {entry.id!r}: local_dir {entry.local_dir!r} must be a plain relative "
                "folder name")


def _cache_path(entry: CatalogEntry, cache_root: str | Path, relpath: str) -> Path:
    _check_relpath(entry, relpath)
    return Path(cache_root) / entry.local_dir / relpath


def _expected(entry: CatalogEntry, name: str) -> tuple[str | None, int | None]:
    """Catalog checksum and size of a download: they describe the archive, or a lone file."""
    if entry.archive:
        if name == entry.archive:
            return entry.sha256 or None, entry.size
        return None, None
    if len(entry.files) == 1 and "{" not in entry.files[0]:
        return entry.sha256 or None, entry.size
    return None, None


# --------------------------------------------------------------------------------------------
# URLs and mirrors


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


def resolve_mirror(mirror: str | Path | None = None, *,
                   config: Mapping[str, Any] | None = None) -> str | None:
    """The mirror base to use: the argument, else ``$SITESCREEN_MIRROR``, else ``config``.

    ``config`` is a settings mapping; its ``mirror`` key (or ``data.mirror``) is read. A mirror
    is a local folder (path or ``file://`` URL) or an http(s) URL laid out as
    ``<mirror>/<local_dir>/<file name>``.
    """
    value: Any = mirror
    if value in (None, ""):
        value = os.environ.get("SITESCREEN_MIRROR") or None
    if value in (None, "") and config:
        value = config.get("mirror") or (config.get("data") or {}).get("mirror")
    if value in (None, ""):
        return None
    value = str(value)
    scheme = urlsplit(value).scheme
    if scheme in ("http", "https"):
        return value.rstrip("/")
    if scheme == "file":
        value = url2pathname(urlsplit(value).path)
    elif scheme and len(scheme) > 1:
        raise ConfigError(
            f"mirror {redact_url(value)!r}: unsupported scheme {scheme!r}; give a local folder "
            "or an http(s) URL")
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(
            f"mirror folder {value} does not exist; give a folder laid out as "
            "<mirror>/<dataset folder>/<file> (e.g. ibtracs/ibtracs.WP.list.v04r01.csv)")
    return str(path.resolve())


def source_url(entry: CatalogEntry, name: str, mirror: str | None = None) -> tuple[str, str]:
    """Where to fetch one file from, and the origin that records: (url or path, origin)."""
    _check_relpath(entry, name)
    if mirror:
        if urlsplit(mirror).scheme in ("http", "https"):
            return (f"{mirror.rstrip('/')}/{quote(entry.local_dir)}/{quote(name)}",
                    DataOrigin.MIRROR.value)
        return str(Path(mirror) / entry.local_dir / name), DataOrigin.MIRROR.value
    return _upstream_url(entry, name), DataOrigin.UPSTREAM.value


def _upstream_url(entry: CatalogEntry, name: str) -> str:
    base = entry.base_url
    scheme = urlsplit(base).scheme
    if scheme not in ("http", "https", "file"):
        raise CatalogError(
            f"dataset {entry.id!r}: base_url {redact_url(base)!r} has scheme {scheme!r}; "
            "only http, https and file URLs are allowed")
    return f"{base.rstrip('/')}/{quote(name)}"


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


def read_sidecar(path: str | Path) -> dict | None:
    """The provenance record of a cached file, or None when it has none (or it is unreadable)."""
    side = _sidecar(Path(path))
    try:
        data = json.loads(side.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache must stay readable
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(data), fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _cached(dest: Path, url: str, sha256: str | None,
            expected_size: int | None) -> FetchResult | None:
    """The cached file as a FetchResult when present and verified, else None.

    Verified means: the size is right, and the SHA-256 equals the catalog's (when given) or the
    sidecar's. When the sidecar's size and modification time still match the file, its recorded
    checksum is trusted without re-reading the file (:func:`verify_dataset` always re-reads):
    a global flood tile is hundreds of MB and every fetch would otherwise hash the whole cache.
    """
    if not dest.is_file():
        return None
    st = dest.stat()
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
_MAGIC = {
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
    ".gz": (b"\x1f\x8b",),
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
    if text.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")):
        raise DownloadError(
            f"{redact_url(url)}: received an HTML/XML page instead of {kind} ({dest.name}); it "
            f"begins {snippet!r}. The URL may have moved or need a login")
    magic = _MAGIC.get(suffix)
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
          sidecar: Mapping[str, Any] | None = None) -> FetchResult:
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
        hit = _cached(dest, url, sha256, expected_size)
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
                "fetch again to resume, or use a mirror (--mirror)")
        if wait is None:
            wait = backoff * 2 ** max(attempt - 1, 0)
        elif wait > MAX_RETRY_AFTER:
            raise DownloadError(
                f"{shown}: the server asks to retry after {wait:.0f} s ({reason}); try later")
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


# --------------------------------------------------------------------------------------------
# Datasets


def fetch_dataset(entry: CatalogEntry, cache_root: str | Path, *,
                  mirror: str | Path | None = None, offline: bool = False,
                  files: Sequence[str] | None = None,
                  progress: DatasetProgressFn | None = None,
                  hazards: Iterable[str] | None = None, force: bool = False,
                  config: Mapping[str, Any] | None = None,
                  session: requests.Session | None = None,
                  retries: int = DEFAULT_RETRIES,
                  timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
                  backoff: float = 1.0) -> list[FetchResult]:
    """Bring a dataset's files into ``<cache_root>/<entry.local_dir>/``.

    Files already cached and verified are not fetched again. An archive dataset (Aqueduct
    4.0) is downloaded as its zip and then the catalog files are extracted from it
    (:func:`sitescreen.archive.prepare_aqueduct`).

    Parameters
    ----------
    entry : CatalogEntry
    cache_root : path
    mirror : str or path, optional
        Stands in for the upstream base: ``<mirror>/<local_dir>/<file>``. Resolved by
        :func:`resolve_mirror` (argument, ``$SITESCREEN_MIRROR``, ``config``). A file missing
        from the mirror is an error, never a silent fall-back to upstream.
    offline : bool
        Use only the cache; raise :class:`OfflineError` listing every missing file.
    files : sequence of str, optional
        Glob patterns on file names (``"inunriver_rcp8p5_*_2050_*"``); default every file.
    progress : callable(name, done, total), optional
    hazards : iterable of str, optional
        Only the files these hazards read (see :func:`expand_files`).

    Returns
    -------
    list of FetchResult
        One per downloaded (or cached) file, in catalog order.
    """
    names = _select(entry, files, hazards)
    cache_root = Path(cache_root)
    results: list[FetchResult] = []
    if offline:
        missing = []
        for name in names:
            sha, size = _expected(entry, name)
            dest = _cache_path(entry, cache_root, name)
            hit = _cached(dest, str(dest), sha, size)
            if hit is None and dest.is_file() and sha is None and size is None \
                    and read_sidecar(dest) is None:
                # Placed by hand (no sidecar, no catalog checksum): usable, but say so.
                logger.warning("%s: no provenance record; using it unverified", dest)
                hit = FetchResult(path=dest, url=str(dest), bytes=dest.stat().st_size,
                                  sha256=sha256_file(dest), retrieved_at="", from_cache=True,
                                  origin=DataOrigin.LOCAL.value)
            if hit is None:
                missing.append(name)
            else:
                results.append(hit)
        if missing:
            shown = ", ".join(missing[:10]) + (
                f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise OfflineError(
                f"dataset {entry.id!r}: offline mode, and {len(missing)} of {len(names)} files "
                f"are not in the cache {cache_root / entry.local_dir} (or fail their "
                f"checksum): {shown}. Fetch them without --offline, or with --mirror")
    else:
        base = resolve_mirror(mirror, config=config)
        own = session is None
        sess = session or requests.Session()
        try:
            for name in names:
                url, origin = source_url(entry, name, base)
                sha, size = _expected(entry, name)
                record = {"dataset": entry.id, "file": name, "version": entry.version,
                          "origin": origin, "upstream_url": redact_url(_upstream_url(entry, name))}
                if base:
                    record["mirror"] = redact_url(base)
                cb = (lambda done, total, _n=name: progress(_n, done, total)) if progress else None
                try:
                    results.append(fetch(url, _cache_path(entry, cache_root, name), sha256=sha,
                                         expected_size=size, progress=cb, session=sess,
                                         force=force, sidecar=record, retries=retries,
                                         timeout=timeout, backoff=backoff))
                except DownloadError as exc:
                    if base and _local_path(url) is not None and not Path(url).is_file():
                        raise DownloadError(
                            f"dataset {entry.id!r}: {name} is not in the mirror {base} (looked "
                            f"for {url}); fetch it from upstream ({record['upstream_url']}) "
                            "by leaving out --mirror and SITESCREEN_MIRROR") from exc
                    raise
        finally:
            if own:
                sess.close()
    if entry.archive and entry.archive in names:
        from .archive import prepare_aqueduct  # archive imports this module

        prepare_aqueduct(entry, cache_root)
    return results


def verify_dataset(entry: CatalogEntry, cache_root: str | Path, *,
                   files: Sequence[str] | None = None) -> list[VerifyResult]:
    """Re-hash every cached file of a dataset against the catalog checksum or its sidecar.

    A file is ``ok`` when its SHA-256 (and size) equals the catalog's, or, where the catalog
    has none (IBTrACS, flood tiles), the one recorded at fetch time; ``mismatch`` otherwise;
    ``missing`` when absent; ``unverified`` when present with nothing to compare to. For an
    archive dataset the extracted files are checked too, by presence and the sizes recorded
    at extraction.
    """
    out: list[VerifyResult] = []
    for name in _select(entry, files):
        path = _cache_path(entry, cache_root, name)
        want, size = _expected(entry, name)
        side = read_sidecar(path)
        if not path.is_file():
            out.append(VerifyResult(
                entry.id, name, path, VerifyStatus.MISSING, expected_sha256=want or "",
                message=f"not in the cache; run 'sitescreen data fetch {entry.id}'"))
            continue
        actual = sha256_file(path)
        real = path.stat().st_size
        expected = (want or (str(side.get("sha256", "")) if side else "")).lower()
        recorded_size = size if size is not None else (side.get("size") if side else None)
        if not expected:
            out.append(VerifyResult(entry.id, name, path, VerifyStatus.UNVERIFIED,
                                    actual_sha256=actual, size=real,
                                    message="no catalog checksum and no sidecar to compare to"))
        elif actual != expected or (recorded_size is not None and real != recorded_size):
            source = "catalog" if want else "checksum recorded at fetch time"
            out.append(VerifyResult(
                entry.id, name, path, VerifyStatus.MISMATCH, expected_sha256=expected,
                actual_sha256=actual, size=real,
                message=f"SHA-256/size differ from the {source}; delete it and fetch again"))
        else:
            out.append(VerifyResult(entry.id, name, path, VerifyStatus.OK,
                                    expected_sha256=expected, actual_sha256=actual, size=real))
    if entry.archive and not files:
        out.extend(_verify_extracted(entry, Path(cache_root)))
    return out


def _verify_extracted(entry: CatalogEntry, cache_root: Path) -> list[VerifyResult]:
    folder = cache_root / entry.local_dir
    manifest = folder / (entry.archive + EXTRACTED_SUFFIX)
    try:
        members: dict = json.loads(manifest.read_text("utf-8")).get("members", {})
    except (OSError, ValueError):
        members = {}
    out = []
    for rel in entry.files:
        path = folder / rel
        inside = {m: s for m, s in members.items() if m == rel or m.startswith(rel + "/")}
        if not path.exists():
            out.append(VerifyResult(entry.id, rel, path, VerifyStatus.MISSING, message=(
                f"not extracted from {entry.archive}; run 'sitescreen data fetch {entry.id}'")))
        elif not inside:
            out.append(VerifyResult(entry.id, rel, path, VerifyStatus.UNVERIFIED,
                                    message=f"no extraction record ({manifest.name})"))
        else:
            bad = [m for m, s in inside.items()
                   if not (folder / m).is_file() or (folder / m).stat().st_size != s]
            size = sum(inside.values())
            if bad:
                out.append(VerifyResult(entry.id, rel, path, VerifyStatus.MISMATCH, size=size,
                                        message=f"{len(bad)} extracted files missing or resized, "
                                                f"e.g. {bad[0]}; fetch again to re-extract"))
            else:
                out.append(VerifyResult(entry.id, rel, path, VerifyStatus.OK, size=size))
    return out


def dataset_status(entry: CatalogEntry, cache_root: str | Path) -> DatasetStatus:
    """What the cache holds of a dataset, from presence and sidecars only (fast, no hashing)."""
    names = remote_files(entry)
    present, missing, total, origins, times = 0, [], 0, [], []
    for name in names:
        path = _cache_path(entry, cache_root, name)
        if not path.is_file():
            missing.append(name)
            continue
        present += 1
        total += path.stat().st_size
        side = read_sidecar(path) or {}
        origin = str(side.get("origin") or DataOrigin.LOCAL.value)
        if origin not in origins:
            origins.append(origin)
        if side.get("retrieved_at"):
            times.append(str(side["retrieved_at"]))
    extracted = None
    if entry.archive:
        folder = Path(cache_root) / entry.local_dir
        extracted = ((folder / (entry.archive + EXTRACTED_SUFFIX)).is_file()
                     and all((folder / rel).exists() for rel in entry.files))
    return DatasetStatus(dataset=entry.id, version=entry.version, expected=len(names),
                         present=present, missing=tuple(missing), bytes=total,
                         origins=tuple(origins), retrieved_at=max(times) if times else "",
                         extracted=extracted)

