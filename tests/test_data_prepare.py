"""`sitescreen screen SITES --fetch` end to end against a local upstream (real HTTP).

The threaded server of tests/range_server.py stands in for the Aqueduct Floods
host: a user catalog points the datasets' base_url at it (how a moved host is repointed).
It serves every flood tile the run reads as a full-size global 43200 x 21600 GeoTIFF (two
sparse files, tiled DEFLATE for river and striped LZW for coast, hard-linked under the
upstream names). The first run plans,
fetches the windows and screens; the second identical run needs no
network at all; without --fetch a run stops at once with one message naming the command.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from global_tiffs import write_global  # noqa: E402
from range_server import RangeServer  # noqa: E402

from sitescreen.catalog import load_catalog  # noqa: E402
from sitescreen.cli import app  # noqa: E402
from sitescreen.data.datasets import expand_files  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
# The flood hazards: their tiles are fetched by windows. (Whole-file fetches of the small
# datasets are tested with their own content checks in test_data_datasets.py.)
HAZARDS = ["--hazard", "river_flood", "--hazard", "coastal_flood"]


def _toml_value(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)  # strings, numbers and lists of them are TOML as JSON writes them


def write_user_catalog(path: Path, base_url: str, ids: list[str]) -> Path:
    cat = load_catalog()
    lines = []
    for d in ids:
        data = cat.dataset(d).to_dict()
        data.pop("id")
        data["base_url"] = base_url
        lines.append(f"[datasets.{d}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in data.items()]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.fixture(scope="module")
def located(tmp_path_factory) -> list[tuple[float, float]]:
    from sitescreen import pipeline

    cache = tmp_path_factory.mktemp("geocache")
    request = pipeline.make_request(sites=str(REPO / "sites.geojson"), data=str(cache),
                                    cache_dir=str(cache))
    sites = pipeline.locate_sites(pipeline.load_sites(request), request)
    lon, lat = pipeline.coordinates(sites)
    return [(x, y) for x, y in zip(lon, lat, strict=True) if x == x]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, located) -> Path:
    root = tmp_path_factory.mktemp("upstream")
    base = tmp_path_factory.mktemp("base")
    river = write_global(base / "river.tif", located, seed=3, layout="tiled", filler_mb=1)
    coast = write_global(base / "coast.tif", located, seed=4, layout="striped",
                         compress="LZW", sea_east=True, filler_mb=1)
    for name in expand_files(load_catalog().dataset("aqueduct_floods")):
        os.link(river if name.startswith("inunriver_") else coast, root / name)
    return root


def _screen(tmp_path: Path, catalog: Path, *extra: str):
    env = {"SITESCREEN_HOME": str(tmp_path / "home"), "SITESCREEN_DATA": "",
           "SITESCREEN_MIRROR": ""}
    return runner.invoke(app, ["screen", str(REPO / "sites.geojson"), "--no-prefect",
                               "--no-report", "--year", "2030", "--scenario", "pessimistic", *HAZARDS,
                               "--catalog", str(catalog), "--out", str(tmp_path / "out"),
                               *extra], env=env)


def test_screen_fetch_then_offline_rerun(upstream, tmp_path):
    with RangeServer(upstream) as server:
        catalog = write_user_catalog(tmp_path / "user.toml", server.url, ["aqueduct_floods"])
        missing = _screen(tmp_path, catalog)
        assert missing.exit_code == 2, missing.output
        assert "missing" in missing.output and "--fetch" in missing.output
        assert "sitescreen data fetch aqueduct_floods --sites" in missing.output
        assert server.requests == 0 and not list((tmp_path / "out").glob("*"))

        first = _screen(tmp_path, catalog, "--fetch")
        assert first.exit_code == 0, first.output
        fetched, requests = server.bytes_sent, server.requests
        assert fetched > 0 and requests > 0
        data = tmp_path / "home" / "cache" / "data"
        windows = sorted((data / "aqueduct_floods").glob("*.windows.json"))
        # 2030 pessimistic (rcp8p5): river 5 GCMs x 9 RPs + 9 baseline tiles; coast 10 RPs
        # + 10 baseline tiles.
        assert len(windows) == 5 * 9 + 9 + 10 + 10
        sizes = [(upstream / p.name[: -len(".windows.json")]).stat().st_size for p in windows]
        per_file = server.sent_per_file()
        # No whole-file download of any tile.
        assert all(per_file.get(p.name[: -len(".windows.json")], 0) < s
                   for p, s in zip(windows, sizes, strict=True))
        runs = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.is_symlink())
        manifest = json.loads((runs[-1] / "manifest.json").read_text())
        assert manifest["data_origin"] == "upstream"
        # The manifest records what this run fetched: the windows, bytes and requests.
        record = manifest["fetched"]["aqueduct_floods"]
        assert record["files_fetched"] == len(windows)
        assert 0 < record["requests"] <= requests and 0 < record["bytes"] <= fetched

        server.reset()
        second = _screen(tmp_path, catalog, "--fetch")
        assert second.exit_code == 0, second.output
        assert server.requests == 0  # offline: everything came from the cache
    runs = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 2
    # The second run is the latest (run ids of one second sort by their random suffix).
    again = json.loads((tmp_path / "out" / "latest" / "manifest.json").read_text())
    assert again["data_origin"] == "upstream"
    assert again["fetched"] == {}  # nothing was missing the second time


def test_data_fetch_sites_then_sizes(upstream, tmp_path):
    env = {"SITESCREEN_HOME": str(tmp_path / "home"), "SITESCREEN_DATA": "",
           "SITESCREEN_MIRROR": ""}
    sites = str(REPO / "sites.geojson")
    with RangeServer(upstream) as server:
        catalog = str(write_user_catalog(tmp_path / "user.toml", server.url,
                                         ["aqueduct_floods"]))
        args = ["data", "fetch", "aqueduct_floods", "--sites", sites, "--hazard",
                "river_flood", "--year", "2050", "--scenario", "optimistic", "--catalog",
                catalog, "--quiet"]
        first = runner.invoke(app, args, env=env)
        assert first.exit_code == 0, first.output
        # rcp4p5 2050: 5 GCMs x 9 RPs, plus the 9 baseline tiles.
        assert "windows of 54 files fetched from upstream" in first.output
        server.reset()
        second = runner.invoke(app, args, env=env)
        assert second.exit_code == 0, second.output
        assert "0 windows of 0 files fetched" in second.output and server.requests == 0
        info = runner.invoke(app, ["data", "info", "aqueduct_floods", "--catalog", catalog,
                                   "--sites", sites], env=env)
        assert info.exit_code == 0, info.output
        assert "full size: 52.4 GB (planning estimate" in info.output
        assert "windows:   54 window files" in info.output
        assert "by range requests" in info.output  # the other tiles' windows are missing
        listing = runner.invoke(app, ["data", "list", "--catalog", catalog], env=env)
        assert "windows of 54/349 files" in listing.output, listing.output
        assert server.requests == 0  # sizes and plans need no network
