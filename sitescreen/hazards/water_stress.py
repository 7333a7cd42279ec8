"""Water stress (or water depletion) per site from Aqueduct 4.0 sub-basin projections.

Method (Kuzma et al. 2023, *Aqueduct 4.0: Updated decision-relevant global water risk
indicators*, WRI Technical Note, doi:10.46830/writn.23.00061): Aqueduct 4.0 gives, for every
HydroBASINS level-6 sub-basin (``pfaf_id``), the water stress ratio (gross withdrawal over
available renewable surface and ground water) as the median of five CMIP6 GCMs run through
PCR-GLOBWB 2, for three pathways (``opt`` SSP1 RCP2.6, ``bau`` SSP3 RCP7.0, ``pes`` SSP5 RCP8.5)
and three 30-year periods (2030 = 2015-2045, 2050 = 2035-2065, 2080 = 2065-2095). A site takes
the value of the basin polygon that contains it.

The raw value reported is the Aqueduct category (``_x_c``: -1 arid and low water use, 0 low
(< 10 %) ... 4 extremely high (> 80 %)); the threshold set (categorical) turns it into a level.
The ratio (``_x_r``, dimensionless; 9999 marks extreme scarcity), the score (``_x_s``, 0-5) and
the label (``_x_l``) travel in ``extra``. Flags per site:

``no-coordinates``      longitude or latitude is NaN (level 0)
``outside-basins``      the site lies in no basin polygon, e.g. at sea (level 0)
``no-data``             the basin has no value (-9999 or empty), or is a unit without a basin
                        (``pfaf_id`` -9999), or its category is not in the threshold set (level 0)
``arid-low-water-use``  category -1; ranked with high stress, as Aqueduct's FAQ advises
``extreme-scarcity``    raw ratio 9999 (supply practically nil)
``basin-boundary``      the site is within ``boundary_km`` (default 1 km) of its basin's
                        boundary, so a small coordinate error could change its basin

Every future layer also carries today's picture: the baseline category (``bws_cat`` of the
baseline table for water stress, the same basins and threshold set) and its level, as
``bws_raw``/``bws_cat``/``bws_label``/``level_baseline`` in ``extra`` (the flood hazards
report their historical baseline the same way).

Catalog parameters (``[hazards.NAME.params]``): ``indicator`` (``ws`` water stress, ``wd`` water
depletion, ``iv``/``sv`` variability), ``boundary_km`` (default 1.0), ``basin_layer`` (default
``future_annual``), ``baseline`` (default true: report the baseline beside each future layer).
One class serves ``water_stress`` and ``water_depletion``.

Speed: the basin polygons are read once per data source and process (and kept as GeoParquet
under the cache folder, keyed by dataset version and the geodatabase's size and mtime); the
point-in-basin join is vectorised (STRtree), runs on unique coordinates in chunks (memory stays
bounded for a million sites) and is reused by the nine scenario x year calls on the same sites.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.catalog import CatalogEntry
from sitescreen.classify import ThresholdSet, classify
from sitescreen.data.parsed import ParsedCopy, file_signature
from sitescreen.data.sources import (
    SYNTHETIC_MARK,
    origin_details,
    says_synthetic,
)
from sitescreen.errors import CatalogError, HazardDataError
from sitescreen.geodesy import KM_PER_DEGREE
from sitescreen.hazards.base import HazardContext, HazardResult
from sitescreen.hazards.basins import (
    BasinIndex,
    SiteJoin,
    basin_index,
    join_sites,
    local_path,
)
from sitescreen.scenarios import Narrative, Pathway, parse_narrative, pathway_for

__all__ = [
    "WaterStress",
    "INDICATORS",
    "FLAG_NO_COORDINATES",
    "FLAG_OUTSIDE_BASINS",
    "FLAG_NO_DATA",
    "FLAG_ARID",
    "FLAG_EXTREME_SCARCITY",
    "FLAG_BASIN_BOUNDARY",
]

log = logging.getLogger(__name__)

FLAG_NO_COORDINATES = "no-coordinates"
FLAG_OUTSIDE_BASINS = "outside-basins"
FLAG_NO_DATA = "no-data"
FLAG_ARID = "arid-low-water-use"
FLAG_EXTREME_SCARCITY = "extreme-scarcity"
FLAG_BASIN_BOUNDARY = "basin-boundary"
# Bit order is the order flags are written in.
_FLAG_BITS = (FLAG_NO_COORDINATES, FLAG_OUTSIDE_BASINS, FLAG_NO_DATA, FLAG_ARID,
              FLAG_EXTREME_SCARCITY, FLAG_BASIN_BOUNDARY)


@dataclass(frozen=True, slots=True)
class _Indicator:
    code: str        # future table code, e.g. "ws"
    baseline: str    # baseline table code, e.g. "bws"
    title: str
    has_arid: bool   # has category -1 "arid and low water use"


#: Aqueduct 4.0 indicators this hazard can report, by future-table code.
INDICATORS: dict[str, _Indicator] = {
    "ws": _Indicator("ws", "bws", "water stress", True),
    "wd": _Indicator("wd", "bwd", "water depletion", True),
    "iv": _Indicator("iv", "iav", "interannual variability", False),
    "sv": _Indicator("sv", "sev", "seasonal variability", False),
}

_NO_DATA = -9999.0
_EXTREME_RAW = 9999.0
_ARID = -1.0
_SCENARIO_CODES = ("bau", "opt", "pes")
_PERIOD_CODES = ("30", "50", "80")


class WaterStress:
    """Aqueduct 4.0 water stress (or another Aqueduct indicator) for every site.

    ``name`` is set from the catalog entry; the indicator comes from the entry's ``params``.

    Examples
    --------
    >>> WaterStress().name
    'water_stress'
    """

    name: str = "water_stress"

    def __init__(self) -> None:
        self._joins: OrderedDict[tuple, SiteJoin] = OrderedDict()
        self._lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------------

    def assess(self, lon: np.ndarray, lat: np.ndarray, *, scenario: Narrative, year: int,
               context: HazardContext) -> HazardResult:
        """Aqueduct 4.0 category, level and flags of every site for one narrative and year.

        Parameters
        ----------
        lon, lat : array_like
            WGS 84 degrees, one entry per site; NaN marks a site without coordinates.
        scenario : Narrative or str
            Optimistic, current trend or pessimistic (mapped to ``opt``/``bau``/``pes``).
        year : int
            2030, 2050 or 2080 (Aqueduct periods 2015-2045, 2035-2065, 2065-2095).
        context : HazardContext
            Catalog entry, threshold set and data source.

        Returns
        -------
        HazardResult
            ``values``: category (-1..4, NaN no data); ``extra``: ``{ind}_raw`` (ratio),
            ``{ind}_score`` (0-5), ``{ind}_label`` (Aqueduct's label) and ``pfaf_id``
            (-9999 where there is no basin); unless the catalog sets ``baseline = false``,
            also the baseline beside it: ``b{ind}_raw``, ``b{ind}_cat``, ``b{ind}_label``
            and ``level_baseline`` (see :meth:`baseline`).

        Raises
        ------
        HazardDataError
            A file, layer or column is missing or unreadable (the message names it).
        CatalogError
            Unknown scenario, year, indicator or a non-categorical threshold set.
        """
        narrative = parse_narrative(scenario)
        ind, boundary_km, layer = _params(context)
        entry = _entry(context)
        pathway = pathway_for(entry.family, narrative, year)
        prefix = f"{pathway.code}{int(year) % 100:02d}"
        columns = {t: f"{prefix}_{ind.code}_x_{t}" for t in "rscl"}
        relpath = _relpath(entry, "future_annual", ".csv")
        table = _future_table(context, entry, relpath, ind.code)
        missing = [c for c in columns.values() if c not in table.columns]
        if missing:
            raise HazardDataError(
                f"dataset {entry.id!r} (version {entry.version}): {relpath} has no column "
                f"{missing[0]!r}, needed for {narrative.value} {year} (Aqueduct pathway "
                f"{pathway.code} {pathway.label}, period {pathway.period}); expected the Aqueduct "
                f"4.0 future table layout {{opt|bau|pes}}{{30|50|80}}_{ind.code}_x_{{r|s|c|l}}; "
                f"re-fetch it with 'sitescreen data fetch {entry.id}'")
        index, join = self._locate(lon, lat, context, entry, layer, boundary_km)
        per_basin = _per_basin(table, index, [columns[t] for t in "rscl"])
        method = (
            f"Aqueduct 4.0 (Kuzma et al. 2023, WRI) future {ind.title}, column "
            f"{columns['c']}: median of five CMIP6 GCMs run through PCR-GLOBWB 2 under "
            f"{pathway.label} ('{pathway.code}'), {pathway.period} period (the '{year}' "
            f"milestone). {_method_common(ind, context.thresholds, boundary_km)}")
        details = {
            "indicator": ind.code, "columns": columns, "file": relpath,
            "basins_layer": f"{_relpath(entry, '', '.gdb')}:{layer}",
            "dataset_version": entry.version, "period": pathway.period,
            "pathway_code": pathway.code, "boundary_km": boundary_km,
            "basins": len(index.pfaf_id),
            **origin_details(context.data.origin, _synthetic_files(
                (relpath, table), (_relpath(entry, "", ".gdb"), index))),
        }
        beside: dict[str, np.ndarray] = {}
        if bool(context.params.get("baseline", True)):
            base = self.baseline(lon, lat, context=context)
            b = ind.baseline
            beside = {f"{b}_raw": base.extra[f"{b}_raw"], f"{b}_cat": base.values,
                      f"{b}_label": base.extra[f"{b}_label"], "level_baseline": base.levels}
            details["baseline"] = {"file": base.details["file"],
                                   "columns": base.details["columns"]}
            method += (f" The baseline category ({b}_cat of the baseline table, same basins and "
                       "thresholds) is reported beside it as level_baseline.")
        return self._result(narrative, int(year), pathway, ind, index, join, per_basin,
                            context, method, details, beside=beside)

    def baseline(self, lon: np.ndarray, lat: np.ndarray, *, context: HazardContext) -> HazardResult:
        """The Aqueduct 4.0 *baseline* category (``bws_cat`` for water stress) of every site.

        Baseline is not a narrative: the result has ``scenario``, ``year`` and ``pathway`` set
        to None and ``details["period"] == "baseline"``. The baseline table repeats each basin's
        value on every basin x province x aquifer row, so values are looked up by ``pfaf_id``
        of the same basin polygons as :meth:`assess` uses. ``extra`` keys are named after the
        baseline indicator (``bws_raw``, ``bws_score``, ``bws_label``) plus ``pfaf_id``.
        """
        ind, boundary_km, layer = _params(context)
        entry = _entry(context)
        relpath = _relpath(entry, "baseline_annual", ".csv")
        names = [f"{ind.baseline}_{t}" for t in ("raw", "score", "cat", "label")]
        table = _baseline_table(context, entry, relpath, ind.baseline, names)
        index, join = self._locate(lon, lat, context, entry, layer, boundary_km)
        per_basin = _per_basin(table, index, names)
        method = (f"Aqueduct 4.0 (Kuzma et al. 2023, WRI) baseline {ind.title}, column "
                  f"{names[2]}. {_method_common(ind, context.thresholds, boundary_km)}")
        details = {
            "indicator": ind.baseline, "columns": dict(zip("rscl", names, strict=True)),
            "file": relpath, "basins_layer": f"{_relpath(entry, '', '.gdb')}:{layer}",
            "dataset_version": entry.version, "period": "baseline",
            "boundary_km": boundary_km, "basins": len(index.pfaf_id),
            **origin_details(context.data.origin, _synthetic_files(
                (relpath, table), (_relpath(entry, "", ".gdb"), index))),
        }
        return self._result(None, None, None, ind, index, join, per_basin, context, method,
                            details, extra_prefix=ind.baseline)

    # -- internals ----------------------------------------------------------------------------

    def _locate(self, lon: Any, lat: Any, context: HazardContext, entry: CatalogEntry,
                layer: str, boundary_km: float) -> tuple[BasinIndex, SiteJoin]:
        lon = np.ascontiguousarray(lon, dtype="float64")
        lat = np.ascontiguousarray(lat, dtype="float64")
        if lon.shape != lat.shape or lon.ndim != 1:
            raise ValueError(f"{self.name}: lon and lat must be 1-D arrays of equal length, "
                             f"got shapes {lon.shape} and {lat.shape}")
        gdb = _relpath(entry, "", ".gdb")
        index = basin_index(context.data.require(entry, gdb), gdb, layer, entry,
                             context.cache_dir)
        digest = hashlib.blake2b(lon.tobytes() + lat.tobytes(), digest_size=16).hexdigest()
        key = (index.key, boundary_km, len(lon), digest)
        with self._lock:
            join = self._joins.get(key)
        if join is None:
            join = join_sites(index, lon, lat, boundary_km)
            with self._lock:
                self._joins[key] = join
                while len(self._joins) > 4:  # the same sites come back for 9 scenario x years
                    self._joins.popitem(last=False)
        return index, join

    def _result(self, narrative: Narrative | None, year: int | None, pathway: Pathway | None,
                ind: _Indicator, index: BasinIndex, join: SiteJoin,
                per_basin: dict[str, np.ndarray], context: HazardContext, method: str,
                details: dict[str, Any], *, extra_prefix: str | None = None,
                beside: dict[str, np.ndarray] | None = None) -> HazardResult:
        thresholds = context.thresholds
        inside = join.basin >= 0
        b = np.where(inside, join.basin, 0)
        n = len(join.basin)

        def take(arr: np.ndarray, fill: Any) -> np.ndarray:
            out = arr[b] if len(arr) else np.empty(n, dtype=arr.dtype)
            return np.where(inside, out, fill) if n else out

        raw = take(per_basin["r"], np.nan).astype("float64")
        score = take(per_basin["s"], np.nan).astype("float64")
        cat = take(per_basin["c"], np.nan).astype("float64")
        label = take(per_basin["l"], "").astype(object)
        pfaf = take(index.pfaf_id, int(_NO_DATA)).astype("int64")
        levels = classify(cat, thresholds)

        bits = np.zeros(n, dtype=np.uint8)
        bits |= (~join.located).astype(np.uint8)
        bits |= ((join.located & ~inside) << 1).astype(np.uint8)
        bits |= ((inside & (levels == 0)) << 2).astype(np.uint8)
        if ind.has_arid:
            bits |= ((cat == _ARID) << 3).astype(np.uint8)
        bits |= ((raw == _EXTREME_RAW) << 4).astype(np.uint8)
        bits |= ((inside & join.boundary) << 5).astype(np.uint8)

        p = extra_prefix or ind.code
        return HazardResult(
            hazard=self.name, scenario=narrative, year=year, pathway=pathway,
            units=_units(ind, baseline=extra_prefix is not None),
            threshold_set=thresholds.name, datasets=tuple(context.spec.datasets),
            method=method, values=cat, levels=levels, level_low=levels.copy(),
            level_high=levels.copy(), flags=_flag_strings(bits),
            extra={f"{p}_raw": raw, f"{p}_score": score, f"{p}_label": label, "pfaf_id": pfaf,
                   **(beside or {})},
            details=details,
        )


# --- parameters and files ----------------------------------------------------------------------

def _params(context: HazardContext) -> tuple[_Indicator, float, str]:
    params = context.params
    name = context.spec.name
    code = str(params.get("indicator", "ws"))
    if code not in INDICATORS:
        raise CatalogError(f"hazard {name!r}: unknown Aqueduct indicator {code!r} in params; "
                           f"expected one of {', '.join(INDICATORS)}")
    try:
        boundary_km = float(params.get("boundary_km", 1.0))
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"hazard {name!r}: boundary_km must be a number of km, got "
                           f"{params.get('boundary_km')!r}") from exc
    if not boundary_km >= 0:
        raise CatalogError(f"hazard {name!r}: boundary_km must be >= 0, got {boundary_km}")
    if context.thresholds.kind != "categorical":
        raise CatalogError(
            f"hazard {name!r}: threshold set {context.thresholds.name!r} is "
            f"{context.thresholds.kind}; Aqueduct categories need a categorical set mapping "
            "-1..4 to levels (e.g. water-stress-aqueduct-category-v1)")
    return INDICATORS[code], boundary_km, str(params.get("basin_layer", "future_annual"))


def _entry(context: HazardContext) -> CatalogEntry:
    ds = context.spec.datasets[0]
    try:
        return context.datasets[ds]
    except KeyError:
        raise CatalogError(f"hazard {context.spec.name!r}: dataset {ds!r} is not in the "
                           "context; build it with HazardContext.build") from None


def _relpath(entry: CatalogEntry, marker: str, suffix: str) -> str:
    """The catalog file whose name contains ``marker`` and ends with ``suffix``."""
    for f in entry.files:
        name = f.rsplit("/", 1)[-1].lower()
        if marker in name and name.endswith(suffix):
            return f
    raise CatalogError(f"dataset {entry.id!r} ({entry.version}): no file like "
                       f"*{marker}*{suffix} among its catalog files {list(entry.files)}")


def _synthetic_files(*read: tuple[str, pd.DataFrame | BasinIndex]) -> list[str]:
    """The files among a table and a basin index that declare themselves synthetic."""
    return [relpath for relpath, obj in read
            if (obj.attrs.get(SYNTHETIC_MARK) if isinstance(obj, pd.DataFrame) else obj.synthetic)]


def _units(ind: _Indicator, *, baseline: bool) -> str:
    span = "-1..4" if ind.has_arid else "0..4"
    return f"Aqueduct 4.0 {'baseline' if baseline else 'future'} {ind.title} category ({span})"


def _method_common(ind: _Indicator, ts: ThresholdSet, boundary_km: float) -> str:
    arid = (" Category -1 (arid and low water use) is ranked with high stress, as Aqueduct's "
            "FAQ advises, and flagged." if ind.has_arid else "")
    return (
        f"Each site takes the value of the HydroBASINS level-6 sub-basin (pfaf_id) whose "
        f"polygon contains it; categories map to risk levels by threshold set {ts.name} "
        f"(version {ts.version}).{arid} Sites within {boundary_km:g} km of their basin's "
        f"boundary are flagged basin-boundary (distance on a local equirectangular "
        f"approximation: longitude scaled by cos(latitude), {KM_PER_DEGREE} km per degree).")


def _flag_strings(bits: np.ndarray) -> np.ndarray:
    """Semicolon-joined flag names per site, built once per distinct bit pattern."""
    uniq, inverse = np.unique(bits, return_inverse=True)
    names = [";".join(f for i, f in enumerate(_FLAG_BITS) if u >> i & 1) for u in uniq]
    return np.array(names, dtype=object)[inverse.ravel()] if len(bits) else \
        np.empty(0, dtype=object)


# --- tables --------------------------------------------------------------------------------------

_TABLES: dict[tuple, pd.DataFrame] = {}
_TABLES_LOCK = threading.Lock()


def forget_tables() -> None:
    """Drop the tables held in this process (the parsed copies in cache folders stay)."""
    with _TABLES_LOCK:
        _TABLES.clear()


def _future_table(context: HazardContext, entry: CatalogEntry, relpath: str,
                  ind: str) -> pd.DataFrame:
    """The indicator's ``_x_`` columns for all nine pathways, indexed by pfaf_id (read once)."""
    path = context.data.require(entry, relpath)
    wanted = [f"{s}{p}_{ind}_x_{t}" for s in _SCENARIO_CODES for p in _PERIOD_CODES
              for t in "rscl"]
    return _cached_table(path, relpath, entry, wanted, repeated=False,
                         cache_dir=context.cache_dir)


def _baseline_table(context: HazardContext, entry: CatalogEntry, relpath: str, ind: str,
                    names: list[str]) -> pd.DataFrame:
    path = context.data.require(entry, relpath)
    table = _cached_table(path, relpath, entry, names, repeated=True,
                          cache_dir=context.cache_dir)
    for c in names:
        if c not in table.columns:
            raise HazardDataError(
                f"dataset {entry.id!r} (version {entry.version}): {relpath} has no column "
                f"{c!r}; expected the Aqueduct 4.0 baseline table with {ind}_raw, {ind}_score, "
                f"{ind}_cat and {ind}_label; re-fetch it with 'sitescreen data fetch {entry.id}'")
    return table


def _cached_table(path: str, relpath: str, entry: CatalogEntry, wanted: list[str], *,
                  repeated: bool, cache_dir: str | None = None) -> pd.DataFrame:
    """The table's ``wanted`` columns: read once per process, and parsed once per cache
    folder (a Parquet copy named by the file, its size and mtime, the columns and this
    module's table format, so a changed file is read again: :class:`ParsedCopy`, which also
    says when old copies go)."""
    signature = file_signature(path)
    cache_key = (path, signature, tuple(wanted))
    with _TABLES_LOCK:
        hit = _TABLES.get(cache_key)
        if hit is None:
            copy = ParsedCopy.of(cache_dir, entry, path, kind="table", code=_TABLE_FORMAT,
                                 parts=(str(repeated), *wanted), folder="tables",
                                 signature=signature)
            hit = copy.read(_read_kept_table, "parsed table") if copy else None
            if hit is None:
                hit = _read_table(path, relpath, entry, wanted, repeated=repeated)
                if copy is not None:
                    copy.keep(lambda tmp: hit.to_parquet(tmp, index=True), "parsed table")
            _TABLES[cache_key] = hit
            while len(_TABLES) > 8:
                _TABLES.pop(next(iter(_TABLES)))
        return hit


#: Changes when what :func:`_read_table` returns changes (the kept Parquet copies).
_TABLE_FORMAT = "aqueduct-table-1"


def _read_kept_table(kept: Path) -> pd.DataFrame:
    """A parsed table kept by :func:`_cached_table`."""
    table = pd.read_parquet(kept)
    table.attrs = {SYNTHETIC_MARK: bool(table.attrs.get(SYNTHETIC_MARK))}
    return table


def _read_table(path: str, relpath: str, entry: CatalogEntry, wanted: list[str], *,
                repeated: bool) -> pd.DataFrame:
    """Read only ``pfaf_id`` and the ``wanted`` columns present; one row per basin.

    ``repeated``: the table lists a basin on several rows (the baseline's basin x province x
    aquifer units, whose basin indicators are equal), so the first row stands for the basin
    without a warning.
    """
    key = "pfaf_id"
    where = f"dataset {entry.id!r} (version {entry.version}): {relpath}"
    src = local_path(path)
    try:
        header = pd.read_csv(src, nrows=0).columns
        if key not in header:
            raise HazardDataError(
                f"{where} has no column {key!r}; is it an Aqueduct 4.0 table? Columns start "
                f"with {list(header[:5])}")
        present = [c for c in wanted if c in header]
        # Read as text, without pandas' default NA words: "n/a" or "NA" in a numeric column
        # is a schema violation to report, not "no data" to accept silently.
        df = pd.read_csv(src, usecols=[key, *present], dtype=str, keep_default_na=False)
        df = _checked_columns(df, where, entry)
    except HazardDataError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise HazardDataError(f"{where}: cannot read the table: {exc}") from exc
    ids = df.pop(key).to_numpy()
    keep = np.isfinite(ids) & (ids != _NO_DATA)  # pfaf_id -9999: units without a basin
    df, ids = df[keep], ids[keep].astype("int64")
    dup = pd.Index(ids).duplicated()
    if dup.any():
        if not repeated:
            log.warning("%s: %d duplicated %s values; the first row of each is used",
                        where, int(dup.sum()), key)
        df, ids = df[~dup], ids[~dup]
    df.index = pd.Index(ids, name=key)
    df.attrs[SYNTHETIC_MARK] = says_synthetic(header)
    log.debug("%s: read %d basins, columns %s", where, len(df), present)
    return df


#: Documented values of Aqueduct 4.0 category columns (``_x_c``, ``_cat``) and scores.
_CATEGORIES = frozenset({_NO_DATA, _ARID, 0.0, 1.0, 2.0, 3.0, 4.0})
_SCORE_RANGE = (0.0, 5.0)


def _checked_columns(df: pd.DataFrame, where: str, entry: CatalogEntry) -> pd.DataFrame:
    """Numbers from the text columns, refusing what the Aqueduct 4.0 schema does not allow.

    Blanks are no data (as -9999 is). Anything else that is not a number, a category outside
    -1..4 / -9999, a score outside 0-5 / -9999, or a category column without one category
    is an error naming the file, the column and example values.
    """
    fix = (f"the file does not follow the Aqueduct 4.0 schema (data dictionary in "
           f"wri/Aqueduct40); fetch it again with 'sitescreen data fetch {entry.id}'")
    out = {}
    for col in df.columns:
        text = df[col].str.strip()
        if col.endswith(("_l", "_label")):
            out[col] = text.where(text != "")
            continue
        blank = text == ""
        values = pd.to_numeric(text.where(~blank), errors="coerce")
        bad = ~blank & values.isna()
        if bad.any():
            raise HazardDataError(
                f"{where}: column {col!r} holds {_examples(text[bad])}, not a number "
                f"({int(bad.sum())} of {len(text)} rows); {fix}")
        if col.endswith(("_c", "_cat")):
            outside = values.notna() & ~values.isin(_CATEGORIES)
            what = "categories -1..4 (-9999: no data)"
        elif col.endswith(("_s", "_score")):
            outside = values.notna() & (values != _NO_DATA) & ~values.between(*_SCORE_RANGE)
            what = "scores 0-5 (-9999: no data)"
        else:
            outside = pd.Series(False, index=values.index)
        if outside.any():
            raise HazardDataError(
                f"{where}: column {col!r} holds {_examples(text[outside])}, outside the "
                f"documented {what} ({int(outside.sum())} of {len(text)} rows); {fix}")
        if col.endswith(("_c", "_cat")) and len(values) and \
                not (values.notna() & (values != _NO_DATA)).any():
            raise HazardDataError(
                f"{where}: column {col!r} holds no category at all (every row is blank or "
                f"-9999, e.g. {_examples(text)}): every site would read as no data; {fix}")
        out[col] = values.astype("float64")
    return pd.DataFrame(out, index=df.index)


def _examples(values: pd.Series, n: int = 3) -> str:
    uniq = list(dict.fromkeys(values.tolist()))
    shown = ", ".join(repr(v) for v in uniq[:n])
    return shown + (", ..." if len(uniq) > n else "")


def _per_basin(table: pd.DataFrame, index: BasinIndex, cols: list[str]) -> dict[str, np.ndarray]:
    """Raw, score, category and label per basin polygon; sentinels and gaps become NaN/""."""
    rows = table.index.get_indexer(index.pfaf_id)
    found = rows >= 0
    r_idx = np.where(found, rows, 0)
    out: dict[str, np.ndarray] = {}
    for t, c in zip("rscl", cols, strict=True):
        col = table[c].to_numpy()
        if t == "l":
            vals = np.asarray(col, dtype=object)[r_idx] if len(col) else \
                np.full(len(rows), "", dtype=object)
            vals = np.where(found & pd.notna(vals), vals, "").astype(object)
        else:
            vals = col.astype("float64")[r_idx] if len(col) else np.full(len(rows), np.nan)
            vals = np.where(found, vals, np.nan)
            vals[vals == _NO_DATA] = np.nan
        out[t] = vals
    return out
