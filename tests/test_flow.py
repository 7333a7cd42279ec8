"""Real flow runs on the session's Prefect test API, and the CLI end to end in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.prefect


def _read_summary(run_dir):
    return pd.read_csv(run_dir / "summary.csv")


def test_screen_flow_end_to_end(prefect_api, demo_pack, example_sites, tmp_path):
    from flows.screen import screen_flow

    state = screen_flow(sites=str(example_sites), data=str(demo_pack), out=str(tmp_path / "results"),
                        years=[2030, 2050], cache_dir=str(tmp_path / "cache"), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    run_dir = tmp_path / "results" / os.path.basename(result["run_dir"])
    assert (tmp_path / "results" / "latest").resolve() == run_dir.resolve()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["data_origin"] == "synthetic-demo"
    assert {d["id"] for d in manifest["datasets"]} >= {"aqueduct40", "aqueduct_floods", "ibtracs_wp",
                                                       "cckp_cmip6"}
    # A plain table (header first); the data origin on every row.
    assert (run_dir / "summary.csv").read_text().startswith('"hazard"')
    assert set(_read_summary(run_dir)["data_origin"]) == {"synthetic-demo"}

    # Percentages in the summary equal those recomputed from the per-site levels.
    summary = _read_summary(run_dir)
    per_site = pd.read_csv(run_dir / "site_results.csv")
    assert set(per_site["data_origin"]) == {"synthetic-demo"}
    assert {"name", "geocode_precision"} <= set(per_site.columns)
    sites = gpd.read_file(run_dir / "sites.geojson")
    unresolved = set(sites.loc[sites["location_source"] == "unresolved", "site_id"])
    for _, row in summary.iterrows():
        part = per_site[(per_site.hazard == row.hazard) & (per_site.scenario == row.scenario)
                        & (per_site.year == row.year) & ~per_site.site_id.isin(unresolved)]
        screened = part[part.level > 0]
        assert row.sites_screened == len(screened)
        for lvl in range(1, 6):
            expected = 100 * (screened.level == lvl).mean()
            assert row[f"pct_level_{lvl}"] == pytest.approx(expected, abs=1e-3)
        assert row.medium_plus_pct == pytest.approx(100 * (screened.level >= 3).mean(), abs=1e-3)
    from sitescreen.outputs.summary import HEADLINE_HAZARDS

    headline = summary[summary.hazard.isin(HEADLINE_HAZARDS)]
    assert set(headline.hazard) == {"water_scarcity_drought", "floods_typhoons", "heat"}
    assert len(headline) == 3 * 3 * 2
    heat = summary[summary.hazard == "heat"]
    assert (heat.sites_screened > 0).all()
    assert set(heat.pathway) == {"extreme_heat:ssp126", "extreme_heat:ssp245", "extreme_heat:ssp585"}
    assert (heat.medium_plus_pct_low <= heat.medium_plus_pct_high).all()

    # The heat hazards ran in the flow, and the data centers' cooling energy is reported.
    assert {"extreme_heat", "cooling_demand"} <= set(per_site.hazard)
    cooling = per_site[per_site.hazard == "cooling_demand"]
    dc = cooling[cooling.site_id == "ksc-bj-yizhuang-dc"]
    assert len(dc) == 6 and dc.extra_cooling_demand_dc_cooling_change_pct.notna().all()
    assert dc.extra_cooling_demand_dc_assumptions.str.contains("pue=1.362 (site)",
                                                               regex=False).all()
    assert [r["hazard"] for r in manifest["data_center_cooling"]] == ["cooling_demand"]
    report = (run_dir / "report.md").read_text()
    assert "## Data-center cooling energy" in report and "### Extreme heat" in report

    # GeoJSON loads with lon/lat order: the Xuhui head office is at about 121.4 E, 31.2 N.
    assert sites.crs.to_epsg() == 4326
    xuhui = sites.set_index("site_id").loc["st-sh-xuhui-hq"].geometry
    assert xuhui.x == pytest.approx(121.394, abs=0.01) and xuhui.y == pytest.approx(31.169, abs=0.01)
    assert (sites["data_origin"] == "synthetic-demo").all()
    assert "water_stress_pessimistic_2050_level" in sites.columns

    # The shares table was published as a Prefect artifact.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["risk-shares"])))

    assert asyncio.run(artifacts())

    # The summary artifact is the headline table and one sentence per hazard, readable away
    # from the server; the shares table starts with the headline columns; the flow run is
    # named after the sites file and the run id.
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def details():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
                    any_=["screening-summary", "risk-shares"])),
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
            return runs[0], {a.key: a for a in found}

    flow_run, found = asyncio.run(details())
    assert flow_run.name == f"{example_sites.name} {manifest['run_id']}"
    summary_md = found["screening-summary"].data
    assert summary_md.startswith(f"# {manifest['title']}\n")
    assert "| Hazard | Scenario | 2030 medium+ | 2050 medium+ | Sites screened |" in summary_md
    assert "Water scarcity and drought: from " in summary_md or \
        "Water scarcity and drought: " in summary_md
    shares_rows = found["risk-shares"].data
    shares_rows = json.loads(shares_rows) if isinstance(shares_rows, str) else shares_rows
    assert list(shares_rows[0])[:4] == ["hazard", "scenario", "year", "medium_plus_pct"]


def test_cli_screen_in_subprocess(prefect_api_url, demo_pack, example_sites, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "sitescreen.cli", "screen", str(example_sites), "--data",
         str(demo_pack), "--out", str(out), "--year", "2030", "--scenario", "pessimistic"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SYNTHETIC DEMO DATA" in proc.stdout
    assert "Water scarcity and drought" in proc.stdout and "Floods and typhoons" in proc.stdout
    # progress, not Prefect's log lines (those go to the flow run)
    err = proc.stderr.splitlines()
    assert err[0] == f"running as a Prefect flow on {prefect_api_url}"
    assert all(ln.startswith("  ") for ln in err[1:]), proc.stderr[-3000:]
    assert (out / "latest" / "manifest.json").is_file()


@pytest.mark.parametrize("content", [
    '{"type": "FeatureCollection", "features": [',
    '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
    '{"site_id": "a", "name": "A"}, "geometry": {"type": "Point", "coordinates": [200, 95]}}]}',
])
def test_cli_rejects_bad_sites_without_writing(demo_pack, tmp_path, content):
    bad = tmp_path / "bad.geojson"
    bad.write_text(content)
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "sitescreen.cli", "screen", str(bad), "--data", str(demo_pack),
         "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "bad.geojson" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
