"""Windowed fetch benchmark: bytes, requests and time for the example portfolio, all 349 tiles.

A threaded server on 127.0.0.1 (tests/range_server.py) serves every Aqueduct Floods file name
of the catalog (349) as a full-size global 43200 x 21600 float32 GeoTIFF, per layout: tiled
512 x 512 DEFLATE and striped (one row per strip) LZW. The files are sparse on disk (values
only around the sites plus ``FILLER_MB`` of incompressible filler, hard-linked under the 349
names), so the headers are real-sized. The portfolio ``sites.geojson`` is geocoded offline;
:func:`sitescreen.data.windows.fetch_windows` fetches the windows every hazard reads (river:
each site's pixel; coast: plus the 2 km nearest-land radius) for every year and narrative.

Goals (issue 12): under 1 MB per site per hazard layer on average, no whole-file download,
under 200 MB in total. Run alone with ``python benchmarks/bench_fetch.py`` or through
``benchmarks/run.py --only fetch``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FILLER_MB = 16.0
LAYOUTS = {"tiled": dict(layout="tiled", compress="DEFLATE", block=512),
           "striped": dict(layout="striped", compress="LZW")}
GOAL_PER_SITE_LAYER = 1e6
GOAL_TOTAL = 200e6


def _sites() -> tuple:
    from sitescreen import pipeline

    with tempfile.TemporaryDirectory() as cache:
        request = pipeline.make_request(sites=str(ROOT / "sites.geojson"), data=cache,
                                        cache_dir=cache)
        located = pipeline.locate_sites(pipeline.load_sites(request), request)
    return pipeline.coordinates(located)


def measure(work: Path, layouts: tuple[str, ...] = tuple(LAYOUTS)) -> dict:
    import numpy as np
    from global_tiffs import write_global
    from range_server import RangeServer

    from sitescreen.catalog import load_catalog
    from sitescreen.data import prepare
    from sitescreen.data.windows import FetchSettings, fetch_windows
    from sitescreen.pipeline import Layer
    from sitescreen.scenarios import Narrative

    catalog = load_catalog()
    entry = catalog.dataset("aqueduct_floods")
    lon, lat = _sites()
    ok = np.isfinite(lon)
    points = list(zip(lon[ok], lat[ok], strict=True))
    layers = [Layer(h, s, y) for h in ("river_flood", "coastal_flood") for s in Narrative
              for y in (2030, 2050, 2080)]
    out: dict = {"sites": int(ok.sum()), "layouts": {}}
    for name in layouts:
        up = work / f"upstream-{name}"
        up.mkdir(parents=True, exist_ok=True)
        river = write_global(work / f"river-{name}.tif", points, seed=1, sea_east=False,
                             filler_mb=FILLER_MB, **LAYOUTS[name])
        coast = write_global(work / f"coast-{name}.tif", points, seed=2, sea_east=True,
                             filler_mb=FILLER_MB, **LAYOUTS[name])
        from dataclasses import replace

        from sitescreen.data.datasets import expand_files

        names = expand_files(entry)
        for n in names:
            target = up / n
            if not target.exists():
                os.link(river if n.startswith("inunriver_") else coast, target)
        cache = work / f"cache-{name}"
        with RangeServer(up) as server:
            e = replace(entry, base_url=server.url)
            plan = prepare.plan_data(catalog, layers, cache, lon, lat).windowed[0]
            t = time.perf_counter()
            report = fetch_windows(e, plan, settings=FetchSettings(workers=4))
            seconds = time.perf_counter() - t
            sent = server.sent_per_file()
            full = river.stat().st_size
            server.reset()
            again = fetch_windows(e, prepare.plan_data(catalog, layers, cache, lon,
                                                       lat).windowed[0])
            out["layouts"][name] = {
                "files": len(plan.files), "upstream_file_bytes": full,
                "bytes": sum(sent.values()), "gdal_bytes": report.bytes,
                "requests": report.requests, "seconds": seconds,
                "max_file_share": max(sent.values()) / full,
                "per_site_layer": sum(sent.values()) / (len(plan.files) * int(ok.sum())),
                "second_run_requests": server.requests, "second_run_files": again.files_fetched,
                "cache_bytes": sum(p.stat().st_size for p in (cache / entry.local_dir).iterdir()),
            }
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        res = measure(Path(work))
    print(f"sites: {res['sites']}")
    for name, r in res["layouts"].items():
        print(f"{name}: {r['files']} files, {r['bytes'] / 1e6:.1f} MB in {r['requests']} "
              f"requests, {r['seconds']:.1f} s; {r['per_site_layer'] / 1e3:.1f} kB per site "
              f"per file; largest share of one file {r['max_file_share']:.1%}; second run "
              f"{r['second_run_requests']} requests; cache {r['cache_bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
