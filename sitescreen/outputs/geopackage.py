"""GIS outputs of a run: a GeoPackage for QGIS/ArcGIS and a QGIS style for its level layers.

Layout of ``<run>/sites.gpkg`` (EPSG:4326, WGS 84 longitude/latitude):

- ``sites``: one point per located site with the site's own fields, its geocoding
  provenance (geocoder, precision, datum, query, ...), ``data_origin`` and ``run_id``.
- ``site_footprints`` (only when some input site is a Polygon/MultiPolygon): one
  MultiPolygon per footprint site with ``site_id``, ``name``, the level fields of the
  headline layer (the report's first map: first headline hazard, worst scenario of the run,
  first year; ``hazard``/``scenario``/``year`` say which) and ``<layer>_level`` for every
  level layer, so footprints can be styled by any of them. The same features are written
  as ``site_footprints.geojson`` (:func:`footprint_files`); ``sites.geojson`` stays
  Point-only, one geometry type per file.
- one point layer per hazard x scenario x year, named ``<hazard>_<scenario>_<year>``
  (``water_stress_pessimistic_2030``), every one with the same fields, above all ``level``
  (1-5, NULL for no data). Long layers rather than one wide layer: one style file
  (:func:`level_style_qml`, categorized on ``level``) then fits every layer, QGIS's layer
  list reads as a legend, and field names stay short. The same numbers in wide form are in
  ``sites.geojson``.
- ``unresolved_sites``: a table without geometry for sites that could not be located, with
  the reason, so they are not lost from a GIS workflow.
- ``run_metadata``: key/value table (run id, data origin, datasets with versions and
  licences, threshold sets, scenario crosswalk) so the file explains itself when shared
  alone.
- ``layer_styles``: the level style stored as each level layer's default (the table QGIS
  itself uses), so QGIS colours the layers on opening without the ``.qml``; the footprint
  layer gets the same categories as fills.

The file is written to a temporary folder beside the target and renamed into place, so a
failed write never leaves a partial GeoPackage.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import mapping

from sitescreen.classify import RiskLevel
from sitescreen.data.sources import SYNTHETIC_WARNING, is_synthetic
from sitescreen.errors import OutputError
from sitescreen.geocode.frame import is_located
from sitescreen.outputs.run_folder import json_bytes
from sitescreen.outputs.styling import LEVEL_COLOURS, NO_DATA_COLOUR, map_layers
from sitescreen.scenarios import scenario_rank, scenario_title

__all__ = ["write_geopackage", "level_style_qml", "layer_name", "footprint_files", "STYLE_FILE",
           "GPKG_FILE", "FOOTPRINT_FILE", "FOOTPRINT_LAYER"]

log = logging.getLogger(__name__)

#: File names the run folder uses for the GeoPackage and its style.
GPKG_FILE = "sites.gpkg"
STYLE_FILE = "sitescreen_level.qml"
#: GeoJSON of the site footprints and the GeoPackage layer holding them (only written when
#: some site was given as a Polygon/MultiPolygon).
FOOTPRINT_FILE = "site_footprints.geojson"
FOOTPRINT_LAYER = "site_footprints"

_CRS = "EPSG:4326"
_GEOM = "geom"
# Columns of the long results table copied to each level layer, with their GPKG names.
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


def _unique_fields(columns: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        base = _field(col)
        name, i = base, 2
        while name in used or name in ("fid", _GEOM):
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


def _is_text(values: pd.Series) -> bool:
    return str(values.dtype).startswith(("str", "string"))


def _text_or_none(values: pd.Series) -> pd.Series:
    """:func:`_scalar` of every cell, vectorised for string columns (NA -> None)."""
    if _is_text(values):
        out = values.astype(object)
        return out.where(values.notna(), None)
    return values.map(_scalar).astype(object)


def _text_or_empty(values: pd.Series) -> pd.Series:
    """``"" if _scalar(v) is None else str(v)`` for every cell, vectorised for strings."""
    if _is_text(values):
        return values.fillna("").astype(object)
    return values.map(lambda v: "" if _scalar(v) is None else str(v))


def _site_fields(sites: pd.DataFrame) -> pd.DataFrame:
    """Site attributes as GPKG-ready columns (geometry dropped, names sanitised)."""
    frame = pd.DataFrame(sites.drop(columns=[c for c in ("geometry",) if c in sites]))
    for col in frame.columns:
        if frame[col].dtype == object or _is_text(frame[col]):
            frame[col] = _text_or_none(frame[col])
    frame["lon"] = pd.to_numeric(frame.get("lon"), errors="coerce")
    frame["lat"] = pd.to_numeric(frame.get("lat"), errors="coerce")
    return frame.rename(columns=_unique_fields(list(frame.columns)))


def _points(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    geom = gpd.points_from_xy(frame["lon"], frame["lat"], crs=_CRS)
    return gpd.GeoDataFrame(frame, geometry=geom, crs=_CRS)


def _nullable_level(values: pd.Series) -> pd.Series:
    # Level 0 means no data: written as NULL so no GIS filter ever reads it as "very low".
    v = pd.to_numeric(values, errors="coerce").astype("Int32")
    return v.where(v > 0, pd.NA)


def _metadata_rows(manifest: Mapping) -> pd.DataFrame:
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
        ("style", f"{STYLE_FILE}: QGIS categorized style on field 'level'"),
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


def _description(rows: pd.DataFrame, manifest: Mapping) -> str:
    r = rows.iloc[0]
    scen = scenario_title(r["scenario"])
    text = (f"{r['hazard_label']}, {scen} {int(r['year'])}: risk level 1-5 per site "
            f"(NULL = no data); dataset pathway {r['pathway']} ({r['period']}); threshold set "
            f"{r['threshold_set']}; run {manifest.get('run_id', '')}; data origin "
            f"{manifest.get('data_origin', '')}")
    if is_synthetic(manifest):
        text = f"{SYNTHETIC_WARNING} {text}"
    return text


def write_geopackage(path: str | Path, sites: pd.DataFrame, table: pd.DataFrame, *,
                     manifest: Mapping) -> None:
    """Write the run's GeoPackage (layers described in the module docstring).

    Parameters
    ----------
    path : target file, e.g. ``<run>/sites.gpkg``; replaced atomically if it exists.
    sites : located sites (``site_id``, ``lon``, ``lat``, geocoding columns, extras).
    table : the long per-site results table (hazards and composites).
    manifest : the run manifest (run id, data origin, datasets, threshold sets).

    Raises
    ------
    OutputError
        The file could not be written; nothing is left at ``path`` from this attempt.
    """
    import pyogrio

    path = Path(path)
    origin = str(manifest.get("data_origin", ""))
    run_id = str(manifest.get("run_id", ""))
    located = is_located(sites)
    fields = _site_fields(sites)
    fields["data_origin"] = origin
    fields["run_id"] = run_id
    names = _text_or_empty(sites["name"]) if "name" in sites else pd.Series("", index=sites.index)
    name_of = dict(zip(sites["site_id"].astype(str), names, strict=True))
    located_ids = set(sites.loc[located, "site_id"].astype(str))
    pos = fields.loc[located, ["site_id", "lon", "lat"]]

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp = tmp_dir / path.name
    current = ["sites"]
    styled: list[str] = []

    def write(frame: pd.DataFrame, layer: str, description: str = "") -> None:
        current[0] = layer
        opts = {"DESCRIPTION": description} if description else None
        # The Arrow path writes the same layer about twice as fast as row by row.
        pyogrio.write_dataframe(frame, tmp, layer=layer, driver="GPKG", layer_options=opts,
                                use_arrow=_ARROW_WRITE)

    try:
        with _unsynced_sqlite():
            write(_points(fields.loc[located].reset_index(drop=True)), "sites",
                  f"Screened sites of run {run_id} (data origin {origin}); WGS 84")
            footprints = _footprints(sites, table, origin=origin)
            if footprints is not None:
                frame, head_rows = footprints
                frame = frame.set_geometry(gpd.GeoSeries(
                    _as_multipolygons(frame.geometry.to_numpy()), index=frame.index, crs=_CRS))
                write(frame, FOOTPRINT_LAYER, _footprint_description(head_rows, manifest))
            for name, frame, rows in _level_layers(table, located_ids, pos, name_of, origin):
                write(frame, name, _description(rows, manifest))
                styled.append(name)
            unresolved = fields.loc[~located].drop(columns=["lon", "lat"]).reset_index(drop=True)
            write(unresolved if len(unresolved) else pd.DataFrame(
                {c: pd.Series(dtype=object) for c in unresolved.columns}), "unresolved_sites",
                "Sites without a location: not screened, not drawn")
            write(_metadata_rows(manifest), "run_metadata", f"Provenance of run {run_id}")
            styles = _layer_styles(styled, manifest)
            if footprints is not None:
                styles = pd.concat([styles, _layer_styles([FOOTPRINT_LAYER], manifest,
                                                          geometry="polygon")],
                                   ignore_index=True)
            write(styles, "layer_styles")
        _fsync(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"writing GeoPackage {path} (layer {current[0]!r}) failed: {reason}; "
                          "no file was written") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.debug("wrote %s with %d level layers", path, len(styled))


def _level_layers(table: pd.DataFrame, located_ids: set[str], pos: pd.DataFrame,
                  name_of: Mapping[str, str], origin: str):
    """(layer name, GeoDataFrame, source rows) per hazard x scenario x year, in report order."""
    pos = pos.assign(site_id=pos["site_id"].astype(str))
    for name, out, rows in _level_frames(table, located_ids, name_of, origin):
        yield name, _points(out.merge(pos, on="site_id", how="left")), rows


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


def _footprints(sites: pd.DataFrame, table: pd.DataFrame, *,
                origin: str) -> tuple[gpd.GeoDataFrame, pd.DataFrame | None] | None:
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
    first = map_layers(part)[:1] if len(part) else []
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
    warn = "SYNTHETIC DEMO DATA, NOT HAZARD DATA. "
    text = _description(rows, manifest)
    return (f"{warn if text.startswith(warn) else ''}Site footprints; fields level, level_low, "
            f"level_high, value: {text.removeprefix(warn)}; fields <layer>_level: the level of "
            "every level layer")


def footprint_files(sites: pd.DataFrame, table: pd.DataFrame, *,
                    manifest: Mapping) -> dict[str, bytes]:
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
    """
    origin = str(manifest.get("data_origin", ""))
    footprints = _footprints(sites, table, origin=origin)
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
def _unsynced_sqlite() -> Iterator[None]:
    """Let SQLite skip its fsync per transaction while the temporary file is written.

    GDAL commits every layer separately; with synchronous writes that is one fsync per
    layer (about half the write time here). The file is a temporary one: it is synced once
    (:func:`_fsync`) before it is renamed into place, so nothing is lost. The setting is
    process-wide in GDAL, hence the lock and the restore.
    """
    import pyogrio

    key = "OGR_SQLITE_SYNCHRONOUS"
    with _SQLITE_LOCK:
        before = pyogrio.get_gdal_config_option(key)
        pyogrio.set_gdal_config_options({key: "OFF"})
        try:
            yield
        finally:
            pyogrio.set_gdal_config_options({key: before})


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _layer_styles(layers: list[str], manifest: Mapping, *,
                  geometry: Literal["point", "polygon"] = "point") -> pd.DataFrame:
    """Rows of QGIS's ``layer_styles`` table making the level style each layer's default."""
    qml = level_style_qml(geometry=geometry).decode("utf-8")
    stamp = pd.to_datetime(manifest.get("created_at") or "1970-01-01T00:00:00Z", utc=True,
                           errors="coerce")
    n = len(layers)
    return pd.DataFrame({
        "f_table_catalog": [""] * n, "f_table_schema": [""] * n, "f_table_name": layers,
        "f_geometry_column": [_GEOM] * n, "styleName": ["sitescreen level"] * n,
        "styleQML": [qml] * n, "styleSLD": [""] * n, "useAsDefault": [True] * n,
        "description": ["Risk level 1-5 (green to red), NULL grey: no data"] * n,
        "owner": [""] * n, "ui": [""] * n, "update_time": [stamp] * n,
    })


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


def level_style_qml(*, geometry: Literal["point", "polygon"] = "point") -> bytes:
    """QGIS layer style (``.qml``): categorized on ``level``, 1-5 green to red, else grey.

    Six categories: the five levels in the colours of the charts, and a grey hollow
    catch-all (empty value: QGIS's "all other values", which takes NULL and 0) labelled
    "no data". ``geometry="polygon"`` gives the same categories as fills (for
    ``site_footprints``); the default, circle markers, is the style file of the run.
    """
    if geometry not in ("point", "polygon"):
        raise ValueError(f"geometry {geometry!r} is not 'point' or 'polygon'")
    symbol = _marker_symbol if geometry == "point" else _fill_symbol
    cats, symbols = [], []
    for i, lvl in enumerate(range(1, 6)):
        label = f"{lvl} {RiskLevel(lvl).label}"
        cats.append(f'<category render="true" symbol="{i}" value="{lvl}" label={quoteattr(label)}/>')
        symbols.append(symbol(i, LEVEL_COLOURS[lvl]))
    cats.append('<category render="true" symbol="5" value="" label="no data"/>')
    symbols.append(symbol(5, NO_DATA_COLOUR, hollow=True))
    xml = (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0-Firenze" styleCategories="Symbology">\n'
        '  <renderer-v2 type="categorizedSymbol" attr="level" symbollevels="0" '
        'enableorderby="1" forceraster="0" referencescale="-1">\n'
        "    <categories>\n      " + "\n      ".join(cats) + "\n    </categories>\n"
        "    <symbols>\n      " + "\n      ".join(symbols) + "\n    </symbols>\n"
        "    <source-symbol>" + symbol(0, NO_DATA_COLOUR) + "</source-symbol>\n"
        # Draw the worst levels last, so they are on top where sites overlap.
        '    <orderby><orderByClause asc="1" nullsFirst="1">"level"</orderByClause></orderby>\n'
        '    <rotation/><sizescale/>\n'
        "  </renderer-v2>\n"
        f"  <layerGeometryType>{0 if geometry == 'point' else 2}</layerGeometryType>\n"
        "</qgis>\n"
    )
    return xml.encode("utf-8")
