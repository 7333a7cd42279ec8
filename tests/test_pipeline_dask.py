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
