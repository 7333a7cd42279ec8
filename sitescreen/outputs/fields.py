"""The field dictionary of a run: every column of its tables, named, typed and explained.

``sites.geojson`` has a few hundred properties with names up to about 50 characters, which a
shapefile export cuts to 10 (``water_st21``). The long, explicit names stay; this dictionary
gives each one a unique short alias of at most 10 characters, its type, unit and
description, and says which outputs have it. It is written as ``fields.csv`` in the run
folder and as the ``fields`` table of ``sites.gpkg``.

Columns of the dictionary: ``name``, ``alias``, ``type`` (``integer``, ``real``, ``text``,
``boolean``), ``unit``, ``description``, ``outputs`` (``;``-separated: ``sites.geojson``,
``sites.gpkg:sites``, ``sites.gpkg:site_details``, ``sites.gpkg:<level views>``,
``site_results.csv``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from sitescreen.aggregate import SiteResults, marked_pathway
from sitescreen.scenarios import scenario_title

__all__ = ["field_dictionary", "field_sample", "short_alias", "FIELDS_FILE", "FIELD_COLUMNS"]

#: File name of the dictionary in the run folder.
FIELDS_FILE = "fields.csv"
#: Columns of the dictionary.
FIELD_COLUMNS = ("name", "alias", "type", "unit", "description", "outputs")

GEOJSON = "sites.geojson"
GPKG = "sites.gpkg"
RESULTS_CSV = "site_results.csv"

_LEVEL = "level 1-5 (1 very low ... 5 very high); null: no data"
# Descriptions (and units) of the columns whose meaning is fixed.
_KNOWN: dict[str, tuple[str, str]] = {
    "site_id": ("", "site identifier (given, or derived from the site's fields)"),
    "name": ("", "site name as given"),
    "company": ("", "company operating the site, as given"),
    "kind": ("", "kind of site (office, data_center, lab, rnd_center, ...), as given"),
    "address": ("", "address as given"),
    "city": ("", "city as given"),
    "country": ("", "country as given (ISO 3166-1 alpha-2 where known)"),
    "lon": ("degree", "longitude, WGS 84 (EPSG:4326)"),
    "lat": ("degree", "latitude, WGS 84 (EPSG:4326)"),
    "input_ref": ("", "where the site is in the input file (feature or row number)"),
    "location_source": ("", "where the position comes from: given, override, geocoded, "
                            "unresolved"),
    "geocoder": ("", "geocoder that placed the site (empty when coordinates were given)"),
    "geocode_precision": ("", "precision of the position: coordinates, district, city, "
                              "province, country"),
    "geocode_confidence": ("0-1", "geocoder's confidence in the position"),
    "geocode_datum": ("", "datum of the position before conversion to WGS 84"),
    "geocode_query": ("", "the query sent to the geocoder"),
    "geocode_status": ("", "geocoding outcome: ok, ambiguous, unresolved, ..."),
    "geocode_matched": ("", "the place name the geocoder matched"),
    "geocode_candidates": ("", "candidates of an ambiguous address"),
    "geocode_reason": ("", "why a site could not be located"),
    "location_flags": ("", "checks on the position (swapped coordinates, far from the city, "
                           "outside the country, ...)"),
    "data_origin": ("", "where the hazard data came from: upstream, mirror, local, "
                        "synthetic-demo (synthetic-demo: NOT hazard data)"),
    "run_id": ("", "identifier of the run (the run folder's name)"),
    "hazard": ("", "hazard or composite name"),
    "hazard_label": ("", "hazard or composite, in words"),
    "is_composite": ("", "true for a composite (highest level of its components; where one "
                         "has no data at a site, a lower bound when medium or higher, else no "
                         "data)"),
    "scenario": ("", "narrative: optimistic, current_trend, pessimistic"),
    "year": ("year", "year screened"),
    "pathway": ("", "the dataset's own scenario pathway used for this narrative"),
    "pathway_label": ("", "the dataset pathway, in words"),
    "period": ("year range", "period the dataset pathway describes"),
    "pathway_exact": ("", "false when the dataset has no exact pathway for the narrative"),
    "exact": ("", "false when the dataset has no exact pathway for the narrative"),
    "pathway_note": ("", "why a pathway is approximate"),
    "value": ("see units", "the hazard indicator behind the level; inf in CSV and Parquet "
                           "(null in GeoJSON and the GeoPackage) where a flood depth never "
                           "reaches the damaging depth (level 1), NaN/null where no data "
                           "(level null)"),
    "units": ("", "units of value"),
    "level": ("level", "risk " + _LEVEL),
    "level_low": ("level", "low end of the level's range across models or uncertainty; "
                           "null: no data"),
    "level_high": ("level", "high end of the level's range across models or uncertainty "
                            "(5 at a composite's lower-bound site); null: no data"),
    "flags": ("", "flags on the result (near-threshold, models-disagree, ...; see "
                  "docs/errors.md)"),
    "driver": ("", "for a composite: the component(s) that set the level"),
    "threshold_set": ("", "named, versioned threshold set that turned value into level"),
    "datasets": ("", "catalog datasets the result was computed from"),
}
_UNIT_SUFFIXES = (("_per_yr", "1/year"), ("_ms", "m/s"), ("_km", "km"), ("_m", "m"),
                  ("_pct", "%"), ("_rp", "years (return period)"))
# Suffixes of the per-layer columns of sites.geojson / the GeoPackage.
_LAYER_PARTS = {
    "level": ("level", "risk " + _LEVEL, "lv"),
    "low": ("level", "low end of the level range; null: no data", "lo"),
    "high": ("level", "high end of the level range (5 at a composite's lower-bound site); "
                      "null: no data", "hi"),
    "value": (None, "hazard indicator behind the level; null with level 1: never reached "
                    "(a flood return period), null with level null: no data", "val"),
    "flags": ("", "flags on the result", "fl"),
    "pathway": ("", "dataset pathway used", "pw"),
    "driver": ("", "component(s) that set the composite's level", "dr"),
}
_SCENARIO_CODE = {"optimistic": "o", "current_trend": "c", "pessimistic": "p"}


def _kind(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_float_dtype(values):
        return "real"
    return "text"


def _initials(name: str) -> str:
    parts = [p for p in name.split("_") if p]
    if len(parts) == 1:
        return parts[0][:2]
    return "".join(p[0] for p in parts)[:3]


def short_alias(name: str, taken: set[str]) -> str:
    """A name of at most 10 characters (``[a-z0-9_]``) not in ``taken``, for formats that
    cut field names (shapefile DBF); ``taken`` is updated.

    >>> used = set()
    >>> short_alias("site_id", used), short_alias("geocode_precision", used)
    ('site_id', 'geoc_prec')
    >>> short_alias("geocode_precisions", used)  # the 4-letter form is taken
    'geo_pre'
    """
    clean = re.sub(r"[^0-9a-z_]+", "_", name.lower()).strip("_") or "field"
    candidates = [clean] if len(clean) <= 10 else []
    parts = [p for p in clean.split("_") if p]
    for k in (4, 3, 2):
        joined = "_".join(p[:k] for p in parts)
        if len(joined) <= 10:
            candidates.append(joined)
    candidates.append("".join(p[0] for p in parts[:-1]) + "_" + parts[-1]
                      if len(parts) > 1 else clean)
    for c in candidates:
        c = c[:10]
        if c not in taken:
            taken.add(c)
            return c
    base = candidates[0][:10]
    i = 2
    while True:
        c = base[:10 - len(str(i))] + str(i)
        if c not in taken:
            taken.add(c)
            return c
        i += 1


def _layer_alias(hazard: str, scenario: str, year: int, part: str) -> str:
    code = _SCENARIO_CODE.get(scenario, scenario[:1])
    return f"{_initials(hazard)}{code}{int(year) % 100:02d}_{_LAYER_PARTS[part][2]}"[:10]


class _Dictionary:
    """Rows keyed by name, in first-seen order; a name seen again gains an output."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.taken: set[str] = set()

    def add(self, name: str, kind: str, unit: str, description: str, output: str, *,
            alias: str | None = None) -> None:
        row = self.rows.get(name)
        if row is not None:
            if output not in row["outputs"]:
                row["outputs"].append(output)
            return
        if alias is None or alias in self.taken:
            alias = short_alias(alias or name, self.taken)
        else:
            self.taken.add(alias)
        self.rows[name] = {"name": name, "alias": alias, "type": kind, "unit": unit,
                           "description": description, "outputs": [output]}

    def frame(self) -> pd.DataFrame:
        rows = [{**r, "outputs": "; ".join(r["outputs"])} for r in self.rows.values()]
        return pd.DataFrame(rows, columns=list(FIELD_COLUMNS))


def _describe(name: str) -> tuple[str, str]:
    """(unit, description) of a column outside the per-layer pattern."""
    if name in _KNOWN:
        return _KNOWN[name]
    m = re.match(r"^extra_(.+?)_(.+)$", name)
    if m:
        unit = next((u for s, u in _UNIT_SUFFIXES if name.endswith(s)), "")
        return unit, f"hazard-specific detail of the result ({m.group(2)}), see the methods"
    return "", "the site's own column, carried through from the sites file"


#: Sites, and data centers, whose long rows :func:`field_sample` takes.
SAMPLE_SITES = 100


def field_sample(results: SiteResults, *, cooling: np.ndarray | None = None) -> pd.DataFrame:
    """The long rows from which the field dictionary and the GIS styles read a run's layers
    and columns: those of the first :data:`SAMPLE_SITES` sites and of the first as many
    data centers (whose rows carry the cooling columns), so the sample is bounded at any
    size of portfolio. ``cooling``: :func:`~sitescreen.outputs.geopackage.cooling_sites` of
    ``results``, computed when not given."""
    from sitescreen.outputs.geopackage import cooling_sites

    cooling = cooling_sites(results) if cooling is None else cooling
    keep = np.arange(len(results)) < SAMPLE_SITES
    keep[np.flatnonzero(cooling)[:SAMPLE_SITES]] = True
    return results.select(keep).long_table()


def field_dictionary(sites: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The dictionary (:data:`FIELD_COLUMNS`) of ``sites.geojson``, the GeoPackage's
    ``sites``, ``site_details`` and level views, and ``site_results.csv`` of a run.

    Parameters
    ----------
    sites : the run's site table.
    table : the long per-site results table, or a sample of it with every layer and column
        (:func:`field_sample`).
    """
    from sitescreen.outputs.geopackage import (
        DETAIL_SUFFIXES,
        DETAILS_TABLE,
        SITES_LAYER,
        level_layers,
        site_layer_columns,
    )
    from sitescreen.outputs.run_folder import typed_columns, user_columns

    typed = typed_columns(sites, user_columns(sites))
    layers = level_layers(table)
    d = _Dictionary()
    gpkg_sites = f"{GPKG}:{SITES_LAYER}"
    gpkg_details = f"{GPKG}:{DETAILS_TABLE}"
    views = f"{GPKG}: level views"

    site_cols = [c for c in typed.columns if c != "geometry"]
    layer_cols = site_layer_columns(sites)
    for col in site_cols:
        unit, desc = _describe(col)
        outputs = [gpkg_sites] if col == "input_ref" else [GEOJSON, gpkg_sites]
        for out in outputs:
            d.add(col, _kind(typed[col]), unit, desc, out)
        if layer_cols[col] != col:
            d.add(layer_cols[col], _kind(typed[col]), unit, f"{desc} (as {col!r} elsewhere)",
                  gpkg_sites)
    for col, kind in (("data_origin", "text"), ("run_id", "text")):
        unit, desc = _KNOWN[col]
        if col == "data_origin":
            d.add(col, kind, unit, desc, GEOJSON)
        d.add(col, kind, unit, desc, gpkg_sites)

    for la in layers:
        what = f"{la.hazard_label}, {scenario_title(la.scenario)} {la.year}"
        for part in ("level", "low", "high", "value", "flags", "pathway", "driver"):
            unit, desc, _ = _LAYER_PARTS[part]
            unit = la.units if unit is None else unit
            kind = ("integer" if part in ("level", "low", "high")
                    else "real" if part == "value" else "text")
            name = f"{la.hazard}_{la.scenario}_{la.year}_{part}"
            alias = _layer_alias(la.hazard, la.scenario, la.year, part)
            text = f"{what}: {desc}"
            if part == "level":
                d.add(name, kind, unit, text, GEOJSON, alias=alias)
                d.add(la.level_column, kind, unit, text, gpkg_sites, alias=alias)
            elif part == "pathway":
                d.add(name, kind, unit,
                      f"{text} ({marked_pathway(la.pathway, la.exact, la.is_composite)})",
                      GEOJSON, alias=alias)
            elif part in la.detail_suffixes:
                if part != "driver":
                    d.add(name, kind, unit, text, GEOJSON, alias=alias)
                d.add(la.detail_column(part), kind, unit, text, gpkg_details, alias=alias)

    view_cols = ["site_id", "name", "hazard", "hazard_label", "scenario", "year", "level",
                 *DETAIL_SUFFIXES.values(), "units", "pathway", "period", "exact",
                 "threshold_set", "geocode_precision", "data_origin"]
    view_kinds = {"year": "integer", "level": "integer", "level_low": "integer",
                  "level_high": "integer", "value": "real", "exact": "boolean"}
    for col in view_cols:
        unit, desc = _describe(col)
        d.add(col, view_kinds.get(col, "text"), unit, desc, views)

    for col in _results_columns(table):
        unit, desc = _describe(col)
        kind = (_kind(table[col]) if col in table else "text")
        if col in ("level", "level_low", "level_high"):
            desc += " (0 here: no data)"
        d.add(col, kind, unit, desc, RESULTS_CSV)
    return d.frame()



def _results_columns(table: pd.DataFrame) -> Iterable[str]:
    """The columns of ``site_results.csv`` (:func:`run_folder.site_results_frame`)."""
    cols = [c for c in table.columns if c not in ("name", "geocode_precision", "data_origin")]
    at = 1 if "site_id" in cols else 0
    return [*cols[:at], "name", "geocode_precision", *cols[at:], "data_origin"]

