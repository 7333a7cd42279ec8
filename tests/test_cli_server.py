"""The CLI's temporary Prefect server dies with the process that started it.

A real server: a child process starts it as ``sitescreen screen --prefect`` does
(``_start_server``), checks that it answers, and is then killed with SIGKILL, which it
cannot catch (no ``atexit``, no ``finally``); the server must go too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sitescreen.cli import server as server_module

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from sitescreen.cli.screen import _start_server
server = _start_server(verbose=False)
print(server.server_process.pid, server.api_url, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Is process ``pid`` running (a zombie nobody has reaped yet counts as gone)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_temporary_server_dies_with_a_killed_cli_process(tmp_path):
    # A new database, not migrated (the health check needs no tables): the server starts in
    # a few seconds, by the very code path of the CLI.
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
           "PREFECT_API_BLOCKS_REGISTER_ON_START": "false"}
    env.pop("PREFECT_API_URL", None)
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # the server answered its health check
        assert line, f"the child exited with {child.wait()} before its server started"
        pid_text, api_url = line.split()
        pid = int(pid_text)
        assert httpx.get(f"{api_url}/health", timeout=10).status_code == 200
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + server_module.PARENT_POLL_S + server_module.GRACE_S + 3
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        gone = not _alive(pid)
        if not gone:
            os.kill(pid, signal.SIGKILL)
        assert gone, "the temporary server outlived the process that started it"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

