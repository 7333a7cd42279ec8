"""The ``sitescreen`` command line: each command parses options, calls one library function,
and maps :class:`SitescreenError` to exit code 2 with a one-line message (no traceback)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from sitescreen import __version__
from sitescreen.errors import SitescreenError

app = typer.Typer(name="sitescreen", no_args_is_help=True, add_completion=False,
                  help="Physical climate risk screening of operating sites.")

EXIT_INVALID = 2
DEMO_PACK = Path("cache/demo-pack")
DEFAULT_DATA = Path("cache/data")  # where 'sitescreen data fetch' puts datasets


def _fail(exc: SitescreenError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def version() -> None:
    """Print the sitescreen version."""
    typer.echo(__version__)


@app.command()
def validate(sites: Annotated[Path, typer.Argument(help="Sites file (GeoJSON or CSV).")]) -> None:
    """Check a sites file and report every problem at once; exit 2 on errors."""
    from sitescreen.sites import validate_sites

    try:
        report = validate_sites(sites)
    except SitescreenError as exc:
        _fail(exc)
    typer.echo(report.format())
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


@app.command("demo-data")
def demo_data(
    folder: Annotated[Path, typer.Argument(help="Folder to write the synthetic pack into.")] = DEMO_PACK,
    force: Annotated[bool, typer.Option("--force", help="Rewrite an existing pack.")] = False,
) -> None:
    """Write the SYNTHETIC demo hazard pack (upstream formats and names; not real data)."""
    from sitescreen.synthetic import build_demo_pack, pack_is_current

    try:
        if not force and pack_is_current(folder):
            typer.echo(f"demo pack in {folder} is up to date")
            return
        pack = build_demo_pack(folder, progress=lambda msg: typer.echo(f"  {msg}", err=True))
    except SitescreenError as exc:
        _fail(exc)
    typer.echo(f"wrote SYNTHETIC demo pack to {folder} ({pack['n_files']} files): "
               "for demonstrations and tests only, not hazard data")


@app.command()
def screen(
    sites: Annotated[Path, typer.Argument(help="Sites file (GeoJSON or CSV).")],
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", "-s", help="optimistic | current_trend | pessimistic (repeatable; default all).")] = None,
    year: Annotated[list[int] | None, typer.Option(
        "--year", "-y", help="Target year (repeatable; default 2030 and 2050).")] = None,
    hazard: Annotated[list[str] | None, typer.Option(
        "--hazard", help="Hazard layer from the catalog (repeatable; default all).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path("results"),
    data: Annotated[Path | None, typer.Option(
        "--data", help="Hazard data folder (or mirror URL) laid out as upstream "
                       "[default: $SITESCREEN_DATA, else cache/data].")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Use the SYNTHETIC demo pack (built in cache/demo-pack if missing).")] = False,
    weight: Annotated[str | None, typer.Option(
        "--weight", help="Numeric site property for weighted shares (e.g. asset value).")] = None,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="User catalog TOML.")] = None,
    thresholds: Annotated[Path | None, typer.Option("--thresholds", help="User threshold sets TOML.")] = None,
    geocoder: Annotated[list[str] | None, typer.Option(
        "--geocoder", help="Geocoders in order: offline, nominatim, amap (default offline).")] = None,
    overrides: Annotated[Path | None, typer.Option(
        "--overrides", help="CSV site_id,lon,lat pinning sites' locations.")] = None,
    refresh_geocodes: Annotated[bool, typer.Option(
        "--refresh-geocodes", help="Ignore cached geocodes and ask the providers again.")] = False,
    no_report: Annotated[bool, typer.Option(
        "--no-report", help="Skip charts and the HTML/Markdown report (faster).")] = False,
    dask: Annotated[str | None, typer.Option(
        "--dask", help="Run hazard tasks on a Dask cluster: its address (tcp://host:8786) or "
                       "'local' for a local cluster. Needs PREFECT_API_URL set.")] = None,
    no_prefect: Annotated[bool, typer.Option(
        "--no-prefect", help="Run the library pipeline directly, without Prefect.")] = False,
) -> None:
    """Screen SITES for every hazard, scenario and year; write results and print the shares."""
    from sitescreen.data.sources import DataSource

    try:
        data = _data_folder(data, demo=demo)
        kwargs = dict(
            sites=str(sites), data=str(data), out=str(out), scenarios=scenario or None,
            years=year or None, hazards=hazard or None, weight=weight,
            catalog=str(catalog) if catalog else None,
            thresholds=str(thresholds) if thresholds else None,
            geocoders=geocoder or None, overrides=str(overrides) if overrides else None,
            refresh_geocodes=refresh_geocodes, report=not no_report)
        # Validate sites and plan before anything slow (demo pack, Prefect's start), so bad
        # input fails fast and nothing is written.
        from sitescreen import pipeline

        request = pipeline.make_request(**kwargs)
        pipeline.plan_layers(pipeline.catalog_for(request), request)
        pipeline.load_sites(request.sites)
        if demo:
            from sitescreen.synthetic import build_demo_pack, pack_is_current

            if not pack_is_current(data):
                typer.echo(f"building the synthetic demo pack in {data} ...", err=True)
                build_demo_pack(data)
        DataSource.open(data)  # a missing folder fails here, before Prefect starts
        if no_prefect:
            run = pipeline.screen(request, progress=lambda m: typer.echo(f"  {m}", err=True))
            from sitescreen.outputs.summary import HEADLINE_HAZARDS, format_shares_table

            table = format_shares_table(run.shares, hazards=HEADLINE_HAZARDS,
                                        data_origin=run.manifest["data_origin"])
            run_dir = str(run.run_dir)
        else:
            os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            if dask and not os.environ.get("PREFECT_API_URL"):
                raise SitescreenError(
                    "--dask needs PREFECT_API_URL (a running Prefect server, e.g. "
                    "'prefect server start'); otherwise each Dask worker starts its own")
            from flows.screen import run_screen

            result = run_screen(dask=dask, **kwargs)
            table, run_dir = result["table"], result["run_dir"]
    except SitescreenError as exc:
        _fail(exc)
    typer.echo(table)
    typer.echo(f"\nresults: {run_dir}")


def _data_folder(data: Path | None, *, demo: bool) -> Path:
    """--data, else the demo pack with --demo, else $SITESCREEN_DATA, else cache/data."""
    if data is not None:
        return data
    if demo:
        return DEMO_PACK
    if os.environ.get("SITESCREEN_DATA"):
        return Path(os.environ["SITESCREEN_DATA"])
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    raise SitescreenError(
        "no hazard data given: pass --data FOLDER (see 'sitescreen data fetch') "
        "or --demo for the synthetic demo pack")


def _mount_data_app() -> None:
    try:
        from sitescreen.cli.data import data_app
    except ImportError:  # the data commands are optional while being built
        return
    app.add_typer(data_app, name="data", help="List, fetch, verify and describe hazard datasets.")


_mount_data_app()


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``sitescreen``)."""
    app(args=argv, prog_name="sitescreen")

