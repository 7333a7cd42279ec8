"""``sitescreen screen``, ``validate`` and ``demo-data``: each parses its options, calls one
library function and maps errors through :func:`~sitescreen.cli.options.exit_on_error`.

``screen`` runs :func:`sitescreen.pipeline.screen` in this process, or, with ``--prefect``
(or whenever ``PREFECT_API_URL`` is set), as the Prefect flow ``flows/screen.py`` that runs
the very same steps as tasks. Either way the terminal shows the same lines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated

import typer

from sitescreen.cli.options import (
    EXIT_INVALID,
    CatalogOpt,
    DataOpt,
    DemoOpt,
    OutOpt,
    SheetOpt,
    SitesArg,
    SitesQueryOpt,
    ThresholdsOpt,
    exit_on_error,
    sites_source,
)
from sitescreen.errors import ConfigError

__all__ = ["screen", "validate", "demo_data", "use_prefect"]


def validate(
    sites: SitesArg,
    sites_query: SitesQueryOpt = None,
    weight: Annotated[str | None, typer.Option(
        "--weight", help="Also check this column as weights (numbers >= 0).")] = None,
    sheet: SheetOpt = None,
    max_bytes: Annotated[int | None, typer.Option(
        "--max-bytes", help="Refuse sites files larger than this [default: 512 MiB].")] = None,
    geocode: Annotated[bool, typer.Option(
        "--geocode/--no-geocode", help="Run the offline geocoder on sites without "
                                       "coordinates and report what it cannot place.")] = True,
) -> None:
    """Check a sites source and report every problem at once; exit 2 on errors."""
    from sitescreen.errors import SiteValidationError
    from sitescreen.site_checks import write_problem_report
    from sitescreen.site_sources import is_table_source
    from sitescreen.sites import DEFAULT_MAX_BYTES, validate_sites

    with exit_on_error():
        source = sites_source(sites, sites_query)
        report = validate_sites(source, weight=weight, sheet=sheet, geocode=geocode,
                                max_bytes=max_bytes or DEFAULT_MAX_BYTES)
    shown = SiteValidationError.MAX_SHOWN * 10
    typer.echo(report.format(max_problems=shown))
    # The rest (and the counts per kind) to a file beside a sites file.
    if len(report.problems) > shown and not is_table_source(source):
        saved = write_problem_report(report, Path(source))
        if saved:
            typer.echo(f"  full report: {saved}")
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def demo_data(
    folder: Annotated[Path | None, typer.Argument(
        help="Folder to write the synthetic pack into [default: "
             "$SITESCREEN_HOME/cache/demo-pack].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite an existing pack.")] = False,
) -> None:
    """Write the SYNTHETIC demo hazard pack (upstream formats and names; not real data)."""
    from sitescreen.home import demo_pack_dir
    from sitescreen.synthetic import build_demo_pack, pack_is_current

    folder = folder or demo_pack_dir()
    with exit_on_error():
        if not force and pack_is_current(folder):
            typer.echo(f"demo pack in {folder} is up to date")
            return
        pack = build_demo_pack(folder, progress=lambda msg: typer.echo(f"  {msg}", err=True))
    typer.echo(f"wrote SYNTHETIC demo pack to {folder} ({pack['n_files']} files): "
               "for demonstrations and tests only, not hazard data")


def use_prefect(flag: bool | None) -> bool:
    """``--prefect``/``--no-prefect`` when given; else a flow run exactly when a Prefect
    server is configured (``PREFECT_API_URL``)."""
    return bool(os.environ.get("PREFECT_API_URL")) if flag is None else flag


def screen(
    ctx: typer.Context,
    sites: SitesArg,
    sites_query: SitesQueryOpt = None,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", "-s",
        help="optimistic | current_trend | pessimistic (repeatable; default all).")] = None,
    year: Annotated[list[int] | None, typer.Option(
        "--year", "-y", help="Target year (repeatable; default 2030 and 2050).")] = None,
    hazard: Annotated[list[str] | None, typer.Option(
        "--hazard", help="Hazard layer from the catalog (repeatable; default all).")] = None,
    out: OutOpt = Path("results"),
    data: DataOpt = None,
    demo: DemoOpt = False,
    fetch: Annotated[bool, typer.Option(
        "--fetch", help="Before any hazard work, fetch the data the run lacks: small datasets "
                        "whole, Aqueduct Floods only in windows around the sites (HTTP range "
                        "reads from upstream, or $SITESCREEN_MIRROR).")] = False,
    weight: Annotated[str | None, typer.Option(
        "--weight", help="Numeric site property for weighted shares (e.g. asset value).")] = None,
    catalog: CatalogOpt = None,
    thresholds: ThresholdsOpt = None,
    geocoder: Annotated[list[str] | None, typer.Option(
        "--geocoder", help="Geocoders in order: offline, nominatim, amap (default offline).")] = None,
    overrides: Annotated[Path | None, typer.Option(
        "--overrides", help="CSV site_id,lon,lat pinning sites' locations.")] = None,
    refresh_geocodes: Annotated[bool, typer.Option(
        "--refresh-geocodes", help="Ignore cached geocodes and ask the providers again.")] = False,
    no_report: Annotated[bool, typer.Option(
        "--no-report", help="Skip charts and the HTML/Markdown report (faster).")] = False,
    title: Annotated[str | None, typer.Option(
        "--title", help="Portfolio name the report is titled with [default: the sites "
                        "file's 'name', else its file name].")] = None,
    per_site_outputs: Annotated[str | None, typer.Option(
        "--per-site-outputs", help="Per-site files: auto (all up to --per-site-limit sites, "
                                   "else sites.parquet only), all, compressed (gzip CSV and "
                                   "GeoJSON), parquet or none [default: auto].")] = None,
    per_site_limit: Annotated[int | None, typer.Option(
        "--per-site-limit", help="Sites up to which --per-site-outputs auto writes every "
                                 "per-site file [default: 100,000].")] = None,
    dask: Annotated[str | None, typer.Option(
        "--dask", help="Run hazard tasks on a Dask cluster: its address (tcp://host:8786) or "
                       "'local' for a local cluster. As a flow it needs PREFECT_API_URL; "
                       "with --no-prefect, chunks of sites run as plain Dask tasks.")] = None,
    sheet: SheetOpt = None,
    prefect: Annotated[bool | None, typer.Option(
        "--prefect/--no-prefect",
        help="Run as a Prefect flow (a temporary server unless PREFECT_API_URL is set), or "
             "the library pipeline directly [default: a flow when PREFECT_API_URL is set]."
    )] = None,
) -> None:
    """Screen SITES for every hazard, scenario and year; write results and print the shares."""
    from sitescreen import pipeline
    from sitescreen.cli.progress import ScreenDisplay, sitescreen_log_handler

    verbose = bool((ctx.obj or {}).get("verbose")) if ctx is not None else False
    with exit_on_error(), sitescreen_log_handler(logging.DEBUG if verbose else logging.WARNING):
        request = pipeline.make_request(
            sites=sites_source(sites, sites_query), sheet=sheet, data=data, demo=demo, out=out,
            scenarios=scenario, years=year, hazards=hazard, weight=weight, catalog=catalog,
            thresholds=thresholds,
            geocoders=geocoder, overrides=overrides, refresh_geocodes=refresh_geocodes,
            report=not no_report, title=title, fetch=fetch, per_site_outputs=per_site_outputs,
            per_site_limit=per_site_limit)
        if fetch and demo:
            raise ConfigError("--fetch gets real data and cannot be combined with --demo "
                              "(the synthetic pack is built locally)")
        as_flow = prefect if prefect is not None else (use_prefect(None) or bool(dask))
        if dask and as_flow and not os.environ.get("PREFECT_API_URL"):
            raise ConfigError(
                "--dask needs PREFECT_API_URL (a running Prefect server, e.g. "
                "'prefect server start'); otherwise each Dask worker starts its own")
        # Bad input fails here, before anything slow (the demo pack, Prefect's start).
        pipeline.preflight(request)
        with ScreenDisplay() as display:
            if as_flow:
                summary = _run_flow(request, dask=dask, display=display, verbose=verbose)
            else:
                display.note("running the pipeline in this process (no PREFECT_API_URL; "
                             "--prefect for a flow run)")
                summary = pipeline.run_summary(pipeline.screen(request, progress=display,
                                                                 dask=dask))
    typer.echo(summary["table"])
    if summary.get("unresolved_lines"):
        typer.echo("\n" + "\n".join(summary["unresolved_lines"]))
    typer.echo(f"\nresults: {summary['run_dir']}")


#: Seconds the temporary Prefect server of ``--prefect`` may take to start on a busy machine.
SERVER_STARTUP_S = 120


def _run_flow(request, *, dask: str | None, display, verbose: bool) -> dict:
    """The request as a flow run: on ``PREFECT_API_URL``'s server, else on a temporary one
    started here (so that its failure to start is one clear error, not a traceback)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from sitescreen.cli.progress import quiet_prefect

    with quiet_prefect(verbose=verbose):
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.screen import run_screen

        url = PREFECT_API_URL.value()
        if url:
            _check_api(url)
            display.note(f"running as a Prefect flow on {url}")
            return run_screen(dask=dask, progress=display, **request.to_dict())
        display.note("running as a Prefect flow on a temporary server (set PREFECT_API_URL "
                     "to keep the runs)")
        server = _start_server(verbose=verbose)
        try:
            with temporary_settings({PREFECT_API_URL: server.api_url}):
                try:
                    return run_screen(dask=dask, progress=display, **request.to_dict())
                finally:
                    _drain_prefect_workers()
        finally:
            server.stop()


def _start_server(*, verbose: bool):
    """The temporary Prefect server, started and answering; it stops when this process
    ends, also by a signal it cannot catch (:mod:`sitescreen.cli.server`)."""
    from sitescreen.cli.server import TemporaryServer

    server = TemporaryServer()
    # The server process inherits the environment: its own log lines stay off the
    # terminal too (it logs to stderr, e.g. while being stopped).
    quiet = {} if verbose else {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
                                "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL"}
    try:
        with _environ(quiet):
            server.start(timeout=SERVER_STARTUP_S)
    except RuntimeError as exc:
        raise ConfigError(
            f"the temporary Prefect server did not start within {SERVER_STARTUP_S} s; "
            "run without --prefect (the same steps and outputs, no server), or start "
            "one ('prefect server start') and set PREFECT_API_URL") from exc
    return server


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _drain_prefect_workers() -> None:
    """Send the flow run's last logs and events before the temporary server stops (else
    Prefect prints "Error logging to API" for each one it could not send)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with suppress(Exception):  # a worker that never started, or a slow server
            worker.drain_all(timeout=30)


def _check_api(url: str) -> None:
    """A clear error when the configured Prefect API does not answer, before the flow."""
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"the Prefect API at {url} (PREFECT_API_URL) does not answer: {exc}; start it "
            "('prefect server start'), or unset PREFECT_API_URL to run without Prefect") \
            from exc
