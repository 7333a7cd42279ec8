"""Tests of ``sitescreen data`` (sitescreen.cli.data) with typer's CliRunner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from file_server import ibtracs_body
from typer.testing import CliRunner

from sitescreen.cli.data import data_app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
WP = "ibtracs.WP.list.v04r01.csv"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.mirror
def test_fetch_from_the_mirror_then_verify(mirror_dir, tmp_path):
    cache = tmp_path / "cache"

    res = runner.invoke(data_app, ["fetch", "ibtracs_wp", "--mirror", str(mirror_dir),
                                   "--cache", str(cache), "--quiet"])

    assert res.exit_code == 0, res.output
    cached = cache / "ibtracs" / WP
    assert _sha(cached) == _sha(mirror_dir / "ibtracs" / WP)
    side = json.loads((cache / "ibtracs" / f"{WP}.sha256.json").read_text())
    assert side["origin"] == "mirror" and side["version"] == "v04r01"
    assert side["upstream_url"].startswith("https://www.ncei.noaa.gov/")
    assert f"fetched from mirror {WP}" in res.output

    res = runner.invoke(data_app, ["verify", "ibtracs_wp", "--cache", str(cache)])
    assert res.exit_code == 0, res.output
    assert "ibtracs_wp: 1 ok" in res.output

    again = runner.invoke(data_app, ["fetch", "ibtracs_wp", "--offline", "--cache", str(cache)])
    assert again.exit_code == 0 and f"cached {WP}" in again.output

    listing = runner.invoke(data_app, ["list", "--cache", str(cache)])
    line = next(ln for ln in listing.output.splitlines() if ln.startswith("ibtracs_wp"))
    assert "cached" in line and "mirror" in line

    with cached.open("r+b") as fh:  # flip one byte, keep the size
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    res = runner.invoke(data_app, ["verify", "ibtracs_wp", "--cache", str(cache)])
    assert res.exit_code == 1
    assert "mismatch" in res.output


def test_offline_fetch_lists_the_missing_files_without_a_traceback(tmp_path):
    res = runner.invoke(data_app, ["fetch", "ibtracs_all", "--offline", "--cache", str(tmp_path)])

    assert res.exit_code == 2
    assert "offline mode" in res.output and "ibtracs.ALL.list.v04r01.csv" in res.output
    assert "Traceback" not in res.output


def test_the_cache_defaults_to_the_environment(tmp_path):
    cache = tmp_path / "envcache"
    (cache / "ibtracs").mkdir(parents=True)
    (cache / "ibtracs" / WP).write_bytes(ibtracs_body(20_000))

    res = runner.invoke(data_app, ["fetch", "ibtracs_wp", "--offline"],
                        env={"SITESCREEN_DATA": str(cache)})

    assert res.exit_code == 0, res.output
    assert str(cache.resolve()) in res.output


def test_verify_with_nothing_cached_fails(tmp_path):
    res = runner.invoke(data_app, ["verify", "ibtracs_wp", "--cache", str(tmp_path)])

    assert res.exit_code == 1
    assert "1 missing" in res.output


def test_info_shows_citation_licence_url_and_files(tmp_path):
    res = runner.invoke(data_app, ["info", "aqueduct_floods", "--cache", str(tmp_path)])

    assert res.exit_code == 0, res.output
    assert "CC BY 4.0" in res.output and "Ward, P.J." in res.output
    assert "http://wri-projects.s3.amazonaws.com/AqueductFloodTool/download/v2/" in res.output
    assert "files (349)" in res.output and "... and 339 more" in res.output

    res = runner.invoke(data_app, ["info", "aqueduct40", "--cache", str(tmp_path)])
    assert "https://files.wri.org/aqueduct/aqueduct-4-0-water-risk-data.zip" in res.output
    assert "bd3ed2bce88d6ff1b89191632ad134a2436e1e1d49599382f23a04d513624fc3" in res.output


def test_errors_exit_2_with_one_line(tmp_path):
    unknown = runner.invoke(data_app, ["info", "nope"])
    assert unknown.exit_code == 2
    assert unknown.output.strip().startswith("error: unknown dataset 'nope'")
    assert len(unknown.output.strip().splitlines()) == 1

    nomatch = runner.invoke(data_app, ["fetch", "aqueduct_floods", "--files", "*.nc",
                                       "--offline", "--cache", str(tmp_path)])
    assert nomatch.exit_code == 2 and "no file matches ['*.nc']" in nomatch.output


def test_list_shows_every_dataset(tmp_path):
    res = runner.invoke(data_app, ["list", "--cache", str(tmp_path)])

    assert res.exit_code == 0
    for name in ("aqueduct40", "aqueduct_floods", "ibtracs_wp", "ibtracs_all"):
        assert any(ln.startswith(name + " ") and ln.rstrip().endswith("not cached")
                   for ln in res.output.splitlines()), name


def test_verify_reports_a_cached_error_page_as_invalid(tmp_path):
    (tmp_path / "ibtracs").mkdir()
    (tmp_path / "ibtracs" / WP).write_text('{"error": "service unavailable"}\n')
    (tmp_path / "ibtracs" / f"{WP}.sha256.json").write_text(json.dumps(
        {"sha256": _sha(tmp_path / "ibtracs" / WP), "size": 33}))

    res = runner.invoke(data_app, ["verify", "ibtracs_wp", "--cache", str(tmp_path)])

    assert res.exit_code == 1, res.output
    assert "invalid" in res.output and "JSON document" in res.output
    assert "fetch it again" in res.output or "fetch again" in res.output


def test_fetch_cckp_from_a_local_server_under_the_upstream_names(httpserver, tmp_path):
    """``data fetch cckp_cmip6`` asks for exactly the files of the catalog's heat hazards,
    under the bucket's layout, and records size and checksum at fetch time."""
    from file_server import FileHandler, serve

    from sitescreen.catalog import load_catalog
    from sitescreen.data.datasets import expand_files
    from sitescreen.synthetic.cckp import write_cckp_file

    packaged = (REPO / "sitescreen" / "catalog.toml").read_text("utf-8")
    upstream = "https://wbg-cckp.s3.amazonaws.com/data/"
    assert upstream in packaged
    user = tmp_path / "catalog.toml"
    user.write_text(packaged.replace(upstream, httpserver.url_for("/data/")), "utf-8")
    names = expand_files(load_catalog().dataset("cckp_cmip6"))
    assert len(names) == 60  # (reference + 3 runs x 3 periods) x 3 percentiles x 2 variables
    bodies = {}
    for variable in ("hd35", "cdd65"):
        path = write_cckp_file(tmp_path / f"{variable}.nc", variable=variable, run="ssp585",
                               percentile="median", period="2040-2059", patches=[])
        bodies[variable] = path.read_bytes()
    handlers = {}
    for name in names:
        handlers[name] = FileHandler(bodies[name.split("/")[1]], content_type="application/x-netcdf")
        serve(httpserver, f"/data/{name}", handlers[name])
    cache = tmp_path / "cache"

    res = runner.invoke(data_app, ["fetch", "cckp_cmip6", "--catalog", str(user), "--cache",
                                   str(cache), "--quiet"])

    assert res.exit_code == 0, res.output
    assert all(len(h.ranges) == 1 for h in handlers.values())
    name = ("cmip6-x0.25/hd35/ensemble-all-ssp585/climatology-hd35-annual-mean_cmip6-x0.25_"
            "ensemble-all-ssp585_climatology_p90_2060-2079.nc")
    cached = cache / "cckp" / name
    assert cached.read_bytes() == bodies["hd35"]
    side = json.loads((cache / "cckp" / f"{name}.sha256.json").read_text())
    assert side["size"] == len(bodies["hd35"]) and side["sha256"] == _sha(cached)
    assert side["upstream_url"] == httpserver.url_for(f"/data/{name}")
    assert side["origin"] == "upstream" and side["dataset"] == "cckp_cmip6"

    again = runner.invoke(data_app, ["fetch", "cckp_cmip6", "--catalog", str(user), "--cache",
                                     str(cache), "--quiet", "--hazard", "cooling_demand"])
    assert again.exit_code == 0, again.output
    assert again.output.count("cckp_cmip6: cached") == 30 and "hd35" not in again.output
    assert all(len(h.ranges) == 1 for h in handlers.values())  # nothing fetched twice
    res = runner.invoke(data_app, ["verify", "cckp_cmip6", "--cache", str(cache)])
    assert res.exit_code == 0 and "cckp_cmip6: 60 ok" in res.output
