"""Atomic writes: a file or a folder appears complete under its final name, or not at all.

Every writer of sitescreen (run folders, the GeoPackage, fetched datasets and their records,
the demo pack, caches) goes through these helpers, so that an interrupted write never leaves
a half-written file under a real name, and every file gets the permissions the user's umask
asks for (``tempfile`` creates 0600 files and 0700 folders, which would make a scheduled run's
outputs unreadable from other accounts on a shared server).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["UNUSED_DAYS", "atomic_write", "atomic_folder", "mark_used", "remove_unused",
           "replace_path", "umask_mode", "write_content"]

Content = bytes | Callable[[Path], None]


def umask_mode(*, directory: bool = False) -> int:
    """The mode a new file (0o666) or folder (0o777) gets under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def write_content(target: Path, content: Content) -> None:
    """Write bytes (flushed to disk) or call the writer with ``target``; not atomic by itself."""
    if isinstance(content, bytes | bytearray | memoryview):
        with open(target, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
    else:
        content(target)


def atomic_write(path: str | Path, content: Content) -> Path:
    """Write ``content`` (bytes, or a writer called with a temporary path) to ``path``.

    The data goes to a temporary name in the same folder, which is renamed over ``path``
    once complete; on any error the temporary file is removed and ``path`` is untouched.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(p, b"hello").read_bytes()
    b'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if not isinstance(content, bytes | bytearray | memoryview):
            tmp.unlink()  # writers such as GDAL want to create the file themselves
        write_content(tmp, content)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_folder(path: str | Path, *, prefix: str = ".tmp-") -> Iterator[Path]:
    """A temporary folder beside ``path``; on success it replaces ``path`` whole.

    On an error (or Ctrl-C) the temporary folder is removed and ``path`` keeps its old
    content. The temporary folder gets umask-respecting permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with _signals_held():  # Ctrl-C or SIGTERM cannot land between mkdir and assignment
            tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{path.name}-", dir=path.parent))
        os.chmod(tmp, umask_mode(directory=True))
        yield tmp
        replace_path(tmp, path)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (main thread only) until the block ends; a signal arriving
    meanwhile is delivered right after, where the caller can clean up."""
    import signal
    import threading

    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` over ``dst`` (a file, or a folder such as a .gdb or a data pack), so that
    ``dst`` is always either the old or the new content, never a mix."""
    if dst.is_dir() and not dst.is_symlink():
        trash = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


# --- kept caches shared by versions ----------------------------------------------------------

#: A kept cache file (the gazetteer, parsed tables and basin polygons) that no process has
#: read for this many days may be deleted by the cleanup of another version's file: one still
#: read (by another checkout or environment sharing the cache folder) never is.
UNUSED_DAYS = 30
_DAY_S = 86400.0


def mark_used(path: Path, st: os.stat_result | None = None) -> None:
    """Stamp a kept cache file as read now (its modification time), at most once a day;
    ``st``: its stat, when the caller has it. A read-only cache is still read."""
    now = time.time()
    with suppress(OSError):
        if now - (st or path.stat()).st_mtime > _DAY_S:
            os.utime(path, (now, now))


def remove_unused(paths: Iterable[Path]) -> list[Path]:
    """Delete those of ``paths`` unread for :data:`UNUSED_DAYS` days (see :func:`mark_used`);
    the deleted ones."""
    oldest = time.time() - UNUSED_DAYS * _DAY_S
    removed = []
    for path in paths:
        with suppress(OSError):  # gone meanwhile, or not ours to delete
            if path.stat().st_mtime < oldest:
                path.unlink()
                removed.append(path)
    return removed
