"""Before any hazard work: which data files a screening needs, what is missing, and getting it.

:func:`plan_data` works out, for the hazard layers of a run and the sites' coordinates, the
files each dataset must provide: for a *windowed* dataset (catalog ``params.grid``, the
Aqueduct Floods tiles) the windows around the sites of each tile the layers read (see
:mod:`sitescreen.data.windows`), for every other dataset its files whole (the Aqueduct 4.0
zip, IBTrACS). It needs no network. :func:`fetch_missing` then either gets what is missing
(``fetch=True``: small datasets whole through :func:`sitescreen.data.datasets.fetch_dataset`,
windowed ones by windows) or stops with one :class:`~sitescreen.errors.MissingDataError`
that lists what is missing, how large it is and the command that gets it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sitescreen.catalog import Catalog, CatalogEntry
from sitescreen.data.datasets import expand_files, fetch_dataset, remote_files, resolve_mirror
from sitescreen.data.windows import FetchSettings, WindowPlan, fetch_windows, plan_windows
from sitescreen.errors import MissingDataError
from sitescreen.hazards import load_hazard

__all__ = ["WholeNeed", "DataPlan", "plan_data", "fetch_missing", "human_bytes", "whole_size"]

log = logging.getLogger(__name__)


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``'1.5 kB'`` (decimal units, as download sizes are quoted); None -> '?'."""
    if n is None:
        return "size unknown"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def whole_size(entry: CatalogEntry) -> int | None:
    """Bytes of a full download of the dataset: catalog ``size`` (archive or lone file), else
    the planning figures ``params.approx_bytes`` / ``approx_file_bytes`` x files."""
    if entry.size:
        return int(entry.size)
    if entry.params.get("approx_bytes"):
        return int(entry.params["approx_bytes"])
    if entry.params.get("approx_file_bytes"):
        return int(entry.params["approx_file_bytes"]) * len(remote_files(entry))
    return None


@dataclass(frozen=True, slots=True)
class WholeNeed:
    """A dataset read whole: the files a run reads and whether each is in the data folder."""

    dataset: str
    files: tuple[str, ...]
    missing: tuple[str, ...]
    size: int | None  # of a full download

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True, slots=True)
class DataPlan:
    """What a run needs of each dataset, and what the data folder lacks."""

    root: str
    whole: tuple[WholeNeed, ...] = ()
    windowed: tuple[WindowPlan, ...] = ()
    hazards: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    years: tuple[int, ...] = ()
    #: The hazards of the run that read each dataset (to narrow the fetch commands).
    readers: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(w.complete for w in self.whole) and all(p.complete for p in self.windowed)

    @property
    def estimate_bytes(self) -> int:
        return (sum(w.size or 0 for w in self.whole if not w.complete)
                + sum(p.estimate_bytes for p in self.windowed))

    def describe(self) -> list[str]:
        """One line per dataset with something missing."""
        lines = []
        for w in self.whole:
            if not w.complete:
                shown = ", ".join(w.missing[:3]) + (", ..." if len(w.missing) > 3 else "")
                lines.append(f"{w.dataset}: {len(w.missing)} of {len(w.files)} files ({shown}); "
                             f"full download {human_bytes(w.size)}")
        for p in self.windowed:
            if not p.complete:
                lines.append(
                    f"{p.dataset}: {len(p.missing_files)} of {len(p.files)} files lack "
                    f"{p.missing_cells} windows around the sites (about "
                    f"{human_bytes(p.estimate_bytes)} by range requests)")
        return lines

    def commands(self, sites: str) -> list[str]:
        """The ``sitescreen data fetch`` commands that fill the gaps."""
        out = []
        whole = [w.dataset for w in self.whole if not w.complete]
        cache = f" --cache {self.root}"
        if whole:
            out.append(f"sitescreen data fetch {' '.join(whole)}{cache}")
        for p in self.windowed:
            if not p.complete:
                narrow = "".join(f" --hazard {h}"
                                 for h in self.readers.get(p.dataset, self.hazards))
                narrow += "".join(f" --scenario {s}" for s in self.scenarios)
                narrow += "".join(f" --year {y}" for y in self.years)
                out.append(f"sitescreen data fetch {p.dataset} --sites {sites}{narrow}{cache}")
        return out


def _hazard_needs(catalog: Catalog, layers: Sequence, entry: CatalogEntry
                  ) -> dict[str, float] | None:
    """File -> search radius for a windowed dataset, from the plug-ins' ``data_needs``;
    None when a plug-in reading the dataset does not say (then it is fetched whole)."""
    needs: dict[str, float] = {}
    for layer in layers:
        spec = catalog.hazard(layer.hazard)
        if entry.id not in spec.datasets:
            continue
        hazard = load_hazard(spec)
        fn = getattr(hazard, "data_needs", None)
        if fn is None:
            return None
        for name, pad in fn(entry, scenario=layer.scenario, year=layer.year,
                            params=spec.params).items():
            needs[name] = max(pad, needs.get(name, 0.0))
    return needs


def plan_data(catalog: Catalog, layers: Sequence, root: str | Path, lon: np.ndarray,
              lat: np.ndarray) -> DataPlan:
    """What ``layers`` (hazard x scenario x year) need of each dataset in ``root``, for
    these sites; no network."""
    root = Path(root)
    used: list[str] = []
    for layer in layers:
        for d in catalog.hazard(layer.hazard).datasets:
            if d not in used:
                used.append(d)
    whole, windowed = [], []
    for d in used:
        entry = catalog.dataset(d)
        needs = _hazard_needs(catalog, layers, entry) if "grid" in entry.params else None
        if needs is not None:
            windowed.append(plan_windows(entry, root, needs, lon, lat))
            continue
        hazards = sorted({layer.hazard for layer in layers
                          if d in catalog.hazard(layer.hazard).datasets})
        files = expand_files(entry, hazards=hazards)
        missing = tuple(f for f in files if not (root / entry.local_dir / f).exists())
        whole.append(WholeNeed(d, tuple(files), missing, whole_size(entry)))
    return DataPlan(
        root=str(root), whole=tuple(whole), windowed=tuple(windowed),
        hazards=tuple(dict.fromkeys(layer.hazard for layer in layers)),
        scenarios=tuple(dict.fromkeys(layer.scenario.value for layer in layers)),
        years=tuple(dict.fromkeys(int(layer.year) for layer in layers)),
        readers={d: tuple(dict.fromkeys(layer.hazard for layer in layers
                                        if d in catalog.hazard(layer.hazard).datasets))
                 for d in used})


def fetch_missing(catalog: Catalog, plan: DataPlan, *, fetch: bool, sites: str,
                 mirror: str | None = None, settings: FetchSettings | None = None,
                 say: Callable[[str], None] | None = None) -> dict:
    """Get what ``plan`` lacks (``fetch``) or raise :class:`MissingDataError` listing it.

    Returns a record of what was fetched (for the manifest): per dataset the files or
    windows transferred, bytes and seconds; empty when everything was in the cache.
    """
    say = say or log.info
    if plan.complete:
        return {}
    if not fetch:
        listed = "; ".join(plan.describe())
        commands = " && ".join(plan.commands(sites))
        raise MissingDataError(
            f"hazard data for this run is missing from {plan.root}: {listed}. Total about "
            f"{human_bytes(plan.estimate_bytes)}. Get it by adding --fetch to this command, "
            f"or with: {commands}")
    Path(plan.root).mkdir(parents=True, exist_ok=True)
    base = resolve_mirror(mirror)
    say(f"fetching missing data into {plan.root} (about {human_bytes(plan.estimate_bytes)}): "
        + "; ".join(plan.describe()))
    record: dict = {}
    for w in plan.whole:
        if w.complete:
            continue
        entry = catalog.dataset(w.dataset)
        results = fetch_dataset(entry, plan.root, mirror=base,
                                hazards=list(plan.hazards) or None)
        record[w.dataset] = {"files": [r.path.name for r in results],
                             "bytes": sum(r.bytes for r in results if not r.from_cache)}
        say(f"{w.dataset}: {len(results)} file(s) in the cache")
    for p in plan.windowed:
        if p.complete:
            continue
        entry = catalog.dataset(p.dataset)
        report = fetch_windows(entry, p, mirror=base, settings=settings)
        record[p.dataset] = report.to_dict()
        say(f"{p.dataset}: {report.cells_fetched} windows of {report.files_fetched} files, "
            f"{human_bytes(report.bytes)} in {report.requests} requests, "
            f"{report.seconds:.1f} s")
    return record
