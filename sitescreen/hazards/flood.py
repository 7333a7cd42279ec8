"""River and coastal flood from the Aqueduct Floods inundation maps (WRI, v2).

Method (Ward et al. 2020, Aqueduct Floods Methodology, WRI technical note; thresholds after
ThinkHazard!, GFDRR): the tiles give inundation depth in metres at 30 arc-seconds for a set
of return periods. For each site and ensemble member we take the *most frequent* return
period whose depth reaches the damaging depth (catalog ``damaging_depth_m``, default 0.5 m):
the smallest RP with ``depth >= damaging_depth_m``; ``inf`` when no modelled RP reaches it;
NaN when the site is no data in every file of that member. The return period (years) is
classified with the threshold set (descending edges 10 / 25 / 100 / 1000 years: <= 10 very
high ... never very low).

Ensemble (river: five GCMs per pathway; coast: one file per pathway and year):

- ``values`` is the **lower median** of the members' return periods: the middle value for an
  odd number of valid members, and for an even number the more frequent of the two middle
  ones (the cautious choice). It is always one of the modelled return periods (or inf).
  ``levels`` is the level of that return period: with the five GCMs, the median member
  level; with an even count (a member without data), the higher of the two middle levels,
  so a reported value and its level never disagree.
- ``level_low`` / ``level_high`` are the lowest / highest member level; members with no data
  are left out. ``n_models`` counts the members with data.

Scenario: the narrative maps to the dataset's pathway with
:func:`sitescreen.scenarios.pathway_for` (``rcp4p5`` / ``rcp8p5``); "current trend" has no
exact Aqueduct Floods pathway and is marked ``exact=False`` in ``HazardResult.pathway`` and
``details``. The historical baseline (river: WATCH 1980; coast: ``historical_..._hist``) is
reported beside the scenario as ``rp_baseline`` / ``level_baseline`` (catalog ``baseline``).

Coast: a site whose pixel is no data (sea) takes the nearest valid pixel within
``nearest_land_max_km`` (flag ``nearest-land-pixel:<km>``). The pixel is found once per
call on the rarest-RP file of the requested pathway and year, and every file is then read at
that pixel, so all return periods describe the same place. With no valid pixel within the
distance the site is no data: in the coastal tiles dry land inland is depth 0, so a no-data
pixel far from land means the site lies offshore or outside the map, and no value is
invented for it.

Flags per site (";"-separated): ``no-data``; ``models-disagree`` (level_low != level_high);
``near-threshold`` when a member's depth lies within ``near_threshold_m`` (default 0.1 m) of
the damaging depth at the deciding return period (the ensemble value; the rarest RP when it
is never reached) or at the next more frequent RP, i.e. a small change of depth would move
the level; ``nearest-land-pixel:<km>`` (coast). Dataset-level caveats go into ``details``:
the tiles carry no flood protection standards, which Aqueduct applies separately.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sitescreen.catalog import CatalogEntry
from sitescreen.classify import ThresholdSet, classify
from sitescreen.data.datasets import format_file_name
from sitescreen.data.sources import origin_details
from sitescreen.data.windows import check_cover
from sitescreen.errors import CatalogError
from sitescreen.hazards.base import HazardContext, HazardResult, join_flags, site_arrays
from sitescreen.raster import FALLBACK_NODATA_RULE, SAMPLES, RasterInfo, nearest_valid_pixel
from sitescreen.scenarios import Narrative, Pathway, parse_narrative, pathway_for

__all__ = ["RiverFlood", "CoastalFlood", "member_return_periods", "ensemble_summary"]

log = logging.getLogger(__name__)

DATASET = "aqueduct_floods"
NO_PROTECTION = "Aqueduct Floods tiles carry no flood protection standards"
UNITS = "years (most frequent return period at which depth reaches the damaging depth)"
ENSEMBLE_RULE = ("value: lower median of the members' return periods (for an even count "
                 "the more frequent of the two middle values); level: the level of that "
                 "value (median member level; for an even count the higher middle level); "
                 "level_low/level_high: min/max member level")


def member_return_periods(depth: np.ndarray, return_periods: Sequence[float],
                          damaging_m: float) -> np.ndarray:
    """Most frequent return period at which depth reaches ``damaging_m``, per member and site.

    Parameters
    ----------
    depth : numpy.ndarray
        Depth in metres, shape (..., n_return_periods, n_sites), return periods ascending;
        NaN is no data.
    return_periods : sequence of float
        Years, ascending, matching axis -2 of ``depth``.
    damaging_m : float
        Damaging depth in metres (reached when ``depth >= damaging_m``).

    Returns
    -------
    numpy.ndarray
        Shape (..., n_sites): the return period in years; inf when never reached; NaN when
        every return period is no data.

    Examples
    --------
    Rows are return periods (10, 100, 1000 y), columns sites:

    >>> d = np.array([[0.2, 0.5, np.nan], [0.4, 0.9, np.nan], [0.6, 1.2, np.nan]])
    >>> member_return_periods(d, [10, 100, 1000], 0.5).tolist()
    [1000.0, 10.0, nan]
    >>> member_return_periods(d, [10, 100, 1000], 2.0).tolist()
    [inf, inf, nan]
    """
    rps = np.asarray(return_periods, dtype="float64")
    d = np.asarray(depth, dtype="float64")
    with np.errstate(invalid="ignore"):
        hit = d >= damaging_m  # NaN compares False: no data never counts as reached
    first = hit.argmax(axis=-2)
    out = np.where(hit.any(axis=-2), rps[first], np.inf)
    out[np.isnan(d).all(axis=-2)] = np.nan
    return out


@dataclass(frozen=True, slots=True)
class EnsembleSummary:
    """Per-site statistics of the members' return periods and levels."""

    value: np.ndarray       # lower-median return period (years)
    rp_min: np.ndarray
    rp_max: np.ndarray
    level_low: np.ndarray   # int8, 0 = no data
    level_high: np.ndarray
    n_valid: np.ndarray     # int


def ensemble_summary(member_rp: np.ndarray, thresholds: ThresholdSet) -> EnsembleSummary:
    """Lower median, range and level range of member return periods (members on axis 0).

    >>> from sitescreen.classify import ThresholdSet
    >>> fl = ThresholdSet("f", "flood", "1", "descending", "years", (10, 25, 100, 1000))
    >>> s = ensemble_summary(np.array([[10.0], [25.0], [100.0], [np.inf]]), fl)
    >>> s.value.tolist(), s.level_low.tolist(), s.level_high.tolist(), s.n_valid.tolist()
    ([25.0], [1], [5], [4])
    """
    rp = np.asarray(member_rp, dtype="float64")
    valid = ~np.isnan(rp)
    n = valid.sum(axis=0)
    ordered = np.sort(rp, axis=0)  # NaN sorts last, after inf
    k_low = np.maximum(n - 1, 0) // 2
    k_max = np.maximum(n - 1, 0)
    value = np.take_along_axis(ordered, k_low[None], axis=0)[0]
    rp_max = np.take_along_axis(ordered, k_max[None], axis=0)[0]
    rp_min = ordered[0].copy()
    none = n == 0
    for arr in (value, rp_min, rp_max):
        arr[none] = np.nan
    levels = classify(rp, thresholds)
    low = np.where(valid, levels, 99).min(axis=0).astype("int8")
    high = np.where(valid, levels, 0).max(axis=0).astype("int8")
    low[none] = 0
    return EnsembleSummary(value=value, rp_min=rp_min, rp_max=rp_max, level_low=low,
                           level_high=high, n_valid=n.astype("int64"))


def _near_threshold(depth: np.ndarray, rps: np.ndarray, value: np.ndarray,
                    damaging_m: float, margin: float) -> np.ndarray:
    """Any member within ``margin`` of the damaging depth at the deciding RP or the one
    before it. ``depth``: (members, rps, sites)."""
    n_rp = len(rps)
    j = np.searchsorted(rps, value)  # index of the deciding RP; inf -> n_rp
    j = np.where(np.isfinite(value), j, n_rp - 1).clip(0, n_rp - 1)
    near = np.zeros(value.shape, dtype=bool)
    for jj in (j, j - 1):
        ok = (jj >= 0) & ~np.isnan(value)
        idx = np.clip(jj, 0, n_rp - 1)
        d = np.take_along_axis(depth, np.broadcast_to(idx, (depth.shape[0], 1, len(idx))),
                               axis=1)[:, 0, :]
        with np.errstate(invalid="ignore"):
            near |= ok & (np.abs(d - damaging_m) <= margin).any(axis=0)
    return near


def _param(context: HazardContext, key: str, default: float) -> float:
    try:
        value = float(context.params.get(key, default))
    except (TypeError, ValueError) as exc:
        raise CatalogError(
            f"hazard {context.spec.name!r}: parameter {key} must be a number, got "
            f"{context.params.get(key)!r}") from exc
    if not value >= 0:
        raise CatalogError(
            f"hazard {context.spec.name!r}: parameter {key} must be >= 0, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    files: tuple[str, ...]  # one per return period, ascending


class _AqueductFlood:
    """Shared sampling, ensemble and reporting; subclasses list the files."""

    name: str = ""
    label: str = ""

    # -- files ---------------------------------------------------------------------------
    def _return_periods(self, entry: CatalogEntry) -> np.ndarray:
        raise NotImplementedError

    def _members(self, entry: CatalogEntry, pathway: Pathway) -> list[_Member]:
        raise NotImplementedError

    def baseline(self, entry: CatalogEntry) -> _Member:
        raise NotImplementedError

    def _locate(self, context: HazardContext, entry: CatalogEntry, lon: np.ndarray,
                lat: np.ndarray, members: list[_Member]
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list]:
        """Coordinates to sample at, extra columns and flag parts (coast: nearest land)."""
        return lon, lat, {}, []

    def _pad_km(self, params: dict) -> float:
        """Search radius (km) around each site that reading needs (coast: nearest land)."""
        return 0.0

    def data_needs(self, entry: CatalogEntry, *, scenario: Narrative | str, year: int,
                   params: dict) -> dict[str, float]:
        """The files :meth:`assess` reads for ``scenario`` and ``year``, each with the
        radius (km) around the sites it reads; a windowed fetch gets just those windows."""
        pathway = pathway_for(entry.family, parse_narrative(scenario), year)
        members = self._members(entry, pathway)
        if bool(params.get("baseline", True)):
            members.append(self.baseline(entry))
        pad = self._pad_km(params)
        return {f: pad for m in members for f in m.files}

    # -- sampling ------------------------------------------------------------------------
    def _depths(self, context: HazardContext, entry: CatalogEntry, members: list[_Member],
                lon: np.ndarray, lat: np.ndarray, infos: dict[str, RasterInfo]
                ) -> list[np.ndarray]:
        """Each member's depths (return periods x sites), its files sampled together."""
        files = [f for m in members for f in m.files]
        paths = [context.data.require(entry, f) for f in files]
        for path in paths:
            check_cover(path, lon, lat, entry=entry)  # a window file holds these sites?
        sampled = SAMPLES.sample_many(paths, lon, lat, version=entry.version)
        for fname, (_, info) in zip(files, sampled, strict=True):
            infos[fname] = info
        values = iter(v for v, _ in sampled)
        return [np.stack([next(values) for _ in m.files]) for m in members]

    def assess(self, lon: np.ndarray, lat: np.ndarray, *, scenario: Narrative | str,
               year: int, context: HazardContext) -> HazardResult:
        """Flood return period, level and GCM range for every site (see module notes)."""
        scenario = parse_narrative(scenario)
        try:
            entry = context.datasets[DATASET]
        except KeyError:
            raise CatalogError(
                f"hazard {self.name!r} needs dataset {DATASET!r}; its catalog entry lists "
                f"{sorted(context.datasets)}") from None
        pathway = pathway_for(entry.family, scenario, year)
        damaging = _param(context, "damaging_depth_m", 0.5)
        margin = _param(context, "near_threshold_m", 0.1)
        lon, lat = site_arrays(self.name, lon, lat)
        n = len(lon)
        rps = self._return_periods(entry)
        members = self._members(entry, pathway)
        s_lon, s_lat, extra, flag_parts = self._locate(context, entry, lon, lat, members)

        infos: dict[str, RasterInfo] = {}
        with_baseline = bool(context.params.get("baseline", True))
        sampled = self._depths(context, entry, members + ([self.baseline(entry)]
                                                          if with_baseline else []),
                               s_lon, s_lat, infos)
        depth = np.stack(sampled[:len(members)])  # (members, rps, sites)
        member_rp = member_return_periods(depth, rps, damaging)
        summary = ensemble_summary(member_rp, context.thresholds)
        levels = classify(summary.value, context.thresholds)

        extra.update({"rp_min": summary.rp_min, "rp_max": summary.rp_max,
                      "n_models": summary.n_valid})
        if 100 in rps:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN sites stay NaN
                extra["depth_rp100_m"] = np.nanmedian(depth[:, list(rps).index(100), :], axis=0)
        if with_baseline:
            base_depth = sampled[-1]
            base_rp = member_return_periods(base_depth, rps, damaging)
            extra["rp_baseline"] = base_rp
            extra["level_baseline"] = classify(base_rp, context.thresholds)

        no_data = summary.n_valid == 0
        flags = join_flags(n, [
            *flag_parts,
            (no_data, "no-data"),
            (~no_data & (summary.level_low != summary.level_high), "models-disagree"),
            (_near_threshold(depth, rps, summary.value, damaging, margin) & ~no_data,
             "near-threshold"),
        ])

        fallback = sorted(f for f, i in infos.items() if not i.nodata_declared)
        log.debug("%s %s %s: %d sites, %d files, pathway %s", self.name, scenario.value, year,
                  n, len(infos), pathway.code)
        details = {
            "caveats": {"no-flood-protection": NO_PROTECTION},
            "pathway": pathway.to_dict(),
            "pathway_exact": pathway.exact,
            "members": [m.name for m in members],
            "return_periods": [float(r) for r in rps],
            "damaging_depth_m": damaging,
            "near_threshold_m": margin,
            "ensemble": ENSEMBLE_RULE,
            "files_read": sorted(infos),
            **origin_details(context.data.origin, [f for f, i in infos.items() if i.synthetic]),
            "dataset_version": entry.version,
        }
        if not pathway.exact:
            details["pathway_note"] = pathway.note
        if fallback:
            details["nodata_fallback"] = {"rule": FALLBACK_NODATA_RULE, "files": fallback}
        return HazardResult(
            hazard=self.name, scenario=scenario, year=int(year), pathway=pathway, units=UNITS,
            threshold_set=context.thresholds.name, datasets=(entry.id,),
            method=self._method(damaging), values=summary.value, levels=levels,
            level_low=summary.level_low, level_high=summary.level_high, flags=flags,
            extra=extra, details=details)

    def _method(self, damaging: float) -> str:
        return (f"{self.label}: most frequent return period at which Aqueduct Floods "
                f"inundation depth reaches {damaging:g} m (Ward et al. 2020), ensemble "
                "lower median, thresholds after ThinkHazard!")


def _template(entry: CatalogEntry, prefix: str) -> str:
    for template in entry.files:
        if template.startswith(prefix):
            return template
    raise CatalogError(
        f"dataset {entry.id!r} has no file template starting with {prefix!r}; "
        f"its files are {list(entry.files)}")


def _river_rps(entry: CatalogEntry) -> np.ndarray:
    return np.asarray(sorted(int(r) for r in entry.params.get(
        "river_return_periods", (2, 5, 10, 25, 50, 100, 250, 500, 1000))), dtype="float64")


class RiverFlood(_AqueductFlood):
    """Riverine inundation, five-GCM ensemble (``inunriver_*`` tiles)."""

    name = "river_flood"
    label = "River flood"

    def _return_periods(self, entry: CatalogEntry) -> np.ndarray:
        return _river_rps(entry)

    def _files(self, pathway: str, model: str, year: int | str, entry: CatalogEntry
               ) -> tuple[str, ...]:
        template = _template(entry, "inunriver_")
        return tuple(format_file_name(template, pathway=pathway, model=model, year=year,
                                      rp=int(rp)) for rp in _river_rps(entry))

    def _members(self, entry: CatalogEntry, pathway: Pathway) -> list[_Member]:
        models = entry.params.get("river_models")
        if not models:
            raise CatalogError(f"dataset {entry.id!r}: params.river_models is empty")
        return [_Member(m, self._files(pathway.code, m, pathway.year, entry)) for m in models]

    def baseline(self, entry: CatalogEntry) -> _Member:
        p = entry.params
        model = p.get("river_historical_model", "000000000WATCH")
        return _Member(model, self._files(p.get("historical_pathway", "historical"), model,
                                          p.get("river_historical_year", 1980), entry))


def _coast_tokens(entry: CatalogEntry) -> list[str]:
    tokens = list(entry.params.get("coast_return_periods", (
        "0001_5", "0002", "0005", "0010", "0025", "0050", "0100", "0250", "0500", "1000")))
    return sorted(tokens, key=_coast_rp)


def _coast_rp(token: str) -> float:
    """``0001_5`` -> 1.5, ``0100`` -> 100.0 (upstream's 4-character return periods)."""
    try:
        return float(str(token).replace("_", "."))
    except ValueError as exc:
        raise CatalogError(f"coastal return period token {token!r} is not like '0001_5' "
                           "or '0100'") from exc


class CoastalFlood(_AqueductFlood):
    """Coastal inundation with subsidence (``inuncoast_*`` tiles), one file per RP."""

    name = "coastal_flood"
    label = "Coastal flood"

    def _return_periods(self, entry: CatalogEntry) -> np.ndarray:
        return np.asarray([_coast_rp(t) for t in _coast_tokens(entry)], dtype="float64")

    def _files(self, pathway: str, year: int | str, entry: CatalogEntry) -> tuple[str, ...]:
        template = _template(entry, "inuncoast_")
        sub = entry.params.get("coast_subsidence", "wtsub")
        slr = entry.params.get("coast_slr", "0")
        return tuple(format_file_name(template, pathway=pathway, subsidence=sub, year=year,
                                      rp_coast=t, slr=slr) for t in _coast_tokens(entry))

    def _members(self, entry: CatalogEntry, pathway: Pathway) -> list[_Member]:
        sub = entry.params.get("coast_subsidence", "wtsub")
        slr = entry.params.get("coast_slr", "0")
        return [_Member(f"{sub}_slr{slr}", self._files(pathway.code, pathway.year, entry))]

    def baseline(self, entry: CatalogEntry) -> _Member:
        p = entry.params
        return _Member("historical", self._files(p.get("historical_pathway", "historical"),
                                                 p.get("coast_historical_year", "hist"), entry))

    def _pad_km(self, params: dict) -> float:
        return float(params.get("nearest_land_max_km", 2.0))

    def _locate(self, context: HazardContext, entry: CatalogEntry, lon: np.ndarray,
                lat: np.ndarray, members: list[_Member]
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list]:
        max_km = _param(context, "nearest_land_max_km", 2.0)
        ref = context.data.require(entry, members[0].files[-1])  # rarest RP
        check_cover(ref, lon, lat, entry=entry, pad_km=max_km)
        key = ("nearest", *SAMPLES.key(ref, lon, lat, version=entry.version), max_km)
        _, dist, plon, plat = SAMPLES.get_or_compute(
            key, lambda: nearest_valid_pixel(ref, lon, lat, max_km=max_km))
        moved = dist > 0  # NaN compares False
        full = np.full(len(lon), "", dtype=object)
        full[moved] = np.char.add("nearest-land-pixel:", np.char.mod("%.1f", dist[moved]))
        return plon, plat, {"nearest_land_km": np.array(dist)}, [(moved, full)]
