"""The per-site GeoParquet file: one row per site, every layer as typed columns.

``sites.parquet`` is the per-site output that scales: a million sites x 36 layers is a few
hundred megabytes, written chunk by chunk of sites (one Parquet row group each), so memory
follows the chunk size. It follows GeoParquet 1.1 (``geo`` file metadata, WKB points in
``geometry``, longitude/latitude on WGS 84, i.e. the default ``OGC:CRS84``) and opens in
``geopandas.read_parquet``, DuckDB, and QGIS or GDAL where GDAL has its (Arrow)
Parquet driver.

Columns: the site's own fields, ``data_origin``, ``geometry`` (null for unresolved sites),
then per layer ``<hazard>_<scenario>_<year>_level``/``_low``/``_high`` (int8, null: no
data), ``_value`` (float64, the raw metric in the layer's units), ``_flags`` and, for
composites, ``_driver`` (dictionary-encoded strings), and a hazard's extra columns. What is
constant in a layer (pathway, units, threshold set, datasets) is stored once, in the
``sitescreen`` file metadata, beside the run id and data origin.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sitescreen.aggregate import DEFAULT_CHUNK_SITES, SiteResults

__all__ = ["GEOPARQUET_FILE", "write_geoparquet", "geoparquet_writer"]

GEOPARQUET_FILE = "sites.parquet"
_GEOPARQUET_VERSION = "1.1.0"


def _levels(values: np.ndarray):
    import pyarrow as pa

    values = np.asarray(values, dtype=np.int8)
    return pa.array(values, type=pa.int8(), mask=values <= 0)


def _dictionary(values: pd.Categorical):
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(values.codes, dtype=np.int32)),
        pa.array(list(map(str, values.categories)), type=pa.string()))


def _layer_columns(part: SiteResults) -> dict:
    import pyarrow as pa

    cols: dict = {}
    for i, info in enumerate(part.layers):
        k = info.key
        cols[f"{k}_level"] = _levels(part.level[i])
        cols[f"{k}_low"] = _levels(part.level_low[i])
        cols[f"{k}_high"] = _levels(part.level_high[i])
        cols[f"{k}_value"] = pa.array(part.value[i], type=pa.float64(), from_pandas=True)
        cols[f"{k}_flags"] = _dictionary(part.flags[i])
        if info.is_composite:
            cols[f"{k}_driver"] = _dictionary(part.driver[i])
        for name, arr in part.extra[i].items():
            cols[f"{k}_{name.lstrip('=')}"] = pa.array(np.asarray(arr), from_pandas=True)
    return cols


def _geo_metadata(lon: np.ndarray, lat: np.ndarray) -> dict:
    ok = np.isfinite(lon) & np.isfinite(lat)
    column = {"encoding": "WKB", "geometry_types": ["Point"]}
    if ok.any():
        column["bbox"] = [float(lon[ok].min()), float(lat[ok].min()),
                          float(lon[ok].max()), float(lat[ok].max())]
    return {"version": _GEOPARQUET_VERSION, "primary_column": "geometry",
            "columns": {"geometry": column}}


def layer_records(results: SiteResults) -> list[dict]:
    """What each layer's per-site columns (``<column_prefix>_level`` ...) describe: hazard,
    narrative, year, the dataset's pathway, period and exactness, units, threshold set."""
    return [{"column_prefix": info.key, "hazard": info.hazard, "label": info.hazard_label,
             "is_composite": info.is_composite, "scenario": info.scenario,
             "year": info.year, "pathway": info.pathway, "pathway_label": info.pathway_label,
             "period": info.period, "pathway_exact": info.pathway_exact,
             "pathway_note": info.pathway_note, "units": info.units,
             "threshold_set": info.threshold_set, "datasets": info.datasets}
            for info in results.layers]


def _run_metadata(results: SiteResults, manifest: Mapping) -> dict:
    layers = layer_records(results)
    return {"run_id": manifest.get("run_id"), "data_origin": manifest.get("data_origin"),
            "data_origin_note": manifest.get("data_origin_note"),
            "sitescreen_version": manifest.get("sitescreen_version"),
            "manifest": "manifest.json",
            "levels": "1 very low .. 5 very high; null: no data",
            "layers": layers}


def write_geoparquet(path: str | Path, sites: pd.DataFrame, results: SiteResults, *,
                     site_columns: Sequence[str], manifest: Mapping,
                     chunk_sites: int = DEFAULT_CHUNK_SITES) -> None:
    """Write ``sites.parquet`` for ``sites`` and their ``results`` (aligned, same order).

    Parameters
    ----------
    path : the file to write (the run folder's temporary copy; see ``write_run``).
    sites : the located sites (``site_id``, ``lon``, ``lat`` and the ``site_columns``).
    results : the run's per-site results, hazards and composites.
    site_columns : the site fields to copy, in order (those absent from ``sites`` are skipped).
    manifest : the run manifest (run id, data origin).
    chunk_sites : sites per row group; memory follows it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    if len(sites) != len(results):
        raise ValueError(f"{len(results)} results for {len(sites)} sites")
    present = [c for c in dict.fromkeys(site_columns) if c in sites.columns]
    attrs = pa.Table.from_pandas(
        sites[present].reset_index(drop=True).astype(
            {c: object for c in present if sites[c].dtype == object}),
        preserve_index=False)
    lon = pd.to_numeric(sites["lon"], errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(sites["lat"], errors="coerce").to_numpy(dtype="float64")
    origin = str(manifest.get("data_origin", ""))
    meta = {b"geo": json.dumps(_geo_metadata(lon, lat)).encode(),
            b"sitescreen": json.dumps(_run_metadata(results, manifest), default=str).encode()}
    writer = None
    try:
        for a, part in results.chunks(chunk_sites):
            b = a + len(part)
            ok = np.isfinite(lon[a:b]) & np.isfinite(lat[a:b])
            wkb = np.full(b - a, None, dtype=object)
            if ok.any():
                wkb[ok] = shapely.to_wkb(shapely.points(lon[a:b][ok], lat[a:b][ok]))
            cols = {name: attrs.column(name).slice(a, b - a) for name in present}
            cols["data_origin"] = pa.array([origin] * (b - a), type=pa.string()) \
                .dictionary_encode()
            cols["geometry"] = pa.array(wkb, type=pa.binary())
            cols.update(_layer_columns(part))
            table = pa.table(cols)
            if writer is None:
                schema = table.schema.with_metadata(meta)
                writer = pq.ParquetWriter(str(path), schema, compression="zstd")
            writer.write_table(table.cast(writer.schema) if table.schema != writer.schema
                               else table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no sites: an empty file with the schema of the site columns
        pq.write_table(attrs.replace_schema_metadata(meta), str(path))
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def geoparquet_writer(sites: pd.DataFrame, results: SiteResults, *,
                      site_columns: Sequence[str], manifest: Mapping,
                      chunk_sites: int = DEFAULT_CHUNK_SITES):
    """A ``write_run`` writer for :func:`write_geoparquet`."""
    def write(path: Path) -> None:
        write_geoparquet(path, sites, results, site_columns=site_columns, manifest=manifest,
                         chunk_sites=chunk_sites)
    return write
