"""A scheduled deployment of the screening flow.

Serve it from this machine (keeps running, executes the scheduled runs)::

    PREFECT_API_URL=http://127.0.0.1:4200/api python flows/deploy.py

or register it for a worker with ``prefect deploy --name weekly-screen`` (see prefect.yaml).
"""

from __future__ import annotations

import os

from flows.screen import screen_flow

DEPLOYMENT_NAME = "weekly-screen"
#: Mondays 06:00 in the time zone below: a weekly re-screen before the working week starts.
DEFAULT_CRON = "0 6 * * 1"
DEFAULT_TIMEZONE = "Asia/Shanghai"


def default_parameters() -> dict:
    """Parameters of the scheduled run, overridable through the environment."""
    return {
        "sites": os.environ.get("SITESCREEN_SITES", "sites.geojson"),
        # No data parameter: the flow's request default ($SITESCREEN_DATA, else cache/data).
        "out": os.environ.get("SITESCREEN_OUT", "results"),
        "scenarios": ["optimistic", "current_trend", "pessimistic"],
        "years": [2030, 2050],
    }


def build_deployment(*, name: str = DEPLOYMENT_NAME, cron: str = DEFAULT_CRON,
                     timezone: str = DEFAULT_TIMEZONE, parameters: dict | None = None):
    """The RunnerDeployment of the screening flow with its cron schedule."""
    from prefect.schedules import Cron

    return screen_flow.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters=parameters or default_parameters(),
        description="Weekly re-screening of the sites file; only new or moved sites are "
                    "geocoded and sampled again.",
        tags=["sitescreen", "screening"],
    )


if __name__ == "__main__":
    from prefect import serve

    serve(build_deployment())
