"""The temporary Prefect server of ``sitescreen screen --prefect``, which dies with its parent.

Prefect's :class:`~prefect.server.api.server.SubprocessASGIServer` runs uvicorn in a child
process and stops it from ``atexit`` or its ``stop()``. A CLI process killed by a signal it
cannot catch (SIGKILL, the kernel's OOM killer, a segmentation fault in GDAL) runs neither,
and the orphaned server went on serving until someone killed it.

:class:`TemporaryServer` starts the same uvicorn command (same app, options and environment)
under this module's :func:`main`, which watches its parent from a daemon thread: once its
parent process is gone (``os.getppid()`` changes: the orphan was re-parented to init or a
sub-reaper), it stops the server as ``stop()`` would (SIGTERM: uvicorn's graceful shutdown)
and exits outright after :data:`GRACE_S` if that hangs. Polling ``getppid`` works alike on
Linux and macOS; Linux's ``PR_SET_PDEATHSIG`` was not used, because it fires when the parent
*thread* that started the child ends, not the parent process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings

__all__ = ["TemporaryServer", "main"]

#: Seconds between two looks at the parent process.
PARENT_POLL_S = 0.2
#: Seconds the server may take to shut down gracefully once its parent is gone.
GRACE_S = 5.0
_MODULE = "sitescreen.cli.server"  # run as ``python -m``, where __name__ is "__main__"


class TemporaryServer(SubprocessASGIServer):
    """Prefect's temporary server, its uvicorn run under :func:`main` so that it dies with
    this process."""

    #: Instances by port of this class only: Prefect's class keeps one per port and would
    #: hand back (and then stop) another temporary server of the process, e.g. a test's.
    _instances: dict[int | None, SubprocessASGIServer] = {}

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # The command and environment of SubprocessASGIServer._run_uvicorn_command (prefect
        # 3.x, pinned), with ``-m uvicorn`` run through this module's watchdog.
        server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                      "PREFECT__SERVER_FINAL": "1"}
        return subprocess.Popen(
            args=[sys.executable, "-m", _MODULE, str(os.getpid()),
                  "--app-dir", str(prefect.__module_path__.parent),
                  "--factory", "prefect.server.api.server:create_app",
                  "--host", "127.0.0.1", "--port", str(self.port),
                  "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, **server_env,
                 **get_current_settings().to_environment_variables(exclude_unset=True)})


def _stop_with(parent: int) -> None:
    """Stop this process soon after process ``parent`` is gone (see the module docstring)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="sitescreen-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """``python -m sitescreen.cli.server PARENT_PID UVICORN_ARGS...``: uvicorn, stopped when
    process ``PARENT_PID`` is gone (already gone: at once)."""
    argv = sys.argv[1:] if argv is None else argv
    _stop_with(int(argv[0]))
    from uvicorn import main as uvicorn_main

    uvicorn_main(args=argv[1:], prog_name="uvicorn")


if __name__ == "__main__":
    main()
