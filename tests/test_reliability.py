"""Every row of the reliability table (tests/reliability_cases.py), run the same way.

Each case runs ``sitescreen`` as a user would (the plain path, ``--no-prefect``): in this
process through typer's CliRunner, or in a subprocess when the case is a fault of the process
itself (a full disk through RLIMIT_FSIZE, SIGTERM or Ctrl-C while the outputs are written).
The assertions are the table's columns: exit code, message fragment, nothing written (no
file in the output folder or the download cache, no ``.tmp-*`` folder) unless the run may
write, and no traceback.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_cases import CASES, Case, World
from small_pack import small_pack
from typer.testing import CliRunner

from sitescreen.cli import app

KINDS = ("sites", "data", "provenance", "fault")


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return small_pack(tmp_path_factory)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()} \
        if folder.exists() else set()


def _full_disk() -> None:  # inherited through exec: every write past 32 KiB fails (EFBIG)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.RLIM_INFINITY))


def _ctrl_c_as_at_a_terminal() -> None:
    # A command started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler; a user's Ctrl-C is not ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _in_subprocess(case: Case, args: list[str], w: World) -> tuple[int, str]:
    # SITESCREEN_HOME=w.tmp: the run's cache/ is w.tmp/cache, as the cases expect.
    proc = subprocess.Popen([sys.executable, "-m", "sitescreen.cli", *args], cwd=w.tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SITESCREEN_HOME": str(w.tmp)},
                            preexec_fn=_full_disk if case.fault == "full-disk"
                            else _ctrl_c_as_at_a_terminal)
    if case.fault in ("SIGTERM", "SIGINT"):
        start = time.monotonic()
        while not list(w.out.glob(".tmp-*")):  # the outputs are being written
            assert proc.poll() is None, "the run ended before the signal: " + proc.stderr.read()
            assert time.monotonic() - start < 300, "no .tmp-* folder within 300 s"
            time.sleep(0.002)
        proc.send_signal(getattr(signal, case.fault))
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout + stderr


def test_the_table_covers_every_kind_and_ids_are_unique():
    assert {c.kind for c in CASES} == set(KINDS)
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reliability_case(case: Case, tmp_path, pack, httpserver, monkeypatch):
    (tmp_path / "empty").mkdir()
    w = World(tmp_path, pack, httpserver)
    args = case.build(w)
    before = _files(w.out)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SITESCREEN_HOME", str(tmp_path))  # the cache folder lands in tmp_path

    if case.fault:
        code, output = _in_subprocess(case, args, w)
    else:
        result = CliRunner().invoke(app, args)
        code, output = result.exit_code, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), output

    assert code == case.exit_code, output[-3000:]
    assert case.fragment in output, output[-3000:]
    assert "Traceback" not in output
    if case.max_lines is not None:
        assert len(output.splitlines()) <= case.max_lines
    assert not list(w.out.glob(".tmp-*")) and not list(w.out.glob(".latest-*"))
    if case.kind == "sites":  # refused before the work: not even a cache folder
        assert not (tmp_path / "cache").exists()
    written = _files(w.out) - before
    if case.writes:
        assert "latest/manifest.json" in {f.replace(f.split("/")[0], "latest", 1)
                                          for f in written}, written
    else:
        assert written == set(), written
