"""The scheduled deployment registers on the Prefect API with its cron schedule, and the
API creates the scheduled runs from it (a cron cannot fire on a test server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.prefect


def test_weekly_deployment_and_its_scheduled_runs(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.deploy import DEFAULT_CRON, build_deployment

    params = {"sites": "sites.geojson", "data": str(tmp_path / "data"),
              "out": str(tmp_path / "results"), "scenarios": ["pessimistic"], "years": [2030, 2050]}
    deployment_id = build_deployment(parameters=params).apply()

    async def check():
        async with get_client() as client:
            dep = await client.read_deployment(deployment_id)
            schedules = await client.read_deployment_schedules(deployment_id)
            resp = await client._client.post(f"/deployments/{deployment_id}/schedule",
                                             json={"min_runs": 3, "max_runs": 3})
            resp.raise_for_status()
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
            return dep, schedules, runs

    dep, schedules, runs = asyncio.run(check())
    assert dep.name == "weekly-screen"
    assert dep.parameters["years"] == [2030, 2050]
    assert [s.schedule.cron for s in schedules] == [DEFAULT_CRON]
    assert len(runs) >= 3
    for run in runs:
        assert run.state.is_scheduled()
        assert run.parameters["out"] == params["out"]
        local = run.expected_start_time.astimezone(ZoneInfo("Asia/Shanghai"))
        assert (local.weekday(), local.hour, local.minute) == (0, 6, 0)


def test_prefect_yaml_matches_the_python_deployment():
    import yaml

    from flows.deploy import DEFAULT_CRON, DEFAULT_TIMEZONE, DEPLOYMENT_NAME
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "prefect.yaml").read_text())
    dep = next(d for d in doc["deployments"] if d["name"] == DEPLOYMENT_NAME)
    assert dep["entrypoint"] == "flows/screen.py:screen_flow"
    assert dep["schedules"][0]["cron"] == DEFAULT_CRON
    assert dep["schedules"][0]["timezone"] == DEFAULT_TIMEZONE


def test_amap_key_comes_from_a_prefect_secret_block(prefect_api, monkeypatch):
    from prefect.blocks.system import Secret

    from flows.screen import AMAP_SECRET_BLOCK, geocoder_options
    from sitescreen.pipeline import make_request

    monkeypatch.delenv("SITESCREEN_AMAP_KEY", raising=False)
    request = make_request(sites="s.geojson", data="d", geocoders=["offline", "amap"])
    assert geocoder_options(make_request(sites="s.geojson", data="d")) == {}
    Secret(value="test-key-123").save(AMAP_SECRET_BLOCK, overwrite=True)
    assert geocoder_options(request) == {"amap": {"key": "test-key-123"}}
    monkeypatch.setenv("SITESCREEN_AMAP_KEY", "from-env")
    assert geocoder_options(request) == {}  # the provider reads the environment itself
