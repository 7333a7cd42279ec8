"""Per-site hazard results kept between runs, under explicit keys.

Re-screening after analysts add sites should sample only the new or moved sites. Each hazard
layer (hazard x narrative x year) gets a *fingerprint*: a hash of everything its numbers
depend on — the hazard's catalog entry and parameters, the threshold set, the catalog entries
(versions) of its datasets, the data folder's identity and a stamp of its files, and the
sitescreen version. Results are stored per fingerprint and per site location (WGS 84,
rounded to 1e-6 degrees, about 0.1 m), so a site keeps its cached result when other sites
change, and any change of data, thresholds or method gives a new fingerprint and a full
recomputation. Layer parts are Parquet files; concurrent runs only ever add parts, so they
cannot corrupt each other.

Beside the layers, a *snapshot* keeps the aggregation inputs of a whole run: one folder per
set of layer fingerprints (``snapshots/<key>/part-*.arrow``), whose parts are Arrow IPC files
(uncompressed, memory-mapped when read, so that numbers are used where they lie on disk)
holding the columns of every layer, one row per site of the run that wrote the part, in that
run's site order (text as dictionary codes). A re-run with the same data and method reads
those few files instead of every layer's parts, samples only the locations it lacks, and adds
a part with just them. When a snapshot had :data:`SNAPSHOT_MAX_PARTS` parts or more before
a run that adds sites to it in one process, or before a Dask run (its driver, once the
chunks are done), its parts are merged into one, the run's sites first; exactly the parts
merged are deleted. A re-run with no new site leaves the parts as they are. A re-run whose sites are the stored ones in the same order (some removed, or new
ones appended) copies its rows as a few slices, not site by site. The layer parts stay the
reference (a snapshot is only a faster way to read them, and a run whose layers changed in
part falls back to them). A part that cannot be read whole (truncated, not of this layout,
inconsistent) is ignored with a warning naming it, its sites are sampled again, and it is
deleted (with a warning) once they are stored again (in a Dask run, by the chunk that
stored its own share of them). A part this user may not read is an error, never damage.

**Durability.** The store is a cache: every part is written to a temporary name and renamed
into place, so a reader sees a whole file or none, but parts are not flushed to disk
(no ``fsync``). After a crash of the machine a part may be missing or damaged; it is then
found out when read (see above) and its sites are computed again, never trusted. A layer's
``meta.json`` (which a run served from the store reads) is flushed, and written only when it
changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sitescreen import __version__
from sitescreen.catalog import Catalog
from sitescreen.categorical import (
    as_text_categorical,
    code_map,
    recode,
    union_categories,
    used_categories,
)
from sitescreen.data.sources import DataSource
from sitescreen.errors import OutputError
from sitescreen.files import atomic_write, umask_mode
from sitescreen.hazards import HazardResult, plugin_path
from sitescreen.scenarios import Narrative, Pathway, pathway_for

__all__ = ["layer_fingerprint", "location_keys", "location_digest", "NO_LOCATION", "ResultStore",
           "CachedLayer", "Found", "Snapshot"]

log = logging.getLogger(__name__)

_DECIMALS = 6
#: Part of every layer fingerprint: raise it when a hazard's result columns or the stored form
#: change (as when water stress gained its baseline columns, location keys became integers,
#: or snapshots became Arrow files in site order), so stores written before are not reused.
RESULT_LAYOUT = 4
#: A snapshot with this many parts or more before a run is merged into one by that run.
SNAPSHOT_MAX_PARTS = 8


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _folder_stamp(data: DataSource, local_dir: str) -> str:
    """Names, sizes and modification times of a dataset's files: cheap, and changes when a
    file is replaced (a re-fetch, a rebuilt demo pack). Files in the order of their path's
    parts (as pathlib sorts paths); links to folders are not followed."""
    if data.root.startswith(("http://", "https://")):
        return "remote"
    folder = os.path.join(data.root, local_dir)
    if not os.path.isdir(folder):
        return "missing"
    entries = []
    for top, _dirs, files in os.walk(folder):
        rel = os.path.relpath(top, folder)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        for name in files:
            try:
                st = os.stat(os.path.join(top, name))
            except OSError:
                continue  # a broken link: not a file
            if stat.S_ISREG(st.st_mode):
                entries.append(((*parts, name), st.st_size, st.st_mtime_ns))
    entries.sort(key=lambda e: e[0])
    return _digest([("/".join(p), size, mtime) for p, size, mtime in entries])


def _stamp(data: DataSource, local_dir: str, memo: dict[tuple[str, str], str] | None) -> str:
    if memo is None:
        return _folder_stamp(data, local_dir)
    key = (data.root, local_dir)
    if key not in memo:
        memo[key] = _folder_stamp(data, local_dir)
    return memo[key]


def layer_fingerprint(catalog: Catalog, data: DataSource, hazard: str, scenario: Narrative,
                      year: int, *, stamps: dict[tuple[str, str], str] | None = None) -> str:
    """The explicit cache key of one hazard layer (without the sites).

    ``stamps`` memoises the folder stamps for a run: pass one dict for all layers of a run
    and each dataset folder is listed once, not once per layer (a flood dataset serves
    every scenario and year). The key's value does not depend on it.
    """
    spec = catalog.hazard(hazard)
    entries = [catalog.dataset(d) for d in spec.datasets]
    key = {
        "sitescreen": __version__,
        "layout": RESULT_LAYOUT,
        "hazard": {**spec.to_dict(), "plugin": plugin_path(spec)},
        "thresholds": catalog.threshold_set(spec.threshold_set).to_dict(),
        "datasets": [e.to_dict() for e in entries],
        "pathway": pathway_for(entries[0].family, scenario, year).to_dict() if entries else None,
        "data": {"root": data.root, "origin": data.origin.value, "pack": data.pack,
                 "stamps": {e.id: _stamp(data, e.local_dir, stamps) for e in entries}},
        "scenario": scenario.value,
        "year": int(year),
    }
    return _digest(key)[:32]


# Location keys: longitude and latitude rounded to 1e-6 degrees as integers, packed in one
# int64 (longitude in the high bits). Any |lon| < 2000 and |lat| < 1000 fits; NaN (and
# anything beyond) is NO_LOCATION.
_LAT_BITS = 31
_LON_MAX, _LAT_MAX = 2000.0, 1000.0
NO_LOCATION = np.int64(-1)


def location_keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """One int64 per site location, rounded to 1e-6 degrees (about 0.1 m): two sites share a
    key exactly when their coordinates round to the same values; NaN gives
    :data:`NO_LOCATION`.

    >>> location_keys(np.array([121.4, 121.4000001, np.nan]), np.array([31.2, 31.2, 1.0]))[:2]
    array([6651286307318284128, 6651286307318284128])
    """
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    with np.errstate(invalid="ignore"):
        ok = (np.abs(lon) < _LON_MAX) & (np.abs(lat) < _LAT_MAX)
    scale = 10.0 ** _DECIMALS
    x = np.rint(np.where(ok, lon, 0.0) * scale).astype(np.int64) + (1 << 31)
    y = np.rint(np.where(ok, lat, 0.0) * scale).astype(np.int64) + (1 << 30)
    return np.where(ok, (x << _LAT_BITS) | y, NO_LOCATION)


def location_digest(lon: np.ndarray, lat: np.ndarray) -> str:
    """A short hash of a set of site locations, for cache keys."""
    return hashlib.sha256(location_keys(lon, lat).tobytes()).hexdigest()[:16]


#: A stored column: numbers as numpy arrays, text (flags) as a categorical.
Column = np.ndarray | pd.Categorical


@dataclass(frozen=True, slots=True)
class CachedLayer:
    """Which sites of a layer are cached, and their stored columns.

    ``rows`` maps each stored column (value, level, level_low, level_high, flags,
    extra__*) to an array aligned with the sites, this run's own copy; the positions in
    ``missing`` hold placeholders until :meth:`ResultStore.assemble` fills them. Empty when
    the store holds none of the sites. ``keys``: the sites' :func:`location_keys`, as
    checked (assembling the layer needs them again)."""

    fingerprint: str
    missing: np.ndarray  # indices of sites to compute
    rows: dict[str, Column] = field(default_factory=dict)
    keys: np.ndarray | None = field(default=None, compare=False, repr=False)


#: Sites past those of the run that wrote a part, up to this many, are looked up one by one
#: (:meth:`Part.positions`) rather than by sorting the part's keys.
_FEW_KEYS = 32

#: Sites of a part are copied as slices when their runs (consecutive sites on consecutive
#: rows) are at least this long on average, else taken one by one.
_RUN_MIN = 256


@dataclass(frozen=True, slots=True)
class Part:
    """One stored part: the location key of each row and the columns of the rows.

    A layer part has sorted distinct keys; a snapshot part has the sites of the run that
    wrote it, in its order (a location can recur; its rows are then equal). ``text`` names
    the columns held as categoricals that stand for arrays of ``str`` (a snapshot's text
    extras, kept as dictionary codes): :meth:`column` gives them as such arrays. ``path``:
    the file it was read from."""

    loc: np.ndarray
    columns: dict[str, Column]
    text: frozenset[str] = frozenset()
    path: Path | None = None

    def column(self, name: str) -> Column:
        values = self.columns[name]
        return _text_array(values) if name in self.text else values

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Each key's row (the last of its location), -1 where absent; a site whose own
        position holds its key (sites in the order of the run that wrote the part) gets
        that row."""
        loc = self.loc
        if not len(loc):
            return np.full(len(keys), -1, dtype=np.int64)
        if len(loc) == 1 or bool(np.all(loc[1:] > loc[:-1])):
            return _positions(loc, keys)
        if len(keys) - len(loc) <= _FEW_KEYS and np.array_equal(loc, keys[:len(loc)]):
            # The sites of the run that wrote the part, then a few more: found one by one.
            pos = np.arange(len(keys), dtype=np.int64)
            for i in range(len(loc), len(keys)):
                rows = np.flatnonzero(loc == keys[i])
                pos[i] = rows[-1] if len(rows) else -1
            return pos
        order = np.argsort(loc, kind="stable")
        ranked = loc[order]
        at = np.searchsorted(ranked, keys, side="right") - 1
        np.maximum(at, 0, out=at)
        pos = np.where(ranked[at] == keys, order[at], -1)
        n = min(len(loc), len(keys))
        same = np.flatnonzero(loc[:n] == keys[:n])
        pos[same] = same
        return pos

    def take(self, rows: np.ndarray) -> Part:
        return Part(self.loc[rows], {k: _take(v, rows) for k, v in self.columns.items()},
                    self.text, self.path)


@dataclass(frozen=True, slots=True)
class Group:
    """The sites (``idx``, increasing) whose rows are in part ``part``; ``runs``: (first
    site, first row, length) of each run of consecutive sites on consecutive rows, when
    they are few enough to copy as slices (else None)."""

    part: int
    idx: np.ndarray
    rows: np.ndarray  # the row of each site of idx
    runs: tuple[tuple[int, int, int], ...] | None

    @classmethod
    def of(cls, part: int, idx: np.ndarray, pos: np.ndarray) -> Group:
        rows = pos[idx]
        starts = np.flatnonzero((np.diff(idx) != 1) | (np.diff(rows) != 1)) + 1
        if (len(starts) + 1) * _RUN_MIN > len(idx):
            return cls(part, idx, rows, None)
        starts = np.concatenate([[0], starts])
        lengths = np.diff(np.append(starts, len(idx)))
        runs = np.stack([idx[starts], rows[starts], lengths], axis=1)
        return cls(part, idx, rows, tuple(map(tuple, runs.tolist())))

    def copy_into(self, out: np.ndarray, values: np.ndarray) -> None:
        """``out`` at this group's sites = ``values`` at their rows."""
        if self.runs is None:
            out[self.idx] = values.take(self.rows)
        else:
            for site, row, length in self.runs:
                out[site:site + length] = values[row:row + length]


@dataclass(frozen=True, slots=True)
class Found:
    """Where each site's stored row is: the part (-1: none; the last part that holds the
    location) and the row in it; ``groups`` lists the sites of each part that has any,
    the largest group first."""

    which: np.ndarray
    pos: np.ndarray
    groups: tuple[Group, ...]
    missing: np.ndarray  # the sites of no part, increasing

    @classmethod
    def of(cls, parts: Sequence[Part], keys: np.ndarray) -> Found:
        which = np.full(len(keys), -1, dtype=np.int32)
        pos = np.zeros(len(keys), dtype=np.int64)
        for p, part in enumerate(parts):
            at = part.positions(keys)
            hit = at >= 0
            which[hit] = p
            pos[hit] = at[hit]
        return cls.at(which, pos, len(parts))

    @classmethod
    def at(cls, which: np.ndarray, pos: np.ndarray, n_parts: int) -> Found:
        """The rows ``pos`` of the parts ``which`` (-1: none) of ``n_parts`` parts."""
        groups = sorted((Group.of(p, idx, pos) for p in range(n_parts)
                         if len(idx := np.flatnonzero(which == p))), key=lambda g: -len(g.idx))
        return cls(which, pos, tuple(groups), np.flatnonzero(which < 0))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stored per-site columns of a set of layers (see the module docstring), as its
    parts (oldest first; each in the order of the run that wrote it): the rows of a run's
    sites are copied from the parts directly, never merged into one table. ``damaged``:
    the parts that could not be read (none of their rows is used); they are removed once
    the run has stored its sites again (:meth:`ResultStore.write_snapshot`)."""

    key: str
    fingerprints: tuple[str, ...]
    parts: tuple[Part, ...]  # columns "<layer>__<column>"
    #: Only the rows of some locations were read (one chunk of a Dask run): the parts are
    #: then never merged from it, since it does not hold the others.
    partial: bool = False
    damaged: tuple[Path, ...] = ()
    #: Where the sites' rows are, for the last location keys asked about.
    _found: list[tuple[np.ndarray, Found]] = field(default_factory=list, compare=False,
                                                   repr=False)

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    @property
    def loc(self) -> np.ndarray:
        """Every stored location key, sorted."""
        return np.unique(np.concatenate([np.zeros(0, np.int64)] +
                                        [part.loc for part in self.parts]))

    def __len__(self) -> int:
        return len(self.loc)

    @property
    def rows(self) -> pd.DataFrame:
        """Every column, indexed by location key (for inspection: built on request)."""
        loc, columns = _merge(self.parts)
        return pd.DataFrame(columns, index=pd.Index(loc, name="loc"))

    def layer_rows(self, i: int) -> pd.DataFrame:
        """Layer ``i``'s columns under their stored names (value, level, ..., extra__*)."""
        prefix = f"{i}__"
        rows = self.rows
        return rows[[c for c in rows.columns if c.startswith(prefix)]].rename(
            columns=lambda c: c[len(prefix):])

    def found(self, keys: np.ndarray) -> Found:
        """Where the rows of the sites of these location keys are (kept for the last keys
        asked about: every layer of a run asks for the same sites)."""
        for held, hit in list(self._found):
            if held is keys or (len(held) == len(keys) and np.array_equal(held, keys)):
                return hit
        hit = Found.of(self.parts, keys)
        self._found[:] = [(keys, hit)]
        return hit

    def held(self) -> Snapshot:
        """The same snapshot without its columns: what :meth:`ResultStore.write_snapshot`
        needs of the previous one, so that the columns can be freed once checked."""
        return Snapshot(self.key, self.fingerprints,
                        tuple(Part(part.loc, {}, part.text, part.path) for part in self.parts),
                        self.partial, self.damaged,
                        _found=self._found)  # where the sites' rows are: still true


class ResultStore:
    """Parquet parts of per-site results under ``root/<fingerprint>/``, snapshots (Arrow
    parts) under ``root/snapshots/<key>/``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def lookup(self, fingerprint: str, lon: np.ndarray, lat: np.ndarray, *,
               keys: np.ndarray | None = None) -> CachedLayer:
        """The layer's stored rows of these sites (``keys``: their :func:`location_keys`,
        when the caller has them)."""
        keys = location_keys(lon, lat) if keys is None else keys
        parts = self._read(fingerprint)
        return _cached(fingerprint, parts, Found.of(parts, keys), keys)

    def _read(self, fingerprint: str) -> list[Part]:
        """The layer's stored parts."""
        folder = self.root / fingerprint
        parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        return [t for t in map(_read_layer_part, parts) if t is not None]

    @staticmethod
    def snapshot_key(fingerprints: tuple[str, ...] | list[str]) -> str:
        return _digest(["snapshot", RESULT_LAYOUT, list(fingerprints)])[:32]

    def _snapshot_folder(self, fingerprints: tuple[str, ...]) -> Path:
        return self.root / "snapshots" / self.snapshot_key(fingerprints)

    def snapshot_paths(self, fingerprints: tuple[str, ...] | list[str]) -> list[Path]:
        """The files of the snapshot of these layers, oldest first (a part merged away
        meanwhile by another run is left out)."""
        folder = self._snapshot_folder(tuple(fingerprints))
        dated = []
        for path in folder.glob("part-*.arrow") if folder.is_dir() else ():
            try:
                dated.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:
                continue
        return [path for _, path in sorted(dated)]

    def read_snapshot(self, fingerprints: tuple[str, ...] | list[str], *,
                      keys: np.ndarray | None = None) -> Snapshot | None:
        """The snapshot of exactly these layers, or None when the store has none. With
        ``keys`` (location keys of one chunk of a larger run), only the rows of those
        locations are copied out of the mapped parts, so memory follows them, not the
        snapshot. A part that cannot be read is named in a warning and listed in
        :attr:`Snapshot.damaged` (with no other part, the snapshot has no parts)."""
        fingerprints = tuple(fingerprints)
        wanted = None if keys is None else np.unique(keys)
        parts, damaged = [], []
        for path in self.snapshot_paths(fingerprints):
            try:
                part = _read_snapshot_part(path, fingerprints, wanted)
            except FileNotFoundError:
                continue  # merged into another part by another run meanwhile
            except PermissionError as exc:  # not damage: never to be deleted as damaged
                raise OutputError(
                    f"cannot read the result snapshot {path}: {exc.strerror or exc}; the result "
                    "store must be readable and writable by every user who runs against it "
                    "(or use a cache folder of your own)") from exc
            except Exception as exc:
                log.warning("ignoring unreadable result snapshot %s: %s", path, exc)
                damaged.append(path)
                continue
            if part is not None:
                parts.append(part)
        if not parts and not damaged:
            return None
        return Snapshot(self.snapshot_key(fingerprints), fingerprints, tuple(parts),
                        partial=keys is not None, damaged=tuple(damaged))

    def cached_from_snapshot(self, snapshot: Snapshot, i: int, lon: np.ndarray,
                             lat: np.ndarray, *, keys: np.ndarray | None = None) -> CachedLayer:
        """:meth:`lookup` of layer ``i`` of ``snapshot``, without reading the layer's parts."""
        keys = location_keys(lon, lat) if keys is None else keys
        return _cached(snapshot.fingerprints[i], snapshot.parts, snapshot.found(keys), keys,
                       prefix=f"{i}__")

    def write_snapshot(self, fingerprints: tuple[str, ...] | list[str], lon: np.ndarray,
                       lat: np.ndarray, results: list[HazardResult],
                       previous: Snapshot | None = None, *,
                       keys: np.ndarray | None = None) -> None:
        """Keep the per-site columns of ``results`` (one per fingerprint, for these sites,
        as :meth:`assemble` gives them: sites of one location have equal rows, so each
        site's own row is kept) in the snapshot of these layers, in the sites' order. With
        ``previous`` (the snapshot read before, its columns not needed), only the sites of
        the locations it lacked are written, as a new part; its damaged parts are then
        removed, and when it had :data:`SNAPSHOT_MAX_PARTS` parts or more (and was read
        whole), the parts are merged into one (:meth:`merge_snapshot`)."""
        fingerprints = tuple(fingerprints)
        keys = location_keys(lon, lat) if keys is None else keys
        columns: dict[str, Column] = {f"{i}__{name}": values for i, r in enumerate(results)
                                      for name, values in _columns(r).items()}
        loc, rows = keys, None
        if previous is not None and previous.n_parts:
            rows = previous.found(keys).missing
            loc = keys[rows]
        if len(loc):
            _write_part(self._snapshot_folder(fingerprints), loc, columns, rows=rows,
                        snapshot={"fingerprints": list(fingerprints)})
        if previous is None:
            return
        for path in previous.damaged:  # the sites of this run are stored again
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # another run (a chunk beside this one) removed it
            log.warning("removed the damaged result snapshot part %s (this run's sites are "
                        "stored again)", path)
        if previous.n_parts >= SNAPSHOT_MAX_PARTS and not previous.partial:
            self.merge_snapshot(fingerprints, keys)

    def merge_snapshot(self, fingerprints: tuple[str, ...] | list[str],
                       keys: np.ndarray) -> bool:
        """Rewrite the snapshot of these layers as one part: the rows of the sites of
        ``keys`` first, in their order, then the stored locations they lack. Rows are
        copied out of the memory-mapped parts one row group at a time (memory follows a
        row group, not the snapshot), and exactly the parts merged are deleted: a part
        another run adds meanwhile stays. False when there was nothing to merge."""
        fingerprints = tuple(fingerprints)
        full = self.read_snapshot(fingerprints)
        if full is None or full.n_parts < 2:
            return False
        here = full.found(keys)
        sites = np.flatnonzero(here.which >= 0)
        stored = full.loc
        others = stored[~np.isin(stored, keys)]
        rest = Found.of(full.parts, others)
        rows = _RowGroups(np.concatenate([here.which[sites], rest.which]),
                          np.concatenate([here.pos[sites], rest.pos]), full.n_parts)
        names = [k for k in full.parts[0].columns
                 if all(k in part.columns for part in full.parts)]
        _write_part(self._snapshot_folder(fingerprints), np.concatenate([keys[sites], others]),
                    {k: _Merged(_Stacked(full.parts, k), rows) for k in names},
                    snapshot={"fingerprints": list(fingerprints)})
        for part in full.parts:  # merged into the new part
            part.path.unlink(missing_ok=True)
        return True

    def meta(self, fingerprint: str) -> dict | None:
        path = self.root / fingerprint / "meta.json"
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def save(self, fingerprint: str, lon: np.ndarray, lat: np.ndarray, result: HazardResult,
             *, keys: np.ndarray | None = None) -> None:
        """Add the rows of ``result`` (computed for these locations; ``keys``: their
        :func:`location_keys`, when the caller has them) to the store."""
        if len(result) == 0:
            return
        try:
            self._save(fingerprint, location_keys(lon, lat) if keys is None else keys, result)
        except OSError as exc:
            raise OutputError(
                f"cannot save {result.hazard} results to the result store {self.root}: "
                f"{exc.strerror or exc}; free space on that disk (the store only saves time: "
                f"deleting {self.root} is safe) and run again") from exc

    def _save(self, fingerprint: str, keys: np.ndarray, result: HazardResult) -> None:
        folder = self.root / fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"hazard": result.hazard, "scenario": result.scenario.value, "year": result.year,
                "pathway": result.pathway.to_dict(), "units": result.units,
                "threshold_set": result.threshold_set,
                "datasets": list(result.datasets), "method": result.method,
                "details": result.details}
        # Keys in the hazard's own order (no sort_keys): a run assembled from the store then
        # writes the same manifest bytes as a run that computed the layer. Flushed to disk,
        # and only when it changes (a re-run of the same data writes the same bytes).
        text = json.dumps(meta, default=_json_default).encode()
        try:
            same = (folder / "meta.json").read_bytes() == text
        except OSError:
            same = False
        if not same:
            atomic_write(folder / "meta.json", text)
        # Sorted distinct locations, the last computed site of each (as parts are read).
        distinct, last = _last_rows(keys)
        _write_part(folder, distinct, _columns(result), rows=last)

    def assemble(self, cached: CachedLayer, lon: np.ndarray, lat: np.ndarray,
                 computed: HazardResult | None) -> HazardResult:
        """One result for all sites from cached rows and the newly computed ones.

        Sites that share a location get the same numbers: the stored row, or the last
        computed site of that location. Run-level fields (pathway, method, details) come
        from ``computed`` when there is one, else from the layer's stored ``meta.json``."""
        keys = cached.keys if cached.keys is not None else location_keys(lon, lat)
        n = len(keys)
        if not n:
            return computed
        missing = cached.missing
        fresh: dict[str, Column] = {}
        if computed is not None and len(computed):
            if len(computed) != len(missing):
                raise ValueError(f"{computed.hazard}: {len(computed)} computed results for "
                                 f"{len(missing)} missing sites")
            src = _last_of_same(keys[missing])
            fresh = {k: _take(v, src) if src is not None else v
                     for k, v in _columns(computed).items()}
        elif len(missing):
            raise RuntimeError("result store is missing sites after assembly")
        if not cached.rows:
            columns = fresh
        else:
            columns = dict(cached.rows)
            for name, values in fresh.items():
                columns[name] = _fill(columns.get(name), n, missing, values)
            # Categories of other sites of the store are not this run's.
            columns["flags"] = used_categories(as_text_categorical(columns["flags"]))
        base = computed
        meta = {} if base is not None else (self.meta(cached.fingerprint) or {})
        return HazardResult(
            hazard=base.hazard if base is not None else meta["hazard"],
            scenario=base.scenario if base is not None else Narrative(meta["scenario"]),
            year=base.year if base is not None else int(meta["year"]),
            pathway=base.pathway if base is not None else Pathway.from_dict(meta["pathway"]),
            units=base.units if base is not None else meta["units"],
            threshold_set=base.threshold_set if base is not None else meta["threshold_set"],
            datasets=base.datasets if base is not None else tuple(meta["datasets"]),
            method=base.method if base is not None else meta["method"],
            values=np.asarray(columns["value"], dtype="float64"),
            levels=np.asarray(columns["level"], dtype="int8"),
            level_low=np.asarray(columns["level_low"], dtype="int8"),
            level_high=np.asarray(columns["level_high"], dtype="int8"),
            flags=columns["flags"],
            extra={c[len("extra__"):]: v for c, v in columns.items() if c.startswith("extra__")},
            details=base.details if base is not None else meta.get("details", {}),
        )


def _columns(result: HazardResult) -> dict[str, Column]:
    """The per-site columns of a result, as stored (flags as a categorical of their text)."""
    return {
        "value": np.asarray(result.values, dtype="float64"),
        "level": np.asarray(result.levels, dtype="int8"),
        "level_low": np.asarray(result.level_low, dtype="int8"),
        "level_high": np.asarray(result.level_high, dtype="int8"),
        "flags": as_text_categorical(result.flags),
        **{f"extra__{k}": np.asarray(v) for k, v in result.extra.items()},
    }


def _positions(loc: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's position in the sorted ``loc``, -1 where absent."""
    if not len(loc):
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.searchsorted(loc, keys)
    pos[pos == len(loc)] = 0
    return np.where(loc[pos] == keys, pos, -1)


def _last_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys, sorted, and the position of the last occurrence of each."""
    distinct, first_rev = np.unique(keys[::-1], return_index=True)
    return distinct, len(keys) - 1 - first_rev


def _last_of_same(keys: np.ndarray) -> np.ndarray | None:
    """For each position, the last position with the same key; None when keys are distinct."""
    distinct, last = _last_rows(keys)
    if len(distinct) == len(keys):
        return None
    return last[np.searchsorted(distinct, keys)]


def _code_type(n_categories: int) -> type:
    """The smallest integer type of codes into ``n_categories`` categories (as pandas)."""
    return np.int8 if n_categories < 127 else np.int16 if n_categories < 32_767 else np.int32


class _Stacked:
    """Column ``name`` of several parts read as one: :meth:`gather` copies the rows a
    :class:`Found` names (runs of rows as slices). Categoricals of the parts share one set
    of categories, the sorted union of theirs (``categories``; None for numbers), and are
    gathered as codes into it; ``text``: they stand for arrays of ``str``."""

    def __init__(self, parts: Sequence[Part], name: str) -> None:
        self.text = all(name in part.text for part in parts)
        values = [part.columns[name] if self.text else part.column(name) for part in parts]
        self.categories: pd.Index | None = None
        if any(isinstance(v, pd.Categorical) for v in values):
            cats = [as_text_categorical(v) for v in values]
            self.categories = union_categories([c.categories for c in cats])
            # The dtype of a part whose categories are the union (none to build), if any.
            self.dtype_of_categories = next(
                (c.dtype for c in cats if c.categories is self.categories),
                None) or pd.CategoricalDtype(self.categories)
            self.values = [c.codes for c in cats]
            # Each part's codes are re-coded as they are copied (none when its categories
            # are the union), so that no part's codes are copied whole.
            self.maps = [code_map(c.categories, self.categories) for c in cats]
            self.dtype = np.dtype(_code_type(len(self.categories)))
        else:
            self.values = [np.asarray(v) for v in values]
            self.maps = [None] * len(values)
            self.dtype = np.result_type(*[v.dtype for v in self.values])

    def gather(self, found: Found) -> np.ndarray:
        out = np.empty(len(found.which), dtype=self.dtype)
        for group in found.groups:
            group.copy_into(out, self.values[group.part])
            if (where := self.maps[group.part]) is not None:
                out[group.idx] = where[out[group.idx]]
        return out


class _RowGroups:
    """Rows ``pos`` of the parts ``which`` of a part being written, found one row group
    at a time (for every column of the row group once)."""

    def __init__(self, which: np.ndarray, pos: np.ndarray, n_parts: int) -> None:
        self.which, self.pos, self.n_parts = which, pos, n_parts
        self._last: tuple[tuple[int, int], Found] | None = None

    def found(self, rows: slice) -> Found:
        span = (rows.start, rows.stop)
        if self._last is None or self._last[0] != span:
            self._last = span, Found.at(self.which[rows], self.pos[rows], self.n_parts)
        return self._last[1]


@dataclass(frozen=True, slots=True)
class _Merged:
    """A column of a part merged from others, copied out of them a row group at a time."""

    column: _Stacked
    rows: _RowGroups

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.column.gather(self.rows.found(rows))


def _cached(fingerprint: str, parts: Sequence[Part], found: Found, keys: np.ndarray, *,
            prefix: str = "") -> CachedLayer:
    """The sites' stored rows (the columns named ``prefix<name>``) and the missing sites."""
    missing = found.missing
    if not found.groups:
        return CachedLayer(fingerprint, missing, keys=keys)
    names = [k for k in parts[0].columns if k.startswith(prefix)
             and all(k in part.columns for part in parts)]
    return CachedLayer(fingerprint, missing, {
        k[len(prefix):]: _gather(parts, k, found) for k in names}, keys=keys)


def _gather(parts: Sequence[Part], name: str, found: Found) -> Column:
    """One column for the sites from the parts' columns (:class:`_Stacked`); placeholders
    where missing: the row of the first site found."""
    column = _Stacked(parts, name)
    out = column.gather(found)
    missing = found.missing
    if len(missing) and found.groups:
        out[missing] = out[found.groups[0].idx[0]]
    if column.categories is None:
        return out
    if column.text:
        return _text_array(out, column.categories)
    return pd.Categorical.from_codes(out, dtype=column.dtype_of_categories, validate=False)


def _text_array(values: pd.Categorical | np.ndarray, categories: pd.Index | None = None
                ) -> np.ndarray:
    """A categorical of text (or its codes into ``categories``) as the object array of its
    ``str`` values (None where NaN)."""
    if isinstance(values, pd.Categorical):
        values, categories = values.codes, values.categories
    text = np.append(np.asarray(categories, dtype=object), None)
    return text.take(values)


def _take(values: Column, idx: np.ndarray) -> Column:
    if isinstance(values, pd.Categorical):
        return pd.Categorical.from_codes(values.codes[idx], dtype=values.dtype, validate=False)
    return np.asarray(values)[idx]


def _fill(column: Column | None, n: int, idx: np.ndarray, values: Column) -> Column:
    """``column`` (length ``n``) with ``values`` at ``idx``. A categorical is re-coded only
    when ``values`` bring categories it lacks."""
    if isinstance(values, pd.Categorical):
        old = column if isinstance(column, pd.Categorical) else \
            pd.Categorical.from_codes(np.zeros(n, np.int8), categories=[""])
        cats = union_categories([old.categories, values.categories])
        dtype = old.dtype if cats is old.categories or cats.equals(old.categories) else \
            pd.CategoricalDtype(cats)
        codes = np.array(recode(old.codes, old.categories, dtype.categories),
                         dtype=_code_type(len(cats)))
        codes[idx] = recode(values.codes, values.categories, dtype.categories)
        return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)
    values = np.asarray(values)
    if column is None:
        column = np.zeros(n, dtype=values.dtype) if values.dtype != object else \
            np.full(n, None, dtype=object)
    column = np.asarray(column)
    dtype = np.result_type(column.dtype, values.dtype)
    if dtype != column.dtype:
        column = column.astype(dtype)
    column[idx] = values
    return column


def _merge(parts: Sequence[Part]) -> tuple[np.ndarray, dict[str, Column]]:
    """Stored rows of several parts as one: distinct locations, sorted, the last part's row
    (the last row) where they recur. Columns absent from a part are left out."""
    if not parts:
        return np.zeros(0, dtype=np.int64), {}
    names = [k for k in parts[0].columns if all(k in part.columns for part in parts)]
    loc = parts[0].loc
    if len(parts) == 1 and (len(loc) < 2 or bool(np.all(loc[1:] > loc[:-1]))):
        return loc, {k: parts[0].column(k) for k in names}  # sorted and distinct
    sizes = np.cumsum([0] + [len(part.loc) for part in parts])
    distinct, last = _last_rows(np.concatenate([part.loc for part in parts]))
    which = (np.searchsorted(sizes, last, side="right") - 1).astype(np.int32)
    found = Found.at(which, last - sizes[which], len(parts))
    return distinct, {k: _gather(parts, k, found) for k in names}


def _one_array(column):
    """A table's column as one Arrow array (its chunks joined when there are several)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _from_arrow(arr, rows: np.ndarray | None = None) -> Column:
    """A stored column as numpy (numbers: a view of the file's buffer) or as a categorical
    (dictionary-encoded text); with ``rows``, only those rows (copied). What a damaged
    file could make unsafe is checked here, where it is used: the text of a dictionary
    (offsets within its buffer), and the codes taken (within the dictionary, by
    ``Categorical.from_codes``)."""
    import pyarrow as pa

    if pa.types.is_dictionary(arr.type):
        arr.dictionary.validate(full=True)
        codes = arr.indices.to_numpy(zero_copy_only=False)
        return pd.Categorical.from_codes(codes if rows is None else codes[rows],
                                         categories=pd.Index(arr.dictionary.to_pylist(),
                                                             dtype=object))
    if not pa.types.is_primitive(arr.type):
        arr.validate(full=True)  # text (offsets) and nested values, before reading them
    values = arr.to_numpy(zero_copy_only=False)
    return values if rows is None else values[rows]


def _read_layer_part(path: Path) -> Part | None:
    """A layer part's location keys and columns; None when it is unreadable (a damaged part
    is recomputed, never trusted)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path).unify_dictionaries()
        columns = {name: _from_arrow(_one_array(col))
                   for name, col in zip(table.column_names, table.columns, strict=True)}
        loc = np.asarray(columns.pop("loc"), dtype=np.int64)
    except Exception as exc:
        log.warning("ignoring unreadable cached results %s: %s", path, exc)
        return None
    return Part(*_merge([Part(loc, columns)]), path=path)  # sorted and distinct, as written


#: Field metadata of a snapshot column of text kept as dictionary codes.
_TEXT = {b"sitescreen": b"text"}


def _read_snapshot_part(path: Path, fingerprints: tuple[str, ...],
                        keys: np.ndarray | None = None) -> Part | None:
    """A snapshot part, memory-mapped: numbers are views of the file (with ``keys``, only
    the rows of those locations, copied). None when it is a snapshot of other layers;
    raises when it cannot be read whole (a damaged part is recomputed, never trusted)."""
    import pyarrow as pa

    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    meta = json.loads(reader.schema.metadata[b"sitescreen"])
    if tuple(meta["fingerprints"]) != fingerprints:
        return None
    table = reader.read_all()
    table.validate()  # every buffer as long as its column says; values checked as used
    arrays = {f.name: _one_array(c) for f, c in zip(table.schema, table.columns, strict=True)}
    loc = np.asarray(_from_arrow(arrays.pop("loc")), dtype=np.int64)
    rows = None
    if keys is not None:
        at = Part(loc, {}).positions(keys)
        rows = np.unique(at[at >= 0])
        loc = loc[rows]
    columns = {name: _from_arrow(arr, rows) for name, arr in arrays.items()}
    text = frozenset(f.name for f in table.schema if f.metadata == _TEXT)
    return Part(loc, columns, text, path)


#: Rows per row group (record batch) of a stored part: what is copied at a time while
#: writing one whose rows are not the columns' own, in order.
_ROW_GROUP = 65_536


def _batches(n: int, rows: np.ndarray | None, *, whole: bool
             ) -> Iterator[tuple[int, int, Any]]:
    """(first, end, rows of the columns) of each batch of ``n`` rows: one slice when
    ``whole`` and ``rows`` is None or consecutive, else :data:`_ROW_GROUP` rows at a time."""
    offset = 0
    if rows is not None and len(rows) and rows[-1] - rows[0] == len(rows) - 1 \
            and bool(np.all(np.diff(rows) == 1)):
        rows, offset = None, int(rows[0])
    if rows is None and whole:
        yield 0, n, slice(offset, offset + n)
        return
    for a in range(0, max(n, 1), _ROW_GROUP):
        b = min(n, a + _ROW_GROUP)
        yield a, b, slice(offset + a, offset + b) if rows is None else rows[a:b]


def _encoder(values: Column | _Merged, *, text: bool):
    """How one column is written, a batch at a time: a function of the batch's rows giving
    its Arrow array and field metadata. Categoricals are dictionary-encoded; with
    ``text``, so are arrays of ``str`` (marked :data:`_TEXT`)."""
    import pyarrow as pa

    if isinstance(values, _Merged):
        cats = values.column.categories
        if cats is None:
            return lambda idx: (pa.array(values[idx]), None)
        codes, dictionary = values, pa.array(list(cats), type=pa.string())
        marker = _TEXT if values.column.text else None
    elif isinstance(values, pd.Categorical):
        codes, marker = values.codes, None
        dictionary = pa.array(list(values.categories), type=pa.string())
    else:
        arr = np.asarray(values)
        coded = None
        if text and arr.dtype.kind in "OU":
            coded = pd.factorize(arr, use_na_sentinel=False)
        if coded is None or not all(type(u) is str for u in coded[1]):
            return lambda idx: (pa.array(arr[idx]), None)
        codes, dictionary, marker = coded[0].astype(np.int32), pa.array(list(coded[1]),
                                                                         type=pa.string()), _TEXT
    return lambda idx: (pa.DictionaryArray.from_arrays(pa.array(codes[idx]), dictionary),
                        marker)


def _write_part(folder: Path, loc: np.ndarray, columns: dict[str, Column | _Merged], *,
                rows: np.ndarray | None = None, snapshot: dict | None = None) -> Path:
    """One stored part: ``loc`` then the columns (text dictionary-encoded), written to a
    temporary file renamed to a new ``part-*`` of ``folder`` once complete (removed when
    it fails), so that parts appear whole; not flushed to disk (see the module docstring).
    A layer part is Parquet; with ``snapshot`` (its metadata), a snapshot part: an
    uncompressed Arrow IPC file, arrays of ``str`` as dictionary codes too. ``rows``: the
    row of ``columns`` for each location (None: aligned with ``loc``); numbers in order
    are written from the columns as they are, other rows (and merged columns) are copied
    one row group at a time. Returns the part's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows is not None and len(rows) <= _ROW_GROUP:  # a few rows: copied first
        columns, rows = {k: _take(v, rows) for k, v in columns.items()}, None
    encoders = {name: _encoder(values, text=snapshot is not None)
                for name, values in columns.items()}
    meta = None if snapshot is None else {b"sitescreen": json.dumps(snapshot).encode()}

    def batch(a: int, b: int, idx) -> pa.RecordBatch:
        arrays, fields = [pa.array(np.asarray(loc[a:b], dtype=np.int64))], [pa.field("loc", pa.int64())]
        for name, encode in encoders.items():
            array, marker = encode(idx)
            arrays.append(array)
            fields.append(pa.field(name, array.type, metadata=marker))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))

    suffix = ".parquet" if snapshot is None else ".arrow"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-" if snapshot is None else ".snapshot-",
                               suffix=suffix, dir=folder)
    os.close(fd)
    path = folder / f"part-{uuid.uuid4().hex}{suffix}"
    writer = None
    try:
        whole = not any(isinstance(v, _Merged) for v in columns.values())
        for a, b, idx in _batches(len(loc), rows, whole=whole):
            record = batch(a, b, idx)
            if writer is None:
                writer = pq.ParquetWriter(tmp, record.schema) if snapshot is None else \
                    pa.ipc.new_file(tmp, record.schema)
            writer.write_batch(record)
        writer.close()
        writer = None
        os.chmod(tmp, umask_mode())  # mkstemp makes 0600: a shared store's parts must be readable
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
