"""Where hazard files are read from: a local data folder, a mirror, or upstream.

Files keep their upstream names under ``<root>/<dataset local_dir>/``, so a demo pack, a
mirror and a cache folder are laid out alike and a mirror base can stand in for an upstream
base. A folder says what it holds in ``PACK.json`` (``origin``): outputs repeat that origin so
synthetic data is never mistaken for real data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from .catalog import CatalogEntry
from .errors import HazardDataError

__all__ = ["DataOrigin", "DataSource", "PACK_MARKER"]

PACK_MARKER = "PACK.json"


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
        return d
