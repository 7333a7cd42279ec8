"""Chunks of sites as plain Dask tasks (pipeline.screen with dask=...), against one process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sitescreen import pipeline

pytestmark = pytest.mark.slow


def test_dask_chunks_give_the_single_process_results(demo_pack, example_sites, tmp_path):
    params = dict(sites=str(example_sites), data=str(demo_pack), scenarios=["pessimistic"],
                  years=[2050], report=False)
    plain = pipeline.screen(pipeline.make_request(**params, cache_dir=str(tmp_path / "c1")),
                            write=False)
    request = pipeline.make_request(**params, cache_dir=str(tmp_path / "c2"),
                                    out=str(tmp_path / "out"), per_site_outputs="parquet")
    run = pipeline.screen(request, dask="local", dask_workers=1, chunk_sites=15)
    pd.testing.assert_frame_equal(run.shares, plain.shares)
    assert run.results.site_ids.tolist() == plain.results.site_ids.tolist()  # site order
    for a, b in zip(run.results.level, plain.results.level, strict=True):
        assert np.array_equal(a, b)
    assert run.worker_rss_peak and run.worker_rss_peak > 0
    assert sorted(p.name for p in run.run_dir.iterdir() if p.suffix == ".parquet") == [
        "sites.parquet"]
    # The worker filled the result store: a second plain run samples nothing.
    again = pipeline.screen(pipeline.make_request(**params, cache_dir=str(tmp_path / "c2")),
                            write=False)
    assert again.sampled == {}


def test_spatial_order_keeps_neighbours_together():
    rng = np.random.default_rng(1)
    lon = np.r_[rng.uniform(100, 101, 50), rng.uniform(120, 121, 50)]
    lat = np.r_[rng.uniform(20, 21, 50), rng.uniform(40, 41, 50)]
    order = pipeline.spatial_order(lon[::-1].copy(), lat[::-1].copy())
    first = set(order[:50].tolist())
    assert first in (set(range(50)), set(range(50, 100)))
    assert sorted(order.tolist()) == list(range(100))


def test_dask_manifest_lists_every_chunks_files_and_the_driver_merges_snapshot_parts(
        prefect_api_url, demo_pack, tmp_path, monkeypatch):
    """Two chunks read different files: the manifest's layer lists the files of both. A
    snapshot that had SNAPSHOT_MAX_PARTS parts before a Dask run is merged by the driver,
    the run's sites first, as a single-process run merges it."""
    from tile_hazard import CATALOG, EAST, WEST

    from sitescreen.store import ResultStore, location_keys

    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)  # workers: no server of their own
    (tmp_path / "catalog.toml").write_text(CATALOG)
    sites = tmp_path / "sites.csv"
    sites.write_text("site_id,name,lon,lat\nw1,W1,100.1,30.1\ne1,E1,121.4,31.2\n"
                     "w2,W2,100.2,30.2\ne2,E2,121.5,31.3\n")
    params = dict(sites=str(sites), data=str(demo_pack), demo=True,
                  catalog=str(tmp_path / "catalog.toml"),
                  hazards=["tile_depth"], scenarios=["pessimistic"], years=[2050],
                  report=False, cache_dir=str(tmp_path / "cache"))
    request = pipeline.make_request(**params)
    run = pipeline.screen(request, write=False, dask="local", dask_workers=1, chunk_sites=2)
    (layer,) = run.manifest["layers"]
    assert layer["details"]["files_read"] == sorted([WEST, EAST])  # each chunk read one
    store = ResultStore(tmp_path / "cache" / "results")
    fingerprints = pipeline._fingerprints(pipeline.plan_layers(
        pipeline.catalog_for(request), request), request)
    assert len(store.snapshot_paths(fingerprints)) == 2  # one per chunk, none merged

    monkeypatch.setattr(pipeline, "SNAPSHOT_MAX_PARTS", 2)
    again = pipeline.screen(request, write=False, dask="local", dask_workers=1, chunk_sites=2)
    assert again.sampled == {}
    (part,) = store.snapshot_paths(fingerprints)  # merged by the driver
    lon, lat = pipeline.coordinates(pipeline.load_sites(request))
    snap = store.read_snapshot(fingerprints)
    assert snap.parts[0].loc.tolist() == location_keys(lon, lat).tolist()  # in site order
    plain = pipeline.screen(request, write=False)
    assert plain.sampled == {}
    for a, b in zip(plain.results.level, run.results.level, strict=True):
        assert np.array_equal(a, b)
