"""The data catalog: datasets, hazard layers and composites, read from ``catalog.toml``.

The catalog is data, not code. Entries load into frozen dataclasses; unknown keys are refused
so a typo never silently drops a licence or a checksum. A user catalog is merged over the
packaged one entry by entry (a user entry replaces the packaged entry of the same name).
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sitescreen.classify import ThresholdSet, load_threshold_sets
from sitescreen.errors import CatalogError
from sitescreen.scenarios import Narrative, parse_narrative

__all__ = ["CatalogEntry", "HazardSpec", "CompositeSpec", "Catalog", "load_catalog"]

#: Schemes a catalog ``base_url`` may use. Local copies are given as a mirror (``--mirror``,
#: ``SITESCREEN_MIRROR``), never through the catalog: a shared catalog file naming
#: ``file:///etc`` or an FTP host would otherwise make every user read from there.
ALLOWED_URL_SCHEMES = ("http", "https")


def _check_keys(kind: str, name: str, data: dict, cls: type, skip: set[str]) -> None:
    allowed = {f.name for f in fields(cls)} - skip
    unknown = set(data) - allowed
    if unknown:
        raise CatalogError(
            f"catalog {kind} {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One dataset: where it lives upstream, how to cite it, how to verify it."""

    id: str
    title: str
    publisher: str
    version: str
    license: str
    citation: str
    base_url: str
    local_dir: str
    family: str
    files: tuple[str, ...]
    homepage: str = ""
    archive: str = ""
    size: int | None = None
    sha256: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, id: str, data: dict) -> CatalogEntry:
        _check_keys("dataset", id, data, cls, {"id"})
        required = ("title", "publisher", "version", "license", "citation", "base_url",
                    "local_dir", "family", "files")
        missing = [k for k in required if k not in data]
        if missing:
            raise CatalogError(f"catalog dataset {id!r}: missing keys {missing}")
        return cls(id=id, **{**data, "files": tuple(data["files"]),
                             "params": dict(data.get("params", {}))})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["files"] = list(self.files)
        return {k: v for k, v in out.items() if v not in (None, "", {}, [])}


@dataclass(frozen=True, slots=True)
class HazardSpec:
    """One hazard layer: the plug-in that computes it and what it reads."""

    name: str
    label: str
    plugin: str
    datasets: tuple[str, ...]
    threshold_set: str
    scenarios: tuple[Narrative, ...]
    years: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict)
    #: Screened when the user names no hazards; optional layers (depletion) set this false.
    default: bool = True

    @classmethod
    def from_dict(cls, name: str, data: dict) -> HazardSpec:
        _check_keys("hazard", name, data, cls, {"name"})
        try:
            return cls(
                name=name,
                label=str(data["label"]),
                plugin=str(data["plugin"]),
                datasets=tuple(data["datasets"]),
                threshold_set=str(data["threshold_set"]),
                scenarios=tuple(parse_narrative(s) for s in data["scenarios"]),
                years=tuple(int(y) for y in data["years"]),
                params=dict(data.get("params", {})),
                default=bool(data.get("default", True)),
            )
        except KeyError as exc:
            raise CatalogError(f"catalog hazard {name!r}: missing key {exc.args[0]!r}") from exc

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "plugin": self.plugin,
                "datasets": list(self.datasets), "threshold_set": self.threshold_set,
                "scenarios": [s.value for s in self.scenarios], "years": list(self.years),
                "params": dict(self.params), "default": self.default}


@dataclass(frozen=True, slots=True)
class CompositeSpec:
    """Hazards reported together; a site's level is the highest of its components."""

    name: str
    label: str
    components: tuple[str, ...]

    @classmethod
    def from_dict(cls, name: str, data: dict) -> CompositeSpec:
        _check_keys("composite", name, data, cls, {"name"})
        try:
            return cls(name=name, label=str(data["label"]), components=tuple(data["components"]))
        except KeyError as exc:
            raise CatalogError(f"catalog composite {name!r}: missing key {exc.args[0]!r}") from exc

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "components": list(self.components)}


@dataclass(frozen=True, slots=True)
class Catalog:
    datasets: dict[str, CatalogEntry]
    hazards: dict[str, HazardSpec]
    composites: dict[str, CompositeSpec]
    thresholds: dict[str, ThresholdSet]
    sources: tuple[str, ...] = ("packaged",)

    def dataset(self, id: str) -> CatalogEntry:
        try:
            return self.datasets[id]
        except KeyError:
            raise CatalogError(
                f"unknown dataset {id!r}; the catalog has: {', '.join(sorted(self.datasets))}"
            ) from None

    def hazard(self, name: str) -> HazardSpec:
        try:
            return self.hazards[name]
        except KeyError:
            raise CatalogError(
                f"unknown hazard {name!r}; the catalog has: {', '.join(sorted(self.hazards))}"
            ) from None

    def threshold_set(self, name: str) -> ThresholdSet:
        try:
            return self.thresholds[name]
        except KeyError:
            raise CatalogError(
                f"unknown threshold set {name!r}; known: {', '.join(sorted(self.thresholds))}"
            ) from None


def _read_toml(text: str, origin: str) -> dict:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{origin}: invalid TOML: {exc}") from exc
    extra = set(doc) - {"datasets", "hazards", "composites"}
    if extra:
        raise CatalogError(
            f"{origin}: unknown top-level tables {sorted(extra)}; "
            "expected [datasets.*], [hazards.*], [composites.*]")
    return doc


def load_catalog(path: str | Path | None = None, *, thresholds: str | Path | None = None) -> Catalog:
    """Load the packaged catalog, with a user catalog and threshold file merged over it."""
    doc = _read_toml(
        resources.files("sitescreen").joinpath("catalog.toml").read_text("utf-8"), "catalog.toml")
    sources = ["packaged"]
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from exc
        user = _read_toml(text, str(path))
        _check_base_urls(user.get("datasets", {}), str(path))
        for table in ("datasets", "hazards", "composites"):
            doc.setdefault(table, {}).update(user.get(table, {}))
        sources.append(str(path))
    hazards = {k: HazardSpec.from_dict(k, v) for k, v in doc.get("hazards", {}).items()}
    catalog = Catalog(
        datasets={k: _with_hazard_fields(CatalogEntry.from_dict(k, v), hazards)
                  for k, v in doc.get("datasets", {}).items()},
        hazards=hazards,
        composites={k: CompositeSpec.from_dict(k, v) for k, v in doc.get("composites", {}).items()},
        thresholds=load_threshold_sets(thresholds),
        sources=tuple(sources),
    )
    _check_references(catalog)
    return catalog


def _with_hazard_fields(entry: CatalogEntry, hazards: dict[str, HazardSpec]) -> CatalogEntry:
    """Fill the template fields a dataset takes from the hazards that read it.

    ``params.hazard_fields`` names template fields (e.g. ``variable`` of the CCKP files) whose
    values are the ``params`` of the same name of every hazard naming the dataset. They
    become ``params[field]`` (a list, in catalog order) and ``params.hazard_files`` (one glob
    per hazard), so ``sitescreen data fetch`` gets exactly the files the hazards read, and a
    new indicator is one hazard entry.
    """
    names = entry.params.get("hazard_fields")
    if not names:
        return entry
    readers = [h for h in hazards.values() if entry.id in h.datasets]
    params = dict(entry.params)
    globs: dict[str, str] = {}
    for name in names:
        missing = [h.name for h in readers if name not in h.params]
        if missing:
            raise CatalogError(
                f"hazards {missing} read dataset {entry.id!r} but have no params.{name}, "
                f"which its file names need (hazard_fields = {list(names)})")
        params[name] = list(dict.fromkeys(str(h.params[name]) for h in readers))
    for h in readers:
        fill = {f: (str(h.params[f]) if f in names else "*")
                for t in entry.files for _, f, _, _ in string.Formatter().parse(t) if f}
        globs[h.name] = [t.format(**fill) for t in entry.files]
    params["hazard_files"] = globs
    return replace(entry, params=params)


def _check_base_urls(datasets: dict, origin: str) -> None:
    for name, data in datasets.items():
        url = str(data.get("base_url", "")) if isinstance(data, dict) else ""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if url and scheme not in ALLOWED_URL_SCHEMES:
            # Without user info and query: a URL may carry a password or a token.
            shown = (f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme
                     else parts.path)
            raise CatalogError(
                f"{origin}: dataset {name!r} has base_url {shown!r} with scheme "
                f"{scheme or '(none)'!r}; a catalog may only name http or https sources. "
                "For a local copy, keep the upstream base_url and give the folder to "
                "'sitescreen data fetch --mirror' (or SITESCREEN_MIRROR), or screen it with --data")


def _check_references(catalog: Catalog) -> None:
    for spec in catalog.hazards.values():
        for ds in spec.datasets:
            if ds not in catalog.datasets:
                raise CatalogError(f"hazard {spec.name!r} names unknown dataset {ds!r}")
        if spec.threshold_set not in catalog.thresholds:
            raise CatalogError(
                f"hazard {spec.name!r} names unknown threshold set {spec.threshold_set!r}")
    for comp in catalog.composites.values():
        if comp.name in catalog.hazards:
            # Rows, layers and columns are keyed by name: a composite and a hazard of one
            # name would be mixed up in every output.
            raise CatalogError(
                f"composite {comp.name!r} has the name of a hazard; give it another name")
        for c in comp.components:
            if c not in catalog.hazards:
                raise CatalogError(f"composite {comp.name!r} names unknown hazard {c!r}")
