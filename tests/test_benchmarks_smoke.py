"""The benchmark script keeps working: its smallest configuration, end to end.

No timing is asserted (speed goals are judged by ``benchmarks/run.py`` itself); the test
checks that every benchmark ran, reported its goals and wrote the JSON report.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_tiny_benchmark_runs_and_reports(bench, tmp_path, capsys, pytestconfig):
    out = tmp_path / "report.json"
    # Inputs (a small raster, a one-area demo pack) are kept in pytest's cache folder, so
    # only the first run pays the ~3 s of building them; runs and outputs go to tmp_path.
    cache = getattr(pytestconfig, "cache", None)  # absent with -p no:cacheprovider
    inputs = cache.mkdir("benchmarks-tiny") if cache is not None else tmp_path / "inputs"
    code = bench.main(["--tiny", "--cache", str(inputs), "--json", str(out),
                       "--only", "raster", "--only", "memory", "--only", "pipeline",
                       "--only", "scale", "--only", "incremental", "--only", "geocode",
                       "--only", "geopackage"])
    doc = json.loads(out.read_text("utf-8"))
    assert code == 0, doc["errors"]
    assert doc["errors"] == {}
    benches = {f["bench"] for f in doc["figures"]}
    assert benches == {"raster", "memory", "pipeline", "scale", "incremental", "geocode",
                       "geopackage"}
    # Every goal has a verdict and a ratio; the printed report names each verdict.
    goals = [f for f in doc["figures"] if f["goal"]]
    assert goals and all(f["status"] in ("PASS", "MISS") and f["ratio"] is not None
                         for f in goals)
    assert doc["goals"]["pass"] + doc["goals"]["miss"] == len(goals)
    printed = capsys.readouterr().out
    assert "goals:" in printed and ("PASS" in printed or "MISS" in printed)
    # The tiny pipeline screened its sites against the demo pack (not all no-data).
    pipe = doc["raw"]["pipeline"]
    assert pipe["nowrite"]["sites"] == bench.TINY.pipeline_sites
    assert pipe["nowrite"]["screened"] > 0
    # The scale case drew its sites over land and wrote the default outputs.
    scale = doc["raw"]["scale"]
    assert scale["distribution"] == "land" and scale["single"]["sites"] == bench.TINY.scale_sites
    assert scale["single"]["output_bytes"] > 0


def test_the_write_step_is_measured_at_each_configuration_s_own_sizes(bench):
    """The tiny and quick configurations do not write a million sites' outputs."""
    assert bench.FULL.outputs_cases == ((1_000_000, "auto"), (100_000, "all"))  # the goals
    assert bench.TINY.outputs_cases == ((100, "auto"), (bench.TINY.pipeline_sites, "all"))
    assert all(n <= 100_000 for n, _ in bench.QUICK.outputs_cases)
