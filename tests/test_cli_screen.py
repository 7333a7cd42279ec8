"""``sitescreen screen``, ``validate`` and ``demo-data`` through typer's CliRunner.

The subprocess tests of the same commands are in test_flow.py, test_corpus.py and
test_faults.py; these check the in-process paths and the choice of mode.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import analyst_sites
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


# --- one message per error, the same on every path ----------------------------------------------
#
# Each bad input is run on the plain path (no PREFECT_API_URL) and as a flow run on the
# session's Prefect test API (PREFECT_API_URL set): the same lines, one `error:`, exit 2, no
# traceback, no output folder. The subprocess runs see what a terminal sees, Prefect's own
# handlers included.

_ELAPSED = re.compile(r" \(\d+\.\d s\)$")


def _bad_input(case: str, tmp_path: Path) -> list[str]:
    """Arguments of ``screen`` for one bad input (files written to ``tmp_path``)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    good = _sites(tmp_path)
    if case == "blank weight":
        return [str(analyst_sites.write_csv(tmp_path / "a.csv")), "--weight",
                analyst_sites.WEIGHT, "--data", str(data)]
    if case == "empty data folder":  # found only inside the run, by the hazard tasks
        return [str(good), "--data", str(data), "-y", "2030", "-s", "pessimistic"]
    if case == "invalid json":
        (tmp_path / "bad.geojson").write_text('{"type": "FeatureCollection", "features": [')
        return [str(tmp_path / "bad.geojson"), "--data", str(data)]
    if case == "fifo":
        os.mkfifo(tmp_path / "sites.csv")
        return [str(tmp_path / "sites.csv"), "--data", str(data)]
    if case == "zip":
        with zipfile.ZipFile(tmp_path / "sites.zip", "w") as z:
            z.writestr("sites.csv", "site_id,lon,lat\na,121.4,31.2\n")
        return [str(tmp_path / "sites.zip"), "--data", str(data)]
    if case == "unknown hazard":
        return [str(good), "--data", str(data), "--hazard", "heat"]
    if case == "missing data folder":
        return [str(good), "--data", str(tmp_path / "nowhere")]
    raise AssertionError(case)


_BAD = ["blank weight", "empty data folder", "invalid json", "fifo", "zip", "unknown hazard",
        "missing data folder"]
_MESSAGE = {"blank weight": "is blank", "empty data folder": "is missing from",
            "invalid json": "invalid JSON", "fifo": "not a regular file",
            "zip": "this is a ZIP archive", "unknown hazard": "unknown hazard 'heat'",
            "missing data folder": "nowhere"}


def _shown(text: str) -> list[str]:
    """The lines a user reads, without the mode line and the elapsed times."""
    lines = [_ELAPSED.sub("", ln) for ln in text.splitlines() if ln.strip()]
    return [ln for ln in lines if not ln.startswith("running ")]


def _check_one_error(output: str, case: str, out: Path) -> None:
    """One message (a sites file's may list its problems below it), naming the fault."""
    assert sum(ln.startswith("error:") for ln in output.splitlines()) == 1, output
    assert _MESSAGE[case] in output.split("error:", 1)[1], output
    assert "Traceback" not in output and "Finished in state" not in output, output
    # The up-front folder check may have created --out (a probe write); no run is in it.
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


@pytest.mark.prefect
@pytest.mark.parametrize("case", _BAD)
def test_each_bad_input_gives_one_error_on_both_paths(case, tmp_path, monkeypatch,
                                                     prefect_api_url):
    args = _bad_input(case, tmp_path)
    shown = {}
    for path in ("plain", "prefect"):
        if path == "plain":
            monkeypatch.delenv("PREFECT_API_URL", raising=False)
        else:
            monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)
        out = tmp_path / f"out-{path}"
        res = runner.invoke(app, ["screen", *args, "--out", str(out)])
        assert res.exit_code == 2, res.output
        _check_one_error(res.output, case, out)
        shown[path] = _shown(res.output)
    assert shown["plain"] == shown["prefect"]


@pytest.mark.prefect
@pytest.mark.parametrize("case", ["blank weight", "empty data folder"])
def test_each_bad_input_gives_one_error_in_a_terminal_on_both_paths(case, tmp_path,
                                                                   prefect_api_url):
    args = _bad_input(case, tmp_path)
    shown = {}
    for path in ("plain", "prefect"):
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        if path == "prefect":
            env["PREFECT_API_URL"] = prefect_api_url
        out = tmp_path / f"out-{path}"
        proc = subprocess.run([sys.executable, "-m", "sitescreen.cli", "screen", *args,
                               "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert proc.stdout == ""
        _check_one_error(proc.stderr, case, out)
        shown[path] = _shown(proc.stderr)
        first = proc.stderr.splitlines()[0]
        if case == "empty data folder":  # found in the run: the mode line comes first
            assert first.startswith("running the pipeline in this process" if path == "plain"
                                    else f"running as a Prefect flow on {prefect_api_url}")
        else:  # found before anything starts
            assert first.startswith("error:")
    assert shown["plain"] == shown["prefect"]


# --- the analyst's workbook, on both paths -------------------------------------------------------


@pytest.mark.prefect
def test_analyst_workbook_screens_with_weights_progress_and_no_log_noise(
        tmp_path, demo_pack, prefect_api_url, monkeypatch):
    xlsx = analyst_sites.write_xlsx(tmp_path / "portfolio.xlsx", blank_weight=False)
    args = ["screen", str(xlsx), "--weight", analyst_sites.WEIGHT, "--data", str(demo_pack),
            "-y", "2030", "-s", "pessimistic", "--no-report"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    plain = runner.invoke(app, [*args, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    proc = subprocess.run([sys.executable, "-m", "sitescreen.cli", *args, "--out",
                           str(tmp_path / "flow")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # stderr: the mode line, then progress lines only (no Prefect states or advertisement)
    err = proc.stderr.splitlines()
    assert err[0] == f"running as a Prefect flow on {prefect_api_url}"
    assert all(ln.startswith("  ") for ln in err[1:]), proc.stderr
    from sitescreen import pipeline

    request = pipeline.make_request(sites=str(xlsx), data=str(demo_pack), years=[2030],
                                    scenarios=["pessimistic"])
    n_layers = len(pipeline.plan_layers(pipeline.catalog_for(request), request))  # one a hazard
    assert sum("/pessimistic/2030:" in ln for ln in err) == n_layers
    assert any(ln.startswith(f"  sampled {n_layers} of {n_layers} layers") or
               ln.startswith("  sampled 0 of") for ln in err), proc.stderr
    assert err[-1].startswith(f"  wrote {tmp_path / 'flow'}")

    # stdout: the same table on both paths, with the weighted share and the unresolved sites
    def body(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.startswith(("Pessimistic", "w.medium+",
                                                                 "  SZ-02", "  TJ-01",
                                                                 "2 sites"))]

    assert body(proc.stdout) == body(plain.stdout)
    assert "w.medium+" in proc.stdout
    values = analyst_sites.weights(blank_weight=False)
    lost = sum(values[s] for s in analyst_sites.UNPLACEABLE)
    total = sum(values.values())
    assert (f"2 sites not located (counted as unresolved); {lost / 1e6:.0f} M of "
            f"{total / 1e9:.4g} bn {analyst_sites.WEIGHT} not located (2 of 16 sites):"
            ) in proc.stdout
    assert "  TJ-01 (Tianjin Lab): " in proc.stdout and "did you mean 'Tianjin'" in proc.stdout
    assert "  SZ-02 (Suzhou Lab): " in proc.stdout

    # the summary files say the same
    summary = json.loads((tmp_path / "flow" / "latest" / "summary.json").read_text("utf-8"))
    unresolved = summary["header"]["unresolved"]
    assert unresolved["site_ids"] == ["SZ-02", "TJ-01"]
    assert unresolved["weight_not_located"] == lost and unresolved["weight_total"] == total
    assert unresolved["statement"] in proc.stdout


def test_validate_checks_weights_and_geocoding(tmp_path):
    res = runner.invoke(app, ["validate", str(analyst_sites.write_xlsx(tmp_path / "a.xlsx")),
                              "--weight", analyst_sites.WEIGHT])
    assert res.exit_code == 2
    assert "1 error, 2 warnings" in res.output
    assert f"(site_id '{analyst_sites.BLANK_WEIGHT}')" in res.output
    assert "did you mean 'Tianjin'" in res.output and "'Suzhou' matches" in res.output
    res = runner.invoke(app, ["validate", str(tmp_path / "a.xlsx"), "--no-geocode"])
    assert res.exit_code == 0 and "0 errors, 0 warnings" in res.output


def test_a_mirror_url_as_data_is_read_over_http(tmp_path, tmp_path_factory, monkeypatch):
    """``--data http://...`` reaches the run as given (not folded to ``http:/host``) and the
    layers are read from the server."""
    from range_server import RangeServer

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with RangeServer(small_pack(tmp_path_factory)) as server:
        res = runner.invoke(app, [
            "screen", str(_sites(tmp_path)), "--data", server.url, "--out",
            str(tmp_path / "out"), "--hazard", "coastal_flood", "-s", "pessimistic",
            "-y", "2030", "--no-report"])
        requested = [r.path for r in server.log]
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "out" / "latest" / "manifest.json").read_text("utf-8"))
    assert manifest["request"]["data"] == server.url
    assert any(p.startswith("aqueduct_floods/inuncoast") for p in requested), requested
