import json
import os

import pandas as pd
import pytest

from sitescreen.errors import OutputError, UnsafePathError
from sitescreen.outputs.run_folder import (
    csv_writer,
    geojson_writer,
    json_bytes,
    latest_run,
    site_features,
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


def test_csv_writer_puts_the_comment_line_above_a_table_pandas_reads_back(tmp_path):
    frame = pd.DataFrame({"site_id": ["a", "b,2", 'q"x'], "year": [2030, 2050, 2030],
                          "value": [0.1, float("nan"), 3.25], "exact": [True, False, True],
                          "flags": ["", "no-data", ""]})
    path = tmp_path / "t.csv"
    csv_writer(frame, comment="# provenance line\n")(path)

    lines = path.read_text("utf-8").splitlines()
    assert lines[0] == "# provenance line" and len(lines) == 5
    back = pd.read_csv(path, comment="#", keep_default_na=False, na_values={"value": [""]})
    assert back["site_id"].tolist() == ["a", "b,2", 'q"x']  # quoting survives the round trip
    assert back["year"].tolist() == [2030, 2050, 2030]
    assert back["value"].iloc[0] == 0.1 and pd.isna(back["value"].iloc[1])
    assert back["exact"].tolist() == [True, False, True]
    with pytest.raises(ValueError, match="starts with '#'"):
        csv_writer(frame, comment="no hash\n")


def test_csv_writer_falls_back_to_pandas_for_mixed_object_columns(tmp_path):
    frame = pd.DataFrame({"mixed": pd.Series([1, "two", None], dtype=object)})
    path = tmp_path / "m.csv"
    csv_writer(frame)(path)
    # pandas quotes a lone empty cell so the row is not a blank line
    assert path.read_text("utf-8").splitlines() == ["mixed", "1", "two", '""']


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
