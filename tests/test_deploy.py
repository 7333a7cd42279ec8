"""The scheduled deployment registers on the Prefect API with its cron schedule, and the
API creates the scheduled runs from it (a cron cannot fire on a test server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.prefect

REPO = Path(__file__).resolve().parents[1]


def test_weekly_deployment_and_its_scheduled_runs(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.deploy import DEFAULT_CRON, build_deployment

    (tmp_path / "data").mkdir()
    params = {"sites": "sites.geojson", "data": str(tmp_path / "data"),
              "out": str(tmp_path / "results"), "scenarios": ["pessimistic"], "years": [2030, 2050]}
    deployment_id = build_deployment(parameters=params, home=REPO).apply()

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


def test_prefect_yaml_matches_the_python_deployments():
    import yaml

    from flows.deploy import (
        DEFAULT_CRON,
        DEFAULT_TIMEZONE,
        DEFAULT_WATCH_EVERY_S,
        DEPLOYMENT_NAME,
        TRIGGER_PARAMETERS,
        WATCH_DEPLOYMENT_NAME,
        concurrency,
        screening_trigger,
    )
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    dep = next(d for d in doc["deployments"] if d["name"] == DEPLOYMENT_NAME)
    assert dep["entrypoint"] == "flows/screen.py:screen_flow"
    assert dep["schedules"][0]["cron"] == DEFAULT_CRON
    assert dep["schedules"][0]["timezone"] == DEFAULT_TIMEZONE
    trigger, python = dep["triggers"][0], screening_trigger()
    assert set(trigger["expect"]) == python.expect
    assert trigger["match"] == python.match.model_dump()
    assert set(trigger["for_each"]) == python.for_each
    assert trigger["within"] == python.within.total_seconds()
    assert trigger["parameters"] == TRIGGER_PARAMETERS
    limit = concurrency()
    for d in doc["deployments"]:
        assert d["concurrency_limit"] == {"limit": limit.limit,
                                          "collision_strategy": limit.collision_strategy.value}
    watch = next(d for d in doc["deployments"] if d["name"] == WATCH_DEPLOYMENT_NAME)
    assert watch["entrypoint"] == "flows/watch.py:watch_flow"
    assert watch["schedules"][0]["interval"] == DEFAULT_WATCH_EVERY_S
    assert doc["build"] == [{"flows.deploy.check_step": {}}]


def test_a_deployment_that_cannot_work_is_refused_naming_every_problem(tmp_path,
                                                                       monkeypatch):
    from flows.deploy import build_deployment, check_deployment
    from sitescreen.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        build_deployment(parameters={"sites": "{{ $SITESCREEN_SITES }}", "data": "",
                                     "out": "results"}, home=tmp_path)
    text = str(err.value)
    assert "parameter 'sites' is the unresolved template '{{ $SITESCREEN_SITES }}'" in text
    assert "no hazard data folder: set SITESCREEN_DATA" in text
    assert "cache/data" in text and "SYNTHETIC" in text  # demo data is never put in cache/data
    with pytest.raises(ConfigError) as err:
        check_deployment({"sites": "mine.csv", "data": "cache/data"}, home=tmp_path)
    assert f"sites file {tmp_path / 'mine.csv'} does not exist" in str(err.value)
    assert f"data folder {tmp_path / 'cache/data'} does not exist" in str(err.value)
    with pytest.raises(ConfigError, match="holds a password"):
        check_deployment({"sites": "postgresql://a:pw@db/gis?table=s", "data": str(tmp_path)},
                         home=tmp_path)
    with pytest.raises(ConfigError, match="does not exist; set SITESCREEN_HOME"):
        check_deployment({"sites": "x", "data": "y"}, home=tmp_path / "nowhere")
    (tmp_path / "sites.geojson").write_text("{}")
    (tmp_path / "cache" / "demo-pack").mkdir(parents=True)
    check_deployment({"sites": "sites.geojson", "data": "cache/demo-pack"}, home=tmp_path)


def test_the_prefect_yaml_check_needs_sitescreen_home(monkeypatch):
    from flows.deploy import check_step
    from sitescreen.errors import ConfigError

    monkeypatch.delenv("SITESCREEN_HOME", raising=False)
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError, match="SITESCREEN_HOME is not set"):
        check_step()


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
