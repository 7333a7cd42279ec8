"""Windowed fetch of global GeoTIFFs over real HTTP range requests (sitescreen.data.windows).

A threaded server on 127.0.0.1 (tests/range_server.py) serves full-size 43200 x 21600 float32
GeoTIFFs, sparse on disk (tests/global_tiffs.py), tiled (DEFLATE) and striped (LZW, one row
per strip), under upstream file names; it logs every request and byte. No mocks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from global_tiffs import write_global  # noqa: E402
from range_server import RangeServer  # noqa: E402

from sitescreen.catalog import load_catalog  # noqa: E402
from sitescreen.data.windows import (  # noqa: E402
    WINDOWS_SUFFIX,
    FetchSettings,
    check_cover,
    fetch_windows,
    plan_windows,
    read_record,
)
from sitescreen.errors import DownloadError, HazardDataError, OfflineError  # noqa: E402
from sitescreen.raster import nearest_valid_pixel, sample_points  # noqa: E402

RIVER = "inunriver_rcp8p5_00000NorESM1-M_2050_rp00100.tif"
COAST = "inuncoast_rcp8p5_wtsub_2050_rp0100_0.tif"
SITES = [(121.4737, 31.2304), (114.0579, 22.5431), (116.4074, 39.9042)]
NEW_SITE = (104.0665, 30.5728)
FAST = FetchSettings(workers=2, timeout_s=3, connect_timeout_s=2, low_speed_bytes=2000,
                     low_speed_s=1, deadline_s=60, retries=1, backoff_s=0.05)

NO_RETRY = FetchSettings(workers=1, timeout_s=2, connect_timeout_s=2, low_speed_bytes=2000,
                         low_speed_s=1, deadline_s=30, retries=0)


@pytest.fixture(scope="module")
def entry():
    return load_catalog().dataset("aqueduct_floods")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("upstream")
    pts = [*SITES, NEW_SITE]
    write_global(root / RIVER, pts, seed=1, layout="tiled", compress="DEFLATE", block=256)
    write_global(root / COAST, pts, seed=2, layout="striped", compress="LZW", sea_east=True)
    return root


@pytest.fixture()
def server(upstream):
    with RangeServer(upstream) as srv:
        yield srv


def _lonlat(points):
    arr = np.asarray(points, dtype="float64")
    return arr[:, 0], arr[:, 1]


NEEDS = {RIVER: 0.0, COAST: 2.0}


def _fetch(entry, cache, server, points, settings=FAST):
    lon, lat = _lonlat(points)
    plan = plan_windows(entry, cache, NEEDS, lon, lat)
    return plan, fetch_windows(_repoint(entry, server.url), plan, settings=settings)


def _repoint(entry, url):
    from dataclasses import replace

    return replace(entry, base_url=url)


def test_window_values_equal_full_file_sampling(entry, upstream, server, tmp_path):
    plan, report = _fetch(entry, tmp_path, server, SITES)
    assert report.files_fetched == 2 and report.bytes > 0
    lon, lat = _lonlat(SITES)
    local = tmp_path / "aqueduct_floods"
    for name in (RIVER, COAST):
        full = sample_points(upstream / name, lon, lat)
        win = sample_points(local / name, lon, lat)
        np.testing.assert_array_equal(win, full)
    # The coastal nearest-land search finds the same pixel in the windows as in the full file.
    a = nearest_valid_pixel(upstream / COAST, lon + 0.02, lat, max_km=2.0)
    b = nearest_valid_pixel(local / COAST, lon + 0.02, lat, max_km=2.0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert np.isfinite(a[1]).any() and (a[1] > 0).any()  # some sites really moved
    rec = read_record(local / RIVER)
    assert rec["origin"] == "upstream" and rec["upstream"]["size"] == (upstream / RIVER).stat().st_size
    assert rec["upstream"]["etag"] and rec["cells"] and rec["fetches"][0]["bytes"] > 0
    # No whole-file download: far less than the upstream files were transferred.
    sent = server.sent_per_file()
    assert all(sent[n] < (upstream / n).stat().st_size for n in (RIVER, COAST))


def test_second_run_transfers_nothing_and_new_site_only_its_windows(entry, server, tmp_path):
    _fetch(entry, tmp_path, server, SITES)
    first = server.bytes_sent
    server.reset()
    plan, report = _fetch(entry, tmp_path, server, SITES)
    assert plan.complete and report.files_fetched == 0 and server.requests == 0
    held = set(read_record(tmp_path / "aqueduct_floods" / RIVER)["cells"])
    plan, report = _fetch(entry, tmp_path, server, [*SITES, NEW_SITE])
    assert not plan.complete and report.files_fetched == 2
    rec = read_record(tmp_path / "aqueduct_floods" / RIVER)
    assert held < set(rec["cells"]) and rec["fetches"][-1]["cells_added"] == len(
        set(rec["cells"]) - held)
    assert 0 < server.bytes_sent < first  # only the new site's blocks (and the headers)


def test_changed_upstream_is_read_again_not_mixed(entry, upstream, server, tmp_path):
    _fetch(entry, tmp_path, server, SITES)
    server.etags[RIVER] = '"v2"'
    plan, report = _fetch(entry, tmp_path, server, [*SITES, NEW_SITE])
    assert RIVER in report.rebuilt
    rec = read_record(tmp_path / "aqueduct_floods" / RIVER)
    assert rec["upstream"]["etag"] == '"v2"' and len(rec["fetches"]) == 1
    lon, lat = _lonlat([*SITES, NEW_SITE])
    np.testing.assert_array_equal(sample_points(tmp_path / "aqueduct_floods" / RIVER, lon, lat),
                                  sample_points(upstream / RIVER, lon, lat))


def test_cover_check_refuses_sites_outside_the_windows(entry, server, tmp_path):
    _fetch(entry, tmp_path, server, SITES[:1])
    lon, lat = _lonlat(SITES)
    path = str(tmp_path / "aqueduct_floods" / RIVER)
    check_cover(path, lon[:1], lat[:1], entry=entry)
    with pytest.raises(HazardDataError, match="holds windows for other sites"):
        check_cover(path, lon, lat, entry=entry)


def test_offline_plan_names_what_is_missing(entry, tmp_path):
    lon, lat = _lonlat(SITES)
    plan = plan_windows(entry, tmp_path, NEEDS, lon, lat)
    with pytest.raises(OfflineError, match="2 of 2 files lack"):
        fetch_windows(entry, plan, offline=True)


@pytest.mark.parametrize(("fault", "message"), [
    ("html", "HTML page"),
    ("truncate", "fewer bytes than it announced"),
    ("416", "HTTP 416"),
    ("stall", "stalls or trickles"),
    ("trickle", "stalls or trickles"),
])
def test_faults_give_a_clear_error_and_no_partial_window(entry, server, tmp_path, fault,
                                                         message):
    server.fault = fault
    lon, lat = _lonlat(SITES)
    plan = plan_windows(entry, tmp_path, {RIVER: 0.0}, lon, lat)
    with pytest.raises(DownloadError, match=message) as info:
        fetch_windows(_repoint(entry, server.url), plan, settings=NO_RETRY)
    assert server.url.split("//")[1].split("/")[0] in str(info.value)  # names the URL
    folder = tmp_path / "aqueduct_floods"
    left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert left == [], left


def test_fault_keeps_previous_windows(entry, server, tmp_path):
    _fetch(entry, tmp_path, server, SITES[:1])
    before = (tmp_path / "aqueduct_floods" / RIVER).read_bytes()
    server.fault = "truncate"
    lon, lat = _lonlat(SITES)
    plan = plan_windows(entry, tmp_path, {RIVER: 0.0}, lon, lat)
    with pytest.raises(DownloadError):
        fetch_windows(_repoint(entry, server.url), plan, settings=FAST)
    assert (tmp_path / "aqueduct_floods" / RIVER).read_bytes() == before
    assert not [p for p in (tmp_path / "aqueduct_floods").iterdir() if p.name.startswith(".")]


def test_record_suffix_and_json(entry, server, tmp_path):
    _fetch(entry, tmp_path, server, SITES)
    side = tmp_path / "aqueduct_floods" / (RIVER + WINDOWS_SUFFIX)
    data = json.loads(side.read_text())
    assert data["layout"]["block_shape"] == [256, 256] and data["layout"]["compression"]


def test_a_folder_of_whole_files_is_complete_without_working_out_cells(entry, tmp_path,
                                                                       monkeypatch):
    from sitescreen.data import windows

    folder = tmp_path / entry.local_dir
    folder.mkdir(parents=True)
    (folder / RIVER).write_bytes(b"whole")  # a full file: no .windows.json record
    lon, lat = _lonlat(SITES)
    plan = plan_windows(entry, tmp_path, NEEDS, lon, lat)  # the coastal file is missing
    assert [f.name for f in plan.missing_files] == [COAST] and plan.missing_files[0].cells
    (folder / COAST).write_bytes(b"whole")
    monkeypatch.setattr(windows, "needed_cells", lambda *a, **k: pytest.fail("cells"))
    plan = plan_windows(entry, tmp_path, NEEDS, lon, lat)
    assert plan.complete and all(f.full and not f.cells for f in plan.files)


def test_needed_cells_are_each_sites_block_of_cells(entry):
    from sitescreen.data.windows import (
        _EXTRA_PAD_PX,
        _LAT_MARGIN_DEG,
        CELL,
        grid_info,
        needed_cells,
    )
    from sitescreen.raster import pixel_index, search_pad

    grid = grid_info(entry)
    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(-179, 179, 300), rng.uniform(-80, 80, 300)
    ncc = -(-grid.width // CELL)
    rows, cols, _ = pixel_index(grid, lon, lat)
    for pad in (0.0, 30.0):
        expect = set()
        for r, c, y in zip(rows, cols, lat, strict=True):  # one site at a time
            pr = pc = 0
            if pad:
                pr, pc = (int(np.ravel(v)[0]) + _EXTRA_PAD_PX for v in
                          search_pad(grid, np.array([abs(y) + _LAT_MARGIN_DEG]), pad))
            for cr in range(max(0, r - pr) // CELL, min(grid.height - 1, r + pr) // CELL + 1):
                for cc in range(max(0, c - pc) // CELL, min(grid.width - 1, c + pc) // CELL + 1):
                    expect.add(cr * ncc + cc)
        assert needed_cells(grid, lon, lat, pad_km=pad).tolist() == sorted(expect)
