"""Data origin: a synthetic file says so inside itself, and every reader listens.

The demo pack's ``PACK.json`` is only the folder's word; deleting it or copying the files
into a cache must not turn synthetic numbers into "local" hazard data.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from small_pack import AREAS, site, sites_doc, small_pack

from sitescreen.data.sources import (
    PACK_MARKER,
    SYNTHETIC_MARK,
    DataOrigin,
    file_says_synthetic,
    origin_details,
    says_synthetic,
)


@pytest.fixture(scope="module")
def unmarked_pack(tmp_path_factory) -> Path:
    """The small demo pack copied without its PACK.json (the folder no longer says synthetic)."""
    src = small_pack(tmp_path_factory)
    dst = tmp_path_factory.mktemp("unmarked") / "data"
    shutil.copytree(src, dst)
    (dst / PACK_MARKER).unlink()
    return dst


def test_every_file_of_the_demo_pack_says_it_is_synthetic(unmarked_pack):
    files = [p for p in unmarked_pack.rglob("*")
             if p.suffix in (".tif", ".csv", ".gdb") and not p.name.startswith(".")]
    kinds = {p.suffix for p in files}
    assert kinds == {".tif", ".csv", ".gdb"}
    unmarked = [str(p) for p in files if not file_says_synthetic(p)]
    assert unmarked == []


def test_real_layouts_without_the_mark_are_not_synthetic(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("SID,SEASON\n ,Year\n", "utf-8")
    assert not file_says_synthetic(csv)
    assert not file_says_synthetic(tmp_path / "missing.tif")
    assert not says_synthetic({"sitescreen_synthetic": ""})  # an empty tag says nothing


def test_origin_details_makes_a_result_synthetic_when_a_file_says_so():
    assert origin_details(DataOrigin.LOCAL, []) == {"data_origin": "local"}
    assert origin_details("upstream", ["b.tif", "a.tif", "a.tif"]) == {
        "data_origin": "synthetic-demo", "synthetic_files": ["a.tif", "b.tif"]}


def test_a_pack_without_its_marker_still_makes_a_synthetic_run(unmarked_pack, tmp_path):
    from sitescreen.data.sources import DataSource
    from sitescreen.pipeline import make_request, screen

    assert DataSource.for_cache(unmarked_pack).origin == DataOrigin.LOCAL  # the folder: nothing
    sites = tmp_path / "sites.geojson"
    sites.write_text(json.dumps(sites_doc(
        site("a", "A", lon=AREAS[0].lon, lat=AREAS[0].lat),
        site("b", "B", lon=AREAS[1].lon, lat=AREAS[1].lat, city="Beijing"))), "utf-8")
    request = make_request(sites=str(sites), data=str(unmarked_pack), out=str(tmp_path / "out"),
                           years=[2030], scenarios=["pessimistic"],
                           cache_dir=str(tmp_path / "cache"))
    run = screen(request, write=False)
    assert run.manifest["data_origin"] == DataOrigin.SYNTHETIC_DEMO.value
    assert "SYNTHETIC" in run.manifest["data_origin_note"]
    by_hazard = {layer["hazard"]: layer["details"] for layer in run.manifest["layers"]}
    for hazard in ("water_stress", "river_flood", "coastal_flood", "typhoon"):
        assert by_hazard[hazard]["data_origin"] == DataOrigin.SYNTHETIC_DEMO.value, hazard
        assert by_hazard[hazard]["synthetic_files"], hazard


def test_a_netcdf_global_attribute_marks_the_file_synthetic(tmp_path):
    import numpy as np
    import rasterio
    import rasterio.shutil
    from rasterio.transform import Affine

    from sitescreen.synthetic import SYNTHETIC_NOTE

    tif, nc = tmp_path / "hd35.tif", tmp_path / "climatology-hd35-annual-mean.nc"
    with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       crs="EPSG:4326", transform=Affine(1, 0, 100, 0, -1, 40)) as ds:
        ds.update_tags(**{SYNTHETIC_MARK: SYNTHETIC_NOTE})
        ds.write(np.zeros((1, 4, 4), "float32"))
    rasterio.shutil.copy(tif, nc, driver="netCDF")  # a global attribute in the NetCDF file

    assert file_says_synthetic(nc)
    assert says_synthetic({"title": "CCKP", SYNTHETIC_MARK: SYNTHETIC_NOTE})  # xarray attrs


def test_a_cache_folder_is_read_once_until_its_files_change(tmp_path):
    """A run opens its data per layer: the folder is read once, yet every change is seen."""
    from sitescreen.data.sources import SIDECAR_SUFFIX, DataSource

    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.csv").write_text("x\n1\n")
    side = tmp_path / "toy" / f"a.csv{SIDECAR_SUFFIX}"
    side.write_text(json.dumps({"origin": "upstream"}))
    first = DataSource.for_cache(tmp_path)
    assert first.origin is DataOrigin.UPSTREAM
    assert DataSource.for_cache(tmp_path) is first  # nothing changed: not read again

    new = tmp_path / "toy" / f"b.csv{SIDECAR_SUFFIX}"  # a file added in a subfolder
    new.write_text(json.dumps({"origin": "mirror"}))
    second = DataSource.for_cache(tmp_path)
    assert second.origin is DataOrigin.MIRROR and second.file_origins["toy/b.csv"] == "mirror"

    side.write_text(json.dumps({"origin": "mirror"}))  # rewritten in place, same folder time
    stat = side.stat()
    os.utime(side, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert DataSource.for_cache(tmp_path).file_origins["toy/a.csv"] == "mirror"

    new.unlink()
    (tmp_path / PACK_MARKER).write_text(json.dumps({"origin": "synthetic-demo"}))
    assert DataSource.for_cache(tmp_path).origin is DataOrigin.SYNTHETIC_DEMO
