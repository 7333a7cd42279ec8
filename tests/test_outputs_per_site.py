"""Which per-site files a run writes, and the streamed long CSV and GeoJSON."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pandas as pd
import pytest

from sitescreen.errors import ConfigError
from sitescreen.outputs.per_site import (
    PerSiteOutputs,
    long_csv_writer,
    plan_per_site,
    site_geojson_writer,
)
from tests.report_fixtures import build_run


@pytest.mark.parametrize(("mode", "n", "files"), [
    ("auto", 10, ["site_results.csv", "sites.geojson", "sites.parquet", "sites.gpkg"]),
    ("auto", 11, ["sites.parquet"]),
    ("all", 11, ["site_results.csv", "sites.geojson", "sites.parquet", "sites.gpkg"]),
    ("compressed", 1, ["site_results.csv.gz", "sites.geojson.gz", "sites.parquet",
                       "sites.gpkg"]),
    ("parquet", 1, ["sites.parquet"]),
    ("none", 1, []),
])
def test_plan_follows_mode_and_limit(mode, n, files):
    plan = plan_per_site(mode, n, limit=10)
    assert plan.files() == files
    assert plan.mode != PerSiteOutputs.AUTO and plan.to_dict()["files"] == files


def test_plan_rejects_unknown_modes_and_negative_limits():
    with pytest.raises(ConfigError, match="'csv' is not one of auto, all"):
        plan_per_site("csv", 1)
    with pytest.raises(ConfigError, match="0 or more"):
        plan_per_site("auto", 1, limit=-1)


def test_streamed_files_equal_one_chunk_and_decompress(tmp_path):
    from sitescreen.aggregate import SiteResults

    sites, table, _, manifest = build_run()
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    members = {"name": "sitescreen results"}
    out = {}
    for chunk in (len(sites), 3):
        for compressed in (False, True):
            path = tmp_path / f"r-{chunk}-{compressed}.csv"
            long_csv_writer(sites, results, data_origin="synthetic-demo",
                            compressed=compressed, chunk_sites=chunk)(path)
            gj = tmp_path / f"s-{chunk}-{compressed}.geojson"
            site_geojson_writer(sites, results, data_origin="synthetic-demo",
                                site_columns=["site_id", "name"], members=members,
                                compressed=compressed, chunk_sites=chunk)(gj)
            read = gzip.open if compressed else open
            with read(path, "rb") as fh:
                csv = fh.read()
            with read(gj, "rb") as fh:
                geo = fh.read()
            out[(chunk, compressed)] = (csv, geo)
    # Chunking and compression change neither the GeoJSON bytes nor the CSV rows.
    assert len({v[1] for v in out.values()}) == 1
    frames = [pd.read_csv(io.BytesIO(v[0])).sort_values(
        ["site_id", "hazard", "scenario", "year"], ignore_index=True) for v in out.values()]
    for f in frames[1:]:
        pd.testing.assert_frame_equal(f, frames[0])
    assert len(frames[0]) == len(table)
    assert frames[0]["level"].to_numpy().tolist() == table.sort_values(
        ["site_id", "hazard", "scenario", "year"])["level"].to_numpy().tolist()
    fc = json.loads(out[(3, False)][1])
    assert len(fc["features"]) == len(sites) and fc["name"] == "sitescreen results"
    assert np.isin([f["id"] for f in fc["features"]], sites["site_id"]).all()
