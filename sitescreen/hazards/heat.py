"""Heat indicators from the World Bank CCKP CMIP6 0.25-degree climatologies.

One plug-in, :class:`CckpIndicator`, serves every CCKP annual indicator the catalog names:
``extreme_heat`` (``hd35``, days per year with daily maximum temperature above 35 C) and
``cooling_demand`` (``cdd65``, cooling degree days above 65 F = 18.3 C, reported in C-days).
The indicator is the catalog entry's ``params.variable`` and its unit kind ``params.quantity``
(``days`` or ``degree_days``), so ``hd40``, ``tr`` or ``txx`` are one ``[hazards.NAME]``
entry and a threshold set, and no code.

Method (World Bank Climate Change Knowledge Portal, CMIP6 0.25-degree collection, from the
bias-corrected NASA NEX-GDDP-CMIP6 daily data, Thrasher et al. 2022, Scientific Data 9, 262):
CCKP publishes, per variable, scenario and 20-year period, the annual climatology of the
multi-model ensemble as three percentile maps (p10, median, p90). For each site:

- ``values``: the ensemble **median** of the cell holding the site (nearest 0.25-degree cell
  centre), in the quantity's unit (file units converted explicitly, see
  :mod:`sitescreen.netcdf`); ``levels`` its level in the threshold set;
- ``level_low`` / ``level_high``: the levels of the p10 and p90 maps (the ensemble range),
  so shares come with a range as for floods; ``extra`` ``p10`` / ``p90`` are their values;
- ``baseline`` / ``level_baseline``: the median of the historical run's 1995-2014 reference
  climatology ("today"), same cell and thresholds, and ``change`` (value - baseline) and
  ``change_pct``.

Scenario: the narrative maps to the CCKP run (``ensemble-all-ssp126`` / ``ssp245`` /
``ssp585``) and the target year to the 20-year period (2030 -> 2020-2039, 2050 -> 2040-2059,
2080 -> 2060-2079) through :func:`sitescreen.scenarios.pathway_for`; the period goes into
every output.

Sea cells: NEX-GDDP-CMIP6 covers land only. A site whose cell is no data takes the nearest
valid cell within ``params.nearest_land_max_km`` (default 30 km, about one 0.25-degree cell;
flag ``nearest-land-cell:<km>``); beyond that it is no data, never "very low". Other flags:
``no-data``, ``models-disagree`` (the p10 and p90 levels differ), ``near-threshold`` (the
median within the threshold set's ``near_margin`` of an edge).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from sitescreen.catalog import CatalogEntry
from sitescreen.classify import classify, near_threshold
from sitescreen.data.datasets import format_file_name
from sitescreen.data.sources import origin_details, says_synthetic
from sitescreen.errors import CatalogError
from sitescreen.hazards.base import HazardContext, HazardResult, join_flags, site_arrays
from sitescreen.netcdf import UNITS, convert_units, locate_cells, read_grid, read_points
from sitescreen.raster import SAMPLES
from sitescreen.scenarios import Narrative, parse_narrative, pathway_for

__all__ = ["CckpIndicator", "DATASET", "PERCENTILES"]

log = logging.getLogger(__name__)

DATASET = "cckp_cmip6"
#: The ensemble statistic reported, and the two bounding the range.
PERCENTILES = ("median", "p10", "p90")
FLAG_NEAREST = "nearest-land-cell"


class CckpIndicator:
    """A CCKP annual climatology indicator (``params.variable``) for every site.

    >>> CckpIndicator().name  # the catalog entry's name replaces it
    'cckp_indicator'
    """

    name: str = "cckp_indicator"

    def assess(self, lon: np.ndarray, lat: np.ndarray, *, scenario: Narrative | str,
               year: int, context: HazardContext) -> HazardResult:
        """Median value, level, p10-p90 level range and 1995-2014 baseline of every site."""
        scenario = parse_narrative(scenario)
        entry, variable, quantity, max_km = _params(self.name, context)
        pathway = pathway_for(entry.family, scenario, year)
        lon, lat = site_arrays(self.name, lon, lat)
        ref_run = str(entry.params.get("reference_run", "historical"))
        ref_period = str(entry.params.get("reference_period", "1995-2014"))
        # Where each site reads: its cell, or the nearest land cell, found once per hazard on
        # the reference median (CCKP's land mask is one for all its files) and reused by
        # every scenario, year and percentile.
        ref = self._path(context, entry, variable, ref_run, "median", ref_period)
        key = ("cckp-cells", *SAMPLES.key(ref[1], lon, lat, version=entry.version), max_km)
        plon, plat, dist = SAMPLES.get_or_compute(
            key, lambda: locate_cells(read_grid(ref[1]), lon, lat, max_km=max_km))
        files = {"baseline": ref[0]}
        synthetic: set[str] = set()  # the files read that declare themselves synthetic
        base = self._read(entry, quantity, *ref, plon, plat, synthetic)
        future = {}
        for pct in PERCENTILES:
            files[pct], path = self._path(context, entry, variable, pathway.code, pct,
                                          pathway.period)
            future[pct] = self._read(entry, quantity, files[pct], path, plon, plat, synthetic)
        ts = context.thresholds
        value = future["median"]
        levels = classify(value, ts)
        # The range: the levels of the p10 and p90 maps, with the median's level inside it
        # (min/max keeps it ordered; a percentile without data leaves it out).
        stack = np.stack([levels, classify(future["p10"], ts), classify(future["p90"], ts)])
        low = np.where(stack > 0, stack, 99).min(axis=0)
        high = stack.max(axis=0)
        low[levels == 0] = 0
        high[levels == 0] = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            change = value - base
            change_pct = np.where(base > 0, 100.0 * change / base, np.nan)
        no_data = levels == 0
        moved = dist > 0  # NaN compares False
        where = np.full(len(lon), "", dtype=object)
        where[moved] = np.char.add(f"{FLAG_NEAREST}:", np.char.mod("%.1f", dist[moved]))
        flags = join_flags(len(lon), [
            (moved, where), (no_data, "no-data"),
            (~no_data & (low != high), "models-disagree"),
            (~no_data & near_threshold(value, ts), "near-threshold"),
        ])
        units = UNITS[quantity]["reported"]
        label = f"{variable} ({units})"
        details: dict[str, Any] = {
            "variable": variable, "quantity": quantity, "units": units,
            "run": f"ensemble-all-{pathway.code}", "period": pathway.period,
            "reference": {"run": f"ensemble-all-{ref_run}", "period": ref_period,
                          "percentile": "median"},
            "percentiles": {"value": "median", "level_low": "p10", "level_high": "p90"},
            "files": files, "nearest_land_max_km": max_km,
            "land_cells_from": files["baseline"],
            "sampling": "nearest 0.25-degree cell (the cell holding the site)",
            "dataset_version": entry.version,
            **origin_details(context.data.origin, sorted(synthetic)),
        }
        method = (f"{label}: World Bank CCKP CMIP6 0.25-degree annual climatology of the "
                  f"multi-model ensemble (from NEX-GDDP-CMIP6, Thrasher et al. 2022), run "
                  f"ensemble-all-{pathway.code} ({pathway.label}), period {pathway.period}; "
                  "value and level from the ensemble median, level range from the p10 and "
                  f"p90 maps; today's value from the {ref_period} reference "
                  f"(ensemble-all-{ref_run}) beside it. Sites on a sea cell take the nearest "
                  f"land cell within {max_km:g} km (flagged).")
        log.debug("%s %s %s: %d sites, run %s, period %s", self.name, scenario.value, year,
                  len(lon), pathway.code, pathway.period)
        return HazardResult(
            hazard=self.name, scenario=scenario, year=int(year), pathway=pathway, units=units,
            threshold_set=ts.name, datasets=(entry.id,), method=method, values=value,
            levels=levels, level_low=low.astype("int8"), level_high=high.astype("int8"),
            flags=flags,
            extra={"p10": future["p10"], "p90": future["p90"], "baseline": base,
                   "level_baseline": classify(base, ts), "change": change,
                   "change_pct": change_pct, "nearest_land_km": dist},
            details=details)

    def _path(self, context: HazardContext, entry: CatalogEntry, variable: str, run: str,
              percentile: str, period: str) -> tuple[str, str]:
        relpath = _file_name(entry, variable, run, percentile, period)
        return relpath, context.data.require(entry, relpath)

    def _read(self, entry: CatalogEntry, quantity: str, relpath: str, path: str,
              lon: np.ndarray, lat: np.ndarray, synthetic: set[str]) -> np.ndarray:
        """The sites' values in ``quantity``; ``relpath`` joins ``synthetic`` when the file
        declares itself synthetic (global ``sitescreen_synthetic``). Only the sites' cells
        are read when they are few (:func:`~sitescreen.netcdf.read_points`)."""
        values, units, attrs = read_points(path, lon, lat)
        if says_synthetic(attrs):
            synthetic.add(relpath)
        values, _, _ = convert_units(values, units, quantity,
                                     source=f"dataset {entry.id!r} file {relpath}")
        return values


def _file_name(entry: CatalogEntry, variable: str, run: str, percentile: str,
               period: str) -> str:
    if len(entry.files) != 1:
        raise CatalogError(f"dataset {entry.id!r} must have one file template, "
                           f"has {list(entry.files)}")
    return format_file_name(entry.files[0], collection=entry.params.get("collection",
                                                                       "cmip6-x0.25"),
                            variable=variable, run=run, percentile=percentile, period=period)


def _params(name: str, context: HazardContext) -> tuple[CatalogEntry, str, str, float]:
    try:
        entry = context.datasets[DATASET]
    except KeyError:
        raise CatalogError(f"hazard {name!r} needs dataset {DATASET!r}; its catalog entry "
                           f"lists {sorted(context.datasets)}") from None
    p = context.params
    variable = p.get("variable")
    if not variable:
        raise CatalogError(f"hazard {name!r}: params.variable (a CCKP variable such as "
                           "'hd35') is missing")
    quantity = str(p.get("quantity", ""))
    if quantity not in UNITS:
        raise CatalogError(f"hazard {name!r}: params.quantity must be one of "
                           f"{', '.join(UNITS)}, got {quantity!r}")
    max_km = float(p.get("nearest_land_max_km", 30.0))
    if not (max_km >= 0 and math.isfinite(max_km)):
        raise CatalogError(f"hazard {name!r}: nearest_land_max_km must be a distance >= 0 "
                           f"in km, got {max_km!r}")
    return entry, str(variable), quantity, max_km
