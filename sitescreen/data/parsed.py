"""Parsed copies of source files in the cache folder (a geodatabase's basin polygons, an
Aqueduct table), named by the source's state so that a changed file is parsed again, and the
policy that deletes the copies nothing will read again."""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from sitescreen.catalog import CatalogEntry
from sitescreen.errors import HazardDataError
from sitescreen.files import atomic_write, mark_used, remove_unused

__all__ = ["ParsedCopy", "file_signature"]

log = logging.getLogger(__name__)


def file_signature(path: str) -> str:
    """Size, newest mtime and file count of a file or folder (a .gdb is a folder)."""
    if path.startswith("/vsi"):
        return "remote"
    p = Path(path)
    try:
        stats = [f.stat() for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p.stat()]
    except OSError as exc:
        raise HazardDataError(f"cannot read {path}: {exc.strerror}") from exc
    return (f"{sum(s.st_size for s in stats)}-"
            f"{max((s.st_mtime_ns for s in stats), default=0)}-{len(stats)}")


@dataclass(frozen=True, slots=True)
class ParsedCopy:
    """Where a source file's parsed copy (GeoParquet, Parquet) is kept in the cache folder.

    Named ``{kind}-{slot}-{state}-{code}.parquet`` under ``<cache>/<dataset id>/[folder]``:
    ``slot`` the source file (dataset, path, ``kind``: a layer, and the ``parts`` read, e.g.
    columns), ``state`` the file's size, mtime and file count (:func:`file_signature`),
    ``code`` the parsing code's format and the dataset version.

    Old copies (policy): writing a copy deletes at once the copies of the same slot made from
    another state of the file (the file changed: nothing can read them again), and any other
    copy in the folder unread for :data:`~sitescreen.files.UNUSED_DAYS` days (copies made by
    other code, from other data folders, or named as in earlier releases). A copy of another
    version of the code that is still read (another checkout sharing the cache folder) stays:
    reading a copy stamps it used.
    """

    path: Path

    @classmethod
    def of(cls, cache_dir: str | None, entry: CatalogEntry, source: str, *, kind: str,
           code: str, parts: tuple[str, ...] = (), folder: str = "",
           signature: str | None = None) -> ParsedCopy | None:
        """The copy of ``source``, or None when nothing is kept (no cache folder, or a
        remote source, whose state is unknown). ``signature``: :func:`file_signature` of
        ``source`` when the caller has it (it walks a folder source)."""
        if signature is None:
            signature = file_signature(source)
        if not cache_dir or signature == "remote":
            return None
        slot = _short(entry.id, os.path.abspath(source), kind, *parts, size=12)
        name = f"{kind}-{slot}-{_short(signature)}-{_short(code, entry.version)}.parquet"
        return cls(Path(cache_dir) / entry.id / folder / name)

    def read(self, read, what: str):
        """``read(path)`` of the kept copy, or None (none kept, or unreadable: a warning)."""
        if not self.path.is_file():
            return None
        try:
            value = read(self.path)
        except (OSError, ValueError) as exc:
            log.warning("%s %s unreadable (%s); reading the source again", what, self.path, exc)
            return None
        mark_used(self.path)
        return value

    def keep(self, write, what: str) -> None:
        """Write the copy (``write(tmp_path)``, atomically), then delete old copies."""
        try:
            atomic_write(self.path, write)
        except OSError as exc:  # the copy only saves time; never fail a run over it
            log.warning("cannot keep the %s %s: %s", what, self.path, exc)
            return
        kind, slot, state, _ = self.path.stem.rsplit("-", 3)
        same_slot = f"{kind}-{slot}-"
        others = [p for p in self.path.parent.glob("*.parquet") if p != self.path]
        for p in others:
            if p.name.startswith(same_slot) and not p.name.startswith(f"{same_slot}{state}-"):
                with suppress(OSError):
                    p.unlink()  # parsed from an earlier state of the same file
        remove_unused(p for p in others if p.exists())


def _short(*parts: str, size: int = 8) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:size]
