"""The per-site GeoParquet file: one row per site, typed layer columns, GeoParquet metadata."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from sitescreen.aggregate import SiteResults
from sitescreen.outputs.geoparquet import write_geoparquet
from tests.report_fixtures import build_run


def test_one_row_per_site_with_typed_levels_and_layer_metadata(tmp_path):
    import geopandas as gpd

    sites, table, _, manifest = build_run()
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    path = tmp_path / "sites.parquet"
    write_geoparquet(path, sites, results, site_columns=["site_id", "name", "missing_col"],
                     manifest=manifest, chunk_sites=2)
    assert pq.ParquetFile(path).num_row_groups == -(-len(sites) // 2)  # one per chunk
    frame = gpd.read_parquet(path)
    assert len(frame) == len(sites) and frame.crs.to_string() == "OGC:CRS84"
    assert frame["site_id"].tolist() == sites["site_id"].tolist()
    schema = pq.read_schema(path)
    geo = json.loads(schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    meta = json.loads(schema.metadata[b"sitescreen"])
    assert meta["run_id"] == manifest["run_id"] and len(meta["layers"]) == len(results.layers)
    # Every level of the long table, per site; level 0 (no data) is null.
    for info in results.layers[:6] + results.layers[-3:]:
        col = f"{info.key}_level"
        assert str(schema.field(col).type) == "int8"
        rows = table[(table.hazard == info.hazard) & (table.scenario == info.scenario)
                     & (table.year == info.year)].set_index("site_id")["level"]
        expected = frame["site_id"].map(rows).where(lambda v: v > 0)
        got = frame[col].astype("Float64")
        assert got.isna().tolist() == expected.isna().tolist()
        assert np.array_equal(got.dropna().to_numpy(float), expected.dropna().to_numpy(float))
    unresolved = sites["location_source"].eq("unresolved").to_numpy()
    assert frame.geometry.isna().to_numpy().tolist() == (
        unresolved | ~np.isfinite(pd.to_numeric(sites["lon"], errors="coerce"))).tolist()
    composite = [i for i in results.layers if i.is_composite][0]
    assert f"{composite.key}_driver" in frame.columns
