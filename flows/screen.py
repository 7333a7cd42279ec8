"""The screening flow: :func:`sitescreen.pipeline.screen` with its steps run as Prefect tasks.

The flow runs the library's one sequence of steps; it adds only what Prefect adds: the hazard
layers mapped as parallel tasks (on a Dask cluster with ``--dask``), retries of transient
errors, the layer tasks' cache keys, the AMap key from a Secret block, and artifacts.
Without Prefect the same steps run through ``sitescreen screen`` (the default when no
``PREFECT_API_URL`` is set).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed, wait

from flows.operations import one_line_failure, publish_changes, sites_password
from sitescreen import pipeline
from sitescreen.cli import progress as terminal_progress
from sitescreen.errors import is_transient
from sitescreen.outputs.report import headline_markdown
from sitescreen.outputs.run_folder import REPORT_HTML, new_run_id
from sitescreen.outputs.summary import share_records
from sitescreen.site_sources import source_label

AMAP_SECRET_BLOCK = "sitescreen-amap-key"


def retry_transient(task, task_run, state) -> bool:
    """Retry condition of the tasks: only errors that may not recur (:func:`is_transient`)."""
    try:
        state.result()
    except Exception as exc:  # the task's own error, re-raised by result()
        return is_transient(exc)
    return False


_RETRY = {"retries": 2, "retry_delay_seconds": [2, 10], "retry_condition_fn": retry_transient}


def geocoder_options(request: pipeline.ScreeningRequest) -> dict:
    """The AMap key from a Prefect Secret block when the environment does not give one.

    The key is handed to the provider only; it is never logged or written to outputs."""
    if "amap" not in request.geocoders or os.environ.get("SITESCREEN_AMAP_KEY"):
        return {}
    from prefect.blocks.system import Secret

    try:
        key = Secret.load(AMAP_SECRET_BLOCK).get()
    except ValueError:
        return {}  # no block: the provider reports the missing key itself
    return {"amap": {"key": key}}


def _load_sites(request: pipeline.ScreeningRequest):
    return pipeline.load_sites(request, password=sites_password(request.sites))


def _locate_sites(sites, request: pipeline.ScreeningRequest):
    return pipeline.locate_sites(sites, request, geocoder_options=geocoder_options(request))


def _layer_cache_key(context, parameters) -> str:
    """Explicit cache key: the layer's fingerprint (hazard entry, threshold set, dataset
    versions, data folder stamp, sitescreen version) plus the sampled locations."""
    cached = parameters["cached"]
    idx = cached.missing
    locations = pipeline.location_digest(parameters["lon"][idx], parameters["lat"][idx])
    return f"sitescreen-{cached.fingerprint}-{locations}"


#: The library's steps as tasks. Only fetching and geocoding touch the network, so only they
#: (and writing, for a busy file system) retry; the layer tasks are cached by explicit key.
TASKS: dict[Callable, Any] = {
    pipeline.prepare_data: task(pipeline.prepare_data, name="prepare-data",
                                cache_policy=NO_CACHE, **_RETRY),
    pipeline.fetch_data: task(pipeline.fetch_data, name="fetch-data", cache_policy=NO_CACHE,
                              **_RETRY),
    pipeline.load_sites: task(_load_sites, name="load-sites", cache_policy=NO_CACHE),
    pipeline.locate_sites: task(_locate_sites, name="locate-sites", cache_policy=NO_CACHE,
                                **_RETRY),
    pipeline.check_layer: task(pipeline.check_layer, name="check-result-store",
                               task_run_name="check-{layer.hazard}-{layer.scenario}-{layer.year}",
                               cache_policy=NO_CACHE),
    pipeline.assess_missing: task(pipeline.assess_missing, name="assess-layer",
                                  task_run_name="assess-{layer.hazard}-{layer.scenario}-"
                                                "{layer.year}",
                                  cache_key_fn=_layer_cache_key, persist_result=True,
                                  cache_expiration=timedelta(days=30), **_RETRY),
    pipeline.summarise: task(pipeline.summarise, name="summarise", cache_policy=NO_CACHE),
    pipeline.write_outputs: task(pipeline.write_outputs, name="write-outputs",
                                 cache_policy=NO_CACHE, **_RETRY),
}


class PrefectRunner:
    """Runs the pipeline's steps as the tasks in :data:`TASKS`; mapped steps run in parallel
    on the flow's task runner."""

    def call(self, step: Callable, /, *args: Any, **kwargs: Any) -> Any:
        return TASKS[step](*args, **kwargs)

    def map(self, step: Callable, /, *iterables: Iterable,
            on_result: Callable[[int, Any], None] | None = None, **constants: Any) -> list:
        lists = [list(items) for items in iterables]
        if not lists or not lists[0]:
            return []
        futures = TASKS[step].map(*lists, **{k: unmapped(v) for k, v in constants.items()})
        index = {id(f): i for i, f in enumerate(futures)}
        out: list = [None] * len(futures)
        try:
            for f in as_completed(list(futures)):
                i = index[id(f)]
                out[i] = f.result()
                if on_result is not None:
                    on_result(i, out[i])
        except Exception:
            # A failure ends the run: let the other tasks settle first, so that nothing of
            # this run still runs (or logs) once the error reaches the caller, and raise the
            # error of the first failed item, as the plain runner (in order) would.
            wait(list(futures))
            for f in futures:
                f.result()
            raise
        return out


def publish_artifacts(run: pipeline.ScreeningRun) -> None:
    """The headline table and sentences (readable away from the server), the shares table
    with its headline columns first, and a link to the report file."""
    origin = run.manifest["data_origin"]
    create_table_artifact(key="risk-shares", table=share_records(run.shares),
                          description=f"Share of sites per risk level (data origin: {origin})")
    report = run.run_dir / REPORT_HTML if run.run_dir is not None else None
    uri = report.resolve().as_uri() if report is not None and report.is_file() else ""
    create_markdown_artifact(
        key="screening-summary",
        markdown=headline_markdown(run.shares, run.manifest, run_dir=str(run.run_dir or ""),
                                   report_uri=uri),
        description="Headline table and sentences of the run")
    if uri:
        create_link_artifact(key="screening-report", link=uri, link_text="HTML report",
                             description=f"Report of run {run.run_dir} (on the server that ran it)")


def _flow_run_name() -> str:
    """``<sites source> <run id>``, so runs can be told apart in the UI (a database source
    by ``db.table``: a URL, and any password in it, never reaches the name)."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"{source_label(str(params.get('sites', 'sites')))} {_run_id(params.get('run_id'))}"


def _run_id(given: str | None) -> str:
    """The run id: the one given, else one made from this flow run's scheduled start and id
    (the same each time it is asked for within one flow run, so the run name and the run
    folder agree)."""
    if given:
        return given
    from prefect.runtime import flow_run

    start = flow_run.scheduled_start_time
    start = start.astimezone(UTC) if isinstance(start, datetime) else None
    return new_run_id(start, salt=str(flow_run.id or ""))


@flow(name="screen-sites", flow_run_name=_flow_run_name, log_prints=True)
@one_line_failure
def screen_flow(
    sites: str = "sites.geojson",
    data: str | None = None,
    demo: bool = False,
    out: str | None = None,
    scenarios: list[str] | None = None,
    years: list[int] | None = None,
    hazards: list[str] | None = None,
    weight: str | None = None,
    catalog: str | None = None,
    thresholds: str | None = None,
    geocoders: list[str] | None = None,
    overrides: str | None = None,
    refresh_geocodes: bool = False,
    cache_dir: str | None = None,
    run_id: str | None = None,
    report: bool = True,
    title: str | None = None,
    fetch: bool = False,
    per_site_outputs: str | None = None,
    per_site_limit: int | None = None,
    sheet: str | None = None,
) -> dict:
    """Screen a sites file for every hazard x scenario x year and write a run folder.

    Every parameter left out takes the default of
    :class:`sitescreen.pipeline.ScreeningRequest` (real data in ``$SITESCREEN_DATA`` or
    ``cache/data``; the synthetic demo pack only with ``demo=True``).
    """
    request = pipeline.make_request(
        sites=sites, data=data, demo=demo, out=out, scenarios=scenarios, years=years,
        hazards=hazards, weight=weight, catalog=catalog, thresholds=thresholds,
        geocoders=geocoders, overrides=overrides, refresh_geocodes=refresh_geocodes,
        cache_dir=cache_dir, run_id=_run_id(run_id), report=report, title=title,
        fetch=fetch, per_site_outputs=per_site_outputs, per_site_limit=per_site_limit,
        sheet=sheet)
    logger = get_run_logger()
    # Read through the module: the flow function is pickled for Dask workers, and a
    # ContextVar cannot be.
    terminal = terminal_progress.FLOW_PROGRESS.get()

    def progress(event: pipeline.Progress) -> None:
        logger.info("%s", event)  # to the flow run (and the terminal only with --verbose)
        if terminal is not None:
            terminal(event)

    run = pipeline.screen(request, runner=PrefectRunner(), progress=progress)
    publish_artifacts(run)
    if run.run_dir is not None:
        publish_changes(str(run.run_dir), run.sampled)
    return pipeline.run_summary(run)


def dask_task_runner(address: str):
    """A DaskTaskRunner on an existing cluster (``tcp://host:8786``) or, for ``"local"``, a
    LocalCluster of one single-threaded worker per core. Workers report task runs to the
    same Prefect API as the flow, so ``PREFECT_API_URL`` must be set (otherwise every
    worker would start a temporary server of its own)."""
    from prefect_dask import DaskTaskRunner

    if address == "local":
        workers = max(1, min(4, os.cpu_count() or 1))
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "processes": True})
    return DaskTaskRunner(address=address)


def run_screen(*, dask: str | None = None,
               progress: Callable[[pipeline.Progress], None] | None = None,
               **parameters) -> dict:
    """Run :func:`screen_flow`, on a Dask cluster when ``dask`` is given; ``progress``
    receives the run's :class:`~sitescreen.pipeline.Progress` events as they happen."""
    token = terminal_progress.FLOW_PROGRESS.set(progress)
    try:
        if dask:
            return screen_flow.with_options(task_runner=dask_task_runner(dask))(**parameters)
        return screen_flow(**parameters)
    finally:
        terminal_progress.FLOW_PROGRESS.reset(token)
