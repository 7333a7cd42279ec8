"""``sitescreen screen``, ``validate`` and ``demo-data`` through typer's CliRunner.

The subprocess tests of the same commands are in test_flow.py, test_corpus.py and
test_faults.py; these check the in-process paths and the choice of mode.
"""

from __future__ import annotations

import json

import pytest
from small_pack import site, sites_doc, small_pack
from typer.testing import CliRunner

from sitescreen.cli import app
from sitescreen.cli.screen import use_prefect

runner = CliRunner()


def _sites(tmp_path):
    path = tmp_path / "sites.geojson"
    path.write_text(json.dumps(sites_doc(site("sh-1", "Shanghai office", lon=121.47,
                                              lat=31.23))), "utf-8")
    return path


def test_plain_run_by_default_prints_the_shares_and_the_folder(tmp_path, tmp_path_factory,
                                                               monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    res = runner.invoke(app, [
        "screen", str(_sites(tmp_path)), "--data", str(small_pack(tmp_path_factory)),
        "--out", str(tmp_path / "out"), "--hazard", "river_flood", "-s", "pessimistic",
        "-y", "2030", "--no-report"])
    assert res.exit_code == 0, res.output
    assert "running the pipeline in this process" in res.output
    assert "SYNTHETIC DEMO DATA" in res.output
    assert f"results: {tmp_path / 'out'}" in res.output


def test_modes(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert use_prefect(None) is False and use_prefect(True) is True
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert use_prefect(None) is True and use_prefect(False) is False


@pytest.mark.parametrize("args,message", [
    (["--hazard", "heatwave"], "unknown hazard 'heatwave'"),
    (["--year", "2040"], "has no year 2040"),
    (["--dask", "local"], "--dask needs PREFECT_API_URL"),
])
def test_bad_options_give_one_error_and_write_nothing(tmp_path, monkeypatch, args, message):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    res = runner.invoke(app, ["screen", str(_sites(tmp_path)), "--data", str(tmp_path),
                              "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2
    assert res.output.count("error:") == 1 and message in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_validate_reports_every_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("site_id,name,lon,lat\na,A,200,10\nb,B,10,95\n", "utf-8")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "row 2" in res.output and "row 3" in res.output
