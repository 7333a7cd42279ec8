"""Turn raw hazard values into risk levels 1-5 with named, versioned threshold sets.

Threshold sets are data (``thresholds.toml`` in the package, or a user file); classification is
vectorised with :func:`numpy.searchsorted` over the bin edges. Level 0 is *no data*, kept apart
from level 1 ("very low") so that a missing value is never reported as low risk.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from sitescreen.errors import CatalogError

__all__ = [
    "RiskLevel",
    "ThresholdSet",
    "load_threshold_sets",
    "classify",
    "near_threshold",
    "MEDIUM_AND_ABOVE",
]


class RiskLevel(IntEnum):
    NO_DATA = 0
    VERY_LOW = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    VERY_HIGH = 5

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").lower()


#: "Medium risk and above", as corporate disclosures use it.
MEDIUM_AND_ABOVE = RiskLevel.MEDIUM

_KEYS = {"hazard", "version", "kind", "units", "edges", "mapping", "near_margin", "source"}


@dataclass(frozen=True, slots=True)
class ThresholdSet:
    """Ordered bin edges (or a category mapping) that turn a raw value into a level."""

    name: str
    hazard: str
    version: str
    kind: Literal["ascending", "descending", "categorical"]
    units: str
    edges: tuple[float, ...] = ()
    mapping: dict[int, int] = field(default_factory=dict)
    near_margin: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind in ("ascending", "descending"):
            if len(self.edges) != 4:
                raise CatalogError(
                    f"threshold set {self.name!r}: needs 4 edges for 5 levels, got {len(self.edges)}")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise CatalogError(
                    f"threshold set {self.name!r}: edges must increase strictly, got {list(self.edges)}")
        elif self.kind == "categorical":
            bad = {k: v for k, v in self.mapping.items() if v not in range(1, 6)}
            if not self.mapping or bad:
                raise CatalogError(
                    f"threshold set {self.name!r}: mapping must send categories to levels 1-5, got {bad or 'nothing'}")
        else:
            raise CatalogError(
                f"threshold set {self.name!r}: unknown kind {self.kind!r}; "
                "expected ascending, descending or categorical")

    @classmethod
    def from_dict(cls, name: str, data: dict) -> ThresholdSet:
        unknown = set(data) - _KEYS
        if unknown:
            raise CatalogError(
                f"threshold set {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
        try:
            return cls(
                name=name,
                hazard=str(data["hazard"]),
                version=str(data["version"]),
                kind=data["kind"],
                units=str(data.get("units", "")),
                edges=tuple(float(e) for e in data.get("edges", ())),
                mapping={int(k): int(v) for k, v in data.get("mapping", {}).items()},
                near_margin=float(data.get("near_margin", 0.0)),
                source=str(data.get("source", "")),
            )
        except KeyError as exc:
            raise CatalogError(f"threshold set {name!r}: missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"threshold set {name!r}: {exc}") from exc

    def to_dict(self) -> dict:
        d = {"name": self.name, "hazard": self.hazard, "version": self.version,
             "kind": self.kind, "units": self.units, "source": self.source}
        if self.edges:
            d["edges"] = list(self.edges)
        if self.mapping:
            d["mapping"] = {str(k): v for k, v in sorted(self.mapping.items())}
        if self.near_margin:
            d["near_margin"] = self.near_margin
        return d


def load_threshold_sets(path: str | Path | None = None) -> dict[str, ThresholdSet]:
    """Read threshold sets from ``path``, or the packaged ``thresholds.toml``.

    A user file is merged over the packaged sets; redefining a packaged name is refused
    (give a new name or version instead, so old outputs stay traceable).
    """
    packaged = resources.files("sitescreen").joinpath("thresholds.toml").read_text("utf-8")
    sets = _parse_sets(tomllib.loads(packaged), "packaged thresholds.toml")
    if path is not None:
        try:
            text = Path(path).read_text("utf-8")
            user = _parse_sets(tomllib.loads(text), str(path))
        except OSError as exc:
            raise CatalogError(f"cannot read threshold file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"{path}: invalid TOML: {exc}") from exc
        clash = sorted(set(user) & set(sets))
        if clash:
            raise CatalogError(
                f"{path}: threshold sets {clash} already exist in the package; "
                "give your set a new name (for example with a -v2 suffix)")
        sets.update(user)
    return sets


def _parse_sets(doc: dict, origin: str) -> dict[str, ThresholdSet]:
    extra = set(doc) - {"sets"}
    if extra:
        raise CatalogError(f"{origin}: unknown top-level keys {sorted(extra)}; expected [sets.NAME]")
    return {name: ThresholdSet.from_dict(name, body) for name, body in doc.get("sets", {}).items()}


def classify(values: np.ndarray, thresholds: ThresholdSet) -> np.ndarray:
    """Risk level (int8, 1-5; 0 for NaN / unmapped) for every value.

    >>> ts = ThresholdSet("t", "typhoon", "1", "ascending", "m/s", (17.2, 24.5, 32.7, 41.5))
    >>> classify(np.array([0.0, 17.2, 30.0, 41.5, np.nan]), ts).tolist()
    [1, 2, 3, 5, 0]
    >>> fl = ThresholdSet("f", "flood", "1", "descending", "years", (10, 25, 100, 1000))
    >>> classify(np.array([2, 10, 11, 1000, np.inf, np.nan]), fl).tolist()
    [5, 5, 4, 2, 1, 0]
    """
    v = np.asarray(values, dtype="float64")
    levels = np.zeros(v.shape, dtype="int8")
    ok = ~np.isnan(v)
    edges = np.asarray(thresholds.edges, dtype="float64")
    if thresholds.kind == "ascending":
        levels[ok] = 1 + np.searchsorted(edges, v[ok], side="right")
    elif thresholds.kind == "descending":
        levels[ok] = 5 - np.searchsorted(edges, v[ok], side="left")
    else:
        keys = np.array(sorted(thresholds.mapping), dtype="float64")
        lut = np.array([thresholds.mapping[int(k)] for k in keys], dtype="int8")
        pos = np.searchsorted(keys, v[ok])
        pos_clipped = np.minimum(pos, len(keys) - 1)
        hit = keys[pos_clipped] == v[ok]
        out = np.zeros(pos.shape, dtype="int8")
        out[hit] = lut[pos_clipped[hit]]
        levels[ok] = out
    return levels


def near_threshold(values: np.ndarray, thresholds: ThresholdSet) -> np.ndarray:
    """True where a value lies within ``near_margin`` of a level boundary.

    Categorical sets and sets with no margin flag nothing.

    >>> ts = ThresholdSet("t", "typhoon", "1", "ascending", "m/s", (17.2, 24.5, 32.7, 41.5), near_margin=1.0)
    >>> near_threshold(np.array([16.5, 20.0, 33.0, np.nan]), ts).tolist()
    [True, False, True, False]
    """
    v = np.asarray(values, dtype="float64")
    if thresholds.kind == "categorical" or not thresholds.near_margin or math.isnan(thresholds.near_margin):
        return np.zeros(v.shape, dtype=bool)
    edges = np.asarray(thresholds.edges, dtype="float64")
    with np.errstate(invalid="ignore"):
        dist = np.abs(v[..., None] - edges).min(axis=-1)
        return np.nan_to_num(dist, nan=np.inf) <= thresholds.near_margin
