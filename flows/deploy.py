"""The deployments: the weekly screening, re-run by the watcher's event, and the watcher.

Serve both from this machine (keeps running, executes the scheduled and triggered runs)::

    PREFECT_API_URL=http://127.0.0.1:4200/api SITESCREEN_DATA=cache/demo-pack \\
        python flows/deploy.py

or register them for a worker with ``prefect deploy --all`` (see prefect.yaml, whose build
step :func:`check_step` refuses a deployment with unusable parameters when it is created, not
at its first run; ``python -m flows.deploy --check`` runs the same check).

Settings (environment): ``SITESCREEN_HOME`` (the working directory of the runs; default the
current one), ``SITESCREEN_SITES`` (default ``sites.geojson``), ``SITESCREEN_DATA`` (default
``cache/data``, which exists once ``sitescreen data fetch`` filled it; ``cache/demo-pack``
for the SYNTHETIC demonstration), ``SITESCREEN_OUT`` (default ``results``),
``SITESCREEN_WATCH_EVERY`` (seconds between watcher runs, default 120).
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

from flows.screen import screen_flow
from flows.watch import EVENT, RESOURCE_PREFIX, project_home, watch_flow
from sitescreen.data.sources import default_data_folder
from sitescreen.errors import ConfigError

DEPLOYMENT_NAME = "weekly-screen"
WATCH_DEPLOYMENT_NAME = "watch-sites"
#: Mondays 06:00 in the time zone below: a weekly re-screen before the working week starts.
DEFAULT_CRON = "0 6 * * 1"
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: The watcher looks every two minutes: an edit is screened within minutes.
DEFAULT_WATCH_EVERY_S = 120
#: Events of one source within this window start one run (a burst of saves is one edit).
TRIGGER_WITHIN_S = 60
#: Trigger parameters, rendered from the event: the source and results folder it watched.
TRIGGER_PARAMETERS = {"sites": "{{ event.payload.sites }}", "out": "{{ event.payload.out }}"}
_UNRESOLVED = re.compile(r"\{\{.*?\}\}")


def default_parameters() -> dict:
    """Parameters of the screening deployment, from the environment (see the module doc)."""
    return {
        "sites": os.environ.get("SITESCREEN_SITES", "sites.geojson"),
        # Given explicitly, so that it is checked now: the request's default folder
        # ($SITESCREEN_DATA, else cache/data), which exists only once data was fetched.
        "data": default_data_folder(),
        "out": os.environ.get("SITESCREEN_OUT", "results"),
        "scenarios": ["optimistic", "current_trend", "pessimistic"],
        "years": [2030, 2050],
    }


def check_deployment(parameters: dict, *, home: str | Path | None = None) -> None:
    """Refuse parameters that cannot work, naming every problem and what to do.

    Checked when a deployment is created (here and by prefect.yaml's build step), so that
    the first scheduled or triggered run does not fail on them: unresolved ``{{ ... }}``
    templates (an environment variable missing at ``prefect deploy``), a working directory
    that does not exist, no data folder or one that does not exist, a sites file that does
    not exist, a password in a database URL (it would be stored in Prefect's database).
    """
    from sitescreen.site_sources import is_postgres, is_table_source, split_password

    home = Path(home) if home is not None else project_home()
    problems = []
    if not home.is_dir():
        problems.append(f"the working directory {home} (SITESCREEN_HOME) does not exist; set "
                        "SITESCREEN_HOME to the sitescreen folder (the clone with sites and "
                        "cache/)")
    for key, value in parameters.items():
        if isinstance(value, str) and _UNRESOLVED.search(value):
            problems.append(f"parameter {key!r} is the unresolved template {value!r}: the "
                            "environment variable it names was not set at deployment time")
    sites = str(parameters.get("sites") or "")
    data = str(parameters.get("data") or "")
    if not sites:
        problems.append("no sites source: set SITESCREEN_SITES (a file relative to "
                        f"{home}, sites.gpkg:layer or postgresql://user@host/db?table=sites)")
    elif is_postgres(sites):
        if split_password(sites)[1] is not None:
            problems.append("the sites URL holds a password, which Prefect would store with "
                            "the deployment; remove it and set PGPASSWORD for the worker, or "
                            "save it in the Prefect Secret block 'sitescreen-postgres-password'")
    elif not _UNRESOLVED.search(sites):
        path = sites.rsplit(":", 1)[0] if is_table_source(sites) and sites.count(":") else sites
        if not (home / path).is_file():
            problems.append(f"sites file {home / path} does not exist; set SITESCREEN_SITES "
                            f"to a sites file relative to {home} (or an absolute path)")
    if not data:
        problems.append("no hazard data folder: set SITESCREEN_DATA to the folder 'sitescreen "
                        "data fetch' filled (e.g. cache/data) or a mirror URL; for a "
                        "demonstration on SYNTHETIC data only, run 'sitescreen demo-data' and "
                        "set SITESCREEN_DATA=cache/demo-pack")
    elif not data.startswith(("http://", "https://")) and not _UNRESOLVED.search(data) \
            and not (home / data).is_dir():
        problems.append(f"data folder {home / data} does not exist; fetch the datasets "
                        "('sitescreen data fetch ...', they go to cache/data) or set "
                        "SITESCREEN_DATA to the folder you have; for a demonstration on "
                        "SYNTHETIC data only, 'sitescreen demo-data' writes cache/demo-pack")
    if problems:
        raise ConfigError("the deployment cannot work as configured:\n"
                          + "\n".join(f"  - {p}" for p in problems))


def screening_trigger(within_s: float = TRIGGER_WITHIN_S):
    """Start a screening when the watcher reports a change: at most one per source per
    ``within_s`` (a burst of events starts one run; keep it below the watcher's interval,
    so that the watcher's next event, one interval later, is not swallowed)."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name="screen-on-sites-changed",
        description="Re-screen when the watcher reports changed sites",
        expect={EVENT}, match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
        for_each={"prefect.resource.id"}, within=timedelta(seconds=within_s),
        parameters=dict(TRIGGER_PARAMETERS))


def concurrency():
    """One screening at a time; a run asked for while one is running is cancelled (the
    watcher asks again if the finished run did not screen the latest version)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1,
                                  collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def build_deployment(*, name: str = DEPLOYMENT_NAME, cron: str = DEFAULT_CRON,
                     timezone: str = DEFAULT_TIMEZONE, parameters: dict | None = None,
                     home: str | Path | None = None, check: bool = True,
                     within_s: float = TRIGGER_WITHIN_S):
    """The RunnerDeployment of the screening flow: cron schedule, trigger, concurrency 1."""
    from prefect.schedules import Cron

    parameters = parameters or default_parameters()
    if check:
        check_deployment(parameters, home=home)
    return screen_flow.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        triggers=[screening_trigger(within_s)],
        concurrency_limit=concurrency(),
        parameters=parameters,
        description="Weekly re-screening of the sites, and again whenever the watcher "
                    "reports changed sites; only new or moved sites are geocoded and sampled.",
        tags=["sitescreen", "screening"],
    )


def build_watch_deployment(*, name: str = WATCH_DEPLOYMENT_NAME, every_s: float | None = None,
                           parameters: dict | None = None, first: datetime | None = None):
    """The RunnerDeployment of the watcher, on an interval schedule whose runs fall on
    ``first`` plus whole intervals (default: Prefect's, counted from 2020-01-01)."""
    from prefect.schedules import Interval

    every = every_s or float(os.environ.get("SITESCREEN_WATCH_EVERY", DEFAULT_WATCH_EVERY_S))
    screening = default_parameters()
    parameters = parameters or {"sites": screening["sites"], "out": screening["out"]}
    return watch_flow.to_deployment(
        name=name, schedule=Interval(timedelta(seconds=every), anchor_date=first),
        parameters=parameters,
        concurrency_limit=concurrency(),
        description="Emits sitescreen.sites.changed when the sites differ from the last "
                    "screened version.", tags=["sitescreen", "watcher"])


def check_prefect_yaml(path: str | Path = "prefect.yaml") -> None:
    """The check of prefect.yaml's build step: each screening deployment's parameters with
    ``{{ $VAR }}`` taken from the environment, against ``$SITESCREEN_HOME``."""
    import yaml

    if not os.environ.get("SITESCREEN_HOME"):
        raise ConfigError("SITESCREEN_HOME is not set: the deployments' runs would start in "
                          "an empty working directory; run e.g. 'SITESCREEN_HOME=$PWD prefect "
                          "deploy --all' from the sitescreen folder")
    doc = yaml.safe_load(Path(path).read_text("utf-8"))

    def resolve(value):
        if isinstance(value, str):
            return re.sub(r"\{\{\s*\$(\w+)\s*\}\}",
                          lambda m: os.environ.get(m[1], m[0]), value)
        return value

    for dep in doc.get("deployments", []):
        if dep.get("entrypoint") == "flows/screen.py:screen_flow":
            params = {k: resolve(v) for k, v in (dep.get("parameters") or {}).items()}
            check_deployment(params, home=os.environ["SITESCREEN_HOME"])


def check_step(path: str = "prefect.yaml") -> dict:
    """prefect.yaml's build step (``flows.deploy.check_step``): refuse the deployments
    before they are created when their parameters cannot work."""
    check_prefect_yaml(path)
    return {}


def main(argv: list[str]) -> int:
    from prefect import serve

    try:
        if "--check" in argv:
            check_prefect_yaml()
            print("deployment parameters checked")
            return 0
        os.chdir(project_home())  # served runs start in this process's directory
        deployments = [build_deployment(), build_watch_deployment()]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(*deployments)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
