"""Event-driven re-screening on a real Prefect server started by this module.

``prefect server start`` runs on a free loopback port (its own PREFECT_HOME) with every
service, so the scheduler, the event triggers and the automation actions are Prefect's own.
Both deployments are served from a subprocess (``flows/deploy.py``'s builders), as an
operator would; the test only edits the sites file and then reads the API.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from sitescreen.catalog import load_catalog

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 300  # generous, finite: each wait below fails with what it saw

SITES = [
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.47, 31.23]},
     "properties": {"site_id": "sh-hq", "name": "Shanghai HQ", "city": "Shanghai",
                    "country": "CN"}},
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.06, 22.54]},
     "properties": {"site_id": "sz-lab", "name": "Shenzhen lab", "city": "Shenzhen",
                    "country": "CN"}},
]
NEW_SITE = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [120.16, 30.27]},
            "properties": {"site_id": "hz-new", "name": "Hangzhou office", "city": "Hangzhou",
                           "country": "CN"}}
# Every default hazard of the packaged catalog, as the deployments screen them.
LAYERS = {f"{name}/pessimistic/2030" for name, spec in load_catalog().hazards.items()
          if spec.default}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="WARNING")
    return env


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process this module started and its children (its own session: flow runs of
    a served deployment, the server's workers): SIGTERM, then SIGKILL after 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def prefect_server():
    """``prefect server start`` on a free loopback port; stopped at the end of the module."""
    home = Path(tempfile.mkdtemp(prefix="sitescreen-server-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = _prefect_env(home)
    env.update(PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
               PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS="1",
               PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
               PREFECT_SERVER_SERVICES_FOREMAN_ENABLED="false")
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Prefect server did not start:\n"
                                   + (home / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


# The watcher's first scheduled run is due 5 s after serving starts (time to register the
# deployments and for the scheduler to see them), then every 15 s.
SERVE = """
import sys
from datetime import datetime, timedelta, timezone
from prefect import serve
from flows.deploy import build_deployment, build_watch_deployment
params = {{"sites": "sites.geojson", "data": {data!r}, "out": "results",
          "scenarios": ["pessimistic"], "years": [2030], "report": False}}
serve(build_deployment(parameters=params, within_s=1),
      build_watch_deployment(every_s=15, parameters={{"sites": "sites.geojson",
                                                     "out": "results"}},
                             first=datetime.now(timezone.utc) + timedelta(seconds=5)))
"""


def _api(url: str, fn):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go():
        async with get_client() as client:
            return await fn(client)

    with temporary_settings({PREFECT_API_URL: url}):
        return asyncio.run(go())


def _wait(what: str, probe, seen: list):
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        got = probe()
        if got:
            print(f"{what}: {BOUND_S - (deadline - time.monotonic()):.1f} s", file=sys.stderr)
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last seen: {seen[-1:]}")


def test_an_edit_of_the_sites_triggers_a_screening_of_only_the_new_site(
        prefect_server, demo_pack, tmp_path):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from sitescreen import pipeline

    home = tmp_path / "home"
    home.mkdir()
    sites = home / "sites.geojson"
    sites.write_text(json.dumps({"type": "FeatureCollection", "features": SITES}), "utf-8")
    # The last screened version: a run folder of these sites (the library steps, as the
    # weekly run would have made it), so the watcher's first look finds nothing new.
    pipeline.screen(pipeline.make_request(
        sites=str(sites), data=str(demo_pack), out=str(home / "results"),
        scenarios=["pessimistic"], years=[2030], cache_dir=str(home / "cache"), report=False))

    # An analyst adds a site. The watcher's next scheduled run (every 15 s here, few enough
    # processes for a loaded machine) notices it; nothing else starts a run.
    doc = json.loads(sites.read_text("utf-8"))
    doc["features"].append(NEW_SITE)
    sites.write_text(json.dumps(doc), "utf-8")

    env = _prefect_env(Path(tempfile.mkdtemp(prefix="sitescreen-client-")))
    env.update(PREFECT_API_URL=prefect_server, PREFECT_RUNNER_POLL_FREQUENCY="1",
               SITESCREEN_HOME=str(home), PYTHONPATH=str(REPO))
    serve_log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-c", SERVE.format(data=str(demo_pack))],
                              cwd=home, env=env, stdout=serve_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    seen: list = []
    try:

        def screened():
            async def read(client):
                return await client.read_flow_runs(deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=["weekly-screen"])))
            runs = _api(prefect_server, read)
            seen.append(("screen runs", [(r.name, r.state_name, r.state and r.state.message)
                                         for r in runs]))
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert not any(r.state and r.state.is_failed() for r in runs), seen[-1]
            return [r for r in runs if r.state and r.state.is_completed()]

        runs = _wait("the triggered screening run to complete", screened, seen)
        assert len(runs) == 1, seen[-1]
        run = runs[0]

        async def details(client):
            automations = await client.read_automations()
            artifacts = await client.read_artifacts()
            return automations, artifacts

        automations, artifacts = _api(prefect_server, details)

        async def deployment_and_watch_runs(client):
            dep = await client.read_deployment_by_name("screen-sites/weekly-screen")
            watch = await client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["watch-sites"])))
            return dep, watch

        deployment, watch_runs = _api(prefect_server, deployment_and_watch_runs)
    finally:
        _stop(server)
        serve_log.close()

    # The deployment: one run at a time, the event trigger with its debounce window.
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    # The watcher ran from its schedule and emitted the event.
    emitted = [r for r in watch_runs if r.state and r.state.is_completed()]
    assert emitted and all(r.auto_scheduled for r in emitted)
    assert emitted[0].name == "watch-sites.geojson"
    # Started by the deployment's trigger, with the parameters from the event.
    assert any(a.name == "screen-on-sites-changed" for a in automations)
    assert not run.auto_scheduled
    assert run.created_by is None or run.created_by.type != "USER"
    assert run.parameters["sites"] == "sites.geojson"
    assert run.parameters["out"] == "results"
    # Named after the source and the run id of its results folder.
    latest = (home / "results" / "latest").resolve()
    assert run.name == f"sites.geojson {latest.name}"
    # Only the new site was sampled; the change summary names it.
    summary = next(a for a in artifacts if a.key == "site-changes"
                   and a.flow_run_id == run.id)
    data = json.loads(summary.data.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert data["sampled"] == {layer: 1 for layer in LAYERS}
    assert data["sites_added"] == ["hz-new"]
    changes = json.loads((latest / "changes.json").read_text("utf-8"))
    assert [s["site_id"] for s in changes["sites_added"]] == ["hz-new"]
    state = json.loads(next((home / "cache" / "watch").glob("*.json")).read_text("utf-8"))
    assert state["counts"] == {"sites_added": 1, "sites_removed": 0, "sites_moved": 0}


def _readme_block(containing: str) -> list[str]:
    """The command lines of the README's sh block that contains ``containing``."""
    text = (REPO / "README.md").read_text("utf-8")
    blocks = [b.split("\n", 1)[1] for b in text.split("```sh")[1:]]
    block = next(b.split("```", 1)[0] for b in blocks if containing in b.split("```", 1)[0])
    return [line.split("  #")[0].rstrip() for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_worker_sequence_registers_working_deployments(prefect_server, demo_pack,
                                                                   tmp_path):
    """The README's `prefect deploy --all` sequence, run in a fresh clone as written, except:
    the data fetch (no network here: the SYNTHETIC pack stands in, in its own folder) and
    the two commands that keep running (worker start) or need one (deployment run)."""
    from sitescreen.site_sources import redact  # noqa: F401  (the clone imports the same code)

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(REPO / ".venv")
    shutil.copytree(demo_pack, clone / "cache" / "demo-pack")
    lines = []
    for line in _readme_block("prefect deploy --all"):
        if "data fetch" in line or "worker start" in line or "deployment run" in line:
            continue
        line = line.replace("http://127.0.0.1:4200/api", prefect_server)
        line = line.replace("SITESCREEN_DATA=cache/data", "SITESCREEN_DATA=cache/demo-pack")
        lines.append(line.replace("my_sites.csv", "sites.geojson"))
    assert any("prefect deploy --all" in line for line in lines)
    env = _prefect_env(Path(tempfile.mkdtemp(prefix="sitescreen-deploy-")))
    done = subprocess.run(["bash", "-ec", "\n".join(lines)], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # Forgetting a setting is refused when the deployments are created, naming it; the
    # registered deployments stay as they were.
    refused = subprocess.run(["bash", "-c", "\n".join(
        line.replace(" SITESCREEN_DATA=cache/demo-pack", "") for line in lines
        if "work-pool create" not in line)],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "{{ $SITESCREEN_DATA }}" in refused.stdout + refused.stderr
    assert "unresolved template" in refused.stdout + refused.stderr

    async def read(client):
        screen = await client.read_deployment_by_name("screen-sites/weekly-screen")
        watch = await client.read_deployment_by_name("watch-sites/watch-sites")
        automations = await client.read_automations()
        return screen, watch, automations

    screen, watch, automations = _api(prefect_server, read)
    assert screen.parameters["sites"] == "sites.geojson"
    assert screen.parameters["data"] == "cache/demo-pack"
    assert watch.parameters["sites"] == "sites.geojson"
    assert screen.pull_steps[0]["prefect.deployments.steps.set_working_directory"] == {
        "directory": str(clone)}
    assert screen.global_concurrency_limit.limit == 1
    trigger = next(a for a in automations if a.name == "screen-on-sites-changed"
                   and any(getattr(x, "deployment_id", None) == screen.id for x in a.actions))
    assert trigger.trigger.expect == {"sitescreen.sites.changed"}
    assert trigger.actions[0].parameters == {"sites": "{{ event.payload.sites }}",
                                             "out": "{{ event.payload.out }}"}


@pytest.mark.prefect
def test_an_insert_into_a_postgis_table_is_noticed_and_screened_alone(
        prefect_api, postgis, demo_pack, tmp_path, monkeypatch):
    """The watcher and the screening flow on a PostGIS source (the trigger between them is
    the real-server test's subject): an INSERT is one added site, sampled alone."""
    from flows.screen import screen_flow
    from flows.watch import watch_flow

    postgis.psql("DROP TABLE IF EXISTS watched; CREATE TABLE watched (id serial PRIMARY KEY, "
                 "site_id text, name text, city text, country text, geom geometry(Point, 4326));"
                 " INSERT INTO watched (site_id, name, city, country, geom) VALUES "
                 "('sh-hq', 'Shanghai HQ', 'Shanghai', 'CN', ST_SetSRID(ST_MakePoint(121.47, "
                 "31.23), 4326)), ('sz-lab', 'Shenzhen lab', 'Shenzhen', 'CN', "
                 "ST_SetSRID(ST_MakePoint(114.06, 22.54), 4326)); ALTER TABLE watched OWNER "
                 "TO analyst")
    monkeypatch.setenv("SITESCREEN_HOME", str(tmp_path))
    url = f"{postgis.url}?table=watched"
    out = str(tmp_path / "results")
    kwargs = dict(data=str(demo_pack), scenarios=["pessimistic"], years=[2030],
                  cache_dir=str(tmp_path / "cache"), report=False)

    first = watch_flow(sites=url, out=out)
    assert first["emitted"] and first["sites_added"] == 2  # never screened
    assert screen_flow(sites=first["sites"], out=out, **kwargs)["sampled"] == {
        layer: 2 for layer in LAYERS}
    assert not watch_flow(sites=url, out=out)["emitted"]  # screened: nothing to do

    postgis.psql("INSERT INTO watched (site_id, name, city, country, geom) VALUES "
                 "('hz-new', 'Hangzhou office', 'Hangzhou', 'CN', "
                 "ST_SetSRID(ST_MakePoint(120.16, 30.27), 4326))")
    event = watch_flow(sites=url, out=out)
    assert event["emitted"]
    assert (event["sites_added"], event["sites_removed"], event["sites_moved"]) == (1, 0, 0)
    again = watch_flow(sites=url, out=out)  # asked for, not screened yet: not asked again
    assert not again["emitted"] and again["digest"] == event["digest"]
    result = screen_flow(sites=event["sites"], out=event.get("out", out), **kwargs)
    assert result["sampled"] == {layer: 1 for layer in LAYERS}
    changes = json.loads((Path(result["run_dir"]) / "changes.json").read_text("utf-8"))
    assert [s["site_id"] for s in changes["sites_added"]] == ["hz-new"]
    assert not watch_flow(sites=url, out=out)["emitted"]


@pytest.mark.prefect
def test_a_failed_run_says_what_the_command_line_says(prefect_api, demo_pack, tmp_path):
    from flows.screen import screen_flow
    from sitescreen import pipeline
    from sitescreen.errors import SiteValidationError

    sites = tmp_path / "sites.csv"
    sites.write_text("site_id,lon,lat\na,31.2,121.4\n", "utf-8")
    with pytest.raises(SiteValidationError) as err:
        pipeline.load_sites(pipeline.make_request(sites=str(sites)))
    state = screen_flow(sites=str(sites), data=str(demo_pack), out=str(tmp_path / "r"),
                        return_state=True)
    assert state.is_failed()
    assert state.message == f"error: {err.value}"  # what `sitescreen screen` prints
    with pytest.raises(SiteValidationError):
        state.result()
