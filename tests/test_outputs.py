import json
import os

import pandas as pd
import pytest

from sitescreen.errors import OutputError, UnsafePathError
from sitescreen.outputs import json_bytes, latest_run, site_features, write_run


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
