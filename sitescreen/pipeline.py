"""The screening pipeline as plain functions: each step takes and returns plain data.

``flows/screen.py`` wraps these steps as Prefect tasks; :func:`screen` runs them in order
without Prefect. No science lives here: hazards compute, ``aggregate`` counts, ``outputs``
writes; this module only connects them and records provenance and timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from sitescreen import __version__
from sitescreen.aggregate import add_composites, results_table, shares
from sitescreen.catalog import Catalog, load_catalog
from sitescreen.data.sources import DataOrigin, DataSource
from sitescreen.errors import CatalogError
from sitescreen.geocode import GEOCODE_COLUMNS
from sitescreen.hazards import HazardContext, HazardResult, load_hazard
from sitescreen.outputs.run_folder import (
    check_run_id,
    csv_writer,
    geojson_writer,
    json_bytes,
    new_run_id,
    site_features,
    write_run,
)
from sitescreen.scenarios import Narrative, parse_narrative
from sitescreen.store import CachedLayer, ResultStore, layer_fingerprint, location_digest

__all__ = [
    "ScreeningRequest",
    "ScreeningRun",
    "make_request",
    "Layer",
    "plan_layers",
    "load_sites",
    "locate_sites",
    "assess_layer",
    "open_data",
    "location_digest",
    "check_store",
    "assess_missing",
    "complete_layer",
    "summarise",
    "build_manifest",
    "render_files",
    "screen",
    "SITE_OUTPUT_COLUMNS",
]

log = logging.getLogger(__name__)

DEFAULT_YEARS = (2030, 2050)

SITE_OUTPUT_COLUMNS = ["site_id", "name", "company", "kind", "address", "city", "country",
                       "lon", "lat"]


@dataclass(frozen=True, slots=True)
class ScreeningRequest:
    """What to screen, against which data, and where to write."""

    sites: str
    data: str
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
    cache_dir: str = "cache"
    run_id: str | None = None
    #: Charts and the Markdown/HTML report (matplotlib rendering takes seconds).
    report: bool = True

    def __post_init__(self) -> None:
        if self.run_id is not None:
            check_run_id(self.run_id)  # fail before the work, not when writing
        object.__setattr__(self, "scenarios", tuple(parse_narrative(s) for s in self.scenarios))
        object.__setattr__(self, "years", tuple(int(y) for y in self.years))
        object.__setattr__(self, "hazards", tuple(self.hazards))
        object.__setattr__(self, "geocoders", tuple(self.geocoders))

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["scenarios"] = [s.value for s in self.scenarios]
        d["years"] = list(self.years)
        d["hazards"] = list(self.hazards)
        d["geocoders"] = list(self.geocoders)
        return {k: v for k, v in d.items() if v not in (None, ())}


def make_request(*, sites: str, data: str, out: str = "results",
                 scenarios: Sequence[str] | None = None, years: Sequence[int] | None = None,
                 hazards: Sequence[str] | None = None, weight: str | None = None,
                 catalog: str | None = None, thresholds: str | None = None,
                 geocoders: Sequence[str] | None = None, overrides: str | None = None,
                 refresh_geocodes: bool = False, cache_dir: str = "cache",
                 run_id: str | None = None, report: bool = True) -> ScreeningRequest:
    """A request from optional user options (None: the defaults), as the CLI and flow get them."""
    return ScreeningRequest(
        sites=str(sites), data=str(data), out=str(out),
        scenarios=tuple(scenarios) if scenarios else tuple(Narrative),
        years=tuple(years) if years else DEFAULT_YEARS, hazards=tuple(hazards or ()),
        weight=weight, catalog=catalog, thresholds=thresholds,
        geocoders=tuple(geocoders) if geocoders else ("offline",), overrides=overrides,
        refresh_geocodes=refresh_geocodes, cache_dir=cache_dir, run_id=run_id, report=report)


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
    run_dir: Path | None
    sites: gpd.GeoDataFrame
    table: pd.DataFrame
    shares: pd.DataFrame
    manifest: dict
    timings: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _catalog(catalog: str | None, thresholds: str | None) -> Catalog:
    return load_catalog(catalog, thresholds=thresholds)


def catalog_for(request: ScreeningRequest) -> Catalog:
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


def load_sites(path: str | Path) -> gpd.GeoDataFrame:
    """Read and validate the sites file; every problem is reported at once."""
    from sitescreen.sites import read_sites

    return read_sites(path)


def locate_sites(sites: gpd.GeoDataFrame, request: ScreeningRequest,
                 progress: Callable[[int, int], None] | None = None,
                 geocoder_options: dict | None = None) -> gpd.GeoDataFrame:
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
    """lon/lat arrays for hazard sampling; unresolved sites are NaN (level 0)."""
    lon = pd.to_numeric(sites["lon"], errors="coerce").to_numpy(dtype="float64")
    lat = pd.to_numeric(sites["lat"], errors="coerce").to_numpy(dtype="float64")
    return lon, lat


def assess_layer(lon: np.ndarray, lat: np.ndarray, layer: Layer, *, catalog: Catalog,
                 data: DataSource, cache_dir: str | None = None) -> HazardResult:
    """Run one hazard plug-in for one narrative and year."""
    context = HazardContext.build(catalog, layer.hazard, data, cache_dir=cache_dir)
    hazard = load_hazard(context.spec)
    return hazard.assess(lon, lat, scenario=layer.scenario, year=layer.year, context=context)


def open_data(root: str | Path) -> DataSource:
    """The data source for ``--data``: a URL mirror, or a folder (its origin read from the
    demo-pack marker or from the sidecars ``sitescreen data fetch`` writes)."""
    root = str(root)
    if root.startswith(("http://", "https://")):
        return DataSource.open(root)
    return DataSource.for_cache(root)


def result_store(request: ScreeningRequest) -> ResultStore:
    return ResultStore(Path(request.cache_dir) / "results")


def check_store(store: ResultStore, lon: np.ndarray, lat: np.ndarray, layer: Layer, *,
                catalog: Catalog, data: DataSource) -> CachedLayer:
    """Which sites of ``layer`` already have results for exactly this data and method."""
    fingerprint = layer_fingerprint(catalog, data, layer.hazard, layer.scenario, layer.year)
    return store.lookup(fingerprint, lon, lat)


def assess_missing(cached: CachedLayer, lon: np.ndarray, lat: np.ndarray, layer: Layer, *,
                   catalog: Catalog, data: DataSource,
                   cache_dir: str | None = None) -> HazardResult:
    """Sample only the sites the store lacks (a pure computation: nothing is stored)."""
    idx = cached.missing
    return assess_layer(lon[idx], lat[idx], layer, catalog=catalog, data=data,
                        cache_dir=cache_dir)


def complete_layer(store: ResultStore, cached: CachedLayer, lon: np.ndarray, lat: np.ndarray,
                   computed: HazardResult | None) -> HazardResult:
    """Store the newly computed sites and return the layer's result for every site.

    Saving happens here, after the computation, so that a computation served from Prefect's
    task cache still fills this run's result store.
    """
    if computed is not None:
        idx = cached.missing
        store.save(cached.fingerprint, lon[idx], lat[idx], computed)
    return store.assemble(cached, lon, lat, computed)


def summarise(sites: pd.DataFrame, results: Sequence[HazardResult], *, catalog: Catalog,
              weight: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long per-site table (hazards and composites) and the shares table."""
    if weight is not None:
        if weight not in sites.columns:
            raise CatalogError(f"weight field {weight!r} is not a site property; "
                               f"site properties: {', '.join(map(str, sites.columns))}")
        values = pd.to_numeric(sites[weight], errors="coerce")
        bad = sites.loc[values.isna() | (values < 0), "site_id"].tolist()
        if bad:
            raise CatalogError(f"weight field {weight!r} must be a number >= 0 for every site; "
                               f"missing or invalid for: {', '.join(map(str, bad[:10]))}")
    labels = {name: spec.label for name, spec in catalog.hazards.items()}
    table = results_table(sites["site_id"].tolist(), results, labels=labels)
    present = set(table["hazard"].unique())
    composites = [c for c in catalog.composites.values() if set(c.components) & present]
    table = add_composites(table, composites)
    return table, shares(table, sites, weight=weight)


def _datasets_used(catalog: Catalog, results: Sequence[HazardResult]) -> list[dict]:
    used = sorted({d for r in results for d in r.datasets})
    return [catalog.dataset(d).to_dict() for d in used]


def build_manifest(*, request: ScreeningRequest, run_id: str, catalog: Catalog, data: DataSource,
                   sites: pd.DataFrame, results: Sequence[HazardResult], timings: dict,
                   input_sha256: str | None = None) -> dict:
    """Everything an output says, traceable: inputs, data, thresholds, pathways, method."""
    precision_counts = (sites["geocode_precision"].fillna("").value_counts().to_dict()
                        if "geocode_precision" in sites else {})
    layers = []
    for r in results:
        layers.append({
            "hazard": r.hazard, "scenario": r.scenario.value, "year": r.year,
            "pathway": r.pathway.to_dict(), "units": r.units, "threshold_set": r.threshold_set,
            "datasets": list(r.datasets), "method": r.method, "details": r.details,
        })
    used_sets = sorted({r.threshold_set for r in results})
    return {
        "sitescreen_version": __version__,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_origin": data.origin.value,
        "data_origin_note": _origin_note(data.origin),
        "request": request.to_dict(),
        "inputs": {"sites": {"path": str(request.sites), "sha256": input_sha256,
                             "n_sites": int(len(sites))}},
        "data_source": data.to_dict(),
        "datasets": _datasets_used(catalog, results),
        "catalog_sources": list(catalog.sources),
        "threshold_sets": [catalog.threshold_set(n).to_dict() for n in used_sets],
        "composites": [c.to_dict() for c in catalog.composites.values()],
        "scenario_crosswalk": [p.to_dict() for p in sorted(
            {r.pathway for r in results}, key=lambda p: (p.family, p.narrative, p.year))],
        "layers": layers,
        "geocoding": {"providers": list(request.geocoders),
                      "precision_counts": precision_counts,
                      "location_source_counts": sites["location_source"].value_counts().to_dict()
                      if "location_source" in sites else {}},
        "definitions": {
            "levels": "1 very low, 2 low, 3 medium, 4 high, 5 very high; 0/empty: no data",
            "medium_plus": "share of screened sites at level 3 or above",
            "percent_denominator": "sites_screened (sites with a location and a level); "
                                   "sites_unresolved and sites_no_data are reported beside it",
            "range": "medium_plus_pct_low/high: the share with every site at the low/high end "
                     "of its ensemble or uncertainty range",
        },
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def _origin_note(origin: DataOrigin) -> str:
    if origin == DataOrigin.SYNTHETIC_DEMO:
        return ("SYNTHETIC DEMO DATA: generated by 'sitescreen demo-data' in the upstream file "
                "formats. These numbers are NOT hazard data and must not be reported.")
    return f"hazard data read from a {origin.value} source"


def render_files(*, sites: pd.DataFrame, table: pd.DataFrame, shares_table: pd.DataFrame,
                 manifest: dict, out_root: str | Path | None = None,
                 report: bool = True) -> dict[str, bytes | Callable[[Path], None]]:
    """All output files of a run, ready for :func:`outputs.write_run`.

    With ``out_root``, the run is compared with the previous run of the same sites file
    there (``changes.json``/``changes.csv`` and a section of the report).
    """
    from functools import partial

    from sitescreen.outputs.changes import changes_table, compare_runs, find_previous_run
    from sitescreen.outputs.geopackage import (
        GPKG_FILE,
        STYLE_FILE,
        footprint_files,
        level_style_qml,
        write_geopackage,
    )

    files = _core_files(sites=sites, table=table, shares_table=shares_table, manifest=manifest)
    changes = None
    if out_root is not None:
        previous = find_previous_run(out_root, manifest["request"]["sites"],
                                     before_run_id=manifest["run_id"])
        changes = compare_runs(previous, sites=sites, table=table, manifest=manifest)
        files["changes.json"] = json_bytes(changes)
        files["changes.csv"] = changes_table(changes).to_csv(index=False).encode()
    if report:
        from sitescreen.outputs.charts import (
            render_charts,  # matplotlib: imported only when charts are wanted
        )
        from sitescreen.outputs.report import render_report

        chart_files = render_charts(shares_table, sites, table, manifest=manifest)
        files.update(chart_files)
        files.update(render_report(shares=shares_table, sites=sites, table=table,
                                   manifest=manifest, charts=chart_files, changes=changes))
    files[GPKG_FILE] = partial(write_geopackage, sites=sites, table=table, manifest=manifest)
    files[STYLE_FILE] = level_style_qml()
    files.update(footprint_files(sites, table, manifest=manifest))  # footprint sites only
    return files


def _core_files(*, sites: pd.DataFrame, table: pd.DataFrame, shares_table: pd.DataFrame,
                manifest: dict) -> dict[str, bytes | Callable[[Path], None]]:
    """GeoJSON, summary tables and manifest: the files every run has."""
    origin = manifest["data_origin"]
    extras = [c for c in sites.columns if c not in SITE_OUTPUT_COLUMNS
              and c not in GEOCODE_COLUMNS and c not in ("geometry", "input_ref")]
    site_columns = SITE_OUTPUT_COLUMNS + [c for c in GEOCODE_COLUMNS if c in sites] + extras
    fc = site_features(sites, table, data_origin=origin, site_columns=site_columns,
                       lazy=True)
    fc["name"] = "sitescreen results"
    fc["sitescreen"] = {"run_id": manifest["run_id"], "data_origin": origin,
                        "data_origin_note": manifest["data_origin_note"],
                        "sitescreen_version": manifest["sitescreen_version"],
                        "manifest": "manifest.json"}
    shares_out = shares_table.assign(data_origin=origin)
    summary = {
        "header": {"run_id": manifest["run_id"], "data_origin": origin,
                   "data_origin_note": manifest["data_origin_note"],
                   "threshold_sets": [t["name"] for t in manifest["threshold_sets"]],
                   "definitions": manifest["definitions"]},
        "shares": shares_out.to_dict("records"),
    }
    header = (f"# sitescreen {manifest['sitescreen_version']} run {manifest['run_id']}; "
              f"data_origin={origin}; {manifest['data_origin_note']}\n")
    return {
        "sites.geojson": geojson_writer(fc),
        "summary.csv": (header + shares_out.to_csv(index=False, float_format="%.4f")).encode(),
        "summary.json": json_bytes(summary),
        "site_results.csv": csv_writer(table.assign(data_origin=origin), comment=header),
        "manifest.json": json_bytes(manifest),
    }


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def screen(request: ScreeningRequest, *, write: bool = True,
           progress: Callable[[str], None] | None = None) -> ScreeningRun:
    """Run the whole screening without Prefect (the flow runs the same steps as tasks)."""
    say = progress or (lambda msg: log.info(msg))
    timings: dict[str, float] = {}
    catalog = catalog_for(request)
    layers = plan_layers(catalog, request)
    data = open_data(request.data)
    store = result_store(request)
    with timed(timings, "load_sites"):
        sites = load_sites(request.sites)
    say(f"loaded {len(sites)} sites from {request.sites}")
    with timed(timings, "geocode"):
        sites = locate_sites(sites, request)
    lon, lat = coordinates(sites)
    results = []
    for i, layer in enumerate(layers, 1):
        with timed(timings, f"hazard:{layer.hazard}"):
            cached = check_store(store, lon, lat, layer, catalog=catalog, data=data)
            computed = None
            if len(cached.missing):
                computed = assess_missing(cached, lon, lat, layer, catalog=catalog, data=data,
                                          cache_dir=request.cache_dir)
            results.append(complete_layer(store, cached, lon, lat, computed))
        say(f"[{i}/{len(layers)}] {layer.key}: {len(cached.missing)} of {len(lon)} sites sampled")
    with timed(timings, "aggregate"):
        table, shares_table = summarise(sites, results, catalog=catalog, weight=request.weight)
    run_id = request.run_id or new_run_id(salt=sites.attrs.get("source_sha256", ""))
    manifest = build_manifest(request=request, run_id=run_id, catalog=catalog, data=data,
                              sites=sites, results=results, timings=timings,
                              input_sha256=sites.attrs.get("source_sha256"))
    run_dir = None
    if write:
        files = render_files(sites=sites, table=table, shares_table=shares_table,
                             manifest=manifest, out_root=request.out, report=request.report)
        run_dir = write_run(request.out, run_id, files)
        say(f"wrote {run_dir}")
    return ScreeningRun(run_dir, sites, table, shares_table, manifest, timings)
