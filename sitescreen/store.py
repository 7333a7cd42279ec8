"""Per-site hazard results kept between runs, under explicit keys.

Re-screening after analysts add sites should sample only the new or moved sites. Each hazard
layer (hazard x narrative x year) gets a *fingerprint*: a hash of everything its numbers
depend on — the hazard's catalog entry and parameters, the threshold set, the catalog entries
(versions) of its datasets, the data folder's identity and a stamp of its files, and the
sitescreen version. Results are stored per fingerprint and per site location (WGS 84,
rounded to 1e-6 degrees, about 0.1 m), so a site keeps its cached result when other sites
change, and any change of data, thresholds or method gives a new fingerprint and a full
recomputation. Layer parts are Parquet files written atomically; concurrent runs only ever
add parts, so they cannot corrupt each other.

Beside the layers, a *snapshot* keeps the aggregation inputs of a whole run: one folder per
set of layer fingerprints (``snapshots/<key>/part-*.arrow``), whose parts are Arrow IPC files
(uncompressed, memory-mapped when read, so that numbers are used where they lie on disk)
holding the columns of every layer, one row per site of the run that wrote the part, in that
run's site order (text as dictionary codes). A re-run with the same data and method reads
those few files instead of every layer's parts, samples only the locations it lacks, and adds
a part with just them (parts are merged into one at :data:`SNAPSHOT_MAX_PARTS`, the
merging run's sites first). A re-run whose sites are the stored ones in the same order (some
removed, or new ones appended) copies its rows as a few slices, not site by site. The layer
parts stay the reference (a snapshot is only a faster way to read them, and a run whose
layers changed in part falls back to them). A part that cannot be read whole (truncated, not
of this layout, inconsistent) is ignored with a warning and its sites are sampled again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sitescreen import __version__
from sitescreen.catalog import Catalog
from sitescreen.data.sources import DataSource
from sitescreen.errors import OutputError
from sitescreen.files import atomic_write
from sitescreen.hazards import HazardResult, plugin_path
from sitescreen.scenarios import Narrative, Pathway, pathway_for

__all__ = ["layer_fingerprint", "location_keys", "location_digest", "NO_LOCATION", "ResultStore",
           "CachedLayer", "Found", "as_text_categorical",
           "Snapshot"]

log = logging.getLogger(__name__)

_DECIMALS = 6
#: Part of every layer fingerprint: raise it when a hazard's result columns or the stored form
#: change (as when water stress gained its baseline columns, location keys became integers,
#: or snapshots became Arrow files in site order), so stores written before are not reused.
RESULT_LAYOUT = 4
#: A snapshot with this many parts or more is rewritten as one on its next update.
SNAPSHOT_MAX_PARTS = 8


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _folder_stamp(data: DataSource, local_dir: str) -> str:
    """Names, sizes and modification times of a dataset's files: cheap, and changes when a
    file is replaced (a re-fetch, a rebuilt demo pack)."""
    if data.root.startswith(("http://", "https://")):
        return "remote"
    folder = Path(data.root) / local_dir
    if not folder.is_dir():
        return "missing"
    entries = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            entries.append((path.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return _digest(entries)


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


# Location keys of the last few coordinate arrays: a run checks, saves and assembles every
# layer for the same sites. An entry is found by comparing the coordinates' bytes.
_MEMO: list[tuple[np.ndarray, np.ndarray, bytes, np.ndarray]] = []
_MEMO_SIZE = 4


def _locations(lon: np.ndarray, lat: np.ndarray) -> tuple[bytes, np.ndarray]:
    """An identifier of the coordinates and their :func:`location_keys` (memoised)."""
    lon = np.ascontiguousarray(lon, dtype="float64")
    lat = np.ascontiguousarray(lat, dtype="float64")
    for old_lon, old_lat, ident, keys in _MEMO:
        if old_lon.shape == lon.shape and np.array_equal(
                old_lon.view(np.uint64), lon.view(np.uint64)) and np.array_equal(
                old_lat.view(np.uint64), lat.view(np.uint64)):
            return ident, keys
    keys = location_keys(lon, lat)
    keys.setflags(write=False)
    ident = hashlib.blake2b(keys.tobytes(), digest_size=16).digest()
    _MEMO.insert(0, (lon.copy(), lat.copy(), ident, keys))
    del _MEMO[_MEMO_SIZE:]
    return ident, keys


#: A stored column: numbers as numpy arrays, text (flags) as a categorical.
Column = np.ndarray | pd.Categorical


@dataclass(frozen=True, slots=True)
class CachedLayer:
    """Which sites of a layer are cached, and their stored columns.

    ``rows`` maps each stored column (value, level, level_low, level_high, flags,
    extra__*) to an array aligned with the sites, this run's own copy; the positions in
    ``missing`` hold placeholders until :meth:`ResultStore.assemble` fills them. Empty when
    the store holds none of the sites."""

    fingerprint: str
    missing: np.ndarray  # indices of sites to compute
    rows: dict[str, Column] = field(default_factory=dict)


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
    extras, kept as dictionary codes): :meth:`column` gives them as such arrays."""

    loc: np.ndarray
    columns: dict[str, Column]
    text: frozenset[str] = frozenset()

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
                    self.text)


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

    @classmethod
    def of(cls, parts: Sequence[Part], keys: np.ndarray) -> Found:
        which = np.full(len(keys), -1, dtype=np.int32)
        pos = np.zeros(len(keys), dtype=np.int64)
        for p, part in enumerate(parts):
            at = part.positions(keys)
            hit = at >= 0
            which[hit] = p
            pos[hit] = at[hit]
        groups = sorted((Group.of(p, idx, pos) for p in range(len(parts))
                         if len(idx := np.flatnonzero(which == p))), key=lambda g: -len(g.idx))
        return cls(which, pos, tuple(groups))

    @property
    def missing(self) -> np.ndarray:
        return np.flatnonzero(self.which < 0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stored per-site columns of a set of layers (see the module docstring), as its
    parts (oldest first; each in the order of the run that wrote it): the rows of a run's
    sites are copied from the parts directly, never merged into one table."""

    key: str
    fingerprints: tuple[str, ...]
    parts: tuple[Part, ...]  # columns "<layer>__<column>"
    #: Only the rows of some locations were read (one chunk of a Dask run): the parts are
    #: then never merged from it, since it does not hold the others.
    partial: bool = False
    #: Where the sites' rows are, memoised per set of coordinates.
    _found: dict[bytes, Found] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    @property
    def loc(self) -> np.ndarray:
        """Every stored location key, sorted."""
        return np.unique(np.concatenate([part.loc for part in self.parts]))

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

    def found(self, ident: bytes, keys: np.ndarray) -> Found:
        hit = self._found.get(ident)
        if hit is None:
            hit = Found.of(self.parts, keys)
            self._found.clear()
            self._found[ident] = hit
        return hit

    def held(self) -> Snapshot:
        """The same snapshot without its columns: what :meth:`ResultStore.write_snapshot`
        needs of the previous one, so that the columns can be freed once checked."""
        return Snapshot(self.key, self.fingerprints,
                        tuple(Part(part.loc, {}, part.text) for part in self.parts), self.partial,
                        _found=self._found)  # where the sites' rows are: still true


class ResultStore:
    """Parquet parts of per-site results under ``root/<fingerprint>/``, snapshots (Arrow
    parts) under ``root/snapshots/<key>/``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def lookup(self, fingerprint: str, lon: np.ndarray, lat: np.ndarray) -> CachedLayer:
        _, keys = _locations(lon, lat)
        parts = self._read(fingerprint)
        return _cached(fingerprint, parts, Found.of(parts, keys))

    def _read(self, fingerprint: str) -> list[Part]:
        """The layer's stored parts."""
        folder = self.root / fingerprint
        parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        return [t for t in map(_read_part, parts) if t is not None]

    @staticmethod
    def snapshot_key(fingerprints: tuple[str, ...] | list[str]) -> str:
        return _digest(["snapshot", RESULT_LAYOUT, list(fingerprints)])[:32]

    def _snapshot_folder(self, fingerprints: tuple[str, ...]) -> Path:
        return self.root / "snapshots" / self.snapshot_key(fingerprints)

    def read_snapshot(self, fingerprints: tuple[str, ...] | list[str], *,
                      lon: np.ndarray | None = None, lat: np.ndarray | None = None
                      ) -> Snapshot | None:
        """The snapshot of exactly these layers, or None (absent or unreadable). With
        ``lon``/``lat``, only the rows of those locations are copied out of the mapped parts
        (so memory follows them, not the snapshot): a chunk of a larger run."""
        fingerprints = tuple(fingerprints)
        folder = self._snapshot_folder(fingerprints)
        parts = sorted(folder.glob("part-*.arrow"), key=lambda p: p.stat().st_mtime_ns) \
            if folder.is_dir() else []
        keys = None if lon is None else np.unique(_locations(lon, lat)[1])
        tables = [t for t in (_read_snapshot_part(p, fingerprints, keys) for p in parts)
                  if t is not None]
        if not tables:
            return None
        return Snapshot(self.snapshot_key(fingerprints), fingerprints, tuple(tables),
                        partial=keys is not None)

    def cached_from_snapshot(self, snapshot: Snapshot, i: int, lon: np.ndarray,
                             lat: np.ndarray) -> CachedLayer:
        """:meth:`lookup` of layer ``i`` of ``snapshot``, without reading the layer's parts."""
        ident, keys = _locations(lon, lat)
        return _cached(snapshot.fingerprints[i], snapshot.parts, snapshot.found(ident, keys),
                       prefix=f"{i}__")

    def write_snapshot(self, fingerprints: tuple[str, ...] | list[str], lon: np.ndarray,
                       lat: np.ndarray, results: list[HazardResult],
                       previous: Snapshot | None = None) -> None:
        """Keep the per-site columns of ``results`` (one per fingerprint, for these sites,
        as :meth:`assemble` gives them: sites of one location have equal rows) in the
        snapshot of these layers, in the sites' order. With ``previous`` (the snapshot read
        before, its columns not needed), only the sites of the locations it lacked are
        written, as a new part; at :data:`SNAPSHOT_MAX_PARTS` parts or more, everything is
        rewritten as one: these sites, then the stored locations they lack."""
        fingerprints = tuple(fingerprints)
        _, keys = _locations(lon, lat)
        folder = self._snapshot_folder(fingerprints)
        columns: dict[str, Column] = {f"{i}__{name}": values for i, r in enumerate(results)
                                      for name, values in _columns(r).items()}
        rows = _last_of_same(keys)  # each site's row: the last site of its location
        loc, stale = keys, []
        if previous is not None and previous.n_parts:
            if previous.n_parts >= SNAPSHOT_MAX_PARTS and not previous.partial:
                full = previous if any(part.columns for part in previous.parts) else \
                    self.read_snapshot(fingerprints)
                if full is not None:
                    old_loc, old_columns = _merge(full.parts)
                    keep = np.flatnonzero(_positions(np.unique(keys), old_loc) < 0)
                    if rows is not None:
                        columns = {k: _take(v, rows) for k, v in columns.items()}
                    loc = np.concatenate([keys, old_loc[keep]])
                    columns = {k: _concat([v, _take(old_columns[k], keep)])
                               for k, v in columns.items() if k in old_columns}
                    rows = None
                    stale = sorted(folder.glob("part-*.arrow"))
            else:
                new = np.flatnonzero(Found.of(previous.parts, keys).which < 0)
                loc = keys[new]
                rows = new if rows is None else rows[new]
        if not len(loc):
            return
        _write_snapshot_part(folder, loc, columns, {"fingerprints": list(fingerprints)},
                             rows=rows)
        for part in stale:  # merged into the new part
            part.unlink(missing_ok=True)

    def meta(self, fingerprint: str) -> dict | None:
        path = self.root / fingerprint / "meta.json"
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None

    def save(self, fingerprint: str, lon: np.ndarray, lat: np.ndarray, result: HazardResult) -> None:
        """Add the rows of ``result`` (computed for these locations) to the store."""
        if len(result) == 0:
            return
        try:
            self._save(fingerprint, lon, lat, result)
        except OSError as exc:
            raise OutputError(
                f"cannot save {result.hazard} results to the result store {self.root}: "
                f"{exc.strerror or exc}; free space on that disk (the store only saves time: "
                f"deleting {self.root} is safe) and run again") from exc

    def _save(self, fingerprint: str, lon: np.ndarray, lat: np.ndarray,
              result: HazardResult) -> None:
        folder = self.root / fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"hazard": result.hazard, "scenario": result.scenario.value, "year": result.year,
                "pathway": result.pathway.to_dict(), "units": result.units,
                "threshold_set": result.threshold_set,
                "datasets": list(result.datasets), "method": result.method,
                "details": result.details}
        # Keys in the hazard's own order (no sort_keys): a run assembled from the store then
        # writes the same manifest bytes as a run that computed the layer.
        atomic_write(folder / "meta.json",
                           json.dumps(meta, default=_json_default).encode())
        # Sorted distinct locations, the last computed site of each (as parts are read).
        keys = _locations(lon, lat)[1]
        distinct, first_rev = np.unique(keys[::-1], return_index=True)
        last = len(keys) - 1 - first_rev
        _write_part(folder, "part", distinct, _columns(result), rows=last)

    def assemble(self, cached: CachedLayer, lon: np.ndarray, lat: np.ndarray,
                 computed: HazardResult | None) -> HazardResult:
        """One result for all sites from cached rows and the newly computed ones.

        Sites that share a location get the same numbers: the stored row, or the last
        computed site of that location. Run-level fields (pathway, method, details) come
        from ``computed`` when there is one, else from the layer's stored ``meta.json``."""
        _, keys = _locations(lon, lat)
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
            columns["flags"] = _used_categories(as_text_categorical(columns["flags"]))
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


def as_text_categorical(values) -> pd.Categorical:
    """``str`` of each value (as numpy's ``astype(str)`` gives it) as a categorical with
    sorted categories: the strings are made once per distinct value, not per site."""
    if isinstance(values, pd.Categorical):
        return values
    values = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    if not all(type(u) is str for u in uniques):
        # Numbers, None or NaN: factorize may merge values whose text differs.
        codes, uniques = pd.factorize(np.array([str(v) for v in values], dtype=object))
    order = np.argsort(np.asarray(uniques, dtype=object))
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return pd.Categorical.from_codes(rank[codes] if len(codes) else codes.astype(np.int32),
                                     categories=pd.Index(np.asarray(uniques, dtype=object)[order],
                                                         dtype=object))


def _used_categories(values: pd.Categorical) -> pd.Categorical:
    """``values`` without the categories no value uses (as ``remove_unused_categories``,
    by counting codes rather than sorting them)."""
    used = np.bincount(values.codes[values.codes >= 0], minlength=len(values.categories)) > 0
    if used.all():
        return values
    remap = np.cumsum(used) - 1
    codes = np.where(values.codes >= 0, remap[np.maximum(values.codes, 0)], -1)
    return pd.Categorical.from_codes(codes, categories=values.categories[used])


def _positions(loc: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's position in the sorted ``loc``, -1 where absent."""
    if not len(loc):
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.searchsorted(loc, keys)
    pos[pos == len(loc)] = 0
    return np.where(loc[pos] == keys, pos, -1)


def _cached(fingerprint: str, parts: Sequence[Part], found: Found, *,
            prefix: str = "") -> CachedLayer:
    """The sites' stored rows (the columns named ``prefix<name>``) and the missing sites."""
    missing = found.missing
    if not found.groups:
        return CachedLayer(fingerprint, missing)
    names = [k for k in parts[0].columns if k.startswith(prefix)
             and all(k in part.columns for part in parts)]
    return CachedLayer(fingerprint, missing, {
        k[len(prefix):]: _gather(parts, k, found) for k in names})


def _gather(parts: Sequence[Part], name: str, found: Found) -> Column:
    """One column for the sites from the parts' columns, part by part (runs of consecutive
    rows as slices, see :class:`Group`); placeholders where missing: the first row of the
    part with most of the sites."""
    groups = found.groups
    text = all(name in parts[g.part].text for g in groups)
    columns = {g.part: parts[g.part].columns[name] if text else parts[g.part].column(name)
               for g in groups}
    first = groups[0].part
    n, missing = len(found.which), found.missing
    if any(isinstance(c, pd.Categorical) for c in columns.values()):
        used = {p: as_text_categorical(c) for p, c in columns.items()}
        cats = used[first].categories
        if len(groups) > 1:
            cats = pd.Index(sorted(set().union(*(c.categories for c in used.values()))),
                            dtype=object)
        codes = np.empty(n, dtype=np.int32)
        for g in groups:
            part_codes = used[g.part].codes
            recode = cats.get_indexer(used[g.part].categories).astype(np.int32)
            if not np.array_equal(recode, np.arange(len(recode))):
                part_codes = recode[part_codes]
            g.copy_into(codes, part_codes)
            if g.part == first and len(missing):
                codes[missing] = part_codes[0]
        out = pd.Categorical.from_codes(codes, categories=cats)
        return _text_array(out) if text else out
    out = np.empty(n, dtype=np.result_type(*[np.asarray(c).dtype for c in columns.values()]))
    for g in groups:
        g.copy_into(out, np.asarray(columns[g.part]))
    if len(missing):
        out[missing] = np.asarray(columns[first])[0]
    return out


def _text_array(values: pd.Categorical) -> np.ndarray:
    """A categorical of text as the object array of its ``str`` values (None where NaN)."""
    text = np.append(np.asarray(values.categories, dtype=object), None)
    return text.take(values.codes)


def _take(values: Column, idx: np.ndarray) -> Column:
    if isinstance(values, pd.Categorical):
        return pd.Categorical.from_codes(values.codes[idx], dtype=values.dtype)
    return np.asarray(values)[idx]


def _last_of_same(keys: np.ndarray) -> np.ndarray | None:
    """For each position, the last position with the same key; None when keys are distinct."""
    distinct, first_rev = np.unique(keys[::-1], return_index=True)
    if len(distinct) == len(keys):
        return None
    last = len(keys) - 1 - first_rev
    return last[np.searchsorted(distinct, keys)]


def _fill(column: Column | None, n: int, idx: np.ndarray, values: Column) -> Column:
    """``column`` (length ``n``) with ``values`` at ``idx``."""
    if isinstance(values, pd.Categorical):
        old = column if isinstance(column, pd.Categorical) else \
            pd.Categorical.from_codes(np.zeros(n, np.int8), categories=[""])
        cats = pd.Index(sorted(set(old.categories) | set(values.categories)), dtype=object)
        codes = cats.get_indexer(old.categories)[old.codes].astype(np.int32)
        codes[idx] = cats.get_indexer(values.categories)[values.codes]
        return pd.Categorical.from_codes(codes, categories=cats)
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
    if len(parts) == 1:
        loc = parts[0].loc
        columns = {k: parts[0].column(k) for k in names}
    else:
        loc = np.concatenate([part.loc for part in parts])
        columns = {k: _concat([part.column(k) for part in parts]) for k in names}
    if len(loc) < 2 or bool(np.all(loc[1:] > loc[:-1])):
        return loc, columns  # already sorted and distinct (as layer parts are written)
    distinct, first_rev = np.unique(loc[::-1], return_index=True)
    idx = len(loc) - 1 - first_rev
    return distinct, {k: _take(v, idx) for k, v in columns.items()}


def _concat(parts: list[Column]) -> Column:
    if any(isinstance(p, pd.Categorical) for p in parts):
        from pandas.api.types import union_categoricals

        return union_categoricals([as_text_categorical(p) for p in parts],
                                  sort_categories=True)
    return np.concatenate([np.asarray(p) for p in parts])


def _read_part(path: Path) -> Part | None:
    """A layer part's location keys and columns; None when it is unreadable (a damaged part
    is recomputed, never trusted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path).unify_dictionaries()
        columns: dict[str, Column] = {}
        for name, col in zip(table.column_names, table.columns, strict=True):
            if pa.types.is_dictionary(col.type):
                col = col.combine_chunks()
                columns[name] = pd.Categorical.from_codes(
                    col.indices.to_numpy(zero_copy_only=False),
                    categories=pd.Index(col.dictionary.to_pylist(), dtype=object))
            else:
                columns[name] = col.to_numpy()
        loc = np.asarray(columns.pop("loc"), dtype=np.int64)
    except Exception as exc:
        log.warning("ignoring unreadable cached results %s: %s", path, exc)
        return None
    return Part(*_merge([Part(loc, columns)]))  # sorted and distinct, as written


#: Field metadata of a snapshot column of text kept as dictionary codes.
_TEXT = {b"sitescreen": b"text"}


def _read_snapshot_part(path: Path, fingerprints: tuple[str, ...],
                        keys: np.ndarray | None = None) -> Part | None:
    """A snapshot part, memory-mapped: numbers are views of the file (with ``keys``, only
    the rows of those locations, copied). None when it is a snapshot of other layers, or
    unreadable (a damaged part is recomputed, never trusted)."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        meta = json.loads(reader.schema.metadata[b"sitescreen"])
        if tuple(meta["fingerprints"]) != fingerprints:
            return None
        table = reader.read_all()
        table.validate(full=True)
        columns: dict[str, Column] = {}
        text = set()
        for field_, col in zip(table.schema, table.columns, strict=True):
            arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            if pa.types.is_dictionary(arr.type):
                columns[field_.name] = pd.Categorical.from_codes(
                    arr.indices.to_numpy(zero_copy_only=False),
                    categories=pd.Index(arr.dictionary.to_pylist(), dtype=object))
                if field_.metadata == _TEXT:
                    text.add(field_.name)
            else:
                columns[field_.name] = arr.to_numpy(zero_copy_only=False)
        part = Part(np.asarray(columns.pop("loc"), dtype=np.int64), columns, frozenset(text))
    except Exception as exc:
        log.warning("ignoring unreadable result snapshot %s: %s", path, exc)
        return None
    if keys is None:
        return part
    at = part.positions(keys)
    return part.take(np.unique(at[at >= 0]))


#: Rows per row group (record batch) of a stored part: what is copied at a time while
#: writing one whose rows are not the columns' own, in order.
_ROW_GROUP = 65_536


@contextmanager
def _new_part(folder: Path, prefix: str, suffix: str) -> Iterator[str]:
    """A temporary file to write a part to, renamed to a new ``part-*<suffix>`` of
    ``folder`` when the block completes (removed when it fails): parts appear whole."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{prefix}-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, folder / f"part-{uuid.uuid4().hex}{suffix}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _batches(loc: np.ndarray, rows: np.ndarray | None) -> Iterator[tuple[int, int, Any]]:
    """(first, end, rows of the columns) of each batch of ``loc``: one slice when ``rows``
    is None or consecutive, else :data:`_ROW_GROUP` rows at a time."""
    if rows is not None and len(rows) and rows[-1] - rows[0] == len(rows) - 1 \
            and bool(np.all(np.diff(rows) == 1)):
        rows, offset = None, int(rows[0])
    else:
        offset = 0
    if rows is None:
        yield 0, len(loc), slice(offset, offset + len(loc))
        return
    for a in range(0, max(len(loc), 1), _ROW_GROUP):
        b = min(len(loc), a + _ROW_GROUP)
        yield a, b, rows[a:b]


def _write_part(folder: Path, prefix: str, loc: np.ndarray, columns: dict[str, Column],
                *, rows: np.ndarray | None = None) -> None:
    """One Parquet layer part (``loc`` then the columns, text dictionary-encoded), written
    atomically under a new name. ``rows``: the row of ``columns`` for each location (None:
    aligned with ``loc``); rows are copied one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    categories = {name: pa.array(list(values.categories), type=pa.string())
                  for name, values in columns.items() if isinstance(values, pd.Categorical)}

    def batch(a: int, b: int, idx) -> pa.Table:
        arrays = {"loc": pa.array(np.asarray(loc[a:b], dtype=np.int64))}
        for name, values in columns.items():
            if isinstance(values, pd.Categorical):
                arrays[name] = pa.DictionaryArray.from_arrays(
                    pa.array(values.codes[idx].astype(np.int32)), categories[name])
            else:
                arrays[name] = pa.array(np.asarray(values)[idx])
        return pa.table(arrays)

    with _new_part(folder, prefix, ".parquet") as tmp:
        writer = None
        try:
            for a, b, idx in _batches(loc, rows):
                table = batch(a, b, idx)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()


def _write_snapshot_part(folder: Path, loc: np.ndarray, columns: dict[str, Column],
                         meta: dict, *, rows: np.ndarray | None = None) -> None:
    """One snapshot part (an uncompressed Arrow IPC file: ``loc`` then the columns; text
    as dictionary codes, marked :data:`_TEXT` where it stands for arrays of ``str``),
    written atomically under a new name. ``rows``: the row of ``columns`` for each entry of
    ``loc`` (None: aligned); numbers in order are written from the columns as they are,
    other rows are copied one batch at a time."""
    import pyarrow as pa

    if rows is not None and len(rows) <= _ROW_GROUP:  # a few rows: copied first
        columns, rows = {k: _take(v, rows) for k, v in columns.items()}, None
    coded: dict[str, tuple[np.ndarray, pa.Array, dict | None]] = {}
    for name, values in columns.items():
        if isinstance(values, pd.Categorical):
            coded[name] = (values.codes, pa.array(list(values.categories), type=pa.string()),
                           None)
        elif (arr := np.asarray(values)).dtype.kind in "OU":
            codes, uniques = pd.factorize(arr, use_na_sentinel=False)
            if all(type(u) is str for u in uniques):
                coded[name] = (codes.astype(np.int32), pa.array(list(uniques), type=pa.string()),
                               _TEXT)

    def batch(a: int, b: int, idx) -> pa.RecordBatch:
        arrays, fields = [pa.array(np.asarray(loc[a:b], dtype=np.int64))], [pa.field("loc", pa.int64())]
        for name, values in columns.items():
            if name in coded:
                codes, dictionary, marker = coded[name]
                arrays.append(pa.DictionaryArray.from_arrays(pa.array(codes[idx]), dictionary))
            else:
                arrays.append(pa.array(np.asarray(values)[idx]))
                marker = None
            fields.append(pa.field(name, arrays[-1].type, metadata=marker))
        schema = pa.schema(fields, metadata={b"sitescreen": json.dumps(meta).encode()})
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    with _new_part(folder, "snapshot", ".arrow") as tmp, pa.OSFile(tmp, "wb") as sink:
        writer = None
        try:
            for a, b, idx in _batches(loc, rows):
                record = batch(a, b, idx)
                writer = writer or pa.ipc.new_file(sink, record.schema)
                writer.write_batch(record)
        finally:
            if writer is not None:
                writer.close()


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
