"""The screening flow: sites -> locations -> hazard layers (mapped) -> shares -> outputs.

Each task wraps one library call from :mod:`sitescreen.pipeline`; the same steps run without
Prefect through :func:`sitescreen.pipeline.screen`. Run it directly::

    python flows/screen.py sites.geojson --data cache/demo-pack

or through ``sitescreen screen``. With no ``PREFECT_API_URL`` Prefect starts a temporary
local server; set ``PREFECT_API_URL`` to report to a running server.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from sitescreen import pipeline
from sitescreen.errors import DownloadError, GeocodeError
from sitescreen.hazards import HazardResult
from sitescreen.outputs.run_folder import new_run_id, write_run
from sitescreen.outputs.summary import HEADLINE_HAZARDS, disclosure_sentences, format_shares_table


def _transient(task, task_run, state) -> bool:
    """Retry only I/O that may succeed later (network, server errors), not bad input."""
    try:
        state.result()
    except (DownloadError, GeocodeError, ConnectionError, TimeoutError):
        return True
    except Exception:
        return False
    return False


@task(name="load-sites", cache_policy=NO_CACHE)
def load_sites(path: str):
    return pipeline.load_sites(path)


AMAP_SECRET_BLOCK = "sitescreen-amap-key"


def _geocoder_options(request: pipeline.ScreeningRequest) -> dict:
    """The AMap key from a Prefect Secret block when the environment does not give one.

    The key is handed to the provider only; it is never logged or written to outputs."""
    if "amap" not in request.geocoders or os.environ.get("SITESCREEN_AMAP_KEY"):
        return {}
    from prefect.blocks.system import Secret

    try:
        key = Secret.load(AMAP_SECRET_BLOCK).get()
    except ValueError:
        return {}  # no block: the provider reports the missing key itself
    return {"amap": {"key": key}}


@task(name="locate-sites", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10],
      retry_condition_fn=_transient)
def locate_sites(sites, request: pipeline.ScreeningRequest):
    return pipeline.locate_sites(sites, request, geocoder_options=_geocoder_options(request))


def _layer_cache_key(context, parameters) -> str:
    """Explicit cache key: the layer's fingerprint (hazard entry, threshold set, dataset
    versions, data folder stamp, sitescreen version) plus the sampled locations."""
    cached = parameters["cached"]
    idx = cached.missing
    locations = pipeline.location_digest(parameters["lon"][idx], parameters["lat"][idx])
    return f"sitescreen-{cached.fingerprint}-{locations}"


@task(name="check-result-store", cache_policy=NO_CACHE)
def check_store(layer: pipeline.Layer, lon: np.ndarray, lat: np.ndarray,
                request: pipeline.ScreeningRequest):
    return pipeline.check_store(pipeline.result_store(request), lon, lat, layer,
                                catalog=pipeline.catalog_for(request),
                                data=pipeline.open_data(request.data))


@task(name="assess-layer",
      task_run_name="assess-{layer.hazard}-{layer.scenario}-{layer.year}",
      cache_key_fn=_layer_cache_key, persist_result=True, cache_expiration=timedelta(days=30),
      retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_transient)
def assess_layer(layer: pipeline.Layer, cached, lon: np.ndarray, lat: np.ndarray,
                 request: pipeline.ScreeningRequest) -> HazardResult:
    """Sample the sites of one layer that the result store does not hold yet."""
    return pipeline.assess_missing(cached, lon, lat, layer,
                                   catalog=pipeline.catalog_for(request),
                                   data=pipeline.open_data(request.data),
                                   cache_dir=request.cache_dir)


@task(name="summarise", cache_policy=NO_CACHE)
def summarise(sites, results, request: pipeline.ScreeningRequest):
    return pipeline.summarise(sites, results, catalog=pipeline.catalog_for(request),
                              weight=request.weight)


@task(name="write-outputs", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=_transient)
def write_outputs(sites, table, shares, results, request: pipeline.ScreeningRequest,
                  timings: dict) -> str:
    catalog = pipeline.catalog_for(request)
    data = pipeline.open_data(request.data)
    run_id = request.run_id or new_run_id(salt=sites.attrs.get("source_sha256", ""))
    manifest = pipeline.build_manifest(request=request, run_id=run_id, catalog=catalog,
                                       data=data, sites=sites, results=results, timings=timings,
                                       input_sha256=sites.attrs.get("source_sha256"))
    files = pipeline.render_files(sites=sites, table=table, shares_table=shares,
                                  manifest=manifest, out_root=request.out,
                                  report=request.report)
    return str(write_run(request.out, run_id, files))


def _publish_artifacts(shares, run_dir: str, origin: str) -> None:
    cols = ["hazard", "scenario", "year", "pathway", "sites_screened", "sites_no_data",
            "sites_unresolved", *(f"pct_level_{i}" for i in range(1, 6)), "medium_plus_pct",
            "medium_plus_pct_low", "medium_plus_pct_high"]
    rows = shares[cols].round(1).astype(object).where(shares[cols].notna(), None)
    create_table_artifact(key="risk-shares", table=rows.to_dict("records"),
                          description=f"Share of sites per risk level (data origin: {origin})")
    sentences = "\n".join(f"- {s}" for s in disclosure_sentences(shares))
    warning = ("**SYNTHETIC DEMO DATA: not hazard data, do not report.**\n\n"
               if origin == "synthetic-demo" else "")
    create_markdown_artifact(
        key="screening-summary",
        markdown=f"{warning}## Screening summary\n\n{sentences}\n\nOutputs: `{run_dir}`\n",
        description="Disclosure sentences generated from the shares")
    report = Path(run_dir) / "report.html"
    if report.is_file():
        create_link_artifact(key="screening-report", link=report.resolve().as_uri(),
                             link_text="HTML report", description=f"Report of run {run_dir}")


@flow(name="screen-sites", flow_run_name="screen-{sites}", log_prints=True)
def screen_flow(
    sites: str = "sites.geojson",
    data: str = "cache/demo-pack",
    out: str = "results",
    scenarios: list[str] | None = None,
    years: list[int] | None = None,
    hazards: list[str] | None = None,
    weight: str | None = None,
    catalog: str | None = None,
    thresholds: str | None = None,
    geocoders: list[str] | None = None,
    overrides: str | None = None,
    refresh_geocodes: bool = False,
    cache_dir: str = "cache",
    report: bool = True,
) -> dict:
    """Screen a sites file for every hazard x scenario x year and write a run folder."""
    logger = get_run_logger()
    request = pipeline.make_request(
        sites=sites, data=data, out=out, scenarios=scenarios, years=years, hazards=hazards,
        weight=weight, catalog=catalog, thresholds=thresholds, geocoders=geocoders,
        overrides=overrides, refresh_geocodes=refresh_geocodes, cache_dir=cache_dir,
        report=report)
    layers = pipeline.plan_layers(pipeline.catalog_for(request), request)
    origin = pipeline.open_data(data).origin.value
    timings: dict[str, float] = {}

    start = time.perf_counter()
    loaded = load_sites(sites)
    located = locate_sites(loaded, request)
    timings["load_and_locate"] = time.perf_counter() - start
    logger.info("%d sites, %d located; %d hazard layers to assess (data: %s)",
                len(located), int((located["location_source"] != "unresolved").sum()),
                len(layers), origin)

    start = time.perf_counter()
    lon, lat = pipeline.coordinates(located)
    checks = check_store.map(layers, unmapped(lon), unmapped(lat), unmapped(request))
    cached = [c.result() for c in checks]
    todo = [i for i, c in enumerate(cached) if len(c.missing)]
    futures = assess_layer.map([layers[i] for i in todo], [cached[i] for i in todo],
                               unmapped(lon), unmapped(lat), unmapped(request))
    computed = dict(zip(todo, (f.result() for f in futures), strict=True))
    store = pipeline.result_store(request)
    results = [pipeline.complete_layer(store, c, lon, lat, computed.get(i))
               for i, c in enumerate(cached)]
    sampled = {layers[i].key: int(len(cached[i].missing)) for i in todo}
    logger.info("sampled %d of %d layers (%d site-layers); the rest came from the result store",
                len(todo), len(layers), sum(sampled.values()))
    timings["hazards"] = time.perf_counter() - start

    start = time.perf_counter()
    table, shares = summarise(located, results, request)
    timings["aggregate"] = time.perf_counter() - start
    run_dir = write_outputs(located, table, shares, results, request, timings)
    _publish_artifacts(shares, run_dir, origin)
    logger.info("wrote %s", run_dir)
    return {"run_dir": run_dir, "data_origin": origin, "n_sites": int(len(located)),
            "sampled": sampled,
            "table": format_shares_table(shares, hazards=HEADLINE_HAZARDS, data_origin=origin)}


def dask_task_runner(address: str):
    """A DaskTaskRunner on an existing cluster (``tcp://host:8786``) or, for ``"local"``, a
    LocalCluster of one single-threaded worker per core. Workers report task runs to the
    same Prefect API as the flow, so ``PREFECT_API_URL`` must be set (otherwise every
    worker would start a temporary server of its own)."""
    from prefect_dask import DaskTaskRunner

    if address == "local":
        workers = max(1, min(4, os.cpu_count() or 1))
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "processes": True})
    return DaskTaskRunner(address=address)


def run_screen(*, dask: str | None = None, **parameters) -> dict:
    """Run :func:`screen_flow`, on a Dask cluster when ``dask`` is given."""
    if dask:
        return screen_flow.with_options(task_runner=dask_task_runner(dask))(**parameters)
    return screen_flow(**parameters)


if __name__ == "__main__":
    from sitescreen.cli import main

    main(["screen", *sys.argv[1:]])
