"""Where hazard files are read from: a local data folder, a mirror, or upstream.

Files keep their upstream names under ``<root>/<dataset local_dir>/``, so a demo pack, a
mirror and a cache folder are laid out alike and a mirror base can stand in for an upstream
base. A folder says what it holds in ``PACK.json`` (``origin``): outputs repeat that origin so
synthetic data is never mistaken for real data. A cache folder filled by ``sitescreen data
fetch`` says, per file, where each file came from in its ``<file>.sha256.json`` sidecar
(see :meth:`DataSource.for_cache`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sitescreen.catalog import CatalogEntry
from sitescreen.errors import HazardDataError

__all__ = ["DataOrigin", "DataSource", "PACK_MARKER", "SIDECAR_SUFFIX", "EXTRACTED_SUFFIX"]

PACK_MARKER = "PACK.json"
#: Appended to a fetched file's name for its provenance record (url, sha256, size, origin).
SIDECAR_SUFFIX = ".sha256.json"
#: Appended to an archive's name for the record of what was extracted from it.
EXTRACTED_SUFFIX = ".extracted.json"


class DataOrigin(StrEnum):
    SYNTHETIC_DEMO = "synthetic-demo"
    MIRROR = "mirror"
    UPSTREAM = "upstream"
    LOCAL = "local"


def _is_url(root: str) -> bool:
    return root.startswith(("http://", "https://"))


@dataclass(frozen=True, slots=True)
class DataSource:
    """A root folder or URL holding datasets under their catalog ``local_dir``."""

    root: str
    origin: DataOrigin = DataOrigin.LOCAL
    description: str = ""
    pack: dict = field(default_factory=dict)
    #: Origin per file, keyed by ``<local_dir>/<relpath>``, read from fetch sidecars.
    file_origins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path) -> DataSource:
        """Open a data folder; its ``PACK.json``, when present, declares the origin."""
        root = str(root)
        if _is_url(root):
            return cls(root=root.rstrip("/"), origin=DataOrigin.MIRROR,
                       description=f"HTTP mirror {root}")
        path = Path(root)
        if not path.is_dir():
            raise HazardDataError(
                f"data folder {root} does not exist; create a demo pack with "
                f"'sitescreen demo-data {root}' or fetch data with 'sitescreen data fetch'")
        marker = path / PACK_MARKER
        pack: dict = {}
        if marker.is_file():
            try:
                pack = json.loads(marker.read_text("utf-8"))
                origin = DataOrigin(pack.get("origin", DataOrigin.LOCAL))
            except (ValueError, OSError) as exc:
                raise HazardDataError(f"{marker}: unreadable pack marker: {exc}") from exc
        else:
            origin = DataOrigin.LOCAL
        return cls(root=str(path.resolve()), origin=origin,
                   description=pack.get("description", f"local folder {path}"), pack=pack)

    @classmethod
    def for_cache(cls, cache_root: str | Path) -> DataSource:
        """Open a cache folder filled by ``sitescreen data fetch``.

        The origin is read from the ``<file>.sha256.json`` sidecars (and, for files
        extracted from an archive, from ``<archive>.extracted.json``): ``mirror`` when any
        file came from a mirror (a mirror may hold a re-encoded copy, so it is never
        reported as upstream), ``upstream`` when every file came from its upstream URL,
        ``local`` when the folder has no sidecars. A ``PACK.json`` still wins, so a demo
        pack used as a cache stays ``synthetic-demo``.
        """
        base = cls.open(cache_root)
        root = Path(base.root)
        origins: dict[str, str] = {}
        for side in sorted(root.rglob("*" + SIDECAR_SUFFIX)):
            rec = _read_json(side)
            rel = side.relative_to(root).as_posix()[: -len(SIDECAR_SUFFIX)]
            origins[rel] = str(rec.get("origin") or DataOrigin.LOCAL.value)
        for manifest in sorted(root.rglob("*" + EXTRACTED_SUFFIX)):
            rec = _read_json(manifest)
            folder = manifest.parent.relative_to(root).as_posix()
            for member in rec.get("members", {}):
                origins[f"{folder}/{member}"] = str(rec.get("origin") or DataOrigin.LOCAL.value)
        if (root / PACK_MARKER).is_file():
            return cls(root=base.root, origin=base.origin, description=base.description,
                       pack=base.pack, file_origins=origins)
        kinds = set(origins.values())
        if DataOrigin.MIRROR.value in kinds:
            origin = DataOrigin.MIRROR
        elif kinds == {DataOrigin.UPSTREAM.value}:
            origin = DataOrigin.UPSTREAM
        else:
            origin = DataOrigin.LOCAL
        counts = ", ".join(f"{sum(v == k for v in origins.values())} from {k}"
                           for k in sorted(kinds))
        return cls(root=base.root, origin=origin,
                   description=f"data cache {root}" + (f" ({counts})" if counts else ""),
                   file_origins=origins)

    def origin_of(self, entry: CatalogEntry, relpath: str) -> DataOrigin:
        """Where one file came from: its sidecar's origin, else the folder's origin."""
        value = self.file_origins.get(f"{entry.local_dir}/{relpath}")
        try:
            return DataOrigin(value) if value else self.origin
        except ValueError:
            return self.origin

    def locate(self, entry: CatalogEntry, relpath: str) -> str:
        """Path (or GDAL ``/vsicurl/`` URL) of one of a dataset's files."""
        if _is_url(self.root):
            return f"/vsicurl/{self.root}/{entry.local_dir}/{relpath}"
        return str(Path(self.root) / entry.local_dir / relpath)

    def exists(self, entry: CatalogEntry, relpath: str) -> bool:
        if _is_url(self.root):
            return True  # checked when read; a HEAD per file would cost a round trip each
        return Path(self.locate(entry, relpath)).exists()

    def require(self, entry: CatalogEntry, relpath: str) -> str:
        """Like :meth:`locate`, but a missing local file raises a clear error."""
        where = self.locate(entry, relpath)
        if not self.exists(entry, relpath):
            raise HazardDataError(
                f"dataset {entry.id!r} ({entry.title}, {entry.version}): file {relpath} is "
                f"missing from {self.root}/{entry.local_dir}; fetch it with "
                f"'sitescreen data fetch {entry.id}' or point --data at a folder that has it")
        return where

    def to_dict(self) -> dict:
        d = {"root": self.root, "origin": self.origin.value, "description": self.description}
        if self.pack:
            d["pack"] = self.pack
        if self.file_origins:
            d["file_origins"] = dict(self.file_origins)
        return d


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (ValueError, OSError) as exc:
        raise HazardDataError(f"{path}: unreadable provenance record: {exc}; delete it and "
                              "fetch the file again with 'sitescreen data fetch'") from exc
    if not isinstance(data, dict):
        raise HazardDataError(f"{path}: provenance record is not a JSON object")
    return data
