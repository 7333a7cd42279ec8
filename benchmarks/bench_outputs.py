"""The write step alone: :func:`render_files` + :func:`write_run` for ``n`` random sites.

A small real run (200 sites of the benchmark pack, every default hazard, 54 layers) gives the
layers, the manifest and the site columns; its results are then widened to ``n`` sites with
random levels, values and flags per layer (composites recomputed by their rules; a hazard's
extra columns are those of a random site of the small run), so the files
written have the size and shape of a real run of ``n`` sites. Reports wall and CPU time per
file, peak RSS and file sizes. Run alone with::

    python benchmarks/bench_outputs.py 100000 all
    python benchmarks/bench_outputs.py 1000000 auto

or through ``benchmarks/run.py --only outputs``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import CONFIGS, build_pack, current_rss_bytes, peak_rss_bytes, write_sites  # noqa: E402


def widen(run, n: int, *, seed: int = 3):
    """``run``'s sites, results and manifest widened to ``n`` random sites."""
    import pandas as pd

    from sitescreen.aggregate import SiteResults
    from sitescreen.catalog import load_catalog

    rng = np.random.default_rng(seed)
    small = run.sites
    pick = rng.integers(0, len(small), n)
    sites = pd.DataFrame({c: small[c].to_numpy()[pick] for c in small.columns
                          if c != "geometry"})
    sites["site_id"] = np.array([f"b{i:07d}" for i in range(n)], dtype=object)
    sites["name"] = np.array([f"Benchmark site {i}" for i in range(n)], dtype=object)
    sites["lon"] = sites["lon"].to_numpy(float) + rng.uniform(-0.05, 0.05, n)
    sites["lat"] = sites["lat"].to_numpy(float) + rng.uniform(-0.05, 0.05, n)
    base = [i for i, info in enumerate(run.results.layers) if not info.is_composite]
    res = SiteResults(sites["site_id"].to_numpy())
    for i in base:
        lv = rng.integers(0, 6, n).astype(np.int8)
        low = np.maximum(lv - rng.integers(0, 2, n), 0).astype(np.int8)
        low[lv == 0] = 0
        high = np.minimum(lv + rng.integers(0, 2, n), 5).astype(np.int8)
        high[lv == 0] = 0
        value = np.where(lv > 0, rng.uniform(0, 5, n), np.nan)
        flags = pd.Categorical.from_codes(np.where(lv == 3, 1, 0).astype(np.int8),
                                          categories=["", "near-threshold"])
        extra = {k: np.asarray(v)[pick] for k, v in run.results.extra[i].items()}
        res._append(run.results.layers[i], value, lv, low, high, flags,
                    pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""]),
                    extra)
    catalog = load_catalog()
    present = {res.layers[i].hazard for i in range(len(res.layers))}
    comps = [c for c in catalog.composites.values() if set(c.components) & present]
    res = res.with_composites(comps)
    shares = res.shares(sites)
    manifest = dict(run.manifest)
    manifest["run_id"] = f"bench-{n}"
    manifest["inputs"] = {**manifest.get("inputs", {}),
                          "sites": {**manifest["inputs"]["sites"], "n_sites": n}}
    return sites, res, shares, manifest


def small_run(work: Path, cache: Path, config: str = "full"):
    """A real run of 200 benchmark sites (every default hazard), without outputs."""
    from sitescreen import pipeline

    cfg = CONFIGS[config]
    pack = build_pack(cache, cfg)
    sites = write_sites(cache / "sites" / "outputs-200.csv", 200, cfg)
    request = pipeline.make_request(sites=str(sites), data=str(pack), out=str(work / "small"),
                                    cache_dir=str(work / "cache"), years=[2030, 2050])
    return pipeline.screen(request, write=False)


def measure(n: int, mode: str = "auto", report: bool = True, *, cache: Path | None = None,
            config: str = "full") -> dict:
    """Time :func:`render_files` + :func:`write_run` of ``n`` widened sites under the
    per-site ``mode``, with the report drawn by a writer as ``screen`` does; per-file wall
    and CPU seconds (the writer thread's own), peak RSS, RSS before the write step."""
    from sitescreen.outputs.per_site import plan_per_site
    from sitescreen.outputs.run_files import render_files
    from sitescreen.outputs.run_folder import write_run

    cache = Path(cache) if cache is not None else ROOT / "cache" / "bench"
    (cache / "work").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-outputs-", dir=cache / "work"))
    try:
        run = small_run(work, cache, config)
        sites, results, shares, manifest = widen(run, n)
        del run
        before = current_rss_bytes()
        timings: dict[str, list[float]] = {}
        t0, c0 = time.perf_counter(), time.process_time()
        files = render_files(sites=sites, results=results, shares_table=shares,
                             manifest=manifest, out_root=work / "out", report=report,
                             plan=plan_per_site(mode, n), defer_report=True)  # as screen()
        timings["render_files"] = [time.perf_counter() - t0, time.process_time() - c0]

        def timed(name, content):
            if not callable(content):
                return content

            def write(path):
                a, b = time.perf_counter(), time.thread_time()  # this writer's CPU only
                content(path)
                timings[name] = [time.perf_counter() - a, time.thread_time() - b]
            return write

        final = write_run(work / "out", manifest["run_id"],
                          {k: timed(k, v) for k, v in files.items()})
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sizes = {p.relative_to(final).as_posix(): p.stat().st_size
                 for p in final.rglob("*") if p.is_file()}
        return {"sites": n, "mode": mode, "layers": len(results.layers), "wall_s": wall,
                "cpu_s": cpu, "rss_before_write": before, "rss_peak": peak_rss_bytes(),
                "results_bytes": results.nbytes, "timings": timings,
                "output_bytes": sum(sizes.values()),
                "largest_files": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8])}
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    mode = sys.argv[2] if len(sys.argv) > 2 else "auto"
    print(json.dumps(measure(n, mode), indent=1))
