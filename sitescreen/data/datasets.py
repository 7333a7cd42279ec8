"""Catalog datasets in a local cache: their file names, fetching, verifying, status.

The cache is laid out as ``<cache_root>/<entry.local_dir>/<file>``, the layout of a data pack
and of a mirror, so a cache folder is itself a :class:`~sitescreen.data.sources.DataSource`
root and a mirror base can stand in for every upstream base. Each file is transferred by
:func:`sitescreen.data.fetch.fetch` (resumable, verified, atomic, with a ``<file>.sha256.json``
provenance sidecar); this module decides which files a dataset has (:func:`expand_files`),
where each comes from (upstream or a mirror, :func:`source_url`) and what the cache holds of
it (:func:`verify_dataset`, :func:`dataset_status`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from itertools import product
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from urllib.request import url2pathname

import requests

from sitescreen.catalog import CatalogEntry
from sitescreen.data.archive import prepare_aqueduct
from sitescreen.data.content import content_problem

# _cached and _local_path are fetch's own cache check and source parsing, shared so that an
# offline run and a mirror error judge a file exactly as fetch would.
from sitescreen.data.fetch import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    FetchResult,
    _cached,
    _local_path,
    fetch,
    read_sidecar,
    redact_url,
    sha256_file,
)
from sitescreen.data.sources import EXTRACTED_SUFFIX, WINDOWS_SUFFIX, DataOrigin
from sitescreen.errors import (
    CatalogError,
    ConfigError,
    DownloadError,
    OfflineError,
    UnsafePathError,
)
from sitescreen.scenarios import Narrative, pathway_for

__all__ = [
    "VerifyResult",
    "VerifyStatus",
    "DatasetStatus",
    "fetch_dataset",
    "verify_dataset",
    "dataset_status",
    "expand_files",
    "remote_files",
    "format_file_name",
    "resolve_mirror",
    "source_url",
]

logger = logging.getLogger(__name__)

DatasetProgressFn = Callable[[str, int, int | None], None]


# --------------------------------------------------------------------------------------------
# Value objects


class VerifyStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"
    UNVERIFIED = "unverified"  # present, but no catalog checksum and no sidecar to check
    INVALID = "invalid"  # no pinned checksum, and the content is not the dataset


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


def _cckp_combos(entry: CatalogEntry) -> list[dict[str, list]]:
    """Value sets for the CCKP templates: the reference climatology of the historical run and
    every future run and period the scenario crosswalk maps the narratives and years to."""
    p = entry.params
    try:
        runs: list[str] = []
        periods: list[str] = []
        for narrative in Narrative:
            for year in p["years"]:
                pathway = pathway_for(entry.family, narrative, int(year))
                runs += [pathway.code] if pathway.code not in runs else []
                periods += [pathway.period] if pathway.period not in periods else []
        common = {"collection": _as_list(p["collection"]), "variable": _as_list(p["variable"]),
                  "percentile": _as_list(p["percentiles"])}
        reference = {**common, "run": [p["reference_run"]], "period": [p["reference_period"]]}
    except KeyError as exc:
        raise CatalogError(
            f"dataset {entry.id!r}: params lack {exc.args[0]!r}, needed to list its files"
        ) from None
    return [reference, {**common, "run": runs, "period": periods}]


#: Dataset families whose file names are not a plain product of their params.
_COMBOS = {"aqueduct_floods": _flood_combos, "cckp_cmip6": _cckp_combos}


def expand_files(entry: CatalogEntry, *, hazards: Iterable[str] | None = None) -> list[str]:
    """Every file name of a dataset the screening reads, templates filled from ``params``.

    Plain names are returned as they are. A template's ``{field}`` takes its values from
    ``params[field]`` (a list or one value), except for the Aqueduct Floods and CCKP families,
    whose pathways (and CCKP periods) come from the scenario crosswalk (the pathways the
    narratives map to) and whose baselines (riverine 1980 with the WATCH model, coastal
    ``hist``; the CCKP historical 1995-2014 reference) are added.

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
    >>> heat = expand_files(load_catalog().dataset("cckp_cmip6"), hazards=["extreme_heat"])
    >>> len(heat), heat[0]  # (reference + 3 runs x 3 periods) x 3 percentiles
    (30, 'cmip6-x0.25/hd35/ensemble-all-historical/climatology-hd35-annual-mean_cmip6-x0.25_ensemble-all-historical_climatology_p10_1995-2014.nc')
    """
    templates = list(entry.files)
    if not any("{" in t for t in templates):
        names = templates
    else:
        combos = (_COMBOS[entry.family](entry) if entry.family in _COMBOS
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
# Mirrors and source URLs


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
    (:func:`sitescreen.data.archive.prepare_aqueduct`).

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
            hit = _cached(dest, str(dest), sha, size, _content_check(entry, sha))
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
                                         timeout=timeout, backoff=backoff,
                                         check=_content_check(entry, sha)))
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
        prepare_aqueduct(entry, cache_root)
    return results


def _content_check(entry: CatalogEntry, sha256: str | None):
    """The content check of a file without a pinned checksum (None when one is pinned)."""
    if sha256:
        return None
    params = dict(entry.params)
    return lambda path, name: content_problem(path, params, name=name)


def verify_dataset(entry: CatalogEntry, cache_root: str | Path, *,
                   files: Sequence[str] | None = None) -> list[VerifyResult]:
    """Re-hash every cached file of a dataset against the catalog checksum or its sidecar.

    A file is ``ok`` when its SHA-256 (and size) equals the catalog's, or, where the catalog
    has none (IBTrACS, flood tiles), the one recorded at fetch time; ``mismatch`` otherwise;
    ``missing`` when absent; ``unverified`` when present with nothing to compare to;
    ``invalid`` when there is no pinned checksum and the content is not the dataset (the
    check :func:`fetch_dataset` runs, see :mod:`sitescreen.data.content`). For an
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
        problem = None if want else content_problem(path, entry.params)
        if problem:
            out.append(VerifyResult(
                entry.id, name, path, VerifyStatus.INVALID, actual_sha256=actual, size=real,
                message=f"{problem}; delete it and fetch again with 'sitescreen data fetch "
                        f"{entry.id}'"))
            continue
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
        if not path.is_file() or path.with_name(path.name + WINDOWS_SUFFIX).is_file():
            missing.append(name)  # a window file is not the full file (see data.windows)
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

