import json
import math

import pytest
from report_fixtures import SITES, build_run, sites_frame, write_run_folder

from sitescreen.classify import ThresholdSet
from sitescreen.data.sources import DataOrigin
from sitescreen.outputs.changes import (
    CHANGES_COLUMNS,
    changes_table,
    compare_runs,
    find_previous_run,
)

HAZARDS = ("water_stress", "typhoon")
# Typhoon v2 lowers the first edge from 17.2 to 15.0 m/s.
TYPHOON_V2 = ThresholdSet("typhoon-china-grade-rp50-v2", "typhoon", "2", "ascending",
                          "m/s, 1-in-50-year 2-minute mean wind at 10 m", (15.0, 24.5, 32.7, 41.5))


def _second_run_sites():
    rows = [dict(r) for r in SITES]
    rows[1]["lon"] = 116.41  # Beijing moved east by 0.01 degree of longitude at 39.9 N
    rows.append(dict(site_id="gz", name="Guangzhou office", city="Guangzhou", country="CN",
                     lon=113.26, lat=23.13, location_source="given",
                     geocode_precision="coordinates"))
    return sites_frame(rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    first = build_run(hazards=HAZARDS, run_id="20250101T000000Z-aaaaaa")
    first_dir = write_run_folder(out, first, created_at="2025-01-01T00:00:00+00:00")
    # Second run: one site added, one moved, and the typhoon threshold set replaced; with
    # the lower edge, Shanghai's typhoon wind (fixture level 2, optimistic 2030) is read as
    # level 3, a change the threshold set explains.
    second = build_run(sites=_second_run_sites(), hazards=HAZARDS,
                       run_id="20250201T000000Z-bbbbbb", typhoon_thresholds=TYPHOON_V2,
                       overrides={("typhoon", "sh", "optimistic", 2030): 3})
    return out, first_dir, second


@pytest.fixture(scope="module")
def changes(runs):
    _, first_dir, (sites, table, _, manifest) = runs
    return compare_runs(first_dir, sites=sites, table=table, manifest=manifest)


def test_finds_the_previous_run_of_the_same_sites_file(runs, tmp_path):
    out, first_dir, _ = runs
    assert find_previous_run(out, "sites.geojson") == first_dir
    assert find_previous_run(out, "other.geojson") is None
    assert find_previous_run(out, "0" * 64) == first_dir  # by checksum
    assert find_previous_run(out, "sites.geojson", before_run_id="20250101T000000Z-aaaaaa") is None
    assert find_previous_run(tmp_path / "missing", "sites.geojson") is None


def test_newest_earlier_run_wins(tmp_path):
    for run_id, created in (("20250101T000000Z-aaaaaa", "2025-01-01T00:00:00+00:00"),
                            ("20250301T000000Z-cccccc", "2025-03-01T00:00:00+00:00")):
        write_run_folder(tmp_path, build_run(hazards=("typhoon",), years=(2030,),
                                             run_id=run_id), created_at=created)
    (tmp_path / ".tmp-20250401T000000Z-dddddd-x").mkdir()  # an unfinished run is ignored
    found = find_previous_run(tmp_path, "sites.geojson")
    assert found.name == "20250301T000000Z-cccccc"
    found = find_previous_run(tmp_path, "sites.geojson", before_run_id="20250301T000000Z-cccccc")
    assert found.name == "20250101T000000Z-aaaaaa"


def test_site_added_and_moved(changes):
    assert changes["previous_run"] == "20250101T000000Z-aaaaaa"
    assert [s["site_id"] for s in changes["sites_added"]] == ["gz"]
    assert changes["sites_removed"] == []
    (moved,) = changes["sites_moved"]
    assert moved["site_id"] == "bj" and moved["cause"] == "site moved"
    # 0.01 degree of longitude at 39.9 N on a sphere of radius 6371.0088 km
    expected = 6371008.8 * math.radians(0.01) * math.cos(math.radians(39.9))
    assert moved["distance_m"] == pytest.approx(expected, abs=1.0)


def test_level_change_is_attributed_to_the_threshold_set(changes):
    (change,) = [c for c in changes["level_changes"] if c["hazard"] == "typhoon"]
    assert (change["site_id"], change["scenario"], change["year"]) == ("sh", "optimistic", 2030)
    assert (change["previous_level"], change["level"]) == (2, 3)
    assert change["cause"].startswith("threshold set changed (typhoon-china-grade-rp50-v1 -> "
                                      "typhoon-china-grade-rp50-v2)")
    assert change["cause_group"] == "data/method"
    # Shanghai's composite (highest of typhoon alone in this run) follows, with the same cause
    (comp,) = [c for c in changes["level_changes"] if c["hazard"] == "floods_typhoons"]
    assert comp["cause"] == change["cause"]
    assert changes["counts"]["level_changes"] == 2
    assert changes["counts"]["unexplained"] == 0
    assert {"kind": "threshold set changed", "what": "typhoon",
            "previous": "typhoon-china-grade-rp50-v1",
            "current": "typhoon-china-grade-rp50-v2"} in changes["input_changes"]


def test_summary_is_json_and_table_has_one_row_per_change(changes):
    json.dumps(changes, allow_nan=False)
    table = changes_table(changes)
    assert list(table.columns) == CHANGES_COLUMNS
    assert table["change"].tolist() == ["site added", "site moved", "level changed",
                                        "level changed"]
    assert table.loc[1, "distance_m"] == pytest.approx(852.4, abs=1.0)


def test_unchanged_inputs_with_a_changed_level_are_unexplained(tmp_path):
    first = build_run(hazards=("typhoon",), years=(2030,), run_id="20250101T000000Z-aaaaaa")
    first_dir = write_run_folder(tmp_path, first)
    sites, table, _, manifest = build_run(
        hazards=("typhoon",), years=(2030,), run_id="20250201T000000Z-bbbbbb",
        overrides={("typhoon", "cd", "pessimistic", 2030): 5})
    changes = compare_runs(first_dir, sites=sites, table=table, manifest=manifest)
    single = [c for c in changes["level_changes"] if c["hazard"] == "typhoon"]
    assert [(c["site_id"], c["cause"], c["cause_group"]) for c in single] == [
        ("cd", "unexplained", "unexplained")]
    assert changes["counts"]["unexplained"] == 2  # the typhoon row and its composite


def test_data_origin_change_explains_every_changed_level(tmp_path):
    first = build_run(hazards=("typhoon",), years=(2030,), run_id="20250101T000000Z-aaaaaa")
    first_dir = write_run_folder(tmp_path, first)
    sites, table, _, manifest = build_run(
        hazards=("typhoon",), years=(2030,), run_id="20250201T000000Z-bbbbbb",
        origin=DataOrigin.MIRROR, overrides={("typhoon", "hk", "optimistic", 2030): 1})
    changes = compare_runs(first_dir, sites=sites, table=table, manifest=manifest)
    causes = {c["cause"] for c in changes["level_changes"]}
    assert causes == {"data origin changed (synthetic-demo -> mirror)"}
    # changes.json says where the data of both runs came from, as changes.csv does
    assert (changes["data_origin"], changes["previous_data_origin"]) == ("mirror",
                                                                         "synthetic-demo")


def test_geocode_change_is_site_caused(tmp_path):
    first = build_run(hazards=("typhoon",), years=(2030,), run_id="20250101T000000Z-aaaaaa")
    first_dir = write_run_folder(tmp_path, first)
    rows = [dict(r) for r in SITES]
    rows[4]["lat"] += 0.005  # Chengdu: same input (geocoded), another geocoder answer
    sites, table, _, manifest = build_run(
        sites=sites_frame(rows), hazards=("typhoon",), years=(2030,),
        run_id="20250201T000000Z-bbbbbb", overrides={("typhoon", "cd", "optimistic", 2030): 2})
    changes = compare_runs(first_dir, sites=sites, table=table, manifest=manifest)
    (moved,) = changes["sites_moved"]
    assert moved["cause"] == "geocode changed" and moved["distance_m"] == pytest.approx(556, abs=2)
    row = next(c for c in changes["level_changes"] if c["hazard"] == "typhoon")
    assert row["cause"] == "geocode changed" and row["cause_group"] == "site"


def test_no_previous_run():
    sites, table, _, manifest = build_run(hazards=("typhoon",), years=(2030,))
    changes = compare_runs(None, sites=sites, table=table, manifest=manifest)
    assert changes["previous_run"] is None and "nothing to compare" in changes["note"]
    assert changes["data_origin"] == "synthetic-demo" and changes["previous_data_origin"] is None
    assert changes["counts"]["level_changes"] == 0
    assert changes_table(changes).empty


def test_runs_above_the_per_site_limit_are_compared_by_counts(tmp_path):
    """Above the per-site limit no long table is compared: the data and method changes and
    the share changes are, and changes.json and the report say what was left out."""
    from sitescreen.outputs.per_site import plan_per_site
    from sitescreen.outputs.run_files import render_files

    first = build_run(hazards=HAZARDS)
    write_run_folder(tmp_path, first, created_at="2025-01-01T00:00:00Z")
    higher = {("typhoon", sid, "optimistic", 2030): 5 for sid in ("sh", "bj", "hk")}
    sites, table, shares, manifest = build_run(
        hazards=HAZARDS, run_id="20250201T000000Z-bbbbbb", typhoon_thresholds=TYPHOON_V2,
        overrides=higher)
    files = render_files(sites=sites, table=table, shares_table=shares, manifest=manifest,
                         out_root=tmp_path, plan=plan_per_site("auto", len(sites), limit=2))
    changes = json.loads(files["changes.json"])
    assert changes["previous_run"] == first[3]["run_id"] and changes["per_site"] is False
    assert changes["data_origin"] == changes["previous_data_origin"] == "synthetic-demo"
    assert changes["level_changes"] == [] and changes["sites_added"] == []
    assert "Compared by counts only: 6 sites are more than the per-site limit" in \
        changes["note"]
    assert any("threshold" in c["kind"] for c in changes["input_changes"])
    assert {(c["hazard"], c["scenario"], c["year"]) for c in changes["share_changes"]} >= \
        {("typhoon", "optimistic", 2030)}
    assert "Compared by counts only" in files["report.md"].decode()
