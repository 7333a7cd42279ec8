"""What every ``sitescreen`` command shares: exit codes, the one error mapper, common options.

As in ``rasterio/rio/options.py``: options are defined once here and imported by the
commands, so ``--catalog`` or ``--out`` mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from sitescreen.errors import SitescreenError

__all__ = ["EXIT_OK", "EXIT_MISMATCH", "EXIT_INVALID", "EXIT_INTERRUPTED", "exit_on_error",
           "echo_error", "SitesArg", "SitesQueryOpt", "sites_source", "SheetOpt", "CatalogOpt",
           "ThresholdsOpt", "OutOpt", "DataOpt",
           "DemoOpt"]

EXIT_OK = 0
#: ``data verify``: a cached file does not match its record.
EXIT_MISMATCH = 1
#: Bad input, bad data, a failed download: one ``error:`` message, nothing half-written.
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def echo_error(exc: SitescreenError) -> None:
    """The one way an error reaches the terminal: ``error: <message>`` on stderr."""
    typer.echo(f"error: {exc}", err=True)


@contextmanager
def exit_on_error(*, interrupted: str = "interrupted; nothing of this run was kept") -> Iterator[None]:
    """:class:`SitescreenError` -> its message and exit 2; Ctrl-C -> ``interrupted`` and 130.

    No traceback reaches the user for an error sitescreen raised on purpose.
    """
    try:
        yield
    except SitescreenError as exc:
        echo_error(exc)
        raise typer.Exit(EXIT_INVALID) from None
    except KeyboardInterrupt:
        typer.echo(interrupted, err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


SitesArg = Annotated[str, typer.Argument(help=(
    "Sites source: a CSV, Excel .xlsx or GeoJSON file (also .csv.gz, .geojson.gz), a "
    "GeoPackage layer (sites.gpkg:layer) or a PostGIS table (postgresql://user@host/db?table=sites; password from PGPASSWORD)."))]
SitesQueryOpt = Annotated[str | None, typer.Option(
    "--sites-query", help="SQL query giving the sites, with a postgresql:// URL as the "
                          "sites source.")]


def sites_source(sites: str, query: str | None = None) -> str:
    """The sites source as the library takes it: ``--sites-query`` folded into the URL, and
    a password in the URL moved to ``PGPASSWORD`` of this process (libpq reads it there), so
    that neither Prefect's run parameters nor any output ever hold it."""
    import os

    from sitescreen.site_sources import split_password, with_query

    if query is not None:
        sites = with_query(sites, query)
    sites, password = split_password(sites)
    if password is not None:
        os.environ["PGPASSWORD"] = password
    return sites


SheetOpt = Annotated[str | None, typer.Option(
    "--sheet", help="Sheet of an Excel workbook [default: the first].")]
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="User catalog TOML.")]
ThresholdsOpt = Annotated[Path | None, typer.Option(
    "--thresholds", help="User threshold sets TOML.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Results folder.")]
# Text, not a Path: a mirror URL must reach the request as given (a Path folds the
# "//" of "http://host" into "http:/host").
DataOpt = Annotated[str | None, typer.Option(
    "--data", help="Hazard data folder (or mirror URL) laid out as upstream "
                   "[default: $SITESCREEN_DATA, else $SITESCREEN_HOME/cache/data].")]
DemoOpt = Annotated[bool, typer.Option(
    "--demo", help="Use the SYNTHETIC demo pack (built in $SITESCREEN_HOME/cache/demo-pack "
                   "if missing).")]
