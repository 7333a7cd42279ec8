"""Per-site hazard results kept between runs, under explicit keys.

Re-screening after analysts add sites should sample only the new or moved sites. Each hazard
layer (hazard x narrative x year) gets a *fingerprint*: a hash of everything its numbers
depend on — the hazard's catalog entry and parameters, the threshold set, the catalog entries
(versions) of its datasets, the data folder's identity and a stamp of its files, and the
sitescreen version. Results are stored per fingerprint and per site location (WGS 84,
rounded to 1e-6 degrees, about 0.1 m), so a site keeps its cached result when other sites
change, and any change of data, thresholds or method gives a new fingerprint and a full
recomputation. Parts are Parquet files written atomically; concurrent runs only ever add
parts, so they cannot corrupt each other.

Beside the layers, a *snapshot* keeps the aggregation inputs of a whole run: one Parquet file
per set of layer fingerprints (``snapshots/<key>/part-*.parquet``), one row per location and
the columns of every layer. A re-run with the same data and method reads those few files
instead of every layer's parts, samples only the locations it lacks, and adds a part with
just them (parts are merged into one past :data:`SNAPSHOT_MAX_PARTS`); the layer
parts stay the reference (a snapshot is only a faster way to read them, and a run whose
layers changed in part falls back to them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sitescreen import __version__
from sitescreen.catalog import Catalog
from sitescreen.data.sources import DataSource
from sitescreen.errors import OutputError
from sitescreen.files import atomic_write
from sitescreen.hazards import HazardResult, plugin_path
from sitescreen.scenarios import Narrative, Pathway, pathway_for

__all__ = ["layer_fingerprint", "location_keys", "location_digest", "ResultStore", "CachedLayer",
           "Snapshot"]

log = logging.getLogger(__name__)

_DECIMALS = 6
#: Part of every layer fingerprint: raise it when a hazard's result columns change (as when
#: water stress gained its baseline columns), so stores written before are not reused.
RESULT_LAYOUT = 2
#: A snapshot with more parts than this is rewritten as one on its next update.
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


def location_keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """One string per site location (NaN coordinates give "nan"), rounded to 1e-6 degrees."""
    lon = np.round(np.asarray(lon, dtype="float64"), _DECIMALS)
    lat = np.round(np.asarray(lat, dtype="float64"), _DECIMALS)
    return np.char.add(np.char.add(lon.astype(str), ","), lat.astype(str))


def location_digest(lon: np.ndarray, lat: np.ndarray) -> str:
    """A short hash of a set of site locations, for cache keys."""
    return hashlib.sha256("|".join(location_keys(lon, lat)).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class CachedLayer:
    """Which sites of a layer are cached, and their stored rows."""

    fingerprint: str
    missing: np.ndarray  # indices of sites to compute
    rows: pd.DataFrame   # cached rows, indexed by location key


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stored per-site columns of a set of layers (see the module docstring)."""

    key: str
    fingerprints: tuple[str, ...]
    rows: pd.DataFrame  # indexed by location key; columns "<layer>__<column>"
    n_parts: int = 1

    def layer_rows(self, i: int) -> pd.DataFrame:
        """Layer ``i``'s columns under their stored names (value, level, ..., extra__*)."""
        prefix = f"{i}__"
        cols = [c for c in self.rows.columns if c.startswith(prefix)]
        return self.rows[cols].rename(columns=lambda c: c[len(prefix):])


class ResultStore:
    """Parquet parts of per-site results under ``root/<fingerprint>/``."""

    # Location keys of the last few coordinate arrays: a run looks up, saves and assembles
    # every layer for the same sites, and formatting 100,000 keys costs about 0.2 s.
    _MEMO_SIZE = 4

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def _locations(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`location_keys` of the sites and each site's number among the distinct keys,
        memoised by the coordinates' bytes."""
        lon = np.ascontiguousarray(lon, dtype="float64")
        lat = np.ascontiguousarray(lat, dtype="float64")
        h = hashlib.blake2b(lon.tobytes(), digest_size=16)
        h.update(lat.tobytes())
        h.update(str(lon.shape).encode())
        digest = h.digest()
        hit = self._memo.get(digest)
        if hit is None:
            keys = location_keys(lon, lat)
            codes, _ = pd.factorize(keys)
            hit = (keys, codes)
            self._memo[digest] = hit
            while len(self._memo) > self._MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
        return hit

    def lookup(self, fingerprint: str, lon: np.ndarray, lat: np.ndarray) -> CachedLayer:
        keys, _ = self._locations(lon, lat)
        rows = self._read(fingerprint)
        if rows.empty:
            return CachedLayer(fingerprint, np.arange(len(keys)), rows)
        hit = pd.Index(rows.index).get_indexer(keys) >= 0
        return CachedLayer(fingerprint, np.flatnonzero(~hit), rows)

    def _read(self, fingerprint: str) -> pd.DataFrame:
        folder = self.root / fingerprint
        parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        frames = []
        for part in parts:
            try:
                frames.append(pd.read_parquet(part))
            except Exception as exc:  # a damaged part is recomputed, never trusted
                log.warning("ignoring unreadable cached results %s: %s", part, exc)
        if not frames:
            return pd.DataFrame()
        rows = pd.concat(frames, ignore_index=True).drop_duplicates("loc", keep="last")
        return rows.set_index("loc")

    @staticmethod
    def snapshot_key(fingerprints: tuple[str, ...] | list[str]) -> str:
        return _digest(["snapshot", RESULT_LAYOUT, list(fingerprints)])[:32]

    def read_snapshot(self, fingerprints: tuple[str, ...] | list[str]) -> Snapshot | None:
        """The snapshot of exactly these layers, or None (absent or unreadable)."""
        import pyarrow.parquet as pq

        fingerprints = tuple(fingerprints)
        key = self.snapshot_key(fingerprints)
        folder = self.root / "snapshots" / key
        parts = sorted(folder.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns) \
            if folder.is_dir() else []
        frames = []
        for part in parts:
            try:
                table = pq.read_table(part)
                meta = json.loads(table.schema.metadata[b"sitescreen"])
                if tuple(meta["fingerprints"]) != fingerprints:
                    continue
                frames.append(table.to_pandas())
            except Exception as exc:  # a damaged part is recomputed, never trusted
                log.warning("ignoring unreadable result snapshot %s: %s", part, exc)
        if not frames:
            return None
        rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        rows = rows.drop_duplicates("loc", keep="last").set_index("loc")
        return Snapshot(key, fingerprints, rows, n_parts=len(frames))

    def cached_from_snapshot(self, snapshot: Snapshot, i: int, lon: np.ndarray,
                             lat: np.ndarray) -> CachedLayer:
        """:meth:`lookup` of layer ``i`` of ``snapshot``, without reading the layer's parts."""
        keys, _ = self._locations(lon, lat)
        hit = snapshot.rows.index.get_indexer(keys) >= 0
        return CachedLayer(snapshot.fingerprints[i], np.flatnonzero(~hit), snapshot.layer_rows(i))

    def write_snapshot(self, fingerprints: tuple[str, ...] | list[str], lon: np.ndarray,
                       lat: np.ndarray, results: list[HazardResult],
                       previous: Snapshot | None = None) -> None:
        """Keep the per-site columns of ``results`` (one per fingerprint, for these
        locations) in the snapshot of these layers. With ``previous`` (the snapshot read
        before), only the locations it lacked are written, as a new part; past
        :data:`SNAPSHOT_MAX_PARTS` parts, everything is rewritten as one."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fingerprints = tuple(fingerprints)
        keys, codes = self._locations(lon, lat)
        first = _first_of_each(codes)
        cols: dict[str, np.ndarray] = {"loc": keys[first]}
        for i, r in enumerate(results):
            for name, values in _columns(r).items():
                cols[f"{i}__{name}"] = np.asarray(values)[first]
        frame = pd.DataFrame(cols)
        key = self.snapshot_key(fingerprints)
        folder = self.root / "snapshots" / key
        compact = False
        if previous is not None and len(previous.rows):
            if previous.n_parts >= SNAPSHOT_MAX_PARTS:
                old = previous.rows[~previous.rows.index.isin(frame["loc"])]
                frame = pd.concat([old.reset_index(), frame], ignore_index=True)
                compact = True
            else:
                frame = frame[~frame["loc"].isin(previous.rows.index)]
        if not len(frame):
            return
        stale = sorted(folder.glob("part-*.parquet")) if compact else []
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({
            **(table.schema.metadata or {}),
            b"sitescreen": json.dumps({"fingerprints": list(fingerprints)}).encode()})
        fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".parquet", dir=folder)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, folder / f"part-{uuid.uuid4().hex}.parquet")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
        frame = pd.DataFrame({"loc": self._locations(lon, lat)[0], **_columns(result)})
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
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".parquet", dir=folder)
        os.close(fd)
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, folder / f"part-{uuid.uuid4().hex}.parquet")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def assemble(self, cached: CachedLayer, lon: np.ndarray, lat: np.ndarray,
                 computed: HazardResult | None) -> HazardResult:
        """One result for all sites from cached rows and the newly computed ones.

        Run-level fields (pathway, method, details) come from ``computed`` when there is
        one, else from the layer's stored ``meta.json``."""
        keys, codes = self._locations(lon, lat)
        n = len(keys)
        # Rows are aligned on integer location codes (each site's number among the distinct
        # keys), not on the key strings: the same result, at a fraction of the cost.
        rows = cached.rows
        if not rows.empty:
            distinct = pd.Index(keys).take(_first_of_each(codes))
            row_codes = distinct.get_indexer(rows.index)
            rows = rows[row_codes >= 0].set_axis(row_codes[row_codes >= 0], axis=0)
        if computed is not None and len(computed):
            fresh_codes = codes[cached.missing]
            keep = ~pd.Series(fresh_codes).duplicated(keep="last").to_numpy()
            fresh = pd.DataFrame(_columns(computed))[keep].set_axis(fresh_codes[keep], axis=0)
            rows = fresh if cached.rows.empty else pd.concat(
                [rows[~rows.index.isin(fresh.index)], fresh])
        aligned = rows.reindex(codes)
        if aligned["level"].isna().any():
            raise RuntimeError("result store is missing sites after assembly")
        base = computed
        meta = {} if base is not None else (self.meta(cached.fingerprint) or {})
        extra = {c[len("extra__"):]: aligned[c].to_numpy() for c in aligned.columns
                 if c.startswith("extra__")}
        return HazardResult(
            hazard=base.hazard if base else meta["hazard"],
            scenario=base.scenario if base else Narrative(meta["scenario"]),
            year=base.year if base else int(meta["year"]),
            pathway=base.pathway if base else Pathway.from_dict(meta["pathway"]),
            units=base.units if base else meta["units"],
            threshold_set=base.threshold_set if base else meta["threshold_set"],
            datasets=base.datasets if base else tuple(meta["datasets"]),
            method=base.method if base else meta["method"],
            values=aligned["value"].to_numpy(dtype="float64"),
            levels=aligned["level"].to_numpy(dtype="int8"),
            level_low=aligned["level_low"].to_numpy(dtype="int8"),
            level_high=aligned["level_high"].to_numpy(dtype="int8"),
            flags=aligned["flags"].fillna("").to_numpy(dtype=object),
            extra=extra,
            details=base.details if base else meta.get("details", {}),
        ) if n else computed


def _columns(result: HazardResult) -> dict[str, np.ndarray]:
    """The per-site columns of a result, as stored."""
    return {
        "value": np.asarray(result.values, dtype="float64"),
        "level": np.asarray(result.levels, dtype="int8"),
        "level_low": np.asarray(result.level_low, dtype="int8"),
        "level_high": np.asarray(result.level_high, dtype="int8"),
        "flags": _as_text(result.flags),
        **{f"extra__{k}": np.asarray(v) for k, v in result.extra.items()},
    }


def _as_text(values: np.ndarray) -> np.ndarray:
    """``str`` of each value, as numpy's ``astype(str)`` gives it, but as an object array
    that shares the strings: ``astype(str)`` makes a fixed-width copy as wide as the longest
    flag for every site (hundreds of MB per million sites)."""
    values = np.asarray(values, dtype=object)
    other = np.fromiter((type(v) is not str for v in values), dtype=bool, count=len(values))
    if not other.any():
        return values
    out = values.copy()
    out[other] = [str(v) for v in values[other]]
    return out


def _first_of_each(codes: np.ndarray) -> np.ndarray:
    """Position of the first occurrence of each code 0..k-1 (codes from ``pd.factorize``,
    which numbers keys in order of first appearance)."""
    _, first = np.unique(codes, return_index=True)
    return first


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
