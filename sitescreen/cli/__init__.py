"""The ``sitescreen`` command line: a thin layer over the library.

``screen``, ``validate`` and ``demo-data`` live in :mod:`sitescreen.cli.screen`, the ``data``
commands in :mod:`sitescreen.cli.data`, and what they share (exit codes, the one error
mapper, common options) in :mod:`sitescreen.cli.options`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from sitescreen import __version__
from sitescreen.cli import screen as screen_commands
from sitescreen.cli.data import data_app

__all__ = ["app", "main"]

app = typer.Typer(name="sitescreen", no_args_is_help=True, add_completion=False,
                  help="Physical climate risk screening of operating sites.")


#: Exit status after SIGTERM (128 + signal number, as a shell reports it).
EXIT_TERMINATED = 128 + 15


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so ``finally``/``except BaseException`` blocks run and a
    run's temporary folders are removed; the default action would end the process at once."""
    import signal
    import threading

    def stop(signum, frame):  # noqa: ARG001 - the signal handler signature
        raise SystemExit(EXIT_TERMINATED)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


@app.callback()
def _main(ctx: typer.Context, verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Debug logging, and Prefect's own logs on the terminal.")] = False
          ) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    exit_on_sigterm()
    ctx.ensure_object(dict)["verbose"] = verbose


@app.command()
def version() -> None:
    """Print the sitescreen version."""
    typer.echo(__version__)


app.command()(screen_commands.validate)
app.command("demo-data")(screen_commands.demo_data)
app.command()(screen_commands.screen)
app.add_typer(data_app, name="data", help="List, fetch, verify and describe hazard datasets.")


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``sitescreen``)."""
    app(args=argv, prog_name="sitescreen")
