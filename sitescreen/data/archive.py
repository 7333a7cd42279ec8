"""Safe zip extraction, and the preparation of the Aqueduct 4.0 download.

A zip from the network is untrusted input. Members that would land outside the target folder
(``../x``, ``/etc/x``, ``C:\\x``), symbolic links (which could point anywhere) and
decompression bombs are refused before anything is written: every member's declared size is
checked against the limits up front, and the bytes actually produced are counted while
extracting, since a header can lie. Everything is extracted into a temporary folder beside the
destination and renamed into place only when the whole selection succeeded, so a failure
leaves the destination as it was.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sitescreen.catalog import CatalogEntry
from sitescreen.data.fetch import read_sidecar
from sitescreen.data.sources import EXTRACTED_SUFFIX, DataOrigin
from sitescreen.errors import CatalogError, HazardDataError, UnsafePathError

__all__ = ["extract_zip", "prepare_aqueduct", "DEFAULT_MAX_MEMBER_BYTES", "DEFAULT_MAX_TOTAL_BYTES"]

logger = logging.getLogger(__name__)

#: The largest member of the Aqueduct 4.0 zip (the File Geodatabase's biggest table or the
#: baseline CSV) is well below 2 GiB; the whole archive expands to a few GiB.
DEFAULT_MAX_MEMBER_BYTES = 4 * 1024**3
DEFAULT_MAX_TOTAL_BYTES = 16 * 1024**3
_CHUNK = 1024 * 1024


def _member_path(zip_path: Path, name: str) -> PurePosixPath:
    """The member's relative path, or UnsafePathError when it would escape the target."""
    norm = name.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if (norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts or not parts):
        raise UnsafePathError(
            f"{zip_path.name}: member {name!r} would be written outside the target folder "
            "(absolute path or '..'); the archive is refused, nothing was extracted")
    return PurePosixPath(*parts)


def _kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if mode and stat.S_ISLNK(mode):
        return "symlink"
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return "special"
    return "file"


def _select(zip_path: Path, infos: list[zipfile.ZipInfo],
            members: Sequence[str] | None) -> tuple[list[zipfile.ZipInfo], list[PurePosixPath]]:
    """The infos to extract, and the units to move into place (members or top-level names)."""
    if members is None:
        chosen = infos
        units = sorted({PurePosixPath(_member_path(zip_path, i.filename).parts[0])
                        for i in infos})
        return chosen, units
    wanted = [PurePosixPath(m.strip("/")) for m in members]
    chosen, missing = [], []
    for w in wanted:
        hits = [i for i in infos
                if (p := _member_path(zip_path, i.filename)) == w or w in p.parents]
        if not hits:
            missing.append(str(w))
        chosen.extend(h for h in hits if h not in chosen)
    if missing:
        sample = ", ".join(i.filename for i in infos[:5])
        raise HazardDataError(
            f"{zip_path}: no member named {missing}; the archive holds {len(infos)} members, "
            f"e.g. {sample}. Is it the expected release?")
    # a unit inside another unit moves with it
    units = [w for w in dict.fromkeys(wanted) if not any(o in w.parents for o in wanted)]
    return chosen, units


def extract_zip(zip_path: str | Path, dest: str | Path, *,
                max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
                max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
                members: Sequence[str] | None = None) -> list[Path]:
    """Extract a zip archive safely into ``dest``.

    Parameters
    ----------
    zip_path, dest : path
    max_member_bytes, max_total_bytes : int
        Limits on one member's and on all selected members' uncompressed size (bytes), checked
        on the declared sizes before extracting and on the bytes produced while extracting.
    members : sequence of str, optional
        Member paths to extract; a folder path selects everything below it. Default: all.
        Each selected path (or, by default, each top-level name) replaces what ``dest`` held
        under that name.

    Returns
    -------
    list of Path
        The extracted files (not folders), in archive order.

    Raises
    ------
    UnsafePathError
        A selected member is absolute, contains ``..``, is a symbolic link or a device.
    HazardDataError
        The file is not a valid zip, a member is encrypted, corrupt (CRC) or too large, or a
        requested member is absent. Nothing is extracted in any of these cases.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise HazardDataError(f"{zip_path}: not a readable zip archive ({exc}); delete it and "
                              "fetch it again") from exc
    with zf:
        chosen, units = _select(zip_path, zf.infolist(), members)
        declared = 0
        for info in chosen:
            kind = _kind(info)
            if kind in ("symlink", "special"):
                what = "symlink" if kind == "symlink" else "special file"
                raise UnsafePathError(
                    f"{zip_path.name}: member {info.filename!r} is a {what}; links and devices "
                    "are refused, nothing was extracted")
            _member_path(zip_path, info.filename)
            if info.flag_bits & 0x1:
                raise HazardDataError(f"{zip_path.name}: member {info.filename!r} is encrypted")
            if info.file_size > max_member_bytes:
                raise HazardDataError(
                    f"{zip_path.name}: member {info.filename!r} declares {info.file_size} bytes, "
                    f"over the limit of {max_member_bytes} per member (a zip bomb, or raise "
                    "max_member_bytes)")
            declared += info.file_size
        if declared > max_total_bytes:
            raise HazardDataError(
                f"{zip_path.name}: selected members declare {declared} bytes in total, over the "
                f"limit of {max_total_bytes} (a zip bomb, or raise max_total_bytes)")
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            written = 0
            out: list[PurePosixPath] = []
            for info in chosen:
                rel = _member_path(zip_path, info.filename)
                target = tmp.joinpath(*rel.parts)
                if _kind(info) == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                n = 0
                with zf.open(info) as src, open(target, "wb") as dst:
                    while block := src.read(_CHUNK):
                        n += len(block)
                        written += len(block)
                        if n > info.file_size or n > max_member_bytes or written > max_total_bytes:
                            raise HazardDataError(
                                f"{zip_path.name}: member {info.filename!r} expands beyond its "
                                f"declared {info.file_size} bytes or the limits; refused as a "
                                "zip bomb, nothing was extracted")
                        dst.write(block)
                out.append(rel)
            _move_into_place(tmp, dest, units)
        except zipfile.BadZipFile as exc:
            raise HazardDataError(f"{zip_path}: corrupt archive ({exc}); delete it and fetch "
                                  "it again") from exc
        except OSError as exc:
            raise HazardDataError(f"{zip_path}: cannot extract into {dest}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("%s: extracted %d files into %s", zip_path, len(out), dest)
    return [dest.joinpath(*rel.parts) for rel in out]


def _move_into_place(tmp: Path, dest: Path, units: list[PurePosixPath]) -> None:
    """Rename each unit from ``tmp`` to ``dest``; an older copy is set aside, then deleted."""
    for unit in units:
        src = tmp.joinpath(*unit.parts)
        if not src.exists():
            continue
        final = dest.joinpath(*unit.parts)
        final.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if final.exists() or final.is_symlink():
            old = tmp / f".old-{len(unit.parts)}-{unit.name}"
            os.replace(final, old)
        os.replace(src, final)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def prepare_aqueduct(entry: CatalogEntry, cache_root: str | Path, *,
                     force: bool = False) -> list[Path]:
    """Extract the Aqueduct 4.0 CSVs and File Geodatabase from the cached zip.

    Reads ``<cache_root>/<local_dir>/<entry.archive>`` and writes the members listed in
    ``entry.files`` (CSV files, the ``.gdb`` folder) to ``<cache_root>/<local_dir>/<member>``,
    with their archive paths, so a :class:`~sitescreen.data.sources.DataSource` on the cache
    finds them as a data pack would hold them. ``<archive>.extracted.json`` records the
    archive checksum and member sizes; when it matches and the files are present, nothing is
    done again (unless ``force``).

    Returns
    -------
    list of Path
        ``<cache_root>/<local_dir>/<file>`` for each ``entry.files`` item.
    """
    if not entry.archive:
        raise CatalogError(f"dataset {entry.id!r} has no archive to extract")
    folder = Path(cache_root) / entry.local_dir
    zip_path = folder / entry.archive
    if not zip_path.is_file():
        raise HazardDataError(
            f"dataset {entry.id!r}: {zip_path} is not in the cache; run "
            f"'sitescreen data fetch {entry.id}' first")
    side = read_sidecar(zip_path) or {}
    archive_sha = str(side.get("sha256") or entry.sha256)
    manifest = folder / (entry.archive + EXTRACTED_SUFFIX)
    targets = [folder / rel for rel in entry.files]
    if not force and manifest.is_file():
        try:
            rec = json.loads(manifest.read_text("utf-8"))
        except (OSError, ValueError):
            rec = {}
        members = rec.get("members", {})
        if (rec.get("archive_sha256") == archive_sha and members
                and all((folder / m).is_file() and (folder / m).stat().st_size == s
                        for m, s in members.items())):
            logger.info("%s: already extracted", zip_path)
            return targets
    paths = extract_zip(zip_path, folder, members=list(entry.files))
    record = {
        "archive": entry.archive, "archive_sha256": archive_sha, "dataset": entry.id,
        "version": entry.version, "origin": side.get("origin", DataOrigin.LOCAL.value),
        "extracted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "members": {p.relative_to(folder).as_posix(): p.stat().st_size for p in paths},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{manifest.name}.", suffix=".tmp", dir=folder)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache must stay readable
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, manifest)
    return targets
