"""GIS outputs of a run: a GeoPackage for QGIS, ArcGIS and GeoServer, with its styles.

Layout of ``<run>/sites.gpkg`` (EPSG:4326, WGS 84 longitude/latitude):

- ``sites``: the answer, one point per located site: the site's own fields (numeric ones
  numeric, :func:`~sitescreen.outputs.run_folder.typed_columns`), its geocoding provenance
  (geocoder, ``geocode_precision``, datum, query, ...), ``data_origin``, ``run_id``, then
  ``<hazard>_<scenario>_<year>_level`` for every hazard and headline composite x scenario x
  year of the run (1-5, NULL for no data; never 0). Styled on opening by the headline level
  (the report's first map: first headline composite, worst scenario, first year) with the
  site names as labels.
- ``site_details``: a table without geometry, one row per ``sites`` row (same ``fid``):
  ``<layer>_low``, ``_high``, ``_value``, ``_flags`` (and ``_driver`` for composites).
- ``level_layers``: one row per hazard x scenario x year: the level column, hazard label,
  dataset pathway, period, exactness, units and threshold set.
- one SQL view per hazard x scenario x year, named ``<hazard>_<scenario>_<year>``
  (``water_stress_pessimistic_2030``), registered as a point layer: ``sites`` joined to
  ``site_details`` and ``level_layers``, with the fields ``level``, ``level_low``,
  ``level_high``, ``value``, ``units``, ``flags``, ``driver``, ``pathway``, ``period``,
  ``exact``, ``threshold_set``: one layer per scenario for those who want it, without a
  copy of the points, and one style (:func:`level_style_qml`, on ``level``) fits them all.
- ``site_footprints`` (only when some input site is a Polygon/MultiPolygon): one
  MultiPolygon per footprint site with ``site_id``, ``name``, the level fields of the
  headline layer (``hazard``/``scenario``/``year`` say which) and ``<layer>_level`` for
  every level layer. The same features are written as ``site_footprints.geojson``
  (:func:`footprint_files`); ``sites.geojson`` stays Point-only.
- ``data_center_cooling`` (only when the run screened cooling demand for sites of kind
  ``data_center``): one point per data center x scenario x year with CDD today and then,
  and the change of cooling electricity in %, MWh/year, MWh/year per MW of IT load and
  money, each with its ensemble range (``_low``/``_high``), and ``dc_assumptions`` (what
  the site gave and which defaults were used; see :mod:`sitescreen.cooling`).
- ``unresolved_sites``: a table without geometry for sites that could not be located, with
  the reason, so they are not lost from a GIS workflow.
- ``run_metadata``: key/value table (run id, data origin, datasets with versions and
  licences, threshold sets, scenario crosswalk) so the file explains itself when shared
  alone.
- ``fields``: the field dictionary of the run (:mod:`sitescreen.outputs.fields`): name,
  10-character alias, type, unit and description of every column, also ``fields.csv``.
- ``layer_styles``: the table QGIS itself reads and writes (same schema), holding each
  layer's default style as QML and as SLD (``styleSLD``, for ArcGIS and GeoServer users);
  the SLD of the ``sites`` layer is also the run's ``sites.sld``.

The point and detail tables are streamed to GDAL in batches through Arrow; the file is
written to a temporary folder beside the target and renamed into place, so a failed write
never leaves a partial GeoPackage.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import mapping

from sitescreen.aggregate import SiteResults, marked_pathway
from sitescreen.classify import RiskLevel
from sitescreen.cooling import cooling_frame
from sitescreen.data.sources import SYNTHETIC_WARNING, is_synthetic
from sitescreen.errors import OutputError
from sitescreen.geocode.frame import is_located
from sitescreen.outputs.run_folder import (
    is_text_dtype,
    json_bytes,
    typed_columns,
    user_columns,
)
from sitescreen.outputs.styling import LEVEL_COLOURS, NO_DATA_COLOUR, map_layers
from sitescreen.scenarios import scenario_rank, scenario_title

__all__ = ["write_geopackage", "level_style_qml", "level_style_sld", "gis_styles", "layer_name",
           "footprint_files", "level_layers", "LevelLayer", "site_layer_columns",
           "headline_layer", "STYLE_FILE", "SLD_FILE", "GPKG_FILE", "FOOTPRINT_FILE",
           "FOOTPRINT_LAYER", "SITES_LAYER", "DETAILS_TABLE", "LAYERS_TABLE", "FIELDS_TABLE",
           "DETAIL_SUFFIXES", "COOLING_LAYER", "result_layers", "footprint_sites",
           "cooling_sites"]

log = logging.getLogger(__name__)

#: File names the run folder uses for the GeoPackage and its styles.
GPKG_FILE = "sites.gpkg"
STYLE_FILE = "sitescreen_level.qml"
SLD_FILE = "sites.sld"
#: GeoJSON of the site footprints and the GeoPackage layer holding them (only written when
#: some site was given as a Polygon/MultiPolygon).
FOOTPRINT_FILE = "site_footprints.geojson"
FOOTPRINT_LAYER = "site_footprints"
COOLING_LAYER = "data_center_cooling"
#: Tables of the GeoPackage.
SITES_LAYER = "sites"
DETAILS_TABLE = "site_details"
LAYERS_TABLE = "level_layers"
FIELDS_TABLE = "fields"
#: Columns of ``site_details`` per level layer (``<layer>_<suffix>``), with the field name
#: each gets in the layer's view; ``driver`` only for composites.
DETAIL_SUFFIXES = {"low": "level_low", "high": "level_high", "value": "value",
                   "flags": "flags", "driver": "driver"}

_CRS = "EPSG:4326"
_GEOM = "geom"
_BATCH_ROWS = 20_000  # rows per Arrow batch handed to GDAL
# Columns of the long results table copied to each footprint's headline fields.
_LEVEL_FIELDS = {
    "site_id": "site_id", "hazard": "hazard", "scenario": "scenario", "year": "year",
    "level": "level", "level_low": "level_low", "level_high": "level_high", "value": "value",
    "units": "units", "flags": "flags", "driver": "driver", "pathway": "pathway",
    "period": "period", "pathway_exact": "exact", "threshold_set": "threshold_set",
}


def layer_name(hazard: str, scenario: str, year: int) -> str:
    """GeoPackage layer name of one hazard x scenario x year: lower case, ``[a-z0-9_]``.

    >>> layer_name("water_stress", "pessimistic", 2030)
    'water_stress_pessimistic_2030'
    """
    return _field(f"{hazard}_{scenario}_{int(year)}")


def _field(name: str) -> str:
    """A field or layer name QGIS, ArcGIS and SQL accept unquoted."""
    s = re.sub(r"[^0-9a-z_]+", "_", str(name).strip().lower()).strip("_") or "field"
    return ("f_" + s if s[0].isdigit() else s)[:63]


def _unique_fields(columns: list[str], taken: tuple[str, ...] = ()) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set(taken)
    for col in columns:
        base = _field(col)
        name, i = base, 2
        while name in used or name in ("fid", _GEOM, "ogc_fid"):
            name, i = f"{base[:60]}_{i}", i + 1
        used.add(name)
        out[col] = name
    return out


def _scalar(value: Any) -> Any:
    """GeoPackage-safe cell: containers as JSON text, NaN/NA as NULL."""
    if isinstance(value, (list, tuple, dict, set)):
        return json.dumps(list(value) if isinstance(value, set) else value, ensure_ascii=False,
                          default=str)
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return None
    return value


def _text_or_none(values: pd.Series) -> pd.Series:
    """:func:`_scalar` of every cell, vectorised for string columns (NA -> None)."""
    if is_text_dtype(values):
        out = values.astype(object)
        return out.where(values.notna(), None)
    return values.map(_scalar).astype(object)


def _text_or_empty(values: pd.Series) -> pd.Series:
    """``"" if _scalar(v) is None else str(v)`` for every cell, vectorised for strings."""
    if is_text_dtype(values):
        return values.fillna("").astype(object)
    return values.map(lambda v: "" if _scalar(v) is None else str(v))


@dataclass(frozen=True, slots=True)
class LevelLayer:
    """One hazard x scenario x year of a run, as the GeoPackage lays it out."""

    name: str           # the view, e.g. water_stress_pessimistic_2030
    hazard: str
    hazard_label: str
    scenario: str
    year: int
    is_composite: bool
    pathway: str
    period: str
    exact: bool
    units: str
    threshold_set: str

    @property
    def level_column(self) -> str:
        """The column of ``sites`` holding this layer's level."""
        return _field(f"{self.name}_level")

    def detail_column(self, suffix: str) -> str:
        """The column of ``site_details`` holding ``suffix`` (a :data:`DETAIL_SUFFIXES` key)."""
        return _field(f"{self.name}_{suffix}")

    @property
    def detail_suffixes(self) -> tuple[str, ...]:
        return tuple(k for k in DETAIL_SUFFIXES if k != "driver" or self.is_composite)


def _layer_codes(table: pd.DataFrame) -> tuple[np.ndarray, list[LevelLayer]]:
    """(layer index of every row of ``table``, the layers in report order: hazards as they
    come, scenarios optimistic to pessimistic, years ascending)."""
    if table.empty:
        return np.zeros(0, dtype=np.int64), []
    # One factorize per column and integer arithmetic: a MultiIndex of millions of rows
    # would cost seconds.
    combined = np.zeros(len(table), dtype=np.int64)
    uniques = []
    for col in ("hazard", "scenario", "year"):
        c, u = pd.factorize(table[col])
        combined = combined * len(u) + c
        uniques.append(list(u))
    present, first, codes = np.unique(combined, return_index=True, return_inverse=True)
    ns, ny = len(uniques[1]), len(uniques[2])
    uniq = [(uniques[0][v // (ns * ny)], uniques[1][v // ny % ns], uniques[2][v % ny])
            for v in present.tolist()]
    hazard_rank = {h: i for i, h in enumerate(uniques[0])}
    order = sorted(range(len(uniq)), key=lambda i: (hazard_rank[uniq[i][0]],
                                                    scenario_rank(uniq[i][1]), int(uniq[i][2])))
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    layers: list[LevelLayer] = [None] * len(uniq)  # type: ignore[list-item]

    def at(col: str, row: int, default: Any = "") -> Any:
        return table[col].iat[row] if col in table else default

    for i, (h, s, y) in enumerate(uniq):
        r = int(first[i])  # the first row of the combination
        layers[rank[i]] = LevelLayer(
            name=layer_name(h, s, y), hazard=str(h), hazard_label=str(at("hazard_label", r, h)),
            scenario=str(s), year=int(y), is_composite=bool(at("is_composite", r, False)),
            pathway=str(at("pathway", r)), period=str(at("period", r)),
            exact=bool(at("pathway_exact", r, True)), units=str(at("units", r)),
            threshold_set=str(at("threshold_set", r)))
    return rank[codes.reshape(-1)], layers


def level_layers(table: pd.DataFrame) -> list[LevelLayer]:
    """The hazard x scenario x year layers of ``table``, in report order."""
    return _layer_codes(table)[1]


def headline_layer(layers: list[LevelLayer], *,
                   maps: Sequence[tuple[str, str, int]] | None = None) -> LevelLayer | None:
    """The layer ``sites`` is styled by: the report's first map (first headline composite,
    worst scenario of the run, first year; the first of ``maps`` when the caller has them)."""
    if not layers:
        return None
    if maps is None:
        maps = map_layers(pd.DataFrame([(la.hazard, la.scenario, la.year) for la in layers],
                                       columns=["hazard", "scenario", "year"]))
    first = list(maps[:1])
    if not first:
        return layers[0]
    return next(la for la in layers if (la.hazard, la.scenario, la.year) == first[0])


def site_layer_columns(sites: pd.DataFrame) -> dict[str, str]:
    """Site column -> field name in the ``sites`` layer (geometry left out)."""
    return _unique_fields([c for c in sites.columns if c != "geometry"])


def _site_fields(sites: pd.DataFrame) -> pd.DataFrame:
    """Site attributes as GPKG-ready columns (geometry dropped, names sanitised, numeric
    user columns numeric)."""
    frame = typed_columns(pd.DataFrame(sites.drop(columns=[c for c in ("geometry",)
                                                           if c in sites])),
                          user_columns(sites))
    for col in frame.columns:
        if frame[col].dtype == object or is_text_dtype(frame[col]):
            frame[col] = _text_or_none(frame[col])
    frame["lon"] = pd.to_numeric(frame.get("lon"), errors="coerce")
    frame["lat"] = pd.to_numeric(frame.get("lat"), errors="coerce")
    return frame.rename(columns=site_layer_columns(sites))


def _nullable_level(values: pd.Series) -> pd.Series:
    # Level 0 means no data: written as NULL so no GIS filter ever reads it as "very low".
    v = pd.to_numeric(values, errors="coerce").astype("Int32")
    return v.where(v > 0, pd.NA)


def _metadata_rows(manifest: Mapping, head: LevelLayer | None = None) -> pd.DataFrame:
    def js(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)

    rows = [
        ("run_id", str(manifest.get("run_id", ""))),
        ("data_origin", str(manifest.get("data_origin", ""))),
        ("data_origin_note", str(manifest.get("data_origin_note", ""))),
        ("sitescreen_version", str(manifest.get("sitescreen_version", ""))),
        ("created_at", str(manifest.get("created_at", ""))),
        ("sites_file", js(manifest.get("inputs", {}).get("sites", {}))),
        ("crs", "EPSG:4326 (WGS 84 longitude, latitude)"),
        ("levels", "1 very low, 2 low, 3 medium, 4 high, 5 very high; NULL: no data"),
        ("style", f"layer_styles (QML and SLD): {SITES_LAYER} categorized on "
                  f"{head.level_column if head else 'its level column'}, labelled by name; "
                  f"the level views on 'level' ({STYLE_FILE}, {SLD_FILE})"),
        ("headline_layer", head.name if head else ""),
        ("fields", f"{FIELDS_TABLE} table (also fields.csv): the field dictionary"),
    ]
    for d in manifest.get("datasets", []):
        keep = {k: d.get(k) for k in ("title", "publisher", "version", "license", "citation",
                                      "homepage", "base_url", "sha256") if d.get(k)}
        rows.append((f"dataset:{d.get('id', '')}", js(keep)))
    for t in manifest.get("threshold_sets", []):
        rows.append((f"threshold_set:{t.get('name', '')}", js(t)))
    rows.append(("scenario_crosswalk", js(manifest.get("scenario_crosswalk", []))))
    rows.append(("definitions", js(manifest.get("definitions", {}))))
    return pd.DataFrame(rows, columns=["key", "value"])


def _description(layer: LevelLayer, manifest: Mapping) -> str:
    text = (f"{layer.hazard_label}, {scenario_title(layer.scenario)} {layer.year}: risk level "
            f"1-5 per site (NULL = no data); dataset pathway "
            f"{marked_pathway(layer.pathway, layer.exact, layer.is_composite)} ({layer.period}); "
            f"threshold set {layer.threshold_set}; run {manifest.get('run_id', '')}; data "
            f"origin {manifest.get('data_origin', '')}")
    if is_synthetic(manifest):
        text = f"{SYNTHETIC_WARNING} {text}"
    return text


def write_geopackage(path: str | Path, sites: pd.DataFrame, table: SiteResults | pd.DataFrame,
                     *, manifest: Mapping, fields: pd.DataFrame | None = None,
                     maps: Sequence[tuple[str, str, int]] | None = None,
                     cooling: np.ndarray | None = None) -> None:
    """Write the run's GeoPackage (layers described in the module docstring).

    Parameters
    ----------
    path : target file, e.g. ``<run>/sites.gpkg``; replaced atomically if it exists.
    sites : located sites (``site_id``, ``lon``, ``lat``, geocoding columns, extras).
    table : the per-site results (:class:`~sitescreen.aggregate.SiteResults`, aligned with
        ``sites``; or the long per-site results table, hazards and composites). The level
        and detail columns are written from the columns, in batches: no long table.
    manifest : the run manifest (run id, data origin, datasets, threshold sets).
    fields : the run's field dictionary (:func:`sitescreen.outputs.fields.field_dictionary`);
        built here when not given, from the same sample (:func:`~sitescreen.outputs.fields.
        field_sample`).
    maps : the run's default maps (:func:`~sitescreen.outputs.styling.map_layers`),
        the first of which is the headline layer; computed when not given.
    cooling : :func:`cooling_sites` of the results; computed when not given.

    Raises
    ------
    OutputError
        The file could not be written; nothing is left at ``path`` from this attempt.
    """
    import pyogrio

    path = Path(path)
    origin = str(manifest.get("data_origin", ""))
    run_id = str(manifest.get("run_id", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_dir / path.name
    current = [SITES_LAYER]

    def write(frame: pd.DataFrame, layer: str, description: str = "") -> None:
        current[0] = layer
        opts = {"DESCRIPTION": description} if description else None
        pyogrio.write_dataframe(frame, tmp, layer=layer, driver="GPKG", layer_options=opts,
                                use_arrow=_ARROW_WRITE)

    try:
        results = _as_results(table, sites)
        cooling = cooling_sites(results) if cooling is None else cooling
        if fields is None:
            from sitescreen.outputs.fields import field_dictionary, field_sample

            fields = field_dictionary(sites, field_sample(results, cooling=cooling))
        located = is_located(sites)
        site_frame = _site_fields(sites)
        site_frame["data_origin"] = origin
        site_frame["run_id"] = run_id
        points = site_frame.loc[located].reset_index(drop=True)
        order, layers = result_layers(results)
        head = headline_layer(layers, maps=maps)
        columns = _Columns(results, located, order)
        with _gpkg_settings(_gpkg_time(manifest)):
            stream = _site_batches(points, columns, layers)
            pyogrio.write_arrow(stream, tmp, layer=SITES_LAYER, driver="GPKG",
                                geometry_name=_GEOM, geometry_type="Point", crs=_CRS,
                                layer_options={"DESCRIPTION": _sites_description(head, manifest)})
            current[0] = DETAILS_TABLE
            pyogrio.write_arrow(_detail_batches(columns, layers), tmp,
                                layer=DETAILS_TABLE, driver="GPKG", layer_options={
                                    "DESCRIPTION": "Per site and level layer: range, value, "
                                    "flags, driver; fid = the fid of the sites row"})
            write(_layers_frame(layers, manifest), LAYERS_TABLE,
                  "One row per hazard x scenario x year: its column in sites and its dataset")
            # The footprint and cooling layers hold few sites: their long rows only.
            footprints = _footprints(sites, results.select(footprint_sites(sites))
                                     .long_table(), origin=origin, maps=maps)
            if footprints is not None:
                frame, head_rows = footprints
                frame = frame.set_geometry(gpd.GeoSeries(
                    _as_multipolygons(frame.geometry.to_numpy()), index=frame.index, crs=_CRS))
                write(frame, FOOTPRINT_LAYER, _footprint_description(head_rows, manifest))
            cooling = cooling_frame(results.select(cooling).long_table())
            cooling = cooling.assign(site_id=cooling["site_id"].astype(str)).merge(
                points[["site_id", "lon", "lat"]].astype({"site_id": str}), on="site_id")
            if len(cooling):
                geom = gpd.points_from_xy(cooling["lon"], cooling["lat"], crs=_CRS)
                write(gpd.GeoDataFrame(cooling.assign(data_origin=origin), geometry=geom),
                      COOLING_LAYER,
                      f"Data-center cooling electricity change, degree-day method ({origin})")
            unresolved = site_frame.loc[~located].drop(columns=["lon", "lat"]).reset_index(
                drop=True)
            write(unresolved if len(unresolved) else pd.DataFrame(
                {c: pd.Series(dtype=object) for c in unresolved.columns}), "unresolved_sites",
                "Sites without a location: not screened, not drawn")
            write(_metadata_rows(manifest, head), "run_metadata", f"Provenance of run {run_id}")
            write(fields, FIELDS_TABLE, "Field dictionary: name, 10-character alias, type, "
                  "unit and description of every column of the run's outputs")
            current[0] = "views and layer_styles"
            _finish(tmp, layers, head, site_layer_columns(sites), manifest,
                    footprints=footprints is not None)
        _fsync(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"writing GeoPackage {path} (layer {current[0]!r}) failed: {reason}; "
                          "no file was written") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.debug("wrote %s", path)


def _as_results(table: SiteResults | pd.DataFrame, sites: pd.DataFrame) -> SiteResults:
    """``table`` as results aligned with ``sites`` (a long table is converted)."""
    if isinstance(table, SiteResults):
        if len(table) != len(sites):
            raise ValueError(f"{len(table)} results for {len(sites)} sites")
        return table
    return SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())


def footprint_sites(sites: pd.DataFrame) -> np.ndarray:
    """Which sites are drawn with their outline (Polygon or MultiPolygon geometry)."""
    if "geometry" not in sites:
        return np.zeros(len(sites), dtype=bool)
    geoms = np.asarray(sites["geometry"], dtype=object)
    geoms = np.where(shapely.is_geometry(geoms), geoms, None)
    return np.isin(shapely.get_type_id(geoms),
                   (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON))


def cooling_sites(results: SiteResults) -> np.ndarray:
    """Which sites carry data-center cooling columns (:func:`sitescreen.cooling.cooling_frame`
    reads their long rows)."""
    return results.has_extra("dc_assumptions")


def result_layers(results: SiteResults) -> tuple[list[int], list[LevelLayer]]:
    """(the results' layer index of each level layer, the level layers in report order:
    hazards as they come, scenarios optimistic to pessimistic, years ascending), as
    :func:`level_layers` orders those of a long table."""
    hazard_rank: dict[str, int] = {}
    for info in results.layers:
        hazard_rank.setdefault(info.hazard, len(hazard_rank))
    first: dict[tuple[str, str, int], int] = {}
    for i, info in enumerate(results.layers):
        first.setdefault((info.hazard, info.scenario, int(info.year)), i)
    order = sorted(first.values(), key=lambda i: (
        hazard_rank[results.layers[i].hazard], scenario_rank(results.layers[i].scenario),
        int(results.layers[i].year)))
    layers = []
    for i in order:
        info = results.layers[i]
        layers.append(LevelLayer(
            name=layer_name(info.hazard, info.scenario, info.year), hazard=info.hazard,
            hazard_label=info.hazard_label, scenario=info.scenario, year=int(info.year),
            is_composite=info.is_composite, pathway=info.pathway, period=info.period,
            exact=info.pathway_exact, units=info.units, threshold_set=info.threshold_set))
    return order, layers


def gis_styles(sites: pd.DataFrame, table: pd.DataFrame, *,
               maps: Sequence[tuple[str, str, int]] | None = None) -> tuple[bytes, bytes]:
    """The run folder's style files: (:data:`STYLE_FILE`, the QGIS style of the level views,
    on ``level``; :data:`SLD_FILE`, the SLD of the ``sites`` layer, on its headline level
    column and labelled by site name), the same as the GeoPackage's ``layer_styles``."""
    head = headline_layer(level_layers(table), maps=maps)
    attr = head.level_column if head is not None else "level"
    label = site_layer_columns(sites).get("name")
    return level_style_qml(), level_style_sld(SITES_LAYER, attr=attr, label=label)


def _sites_description(head: LevelLayer | None, manifest: Mapping) -> str:
    text = (f"Screened sites of run {manifest.get('run_id', '')} (data origin "
            f"{manifest.get('data_origin', '')}); WGS 84; one <hazard>_<scenario>_<year>_level "
            "column per level layer (1-5, NULL = no data)")
    if head is not None:
        text += f"; styled by {head.level_column}"
    if is_synthetic(manifest):
        text = f"{SYNTHETIC_WARNING} {text}"
    return text


class _Columns:
    """The results' columns of each level layer at the site points (the located sites), as
    Arrow arrays one batch of rows at a time."""

    def __init__(self, results: SiteResults, located: np.ndarray, order: list[int]) -> None:
        self.results, self.order = results, order
        self.at = np.flatnonzero(np.asarray(located, dtype=bool))
        self.n = len(self.at)

    def values(self, name: str, layer: int, start: int, stop: int, *, kind: str) -> Any:
        """Field ``name`` of level layer ``layer`` for the points ``start:stop``; levels
        0 (no data) and non-finite values null, text never null."""
        import pyarrow as pa

        r, i = self.results, self.order[layer]
        at = self.at[start:stop]
        if kind == "text":
            cat = (r.flags if name == "flags" else r.driver)[i]
            codes = np.asarray(cat.codes, dtype=np.int64)[at]
            lookup = pa.array([str(c) for c in cat.categories] + [""], type=pa.string())
            return lookup.take(pa.array(np.where(codes < 0, len(cat.categories), codes)))
        if kind == "level":
            column = {"level": r.level, "level_low": r.level_low, "level_high": r.level_high}
            values = column[name][i][at].astype(np.int16)
            return pa.array(values, type=pa.int16(), mask=values <= 0)
        values = np.asarray(r.value[i], dtype="float64")[at]
        return pa.array(values, type=pa.float64(), mask=~np.isfinite(values))


def _batched(n: int, make: Callable[[int, int], dict[str, Any]]) -> Any:
    """A RecordBatchReader over ``n`` rows, :data:`_BATCH_ROWS` at a time: ``make(start,
    stop)`` gives the batch's columns (name -> Arrow array), so only one batch is built."""
    import pyarrow as pa

    def table(start: int, stop: int) -> Any:
        columns = make(start, stop)
        return pa.table(columns) if columns else pa.table({"_": pa.nulls(stop - start)})

    first = table(0, min(n, _BATCH_ROWS))

    def batches() -> Iterator[Any]:
        yield from first.to_batches()
        for a in range(_BATCH_ROWS, n, _BATCH_ROWS):
            yield from table(a, min(n, a + _BATCH_ROWS)).cast(first.schema).to_batches()

    return pa.RecordBatchReader.from_batches(first.schema, batches())


def _site_batches(points: pd.DataFrame, columns: _Columns, layers: list[LevelLayer]) -> Any:
    import pyarrow as pa

    attrs = {col: _arrow_column(points[col]) for col in points.columns}
    lon, lat = points["lon"].to_numpy(float), points["lat"].to_numpy(float)

    def make(a: int, b: int) -> dict[str, Any]:
        out = {col: arr.slice(a, b - a) for col, arr in attrs.items()}
        for i, layer in enumerate(layers):
            out[layer.level_column] = columns.values("level", i, a, b, kind="level")
        out[_GEOM] = pa.array(shapely.to_wkb(shapely.points(lon[a:b], lat[a:b])),
                              type=pa.binary())
        return out

    return _batched(len(points), make)


def _arrow_column(values: pd.Series) -> Any:
    """A site column as Arrow: its own type, or text when it has none (all empty) or mixes
    types (numbers and words)."""
    import pyarrow as pa

    try:
        array = pa.Array.from_pandas(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is None or pa.types.is_null(array.type):
        cells = values.astype(object)
        array = pa.array(cells.where(cells.notna(), None).map(
            lambda v: v if v is None else str(v)), type=pa.string())
    return array


def _detail_batches(columns: _Columns, layers: list[LevelLayer]) -> Any:
    kinds = {"low": ("level_low", "level"), "high": ("level_high", "level"),
             "value": ("value", "real"), "flags": ("flags", "text"),
             "driver": ("driver", "text")}

    def make(a: int, b: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, layer in enumerate(layers):
            for suffix in layer.detail_suffixes:
                source, kind = kinds[suffix]
                out[layer.detail_column(suffix)] = columns.values(source, i, a, b, kind=kind)
        return out

    return _batched(columns.n, make)


def _layers_frame(layers: list[LevelLayer], manifest: Mapping) -> pd.DataFrame:
    return pd.DataFrame({
        "layer": [la.name for la in layers],
        "level_column": [la.level_column for la in layers],
        "hazard": [la.hazard for la in layers],
        "hazard_label": [la.hazard_label for la in layers],
        "is_composite": pd.array([la.is_composite for la in layers], dtype=bool),
        "scenario": [la.scenario for la in layers],
        "scenario_label": [scenario_title(la.scenario) for la in layers],
        "year": pd.array([la.year for la in layers], dtype="int32"),
        "pathway": [la.pathway for la in layers],
        "period": [la.period for la in layers],
        "exact": pd.array([la.exact for la in layers], dtype=bool),
        "units": [la.units for la in layers],
        "threshold_set": [la.threshold_set for la in layers],
        "description": [_description(la, manifest) for la in layers],
    })


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _view_sql(layer: LevelLayer, columns: Mapping[str, str]) -> str:
    """``CREATE VIEW`` of one level layer: the site points with the layer's fields."""
    site = [f"s.{_quote(columns[c])} AS {_quote(c)}" for c in ("site_id", "name")
            if c in columns]
    detail = [f"d.{_quote(layer.detail_column(k))} AS {_quote(v)}" if k in
              layer.detail_suffixes else f"NULL AS {_quote(v)}"
              for k, v in DETAIL_SUFFIXES.items()]
    extra = [f"s.{_quote(columns[c])} AS {_quote(c)}" for c in ("geocode_precision",)
             if c in columns]
    select = ", ".join([
        "s.fid AS OGC_FID", f"s.{_GEOM} AS {_GEOM}", *site,
        "l.hazard AS hazard", "l.hazard_label AS hazard_label", "l.scenario AS scenario",
        "l.year AS year", f"s.{_quote(layer.level_column)} AS level", *detail,
        "l.units AS units", "l.pathway AS pathway", "l.period AS period", "l.exact AS exact",
        "l.threshold_set AS threshold_set", *extra, "s.data_origin AS data_origin"])
    lit = layer.name.replace("'", "''")
    return (f"CREATE VIEW {_quote(layer.name)} AS SELECT {select} FROM {_quote(LAYERS_TABLE)} "
            f"AS l CROSS JOIN {_quote(SITES_LAYER)} AS s JOIN {_quote(DETAILS_TABLE)} AS d "
            f"ON d.fid = s.fid WHERE l.layer = '{lit}'")


# The table QGIS creates to store styles in a GeoPackage (QgsOgrUtils::saveStyle: FID "id",
# the same widths), so QGIS reads, lists and updates these rows as its own.
_LAYER_STYLES_SQL = (
    'CREATE TABLE "layer_styles" ("id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
    '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
    '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
    '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
    "\"update_time\" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))")


def _finish(path: Path, layers: list[LevelLayer], head: LevelLayer | None,
            columns: Mapping[str, str], manifest: Mapping, *, footprints: bool) -> None:
    """Add the level views (registered as point layers) and the ``layer_styles`` table."""
    stamp = _gpkg_time(manifest)
    label = columns.get("name")
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA synchronous=OFF")
        with db:
            extent = db.execute(f"SELECT min_x, min_y, max_x, max_y FROM gpkg_contents "
                                f"WHERE table_name = '{SITES_LAYER}'").fetchone()
            for layer in layers:
                db.execute(_view_sql(layer, columns))
                db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, "
                           "description, last_change, min_x, min_y, max_x, max_y, srs_id) "
                           "VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?, 4326)",
                           (layer.name, layer.name, _description(layer, manifest), stamp,
                            *extent))
                db.execute("INSERT INTO gpkg_geometry_columns (table_name, column_name, "
                           "geometry_type_name, srs_id, z, m) VALUES (?, ?, 'POINT', 4326, 0, 0)",
                           (layer.name, _GEOM))
            db.execute(_LAYER_STYLES_SQL)
            db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, "
                       "description, last_change) VALUES ('layer_styles', 'attributes', "
                       "'layer_styles', 'QGIS layer styles (QML and SLD)', ?)", (stamp,))
            rows = []
            if head is not None:
                rows.append((SITES_LAYER, level_style_qml(attr=head.level_column,
                                                          label=label),
                             level_style_sld(SITES_LAYER, attr=head.level_column, label=label),
                             f"Headline level ({head.level_column}): 1-5 green to red, "
                             "NULL grey: no data; labels: site name"))
            for layer in layers:
                rows.append((layer.name, level_style_qml(), level_style_sld(layer.name),
                             "Risk level 1-5 (green to red), NULL grey: no data"))
            if footprints:
                rows.append((FOOTPRINT_LAYER, level_style_qml(geometry="polygon"),
                             level_style_sld(FOOTPRINT_LAYER, geometry="polygon"),
                             "Risk level 1-5 (green to red), NULL grey: no data"))
            db.executemany(
                'INSERT INTO "layer_styles" (f_table_catalog, f_table_schema, f_table_name, '
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
                "owner, ui, update_time) VALUES ('', '', ?, ?, 'sitescreen level', ?, ?, 1, ?, "
                "'', '', ?)",
                [(name, _GEOM, qml.decode(), sld.decode(), desc, stamp)
                 for name, qml, sld, desc in rows])


def _level_frames(table: pd.DataFrame, located_ids: set[str], name_of: Mapping[str, str],
                  origin: str):
    """(layer name, attribute frame, source rows) per hazard x scenario x year, in report order.

    The attribute frame has no geometry: the level layers place it at the site points,
    the footprint layer (:func:`_footprints`) on the footprints.
    """
    # Only the columns the layers and their descriptions use (the long table of 100,000
    # sites is gigabytes); ranks of hazards and scenarios computed once per distinct value.
    needed = [c for c in dict.fromkeys([*_LEVEL_FIELDS, "hazard_label"]) if c in table]
    hazard_rank = {h: i for i, h in enumerate(table["hazard"].unique())}
    scen_rank = {s: scenario_rank(s) for s in table["scenario"].unique()}
    order = table[needed].assign(
        _h=table["hazard"].map(hazard_rank), _s=table["scenario"].map(scen_rank),
        _located=table["site_id"].astype(str).isin(located_ids))
    order = order[order["_located"].to_numpy()]
    groups = order.sort_values(["_h", "_s", "year"], kind="stable").groupby(
        ["_h", "_s", "year"], sort=False)
    for _, rows in groups:
        if rows.empty:
            continue
        name = layer_name(rows["hazard"].iloc[0], rows["scenario"].iloc[0], rows["year"].iloc[0])
        out = pd.DataFrame({new: rows[old].to_numpy() for old, new in _LEVEL_FIELDS.items()
                            if old in rows})
        out["site_id"] = out["site_id"].astype(str)
        out.insert(1, "name", out["site_id"].map(name_of))
        for col in ("level", "level_low", "level_high"):
            out[col] = _nullable_level(out[col])
        out["value"] = pd.to_numeric(out["value"], errors="coerce")
        out["year"] = out["year"].astype("int32")
        out["exact"] = out["exact"].astype(bool)
        for col in ("units", "flags", "driver", "pathway", "period", "threshold_set"):
            if col in out:
                out[col] = _text_or_empty(out[col])
        out["data_origin"] = origin
        yield name, out, rows


def _footprints(sites: pd.DataFrame, table: pd.DataFrame, *, origin: str,
                maps: Sequence[tuple[str, str, int]] | None = None,
                ) -> tuple[gpd.GeoDataFrame, pd.DataFrame | None] | None:
    """The footprint sites with their level attributes, or None when no site has a footprint.

    Returns the GeoDataFrame (input Polygon/MultiPolygon, 2-D, EPSG:4326; fields ``site_id``,
    ``name``, the headline layer's level-layer fields, then ``<layer>_level`` per level
    layer) and the headline layer's rows of ``table`` (None when the table has none). The
    attributes come from :func:`_level_frames`, so they equal those of the level layers.
    """
    if "geometry" not in sites or not len(sites):
        return None
    geoms = np.asarray(sites["geometry"], dtype=object)
    geoms = np.where(shapely.is_geometry(geoms), geoms, None)  # NaN in a plain frame: none
    kind = shapely.get_type_id(geoms)
    is_footprint = np.isin(kind, (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON))
    is_footprint &= is_located(sites)
    if not is_footprint.any():
        return None
    ids = sites["site_id"].astype(str).to_numpy()[is_footprint]
    names = (_text_or_empty(sites["name"]).to_numpy()[is_footprint] if "name" in sites
             else np.full(len(ids), "", dtype=object))
    name_of = dict(zip(ids, names, strict=True))
    # Only the footprint sites' rows: every site has the same layers, and this stays small.
    part = table[table["site_id"].astype(str).isin(name_of)]
    first = list((maps if maps is not None else map_layers(part))[:1]) if len(part) else []
    headline = layer_name(*first[0]) if first else None

    out = pd.DataFrame({"site_id": ids, "name": names})
    head_rows = None
    wide: dict[str, pd.Series] = {}
    for name, attrs, rows in _level_frames(part, set(ids), name_of, origin):
        if name == headline:
            out = out.merge(attrs.drop(columns="name"), on="site_id", how="left")
            head_rows = rows
        wide[_field(f"{name}_level")] = attrs.set_index("site_id")["level"]
    if head_rows is None:
        out["data_origin"] = origin
    for col, levels in wide.items():
        out[col] = out["site_id"].map(levels).astype("Int32")
    geometry = gpd.GeoSeries(shapely.force_2d(geoms[is_footprint]), crs=_CRS)
    return gpd.GeoDataFrame(out, geometry=geometry.to_numpy(), crs=_CRS), head_rows


def _as_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Polygons and MultiPolygons as MultiPolygons (one layer, one geometry type)."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    return shapely.multipolygons(parts, indices=index)


def _footprint_description(rows: pd.DataFrame | None, manifest: Mapping) -> str:
    if rows is None:
        return f"Site footprints of run {manifest.get('run_id', '')}; WGS 84"
    warn = f"{SYNTHETIC_WARNING} "
    text = _description(_layer_codes(rows.iloc[:1])[1][0], manifest)
    return (f"{warn if text.startswith(warn) else ''}Site footprints; fields level, level_low, "
            f"level_high, value: {text.removeprefix(warn)}; fields <layer>_level: the level of "
            "every level layer")


def footprint_files(sites: pd.DataFrame, table: pd.DataFrame, *, manifest: Mapping,
                    maps: Sequence[tuple[str, str, int]] | None = None) -> dict[str, bytes]:
    """``{FOOTPRINT_FILE: GeoJSON bytes}`` when some site has a footprint, else ``{}``.

    An RFC 7946 FeatureCollection (WGS 84 longitude/latitude): one Polygon or MultiPolygon
    feature (as given, 2-D, exterior rings counterclockwise as RFC 7946 section 3.1.6 asks)
    per located footprint site, with the attributes of the ``site_footprints`` layer of the
    GeoPackage. Kept apart from ``sites.geojson`` so each file has one geometry type, which
    QGIS loads as one layer.

    Parameters
    ----------
    sites : the run's sites (``site_id``, ``name``, ``lon``, ``lat``, ``geometry``).
    table : the long per-site results table.
    manifest : the run manifest (run id, data origin).
    maps : the run's default maps (:func:`~sitescreen.outputs.styling.map_layers`),
        the first of which is the headline layer; computed when not given.
    """
    origin = str(manifest.get("data_origin", ""))
    footprints = _footprints(sites, table, origin=origin, maps=maps)
    if footprints is None:
        return {}
    frame, head_rows = footprints
    columns = [c for c in frame.columns if c != frame.geometry.name]
    values = [_json_values(frame[c]) for c in columns]
    geoms = shapely.orient_polygons(frame.geometry.to_numpy(), exterior_cw=False)
    features = [{"type": "Feature", "id": sid, "geometry": mapping(g),
                 "properties": dict(zip(columns, row, strict=True))}
                for sid, g, row in zip(frame["site_id"], geoms, zip(*values, strict=True),
                                       strict=True)]
    headline = (layer_name(head_rows["hazard"].iloc[0], head_rows["scenario"].iloc[0],
                           head_rows["year"].iloc[0]) if head_rows is not None else None)
    fc = {"type": "FeatureCollection", "features": features,
          "name": "sitescreen site footprints",
          "sitescreen": {"run_id": manifest.get("run_id", ""), "data_origin": origin,
                         "data_origin_note": manifest.get("data_origin_note", ""),
                         "sitescreen_version": manifest.get("sitescreen_version", ""),
                         "level_fields_layer": headline, "manifest": "manifest.json"}}
    return {FOOTPRINT_FILE: json_bytes(fc)}


def _json_values(values: pd.Series) -> list:
    """Cells as JSON-ready Python values (missing ones None)."""
    return values.astype(object).where(values.notna(), None).tolist()


_SQLITE_LOCK = threading.Lock()
_ARROW_WRITE = True


@contextmanager
def _gpkg_settings(stamp: str) -> Iterator[None]:
    """GDAL settings while the temporary file is written.

    SQLite skips its fsync per transaction: GDAL commits every layer separately, and with
    synchronous writes that is one fsync per layer (about half the write time here). The
    file is a temporary one: it is synced once (:func:`_fsync`) before it is renamed into
    place, so nothing is lost. Each layer's ``last_change`` is the run's creation time
    (:func:`_gpkg_time`), not the clock's, so the same run writes the same bytes. The settings are process-wide in GDAL, hence the lock and the restore.
    """
    import pyogrio

    settings = {"OGR_SQLITE_SYNCHRONOUS": "OFF", "OGR_CURRENT_DATE": stamp}
    with _SQLITE_LOCK:
        before = {k: pyogrio.get_gdal_config_option(k) for k in settings}
        pyogrio.set_gdal_config_options(settings)
        try:
            yield
        finally:
            pyogrio.set_gdal_config_options(before)


def _gpkg_time(manifest: Mapping) -> str:
    """The run's creation time as GeoPackage writes times (UTC, ``...T04:45:59.000Z``): the
    ``last_change`` of every layer, view and style; 1970 when the manifest has none."""
    moment = pd.to_datetime(manifest.get("created_at") or "1970-01-01T00:00:00Z", utc=True,
                            errors="coerce")
    if pd.isna(moment):
        moment = pd.Timestamp(0, tz="UTC")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rgba(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return ",".join(str(int(h[i:i + 2], 16)) for i in (0, 2, 4)) + ",255"


def _symbol(kind: str, layer_class: str, index: int, props: Mapping[str, str]) -> str:
    # QGIS >= 3.26 reads the <Option> map, older 3.x releases the <prop> elements; both are
    # written, as QGIS itself did during the transition.
    options = "".join(f'<Option type="QString" name="{k}" value="{v}"/>' for k, v in props.items())
    legacy = "".join(f'<prop k="{k}" v="{v}"/>' for k, v in props.items())
    return (f'<symbol type="{kind}" name="{index}" alpha="1" clip_to_extent="1" force_rhr="0">'
            f'<layer class="{layer_class}" enabled="1" locked="0" pass="0">'
            f'<Option type="Map">{options}</Option>{legacy}</layer></symbol>')


def _fill_symbol(index: int, colour: str, *, hollow: bool = False) -> str:
    props = {
        "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
        "color": _rgba(colour) if not hollow else "0,0,0,0", "joinstyle": "bevel",
        "offset": "0,0", "offset_map_unit_scale": "3x:0,0,0,0,0,0", "offset_unit": "MM",
        "outline_color": "51,51,51,255" if not hollow else _rgba("#7a7a7a"),
        "outline_style": "solid", "outline_width": "0.26" if not hollow else "0.5",
        "outline_width_unit": "MM", "style": "solid" if not hollow else "no",
    }
    return _symbol("fill", "SimpleFill", index, props)


def _marker_symbol(index: int, colour: str, *, hollow: bool = False) -> str:
    props = {
        "angle": "0", "color": _rgba(colour) if not hollow else "0,0,0,0",
        "horizontal_anchor_point": "1", "joinstyle": "bevel", "name": "circle",
        "offset": "0,0", "offset_map_unit_scale": "3x:0,0,0,0,0,0", "offset_unit": "MM",
        "outline_color": "51,51,51,255" if not hollow else _rgba("#7a7a7a"),
        "outline_style": "solid", "outline_width": "0.3" if not hollow else "0.5",
        "outline_width_map_unit_scale": "3x:0,0,0,0,0,0", "outline_width_unit": "MM",
        "scale_method": "diameter", "size": "3.2", "size_map_unit_scale": "3x:0,0,0,0,0,0",
        "size_unit": "MM", "vertical_anchor_point": "1",
    }
    return _symbol("marker", "SimpleMarker", index, props)


def _labeling_qml(field: str) -> str:
    """QGIS simple labelling on ``field``: dark text with a white halo, beside the point."""
    return (
        '  <labeling type="simple">\n'
        '    <settings calloutType="simple">\n'
        f'      <text-style fieldName={quoteattr(field)} isExpression="0" fontSize="8" '
        'fontSizeUnit="Point" textColor="40,40,40,255" textOpacity="1" fontWeight="50" '
        'fontItalic="0" namedStyle="Regular" multilineHeight="1">\n'
        '        <text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" '
        'bufferColor="255,255,255,255" bufferOpacity="1" bufferJoinStyle="128"/>\n'
        "      </text-style>\n"
        '      <text-format wrapChar="" multilineAlign="0" placeDirectionSymbol="0"/>\n'
        '      <placement placement="6" dist="1.5" distUnits="MM" '
        'predefinedPositionOrder="TR,TL,BR,BL,R,L,TSR,BSR" priority="5"/>\n'
        '      <rendering scaleVisibility="0" obstacle="1" displayAll="0" '
        'labelPerPart="0" limitNumLabels="0" upsidedownLabels="0"/>\n'
        "    </settings>\n"
        "  </labeling>\n")


def level_style_qml(*, geometry: Literal["point", "polygon"] = "point", attr: str = "level",
                    label: str | None = None) -> bytes:
    """QGIS layer style (``.qml``): categorized on ``attr``, 1-5 green to red, else grey.

    Six categories: the five levels in the colours of the charts, and a grey hollow
    catch-all (empty value: QGIS's "all other values", which takes NULL and 0) labelled
    "no data". ``geometry="polygon"`` gives the same categories as fills (for
    ``site_footprints``); the default, circle markers, is the style file of the run.
    With ``label``, features are labelled with that field (the site name).
    """
    if geometry not in ("point", "polygon"):
        raise ValueError(f"geometry {geometry!r} is not 'point' or 'polygon'")
    symbol = _marker_symbol if geometry == "point" else _fill_symbol
    cats, symbols = [], []
    for i, lvl in enumerate(range(1, 6)):
        text = f"{lvl} {RiskLevel(lvl).label}"
        cats.append(f'<category render="true" symbol="{i}" value="{lvl}" label={quoteattr(text)}/>')
        symbols.append(symbol(i, LEVEL_COLOURS[lvl]))
    cats.append('<category render="true" symbol="5" value="" label="no data"/>')
    symbols.append(symbol(5, NO_DATA_COLOUR, hollow=True))
    categories = "Symbology|Labeling" if label else "Symbology"
    xml = (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        f'<qgis version="3.28.0-Firenze" styleCategories="{categories}" '
        f'labelsEnabled="{1 if label else 0}">\n'
        f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(attr)} symbollevels="0" '
        'enableorderby="1" forceraster="0" referencescale="-1">\n'
        "    <categories>\n      " + "\n      ".join(cats) + "\n    </categories>\n"
        "    <symbols>\n      " + "\n      ".join(symbols) + "\n    </symbols>\n"
        "    <source-symbol>" + symbol(0, NO_DATA_COLOUR) + "</source-symbol>\n"
        # Draw the worst levels last, so they are on top where sites overlap.
        f'    <orderby><orderByClause asc="1" nullsFirst="1">{escape(_quote(attr))}'
        "</orderByClause></orderby>\n"
        '    <rotation/><sizescale/>\n'
        "  </renderer-v2>\n"
        + (_labeling_qml(label) if label else "")
        + f"  <layerGeometryType>{0 if geometry == 'point' else 2}</layerGeometryType>\n"
        "</qgis>\n"
    )
    return xml.encode("utf-8")


def _sld_symbolizer(geometry: str, fill: str | None, stroke: str) -> str:
    fill_xml = (f'<Fill><CssParameter name="fill">{fill}</CssParameter></Fill>'
                if fill else "")
    stroke_xml = (f'<Stroke><CssParameter name="stroke">{stroke}</CssParameter>'
                  f'<CssParameter name="stroke-width">{1 if fill else 1.5}</CssParameter>'
                  "</Stroke>")
    if geometry == "polygon":
        return f"<PolygonSymbolizer>{fill_xml}{stroke_xml}</PolygonSymbolizer>"
    return ("<PointSymbolizer><Graphic><Mark><WellKnownName>circle</WellKnownName>"
            f"{fill_xml}{stroke_xml}</Mark><Size>10</Size></Graphic></PointSymbolizer>")


def level_style_sld(layer: str, *, geometry: Literal["point", "polygon"] = "point",
                    attr: str = "level", label: str | None = None) -> bytes:
    """The level style as an OGC Styled Layer Descriptor 1.0 (GeoServer, ArcGIS Pro).

    The same classes as :func:`level_style_qml`: one rule per level 1-5 in the chart
    colours, an ``ElseFilter`` rule (NULL, no data) as a hollow grey symbol, and with
    ``label`` a second feature type style labelling every feature with that field.
    """
    if geometry not in ("point", "polygon"):
        raise ValueError(f"geometry {geometry!r} is not 'point' or 'polygon'")
    rules = []
    for lvl in range(1, 6):
        rules.append(
            f"<Rule><Name>level {lvl}</Name><Title>{lvl} {escape(RiskLevel(lvl).label)}</Title>"
            "<ogc:Filter><ogc:PropertyIsEqualTo>"
            f"<ogc:PropertyName>{escape(attr)}</ogc:PropertyName>"
            f"<ogc:Literal>{lvl}</ogc:Literal></ogc:PropertyIsEqualTo></ogc:Filter>"
            f"{_sld_symbolizer(geometry, LEVEL_COLOURS[lvl], '#333333')}</Rule>")
    rules.append("<Rule><Name>no data</Name><Title>no data</Title><ElseFilter/>"
                 f"{_sld_symbolizer(geometry, None, NO_DATA_COLOUR)}</Rule>")
    styles = [f"<FeatureTypeStyle>{''.join(rules)}</FeatureTypeStyle>"]
    if label:
        styles.append(
            "<FeatureTypeStyle><Rule><Name>labels</Name><TextSymbolizer>"
            f"<Label><ogc:PropertyName>{escape(label)}</ogc:PropertyName></Label>"
            '<Font><CssParameter name="font-size">10</CssParameter></Font>'
            "<LabelPlacement><PointPlacement><AnchorPoint><AnchorPointX>0</AnchorPointX>"
            "<AnchorPointY>0.5</AnchorPointY></AnchorPoint><Displacement>"
            "<DisplacementX>7</DisplacementX><DisplacementY>0</DisplacementY></Displacement>"
            "</PointPlacement></LabelPlacement>"
            '<Halo><Radius>1.5</Radius><Fill><CssParameter name="fill">#FFFFFF</CssParameter>'
            '</Fill></Halo><Fill><CssParameter name="fill">#282828</CssParameter></Fill>'
            "</TextSymbolizer></Rule></FeatureTypeStyle>")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<StyledLayerDescriptor version="1.0.0" xmlns="http://www.opengis.net/sld" '
        'xmlns:ogc="http://www.opengis.net/ogc" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.opengis.net/sld '
        'http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd">\n'
        f"<NamedLayer><Name>{escape(layer)}</Name><UserStyle><Name>sitescreen level</Name>"
        f"<Title>Risk level 1-5 ({escape(attr)})</Title>\n"
        + "\n".join(styles) + "\n</UserStyle></NamedLayer>\n</StyledLayerDescriptor>\n")
    return xml.encode("utf-8")
