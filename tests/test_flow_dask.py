"""The screening flow on a two-worker Dask LocalCluster, reporting to the test API."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def test_flow_runs_on_a_local_dask_cluster(prefect_api_url, demo_pack, example_sites, tmp_path,
                                           monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows.screen import screen_flow
    from sitescreen import pipeline
    from sitescreen.catalog import load_catalog

    # Workers are separate processes: without the URL each would start its own server.
    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1,
                                            "processes": True, "dashboard_address": None})
    params = dict(sites=str(example_sites), data=str(demo_pack), out=str(tmp_path / "results"),
                  scenarios=["optimistic", "pessimistic"], years=[2050],
                  cache_dir=str(tmp_path / "cache"), report=False)
    result = screen_flow.with_options(task_runner=runner)(**params)
    defaults = [n for n, spec in load_catalog().hazards.items() if spec.default]
    assert len(result["sampled"]) == 2 * len(defaults)

    plain = pipeline.screen(pipeline.make_request(**{**params, "cache_dir": str(tmp_path / "c2")}),
                            write=False)
    summary = pd.read_csv(f"{result['run_dir']}/summary.csv")
    cols = ["hazard", "scenario", "year", "sites_screened", "medium_plus_count"]
    got = summary[cols].sort_values(cols[:3]).reset_index(drop=True)
    expected = plain.shares[cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
