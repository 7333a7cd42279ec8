"""The screening pipeline: one request, one sequence of steps, run with or without Prefect.

:func:`screen` runs the steps in order: prepare the data, load the sites, locate them, check
the result store per hazard layer, assess what it lacks, complete the layers, summarise,
write. Each step is a plain function of plain data. A :class:`Runner` decides how a step is
executed: :class:`PlainRunner` calls it, and the Prefect flow (``flows/screen.py``) runs the
very same steps as tasks, adding only mapping, retries, caching and artifacts. No science
lives here: hazards compute, ``aggregate`` counts, ``outputs`` writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd

from sitescreen.aggregate import DEFAULT_CHUNK_SITES, SiteResults
from sitescreen.catalog import Catalog, load_catalog
from sitescreen.categorical import as_text_categorical
from sitescreen.cooling import COOLING_COLUMNS, add_cooling_energy
from sitescreen.data.sources import DataSource, default_data_folder
from sitescreen.errors import CatalogError
from sitescreen.geocode import is_located
from sitescreen.hazards import HazardContext, HazardResult, load_hazard
from sitescreen.home import cache_dir as home_cache_dir
from sitescreen.home import demo_pack_dir
from sitescreen.manifest import build_manifest
from sitescreen.outputs.per_site import DEFAULT_PER_SITE_LIMIT, PerSitePlan, plan_per_site
from sitescreen.outputs.run_files import render_files
from sitescreen.outputs.run_folder import (
    check_latest,
    check_run_id,
    check_writable,
    new_run_id,
    write_run,
)
from sitescreen.scenarios import Narrative, parse_narrative
from sitescreen.site_sources import redact
from sitescreen.store import (
    SNAPSHOT_MAX_PARTS,
    CachedLayer,
    ResultStore,
    Snapshot,
    layer_fingerprint,
    location_digest,
    location_keys,
)

__all__ = [
    "ScreeningRequest",
    "ScreeningRun",
    "make_request",
    "Layer",
    "Runner",
    "PlainRunner",
    "Progress",
    "plan_layers",
    "preflight",
    "prepare_data",
    "fetch_data",
    "load_sites",
    "locate_sites",
    "coordinates",
    "read_snapshot",
    "check_layer",
    "check_folders",
    "assess_missing",
    "complete_layer",
    "keep_snapshot",
    "assess_sites",
    "screen_chunk",
    "screen_on_dask",
    "union_layer_fields",
    "union_details",
    "spatial_order",
    "per_site_plan",
    "summarise",
    "write_outputs",
    "location_digest",
    "run_summary",
    "screen",
    "DEFAULT_YEARS",
]

log = logging.getLogger(__name__)

DEFAULT_YEARS = (2030, 2050)


@dataclass(frozen=True, slots=True)
class ScreeningRequest:
    """What to screen, against which data, and where to write: the one place of defaults.

    ``data`` defaults to ``$SITESCREEN_DATA``, else ``$SITESCREEN_HOME/cache/data``; the
    SYNTHETIC demo pack (``$SITESCREEN_HOME/cache/demo-pack``) is used only with
    ``demo=True``; ``cache_dir`` (geocodes, result store) defaults to
    ``$SITESCREEN_HOME/cache`` (:mod:`sitescreen.home`). With ``fetch``, data the run lacks
    is fetched before any hazard work (:func:`fetch_data`). The CLI, the flow and the
    deployments all build their request here, so a run with no options means the same
    everywhere.
    """

    sites: str
    data: str | None = None
    demo: bool = False
    out: str = "results"
    scenarios: tuple[Narrative, ...] = tuple(Narrative)
    years: tuple[int, ...] = DEFAULT_YEARS
    hazards: tuple[str, ...] = ()
    weight: str | None = None
    catalog: str | None = None
    thresholds: str | None = None
    geocoders: tuple[str, ...] = ("offline",)
    overrides: str | None = None
    refresh_geocodes: bool = False
    cache_dir: str | None = None
    run_id: str | None = None
    #: Charts and the Markdown/HTML report (matplotlib rendering takes seconds).
    report: bool = True
    #: The portfolio name the report is titled with; None: the sites file's ``name``, else
    #: its file name (:func:`sitescreen.outputs.summary.report_title`).
    title: str | None = None
    #: Fetch missing data (small datasets whole, flood tiles by windows) before hazards.
    fetch: bool = False
    #: Per-site files (``outputs.per_site``): auto, all, compressed, parquet or none, and
    #: the portfolio size up to which ``auto`` writes them all.
    per_site_outputs: str = "auto"
    per_site_limit: int = DEFAULT_PER_SITE_LIMIT
    #: The sheet of an Excel workbook (None: the first).
    sheet: str | None = None

    def __post_init__(self) -> None:
        if self.run_id is not None:
            check_run_id(self.run_id)  # fail before the work, not when writing
        data = self.data if self.data is not None else (
            demo_pack_dir() if self.demo else default_data_folder())
        object.__setattr__(self, "data", str(data))
        if self.cache_dir is None:
            object.__setattr__(self, "cache_dir", str(home_cache_dir()))
        for name in ("sites", "out", "cache_dir", "catalog", "thresholds", "overrides"):
            value = getattr(self, name)  # paths are kept as text: the request is plain data
            object.__setattr__(self, name, None if value is None else str(value))
        object.__setattr__(self, "scenarios", tuple(parse_narrative(s) for s in self.scenarios))
        object.__setattr__(self, "years", tuple(int(y) for y in self.years))
        object.__setattr__(self, "hazards", tuple(self.hazards))
        object.__setattr__(self, "geocoders", tuple(self.geocoders))
        object.__setattr__(self, "per_site_limit", int(self.per_site_limit))
        plan_per_site(self.per_site_outputs, 0, limit=self.per_site_limit)  # fail early

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["scenarios"] = [s.value for s in self.scenarios]
        d["years"] = list(self.years)
        d["hazards"] = list(self.hazards)
        d["geocoders"] = list(self.geocoders)
        d["sites"] = redact(self.sites)  # a database URL may carry a password
        return {k: v for k, v in d.items() if v not in (None, ())}


def make_request(**options: Any) -> ScreeningRequest:
    """A request from user options as the CLI and the flow get them: an option that is None
    or empty takes the request's default, so defaults live in :class:`ScreeningRequest` only.
    """
    unknown = set(options) - set(ScreeningRequest.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown screening option(s): {', '.join(sorted(unknown))}")
    given = {k: (tuple(v) if isinstance(v, list | tuple) else v)
             for k, v in options.items() if v is not None and v != [] and v != ()}
    return ScreeningRequest(**given)


@dataclass(frozen=True, slots=True)
class Layer:
    """One unit of hazard work: a hazard for a narrative and year."""

    hazard: str
    scenario: Narrative
    year: int

    @property
    def key(self) -> str:
        return f"{self.hazard}/{self.scenario.value}/{self.year}"


@dataclass(slots=True)
class ScreeningRun:
    """What a run produced: the located sites, the per-site results (columnar), the shares
    and the manifest."""

    run_dir: Path | None
    sites: gpd.GeoDataFrame
    results: SiteResults
    shares: pd.DataFrame
    manifest: dict
    timings: dict[str, float] = field(default_factory=dict)
    #: Sites sampled per layer key, for the layers that had sites missing from the store.
    sampled: dict[str, int] = field(default_factory=dict)
    #: With Dask chunks (:func:`screen_on_dask`): the largest peak memory of a worker, bytes.
    worker_rss_peak: int | None = None

    @property
    def table(self) -> pd.DataFrame:
        """The long per-site table (one row per site x layer), built on request: for small
        runs and tests; :attr:`results` is the run's compact form."""
        return self.results.long_table()


# --------------------------------------------------------------------------- configuration

@lru_cache(maxsize=8)
def _catalog(catalog: str | None, thresholds: str | None) -> Catalog:
    return load_catalog(catalog, thresholds=thresholds)


def catalog_for(request: ScreeningRequest) -> Catalog:
    """The catalog of the request (packaged, merged with the user's catalog and thresholds)."""
    return _catalog(request.catalog, request.thresholds)


def plan_layers(catalog: Catalog, request: ScreeningRequest) -> list[Layer]:
    """Every hazard x scenario x year to compute, checked against the catalog.

    A hazard, scenario or year the catalog does not offer is an error naming what is
    available; nothing is skipped silently.
    """
    names = request.hazards or tuple(n for n, s in catalog.hazards.items() if s.default)
    layers = []
    for name in names:
        spec = catalog.hazard(name)
        for scenario in request.scenarios:
            if scenario not in spec.scenarios:
                raise CatalogError(
                    f"hazard {name!r} has no scenario {scenario.value!r}; "
                    f"available: {', '.join(s.value for s in spec.scenarios)}")
            for year in request.years:
                if year not in spec.years:
                    raise CatalogError(
                        f"hazard {name!r} has no year {year}; available: "
                        f"{', '.join(map(str, spec.years))}")
                layers.append(Layer(name, scenario, year))
    return layers


def open_data(request: ScreeningRequest) -> DataSource:
    """The data source of the request: a URL mirror, or a folder (its origin read from the
    demo-pack marker or from the sidecars ``sitescreen data fetch`` writes)."""
    root = request.data
    if root.startswith(("http://", "https://")):
        return DataSource.open(root)
    return DataSource.for_cache(root)


def result_store(request: ScreeningRequest) -> ResultStore:
    return ResultStore(Path(request.cache_dir) / "results")


# --------------------------------------------------------------------------- the steps

def preflight(request: ScreeningRequest) -> list[Layer]:
    """Everything that can be checked before the work: the plan against the catalog, the
    sites file (every problem at once), and that the output folder and the cache take writes
    (:func:`check_folders`). Callers run it before starting anything slow."""
    layers = plan_layers(catalog_for(request), request)
    load_sites(request)
    check_folders(request)
    return layers


def prepare_data(request: ScreeningRequest) -> DataSource:
    """Make the request's hazard data available and open it.

    With ``demo``, the SYNTHETIC demo pack is built when missing or outdated. A data folder
    that does not exist is an error that says how to get the data.
    """
    if request.demo:
        from sitescreen.synthetic import build_demo_pack, pack_is_current

        if not pack_is_current(request.data):
            log.warning("building the SYNTHETIC demo pack in %s", request.data)
            build_demo_pack(request.data)
    elif not request.data.startswith(("http://", "https://")) and (
            request.fetch or request.data == default_data_folder()):
        # The cache folder is made on first use; what it lacks, fetch_data says (or gets).
        Path(request.data).mkdir(parents=True, exist_ok=True)
    return open_data(request)


def fetch_data(request: ScreeningRequest, lon: np.ndarray, lat: np.ndarray) -> dict:
    """Before any hazard work: what the layers need of each dataset for these sites
    (:mod:`sitescreen.data.prepare`); with ``request.fetch`` get what is missing (small
    datasets whole, Aqueduct Floods by windows), else stop with one
    :class:`~sitescreen.errors.MissingDataError` listing it, its size and the command.
    A URL ``data`` is read remotely and the demo pack is complete: neither is planned.
    Returns what was fetched, per dataset (empty when nothing was missing)."""
    from sitescreen.data.prepare import fetch_missing, plan_data

    if request.demo or request.data.startswith(("http://", "https://")):
        return {}
    catalog = catalog_for(request)
    plan = plan_data(catalog, plan_layers(catalog, request), request.data, lon, lat)
    return fetch_missing(catalog, plan, fetch=request.fetch, sites=request.sites)


def load_sites(request: ScreeningRequest, *, password: str | None = None) -> gpd.GeoDataFrame:
    """Read and validate the sites source, and the weight column if any: every problem is
    reported at once, before any hazard is sampled. ``password``: of a PostGIS source, when
    not in ``PGPASSWORD`` (the flow's comes from a Secret block)."""
    from sitescreen.sites import read_sites

    return read_sites(request.sites, password=password, sheet=request.sheet,
                      weight=request.weight)


def check_folders(request: ScreeningRequest, *, out: bool = True) -> None:
    """Before any work: the cache and (with ``out``) the output folder take a probe write,
    and ``<out>/latest`` is the link this project keeps (:func:`outputs.run_folder.check_latest`)."""
    if out:
        check_writable(request.out, "output folder (--out)")
        check_latest(request.out)
    check_writable(request.cache_dir, "cache folder")


def locate_sites(sites: gpd.GeoDataFrame, request: ScreeningRequest, *,
                 geocoder_options: dict | None = None,
                 progress: Callable[[int, int], None] | None = None) -> gpd.GeoDataFrame:
    """Fill coordinates for sites that only have an address, with provenance columns.

    ``geocoder_options`` maps a provider name to its options (e.g. ``{"amap": {"key": k}}``).
    """
    from sitescreen.geocode import GeocodeCache, default_geocoders, geocode_sites

    cache = GeocodeCache(Path(request.cache_dir) / "geocode.sqlite")
    geocoders = default_geocoders(request.geocoders, **(geocoder_options or {}))
    return geocode_sites(sites, geocoders=geocoders, cache=cache,
                         overrides=request.overrides, refresh=request.refresh_geocodes,
                         progress=progress)


def coordinates(sites: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """lon/lat arrays for hazard sampling; unresolved sites (:func:`is_located`) are NaN, so
    they are never sampled."""
    located = is_located(sites)
    lon = pd.to_numeric(sites["lon"], errors="coerce").to_numpy(dtype="float64").copy()
    lat = pd.to_numeric(sites["lat"], errors="coerce").to_numpy(dtype="float64").copy()
    lon[~located] = np.nan
    lat[~located] = np.nan
    return lon, lat


def _fingerprints(layers: Sequence[Layer], request: ScreeningRequest) -> list[str]:
    """The layers' fingerprints, each data folder stamped once for all of them."""
    catalog, data, stamps = catalog_for(request), open_data(request), {}
    return [layer_fingerprint(catalog, data, layer.hazard, layer.scenario, layer.year,
                              stamps=stamps) for layer in layers]


def read_snapshot(request: ScreeningRequest, *, fingerprints: Sequence[str],
                  keys: np.ndarray | None = None) -> Snapshot | None:
    """The result store's snapshot of exactly these layers (one read for all of them, by
    their ``fingerprints``), or None; see :mod:`sitescreen.store`. ``keys``: the location
    keys of one chunk of a larger run, whose rows only are read."""
    return result_store(request).read_snapshot(fingerprints, keys=keys)


def check_layer(layer: Layer, fingerprint: str | None = None, *, lon: np.ndarray,
                lat: np.ndarray, request: ScreeningRequest,
                snapshot: Snapshot | None = None, keys: np.ndarray | None = None
                ) -> CachedLayer:
    """Which sites of ``layer`` the result store already holds for exactly this data and
    method (the layer's fingerprint, computed here unless given), and which are missing:
    from the run's ``snapshot`` when there is one, else from the layer's parts. ``keys``:
    the sites' location keys (:func:`sitescreen.store.location_keys`), computed once for
    every layer by the caller (here, unless given)."""
    if fingerprint is None:
        fingerprint = layer_fingerprint(catalog_for(request), open_data(request), layer.hazard,
                                        layer.scenario, layer.year)
    store = result_store(request)
    if snapshot is not None and snapshot.n_parts and fingerprint in snapshot.fingerprints:
        return store.cached_from_snapshot(snapshot, snapshot.fingerprints.index(fingerprint),
                                          lon, lat, keys=keys)
    return store.lookup(fingerprint, lon, lat, keys=keys)


def assess_missing(layer: Layer, cached: CachedLayer, *, lon: np.ndarray, lat: np.ndarray,
                   request: ScreeningRequest, data: DataSource | None = None) -> HazardResult:
    """Sample the sites of ``layer`` that the store lacks (pure: nothing is stored here).
    ``data``: the run's data source, opened once for every layer (here, unless given)."""
    idx = cached.missing
    context = HazardContext.build(catalog_for(request), layer.hazard,
                                  open_data(request) if data is None else data,
                                  cache_dir=request.cache_dir)
    hazard = load_hazard(context.spec)
    result = hazard.assess(lon[idx], lat[idx], scenario=layer.scenario, year=layer.year,
                           context=context)
    # Flags as a categorical of their text: one string per distinct flag, not per site.
    return replace(result, flags=as_text_categorical(result.flags))


def complete_layer(store: ResultStore, cached: CachedLayer, lon: np.ndarray, lat: np.ndarray,
                   computed: HazardResult | None) -> HazardResult:
    """Store the newly computed sites and return the layer's result for every site.

    Saving happens here, after the computation, so that a computation served from Prefect's
    task cache still fills this run's result store.
    """
    if computed is not None:
        idx = cached.missing
        store.save(cached.fingerprint, lon[idx], lat[idx], computed,
                   keys=None if cached.keys is None else cached.keys[idx])
    return store.assemble(cached, lon, lat, computed)


def keep_snapshot(results: Sequence[HazardResult], lon: np.ndarray, lat: np.ndarray,
                  request: ScreeningRequest, previous: Snapshot | None, *,
                  fingerprints: Sequence[str], keys: np.ndarray | None = None) -> None:
    """Add the sites missing from ``previous`` (all, without one) to the store's snapshot of
    the layers of these ``fingerprints``, so that the next run reads one snapshot instead of
    every layer; ``previous``'s damaged parts go, and its parts are merged when they are
    many (:meth:`sitescreen.store.ResultStore.write_snapshot`)."""
    result_store(request).write_snapshot(fingerprints, lon, lat, list(results),
                                         previous=previous, keys=keys)


def summarise(sites: pd.DataFrame, results: Sequence[HazardResult],
              request: ScreeningRequest, *, chunk_sites: int = DEFAULT_CHUNK_SITES
              ) -> tuple[SiteResults, pd.DataFrame]:
    """The per-site results (hazards and composites, columnar) and the shares table, both
    computed chunk by chunk of sites (:class:`sitescreen.aggregate.SiteResults`). The weight
    field was checked before the hazard work (:func:`check_weight`, in :func:`screen`)."""
    catalog = catalog_for(request)
    labels = {name: spec.label for name, spec in catalog.hazards.items()}
    columns = SiteResults.from_results(sites["site_id"].to_numpy(dtype=object), results,
                                       labels=labels)
    present = {r.hazard for r in results}
    composites = [c for c in catalog.composites.values() if set(c.components) & present]
    columns = columns.with_composites(composites, chunk_sites=chunk_sites)
    _add_cooling(columns, sites, catalog)
    return columns, columns.shares(sites, weight=request.weight, chunk_sites=chunk_sites)


def _add_cooling(columns: SiteResults, sites: pd.DataFrame, catalog: Catalog) -> None:
    """The data-center cooling columns (:func:`sitescreen.cooling.add_cooling_energy`) as
    columns of their layers, computed on the long rows of the data centers only."""

    kinds = {str(spec.params["data_center"].get("kind", "data_center"))
             for spec in catalog.hazards.values()
             if isinstance(spec.params.get("data_center"), dict)}
    present = {info.hazard for info in columns.layers if not info.is_composite}
    if not kinds or "kind" not in sites:
        return
    centers = sites["kind"].isin(kinds).to_numpy()
    if not centers.any():
        return
    keep = [i for i, info in enumerate(columns.layers) if info.hazard in present]
    part = columns.select(centers)
    ids = pd.Index(part.site_ids)
    rows = add_cooling_energy(part.long_table(keep), sites[centers], catalog=catalog)
    for i in keep:
        info = columns.layers[i]
        names = {col: f"extra_{info.hazard}_{col}" for col in COOLING_COLUMNS}
        if not all(name in rows.columns for name in names.values()):
            continue  # not a layer the cooling estimate reads
        sel = rows[(rows["hazard"] == info.hazard) & (rows["scenario"] == info.scenario)
                   & (rows["year"] == info.year)]
        pos = np.flatnonzero(centers)[ids.get_indexer(sel["site_id"])]
        for col, name in names.items():
            text = col == "dc_assumptions"
            values = np.full(len(columns), "" if text else np.nan,
                             dtype=object if text else "float64")
            values[pos] = sel[name].to_numpy(dtype=object if text else "float64")
            # Stored under the layer, so the long table names it extra_<hazard>_<col>, as
            # every reader of the cooling columns (report, GIS layer, field dictionary) does.
            columns.extra[i][col] = values


def check_weight(sites: pd.DataFrame, weight: str | None) -> None:
    """A weight field must be a site property with a number >= 0 for every site."""
    if weight is not None:
        if weight not in sites.columns:
            raise CatalogError(f"weight field {weight!r} is not a site property; "
                               f"site properties: {', '.join(map(str, sites.columns))}")
        values = pd.to_numeric(sites[weight], errors="coerce")
        bad = sites.loc[values.isna() | (values < 0), "site_id"].tolist()
        if bad:
            raise CatalogError(f"weight field {weight!r} must be a number >= 0 for every site; "
                               f"missing or invalid for: {', '.join(map(str, bad[:10]))}")


def per_site_plan(request: ScreeningRequest, n_sites: int) -> PerSitePlan:
    """The per-site files of a run of ``n_sites`` sites (``--per-site-outputs``)."""
    return plan_per_site(request.per_site_outputs, n_sites, limit=request.per_site_limit)


def write_outputs(sites: pd.DataFrame, results: SiteResults, shares_table: pd.DataFrame,
                  manifest: dict, request: ScreeningRequest) -> Path:
    """Render every output file of the run and write the run folder atomically; per-site
    files follow the request's ``per_site_outputs`` and are streamed chunk by chunk."""
    files = render_files(sites=sites, results=results, shares_table=shares_table,
                         manifest=manifest, out_root=request.out, report=request.report,
                         plan=per_site_plan(request, len(sites)), defer_report=True)
    return write_run(request.out, manifest["run_id"], files)


# --------------------------------------------------------------------------- running them

class Runner(Protocol):
    """How the steps of :func:`screen` are executed.

    ``call`` runs one step and returns its result; ``map`` runs a step once per item of the
    ``iterables`` (zipped), with the same ``constants`` for each, and returns the results in
    order, calling ``on_result(index, result)`` as each one is done (for progress). The
    Prefect flow's runner submits the steps as tasks.
    """

    def call(self, step: Callable, /, *args: Any, **kwargs: Any) -> Any: ...

    def map(self, step: Callable, /, *iterables: Iterable,
            on_result: Callable[[int, Any], None] | None = None, **constants: Any) -> list: ...


class PlainRunner:
    """Runs each step in this process, one after the other."""

    def call(self, step: Callable, /, *args: Any, **kwargs: Any) -> Any:
        return step(*args, **kwargs)

    def map(self, step: Callable, /, *iterables: Iterable,
            on_result: Callable[[int, Any], None] | None = None, **constants: Any) -> list:
        out = []
        for i, items in enumerate(zip(*iterables, strict=True)):
            out.append(step(*items, **constants))
            if on_result is not None:
                on_result(i, out[-1])
        return out


@dataclass(frozen=True, slots=True)
class Progress:
    """One event of a run, as :func:`screen` reports it to its ``progress`` callback.

    ``step`` is ``"load"``, ``"locate"``, ``"assess"`` or ``"write"``; ``started`` marks the
    beginning of a step, otherwise the event says what was done. ``done``/``total`` count the
    hazard layers of ``"assess"``; ``elapsed`` is seconds since the step began. ``str()`` is
    the line a log or a plain terminal shows.
    """

    step: str
    message: str
    started: bool = False
    done: int = 0
    total: int = 0
    elapsed: float = 0.0

    def __str__(self) -> str:
        return self.message


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def assess_sites(layers: Sequence[Layer], lon: np.ndarray, lat: np.ndarray,
                 request: ScreeningRequest, run: Runner, *,
                 layer_done: Callable[[int, int], None] | None = None, chunk: bool = False,
                 fingerprints: Sequence[str] | None = None
                 ) -> tuple[list[HazardResult], dict[str, int]]:
    """Every layer for these sites: the store's snapshot or layer parts where they hold the
    sites, sampled (and stored) where not; then the snapshot is brought up to date.
    Returns the layers' results and the sites sampled per layer key. ``layer_done(k, n)`` is
    called as layer ``k`` is done (``n`` sites sampled, 0 when all came from the store).
    ``chunk``: the sites are one chunk of a larger run (a Dask task), so only their rows of
    the snapshot are read. ``fingerprints``: the layers' own, when the caller has them (a
    Dask driver stamps the data folders once for all chunks)."""
    if fingerprints is None:
        fingerprints = _fingerprints(layers, request)
    keys = location_keys(lon, lat)  # once for every layer of the run
    snapshot = read_snapshot(request, fingerprints=fingerprints, keys=keys if chunk else None)
    cached = run.map(check_layer, layers, fingerprints, lon=lon, lat=lat, request=request,
                     snapshot=snapshot, keys=keys)
    # The checked layers hold their own rows: the snapshot's columns can go.
    snapshot = snapshot.held() if snapshot is not None else None
    todo = [i for i, c in enumerate(cached) if len(c.missing)]
    if layer_done is not None:
        for k, c in enumerate(cached):
            if not len(c.missing):
                layer_done(k, 0)

    def sampled_one(j: int, _result: Any) -> None:
        if layer_done is not None:
            layer_done(todo[j], len(cached[todo[j]].missing))

    data = open_data(request) if todo else None  # once for every layer to sample
    computed = dict(zip(todo, run.map(assess_missing, [layers[i] for i in todo],
                                      [cached[i] for i in todo], lon=lon, lat=lat,
                                      request=request, data=data, on_result=sampled_one),
                        strict=True))
    store = result_store(request)
    results = [complete_layer(store, c, lon, lat, computed.get(i))
               for i, c in enumerate(cached)]
    if todo or snapshot is None or not snapshot.n_parts or snapshot.damaged:
        keep_snapshot(results, lon, lat, request, snapshot, fingerprints=fingerprints,
                      keys=keys)
    return results, {layers[i].key: int(len(cached[i].missing)) for i in todo}


def _without_arrays(result: HazardResult) -> HazardResult:
    """A result's layer-level fields (for the manifest) with no sites."""
    empty = np.zeros(0)
    return HazardResult(
        hazard=result.hazard, scenario=result.scenario, year=result.year,
        pathway=result.pathway, units=result.units, threshold_set=result.threshold_set,
        datasets=result.datasets, method=result.method, values=empty,
        levels=empty.astype("int8"), level_low=empty.astype("int8"),
        level_high=empty.astype("int8"), flags=np.zeros(0, dtype=object),
        extra={k: np.zeros(0, dtype=np.asarray(v).dtype) for k, v in result.extra.items()},
        details=result.details)


def screen_chunk(request: ScreeningRequest, lon: np.ndarray, lat: np.ndarray,
                 site_ids: np.ndarray, *, fingerprints: Sequence[str] | None = None
                 ) -> tuple[SiteResults, list[HazardResult], dict, int]:
    """One chunk of sites through every layer and the composites: the unit of work of a
    Dask worker (:func:`screen_on_dask`). Returns the chunk's columnar results, the layers'
    fields for the manifest, the sites sampled per layer and the worker's peak memory so far
    (bytes). The worker reads and fills the result store itself, so the store must be on a
    path every worker reaches. ``fingerprints``: the layers' own, from the driver (which
    stamps the data folders once for every chunk)."""
    import resource

    catalog = catalog_for(request)
    layers = plan_layers(catalog, request)
    results, sampled = assess_sites(layers, lon, lat, request, PlainRunner(), chunk=True,
                                    fingerprints=fingerprints)
    labels = {name: spec.label for name, spec in catalog.hazards.items()}
    part = SiteResults.from_results(site_ids, results, labels=labels)
    present = {r.hazard for r in results}
    part = part.with_composites([c for c in catalog.composites.values()
                                 if set(c.components) & present])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return part, [_without_arrays(r) for r in results], sampled, int(rss)


def spatial_order(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Site positions along a Z-order (Morton) curve over a 0.01-degree grid: consecutive
    sites are near each other, so a chunk of them reads few raster blocks. Sites without
    coordinates come last.

    >>> spatial_order(np.array([120.0, 0.0, 120.01, np.nan]), np.array([30.0, 0.0, 30.0, 1.0]))
    array([1, 0, 2, 3])
    """
    ok = np.isfinite(lon) & np.isfinite(lat)
    x = np.where(ok, np.clip((np.nan_to_num(lon) + 180.0) * 100.0, 0, 2**16 - 1), 0)
    y = np.where(ok, np.clip((np.nan_to_num(lat) + 90.0) * 100.0, 0, 2**16 - 1), 0)
    x, y = x.astype(np.uint64), y.astype(np.uint64)
    code = np.zeros(len(x), dtype=np.uint64)
    for bit in range(16):
        b = np.uint64(bit)
        code |= ((x >> b) & np.uint64(1)) << np.uint64(2 * bit)
        code |= ((y >> b) & np.uint64(1)) << np.uint64(2 * bit + 1)
    code[~ok] = np.iinfo(np.uint64).max
    return np.argsort(code, kind="stable")


def _dask_client(address: str, workers: int):
    """A distributed client: on a LocalCluster of ``workers`` single-threaded processes for
    ``"local"``, else on the scheduler at ``address``."""
    from distributed import Client, LocalCluster

    if address == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        return Client(cluster), cluster
    return Client(address), None


def screen_on_dask(request: ScreeningRequest, sites: pd.DataFrame, *, address: str,
                   workers: int = 2, chunk_sites: int = DEFAULT_CHUNK_SITES,
                   say: Callable[[str], None] | None = None
                   ) -> tuple[SiteResults, list[HazardResult], dict[str, int], int]:
    """Every layer and composite for ``sites``, chunk by chunk of spatially near sites, as
    tasks on a Dask cluster (:func:`screen_chunk`). Returns the results in site order, the
    layers' fields (of every chunk: :func:`union_layer_fields`), the sites sampled per layer
    and the largest worker peak memory (bytes). The data folders are stamped here, once for
    every chunk; when the result store's snapshot had
    :data:`~sitescreen.store.SNAPSHOT_MAX_PARTS` parts or more before the run, the chunks'
    parts are then merged, as a single-process run merges them."""
    lon, lat = coordinates(sites)
    ids = sites["site_id"].to_numpy(dtype=object)
    order = spatial_order(lon, lat)
    parts = [order[a:a + chunk_sites] for a in range(0, len(order), max(1, chunk_sites))]
    fingerprints = _fingerprints(plan_layers(catalog_for(request), request), request)
    store = result_store(request)
    merge = len(store.snapshot_paths(fingerprints)) >= SNAPSHOT_MAX_PARTS
    client, cluster = _dask_client(address, workers)
    metas: dict[int, list[HazardResult]] = {}
    sampled: dict[str, int] = {}
    rss = 0

    def arrived() -> Iterator[tuple[np.ndarray, SiteResults]]:
        nonlocal rss
        from distributed import as_completed

        futures = {client.submit(screen_chunk, request, lon[idx], lat[idx], ids[idx],
                                 fingerprints=fingerprints, pure=False,
                                 key=f"screen-chunk-{k}"): k
                   for k, idx in enumerate(parts)}
        for done, future in enumerate(as_completed(list(futures)), start=1):
            part, layer_meta, chunk_sampled, worker_rss = future.result()
            future.release()
            metas[futures[future]] = layer_meta
            for key, n in chunk_sampled.items():
                sampled[key] = sampled.get(key, 0) + n
            rss = max(rss, worker_rss)
            if say is not None:
                say(f"chunk {done}/{len(parts)}: {len(part)} sites")
            yield parts[futures[future]], part

    try:
        # Each chunk is copied into place as it arrives (the driver never holds them all).
        joined = SiteResults.scatter(ids, arrived())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if merge:
        store.merge_snapshot(fingerprints, location_keys(lon, lat))
    # In chunk order, whichever finished first: the same run gives the same manifest.
    return joined, union_layer_fields([metas[k] for k in sorted(metas)]), sampled, rss


def union_layer_fields(chunks: Sequence[Sequence[HazardResult]]) -> list[HazardResult]:
    """The layers' fields (results without sites, one list per chunk, in chunk order) of a
    run screened in chunks: each layer's ``details`` hold what every chunk read
    (:func:`union_details`); its other fields are the same in every chunk."""
    if not chunks:
        return []
    return [replace(first, details=union_details([chunk[i].details for chunk in chunks]))
            for i, first in enumerate(chunks[0])]


def union_details(details: Sequence[Any]) -> Any:
    """Layer details of several chunks as one run's: dicts key by key (in the order the
    keys first appear), lists of text (files read) as their sorted union, any other value
    the first chunk's; a layer made synthetic by a file of one chunk is synthetic.

    >>> union_details([{"files_read": ["a.tif"], "n": 1}, {"files_read": ["b.tif"], "n": 2}])
    {'files_read': ['a.tif', 'b.tif'], 'n': 1}
    """
    from sitescreen.data.sources import origin_details

    first = details[0]
    if all(d == first for d in details[1:]):
        return first
    if all(isinstance(d, dict) for d in details):
        names = dict.fromkeys(k for d in details for k in d)
        out = {k: union_details([d[k] for d in details if k in d]) for k in names}
        if "data_origin" in out:  # a synthetic file read by any chunk marks the layer
            out.update(origin_details(out["data_origin"], out.get("synthetic_files", ())))
        return out
    if all(isinstance(d, list) for d in details) and all(
            isinstance(x, str) for d in details for x in d):
        return sorted({x for d in details for x in d})
    return first


def screen(request: ScreeningRequest, *, write: bool = True, runner: Runner | None = None,
           progress: Callable[[Progress], None] | None = None, dask: str | None = None,
           dask_workers: int = 2, chunk_sites: int = DEFAULT_CHUNK_SITES) -> ScreeningRun:
    """Run the whole screening: the one sequence of steps, plain or as Prefect tasks.

    Parameters
    ----------
    request : what to screen (:func:`make_request` builds one from user options).
    write : write the run folder (False: compute only, e.g. for benchmarks).
    runner : how steps are executed; :class:`PlainRunner` (the default) calls them in turn.
    progress : called with a :class:`Progress` event as each step begins and ends and as
        each hazard layer is done; ``str(event)`` is a line for a log (``progress=print``).
    dask : a Dask scheduler address, or ``"local"`` for a LocalCluster of ``dask_workers``
        processes: the sites are then screened chunk by chunk as Dask tasks
        (:func:`screen_on_dask`); each worker's memory follows ``chunk_sites``.
    chunk_sites : sites per chunk of composites, counts, per-site outputs and Dask tasks.
    """
    run = runner or PlainRunner()
    say = progress or (lambda event: log.info("%s", event))
    timings: dict[str, float] = {}
    layers = plan_layers(catalog_for(request), request)
    with timed(timings, "prepare_data"):
        data = run.call(prepare_data, request)
    say(Progress("load", f"reading {request.sites}", started=True))
    with timed(timings, "load_sites"):
        sites = run.call(load_sites, request)
    say(Progress("load", f"loaded {len(sites)} sites from {request.sites}",
                 elapsed=timings["load_sites"]))
    check_folders(request, out=write)  # writable cache and --out before any work
    say(Progress("locate", "locating the sites", started=True))
    with timed(timings, "locate_sites"):
        sites = run.call(locate_sites, sites, request)
    check_weight(sites, request.weight)  # before the slow part
    lon, lat = coordinates(sites)
    say(Progress("locate", f"located {int(np.isfinite(lon).sum())} of {len(sites)} sites",
                 elapsed=timings["locate_sites"]))
    with timed(timings, "fetch_data"):
        fetched = run.call(fetch_data, request, lon, lat)
    if fetched:
        say(Progress("fetch", "fetched " + "; ".join(f"{d}: {_fetched(r)}"
                                                     for d, r in fetched.items())))
        data = open_data(request)  # the origin of what was fetched (upstream or mirror)
    worker_rss = None
    start = time.perf_counter()
    say(Progress("assess", f"assessing {len(layers)} hazard layers", started=True,
                 total=len(layers)))
    if dask:
        with timed(timings, "assess (dask)"):
            columns, results, sampled, worker_rss = screen_on_dask(
                request, sites, address=dask, workers=dask_workers, chunk_sites=chunk_sites,
                say=lambda msg: say(Progress("assess", msg)))
        with timed(timings, "aggregate"):
            shares_table = columns.shares(sites, weight=request.weight, chunk_sites=chunk_sites)
    else:
        done = 0

        def layer_done(k: int, n_missing: int) -> None:
            nonlocal done
            done += 1
            what = (f"{n_missing} of {len(lon)} sites sampled" if n_missing else
                    "all sites from the result store")
            say(Progress("assess", f"[{done}/{len(layers)}] {layers[k].key}: {what}",
                         done=done, total=len(layers), elapsed=time.perf_counter() - start))

        with timed(timings, "assess"):
            results, sampled = assess_sites(layers, lon, lat, request, run,
                                            layer_done=layer_done)
        with timed(timings, "aggregate"):
            columns, shares_table = run.call(summarise, sites, results, request)
    elapsed = timings.get("assess", timings.get("assess (dask)", 0.0))
    say(Progress("assess", f"sampled {len(sampled)} of {len(layers)} layers "
                 f"({sum(sampled.values())} site-layers); {len(layers) - len(sampled)} came "
                 "whole from the result store", done=len(layers), total=len(layers),
                 elapsed=elapsed))
    run_id = request.run_id or new_run_id(salt=sites.attrs.get("source_sha256", ""))
    manifest = build_manifest(request=request.to_dict(), run_id=run_id,
                              catalog=catalog_for(request), data=data, sites=sites,
                              results=results, timings=timings,
                              input_sha256=sites.attrs.get("source_sha256"),
                              geocoders=request.geocoders, fetched=fetched)
    manifest["per_site_outputs"] = per_site_plan(request, len(sites)).to_dict()
    results = []  # the columnar results hold the same numbers; the flag strings go
    run_dir = None
    if write:
        say(Progress("write", "writing the run folder", started=True))
        with timed(timings, "write"):
            run_dir = run.call(write_outputs, sites, columns, shares_table, manifest, request)
        say(Progress("write", f"wrote {run_dir}", elapsed=timings["write"]))
    return ScreeningRun(run_dir, sites, columns, shares_table, manifest, timings, sampled,
                        worker_rss_peak=worker_rss)


def _fetched(record: dict) -> str:
    from sitescreen.data.prepare import human_bytes

    if "files_fetched" in record:
        return (f"{record['cells_fetched']} windows of {record['files_fetched']} files, "
                f"{human_bytes(record['bytes'])} in {record['requests']} requests")
    return f"{len(record['files'])} file(s), {human_bytes(record['bytes'])}"


def run_summary(run: ScreeningRun) -> dict:
    """What a run reports to its caller (the CLI, a flow's return value): plain JSON data."""
    from sitescreen.outputs.summary import (
        HEADLINE_HAZARDS,
        format_shares_table,
        unresolved_lines,
        unresolved_record,
    )

    origin = run.manifest["data_origin"]
    weight = run.manifest.get("request", {}).get("weight")
    return {"run_dir": str(run.run_dir) if run.run_dir else None,
            "run_id": run.manifest["run_id"], "data_origin": origin,
            "n_sites": int(len(run.sites)), "sampled": dict(run.sampled),
            "table": format_shares_table(run.shares, hazards=HEADLINE_HAZARDS,
                                         data_origin=origin),
            "unresolved": unresolved_record(run.sites, weight),
            "unresolved_lines": unresolved_lines(
                run.sites, pd.Series(~is_located(run.sites), index=run.sites.index),
                weight=weight)}
