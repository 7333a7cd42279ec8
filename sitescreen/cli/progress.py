"""What ``sitescreen screen`` shows while it works, on stderr, the same on every path.

:class:`ScreenDisplay` receives the run's :class:`~sitescreen.pipeline.Progress` events (from
:func:`sitescreen.pipeline.screen` directly, or relayed by the Prefect flow) and shows them
as a rich progress display on a terminal: one line per step (load, locate, the hazard layers
with layers done, the current layer and elapsed time, writing). When stderr is not a terminal
(a log file, CI, a test), it prints one plain line per finished step and layer instead.

:func:`quiet_prefect` keeps Prefect's own log lines (task states, the temporary server's
advertisement, shutdown noise) off the terminal during a flow run: they still reach the flow
run through Prefect's API handler; ``--verbose`` shows them too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sitescreen.pipeline import Progress

__all__ = ["ScreenDisplay", "quiet_prefect", "sitescreen_log_handler", "FLOW_PROGRESS"]

#: The display a flow run in this process shows its progress on: set by
#: ``flows.screen.run_screen`` (a callable cannot be a flow parameter: the server stores them).
FLOW_PROGRESS: ContextVar[Callable[[Progress], None] | None] = ContextVar(
    "sitescreen_flow_progress", default=None)

_STEP_TITLES = {"load": "read the sites", "locate": "locate the sites",
                "assess": "hazard layers", "write": "write the run folder"}


class ScreenDisplay:
    """A progress display for one screening; use as a context manager and as the callback.

    Parameters
    ----------
    live : a rich display (True), plain lines (False), or decided by whether stderr is a
        terminal (None).
    """

    def __init__(self, *, live: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> ScreenDisplay:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"),
                BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def note(self, text: str) -> None:
        """A line of its own (how the run is executed), above the display."""
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)
        else:
            typer.echo(text, err=True)

    def __call__(self, event: Progress) -> None:
        if self._progress is None:
            if not event.started:
                elapsed = f" ({event.elapsed:.1f} s)" if event.elapsed >= 0.05 else ""
                typer.echo(f"  {event}{elapsed}", err=True)
            return
        p = self._progress
        title = _STEP_TITLES.get(event.step, event.step)
        tid = self._tasks.get(event.step)
        if tid is None:
            tid = self._tasks[event.step] = p.add_task(title, total=event.total or 1)
        if event.started:
            p.update(tid, description=f"{title}: {event.message}", total=event.total or 1)
        elif event.total and event.done < event.total:  # a hazard layer is done
            p.update(tid, completed=event.done, total=event.total,
                     description=f"{title}: {event.message}")
        else:  # the step is done
            total = event.total or 1
            p.update(tid, completed=total, total=total, description=f"{title}: {event.message}")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (the live display redirects it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _StepFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


@contextmanager
def sitescreen_log_handler(level: int = logging.WARNING) -> Iterator[None]:
    """sitescreen's own warnings on stderr, whatever Prefect does to the root logger (its
    logging setup replaces the root handlers), so both paths print the same lines."""
    logger = logging.getLogger("sitescreen")
    handler = _CurrentStderr()
    handler.setFormatter(_StepFormatter())
    handler.setLevel(level)
    old = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


@contextmanager
def quiet_prefect(*, verbose: bool) -> Iterator[None]:
    """Prefect's console handlers silent (unless ``verbose``) for the duration of a flow run.

    Prefect logs task states, failures with tracebacks and the temporary server's start to
    the terminal handlers of the root and ``prefect`` loggers; the flow run keeps all of them
    through the API handler. sitescreen's own messages use :func:`sitescreen_log_handler`.
    """
    import prefect  # noqa: F401 - sets up Prefect's logging, which is then adjusted
    from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

    if verbose:
        yield
        return
    # Prefect may configure its logging again during a run, with new console handlers: they
    # are silenced at the class, the handlers present now by their level.
    emit = PrefectConsoleHandler.emit
    PrefectConsoleHandler.emit = lambda self, record: None  # type: ignore[method-assign]
    names = ["", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.server",
             "prefect._internal", "prefect.extra", "uvicorn", "fastapi", "asyncio"]
    changed = []
    for name in names:
        for h in logging.getLogger(name).handlers:
            if not isinstance(h, APILogHandler):  # terminal handlers; the flow run keeps all
                changed.append((h, h.level))
                h.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        PrefectConsoleHandler.emit = emit  # type: ignore[method-assign]
        for h, level in changed:
            h.setLevel(level)
