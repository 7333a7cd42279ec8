"""`sitescreen data check`: readers' assumptions against real files (sitescreen.data.check)."""

from __future__ import annotations

import shutil

import numpy as np
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from sitescreen.catalog import load_catalog
from sitescreen.cli import app
from sitescreen.data.check import check_dataset

runner = CliRunner()
TILE = "inunriver_rcp8p5_00000NorESM1-M_2050_rp00100.tif"


def test_demo_pack_matches_every_expectation(demo_pack):
    cat = load_catalog()
    for d in ("aqueduct40", "aqueduct_floods", "ibtracs_wp"):
        results = [r for r in check_dataset(cat.dataset(d), demo_pack) if r.present]
        assert results and all(r.ok for r in results), [r for r in results if not r.ok][:2]


def test_mismatches_are_named(demo_pack, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_pack / "ibtracs", data / "ibtracs")
    (data / "aqueduct_floods").mkdir()
    with rasterio.open(data / "aqueduct_floods" / TILE, "w", driver="GTiff", width=100,
                       height=50, count=1, dtype="int16", crs="EPSG:4326",
                       transform=from_origin(100, 40, 0.01, 0.01)) as ds:
        ds.write(np.zeros((1, 50, 100), dtype="int16"))
    csv = data / "ibtracs" / "ibtracs.WP.list.v04r01.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0].replace("USA_WIND", "WIND")] + lines[2:]) + "\n")
    result = runner.invoke(app, ["data", "check", "aqueduct_floods", "ibtracs_wp",
                                 "--cache", str(data)])
    assert result.exit_code == 1, result.output
    assert f"MISMATCH  {TILE}" in result.output
    assert "data type int16" in result.output and "size 100 x 50" in result.output
    assert "header lacks USA_WIND" in result.output
    assert "second row holds numbers" in result.output
