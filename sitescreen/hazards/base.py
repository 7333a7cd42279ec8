"""What every hazard plug-in shares: the context it gets, the result it returns, the interface.

A hazard is a class with a ``name`` and one batch method, :meth:`Hazard.assess`, that takes
coordinate arrays (WGS 84 lon/lat, one entry per site) and returns a :class:`HazardResult`
aligned with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sitescreen.catalog import Catalog, CatalogEntry, HazardSpec
from sitescreen.classify import ThresholdSet
from sitescreen.data.sources import DataSource
from sitescreen.errors import HazardDataError
from sitescreen.scenarios import Narrative, Pathway

__all__ = ["Hazard", "HazardContext", "HazardResult", "join_flags", "site_arrays"]


@dataclass(frozen=True, slots=True)
class HazardContext:
    """Everything a hazard needs besides the coordinates: its catalog entry and the data."""

    spec: HazardSpec
    thresholds: ThresholdSet
    datasets: dict[str, CatalogEntry]
    data: DataSource
    cache_dir: str | None = None

    @classmethod
    def build(cls, catalog: Catalog, name: str, data: DataSource,
              cache_dir: str | None = None) -> HazardContext:
        spec = catalog.hazard(name)
        return cls(spec=spec, thresholds=catalog.threshold_set(spec.threshold_set),
                   datasets={d: catalog.dataset(d) for d in spec.datasets}, data=data,
                   cache_dir=cache_dir)

    @property
    def params(self) -> dict[str, Any]:
        return self.spec.params


@dataclass(frozen=True, slots=True)
class HazardResult:
    """Per-site values and levels of one hazard for one narrative and year.

    Arrays are aligned with the coordinates passed to :meth:`Hazard.assess`.
    ``values`` holds the raw metric in ``units`` (NaN: no data); ``levels`` the risk level
    (int8, 0: no data); ``level_low``/``level_high`` the range across an ensemble or the
    stated uncertainty (equal to ``levels`` when there is none); ``flags`` a
    semicolon-separated string per site ("" when none). ``extra`` holds further per-site
    columns a hazard wants in the outputs (for example the GCM range of values).
    ``details`` is run-level provenance for the manifest (e.g. change factors applied).
    """

    hazard: str
    scenario: Narrative
    year: int
    pathway: Pathway
    units: str
    threshold_set: str
    datasets: tuple[str, ...]
    method: str
    values: np.ndarray
    levels: np.ndarray
    level_low: np.ndarray
    level_high: np.ndarray
    flags: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.values)
        for name in ("levels", "level_low", "level_high", "flags", *self.extra):
            arr = getattr(self, name) if name in ("levels", "level_low", "level_high", "flags") \
                else self.extra[name]
            if len(arr) != n:
                raise ValueError(
                    f"{self.hazard}: {name} has {len(arr)} entries for {n} sites")

    def __len__(self) -> int:
        return len(self.values)


@runtime_checkable
class Hazard(Protocol):
    """The plug-in interface every hazard implements."""

    name: str

    def assess(self, lon: np.ndarray, lat: np.ndarray, *, scenario: Narrative, year: int,
               context: HazardContext) -> HazardResult:
        """Values and levels for every site; NaN coordinates give level 0 (no data)."""
        ...


def join_flags(n: int, parts: list[tuple[np.ndarray, object]]) -> np.ndarray:
    """Semicolon-joined flags per site from (mask, label or labels) pairs, vectorised.

    >>> join_flags(2, [(np.array([True, True]), "a"), (np.array([False, True]), "b")]).tolist()
    ['a', 'a;b']
    """
    out = np.full(n, "", dtype=object)
    for mask, label in parts:
        lab = np.broadcast_to(np.asarray(label, dtype=object), (n,))
        sep = np.where(out == "", "", ";").astype(object)
        out = np.where(mask, out + sep + lab, out)
    return out.astype(str)


def site_arrays(hazard: str, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 coordinate arrays, one pair per site; unequal lengths are refused."""
    lon = np.asarray(lon, dtype="float64").ravel()
    lat = np.asarray(lat, dtype="float64").ravel()
    if lon.shape != lat.shape:
        raise HazardDataError(
            f"{hazard}: {len(lon)} longitudes for {len(lat)} latitudes; pass one "
            "coordinate pair per site")
    return lon, lat
