"""sitescreen.store: a failed write is an error saying what to free; fingerprints stamped once
per run; snapshots of a run's layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sitescreen import pipeline, store
from sitescreen.errors import OutputError
from sitescreen.hazards import HazardResult
from sitescreen.scenarios import Narrative, pathway_for
from sitescreen.store import ResultStore, layer_fingerprint


def _result(n: int) -> HazardResult:
    levels = np.full(n, 3, dtype="int8")
    s, y = Narrative.PESSIMISTIC, 2030
    return HazardResult(hazard="river_flood", scenario=s, year=y,
                        pathway=pathway_for("aqueduct_floods", s, y), units="u",
                        threshold_set="ts", datasets=("d",), method="m",
                        values=levels.astype(float), levels=levels, level_low=levels,
                        level_high=levels, flags=np.array([""] * n, dtype=object))


def test_a_store_that_cannot_be_written_is_an_output_error_saying_what_to_free(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    (root / "abc").write_text("in the way")  # the layer's folder cannot be created
    store = ResultStore(root)
    lon, lat = np.array([121.4, 121.5]), np.array([31.2, 31.3])

    with pytest.raises(OutputError) as err:
        store.save("abc", lon, lat, _result(2))

    msg = str(err.value)
    assert str(root) in msg and "river_flood" in msg and "free space" in msg
    assert "deleting" in msg  # the store only saves time


def _read_arrow(path) -> pd.DataFrame:
    import pyarrow as pa

    return pa.ipc.open_file(pa.memory_map(str(path))).read_pandas()


def _request(sites, pack, tmp_path, **kw):
    return pipeline.make_request(sites=str(sites), data=str(pack), out=str(tmp_path / "out"),
                                 cache_dir=str(tmp_path / "cache"), years=[2050],
                                 scenarios=["pessimistic"], **kw)


def test_stamps_are_listed_once_per_run_and_keep_the_key(demo_pack, monkeypatch):
    request = pipeline.make_request(sites="x", data=str(demo_pack))
    catalog, data = pipeline.catalog_for(request), pipeline.open_data(request)
    layers = [("river_flood", s, y) for s in pipeline.Narrative for y in (2030, 2050)]
    plain = [layer_fingerprint(catalog, data, h, s, y) for h, s, y in layers]
    calls = []
    real = store._folder_stamp
    monkeypatch.setattr(store, "_folder_stamp", lambda d, local: calls.append(local) or real(d, local))
    stamps: dict = {}
    memo = [layer_fingerprint(catalog, data, h, s, y, stamps=stamps) for h, s, y in layers]
    assert memo == plain  # the same cache keys as before
    assert len(calls) == len(set(calls)) == len(catalog.hazard("river_flood").datasets)


def test_rerun_reads_the_snapshot_and_samples_only_new_sites(demo_pack, example_sites,
                                                             tmp_path, monkeypatch):
    import geopandas as gpd

    sites = gpd.read_file(example_sites)
    first_file = tmp_path / "first.geojson"
    sites.iloc[:30].to_file(first_file, driver="GeoJSON")
    first = pipeline.screen(_request(first_file, demo_pack, tmp_path), write=False)
    snapshots = list((tmp_path / "cache" / "results" / "snapshots").glob("*/part-*.arrow"))
    assert len(snapshots) == 1

    sampled: list[int] = []
    real = pipeline.assess_missing
    monkeypatch.setattr(pipeline, "assess_missing",
                        lambda layer, cached, **k: sampled.append(len(cached.missing))
                        or real(layer, cached, **k))
    # Layer parts must not be read when the snapshot serves the run.
    monkeypatch.setattr(ResultStore, "_read", lambda self, fp: pytest.fail("read layer parts"))
    second = pipeline.screen(_request(example_sites, demo_pack, tmp_path), write=False)
    n_new = len(sites) - 30
    assert sampled and set(sampled) == {n_new}
    parts = list((tmp_path / "cache" / "results" / "snapshots").glob("*/part-*.arrow"))
    assert len(parts) == 2 and _read_arrow(min(parts, key=lambda p: p.stat().st_size)
                                           ).shape[0] == n_new
    # The first 30 sites keep their levels, and a fresh computation agrees with the rerun.
    monkeypatch.undo()
    fresh = pipeline.screen(pipeline.make_request(
        sites=str(example_sites), data=str(demo_pack), cache_dir=str(tmp_path / "fresh"),
        years=[2050], scenarios=["pessimistic"]), write=False)
    for i in range(len(second.results.layers)):
        assert np.array_equal(second.results.level[i][:30], first.results.level[i])
        assert np.array_equal(second.results.level[i], fresh.results.level[i])
    pd.testing.assert_frame_equal(second.shares, fresh.shares)
    # Every column of every layer, not only the levels, is what a fresh run computes.
    for name in ("value", "level_low", "level_high"):
        for a, b in zip(getattr(second.results, name), getattr(fresh.results, name),
                        strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(second.results.flags, fresh.results.flags, strict=True):
        assert list(np.asarray(a)) == list(np.asarray(b))
    for a, b in zip(second.results.extra, fresh.results.extra, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_snapshot_parts_are_merged_past_the_limit(tmp_path, monkeypatch):
    from sitescreen.hazards import HazardResult
    from sitescreen.scenarios import Narrative, pathway_for

    monkeypatch.setattr(store, "SNAPSHOT_MAX_PARTS", 2)
    st = ResultStore(tmp_path)

    def result(n):
        lv = np.arange(n, dtype="int8") % 5 + 1
        return HazardResult(hazard="h", scenario=Narrative.PESSIMISTIC, year=2050,
                            pathway=pathway_for("aqueduct_floods", Narrative.PESSIMISTIC, 2050),
                            units="u", threshold_set="t", datasets=("d",), method="m",
                            values=lv.astype(float), levels=lv, level_low=lv, level_high=lv,
                            flags=np.array([""] * n, dtype=object))

    snap = None
    for n in (3, 5, 8, 9):
        lon, lat = np.arange(n, dtype=float), np.zeros(n)
        st.write_snapshot(["fp"], lon, lat, [result(n)], previous=snap)
        snap = st.read_snapshot(["fp"])
        assert len(snap.rows) == n and snap.n_parts <= 2
    assert st.read_snapshot(["other"]) is None
    assert list(snap.layer_rows(0).columns) == ["value", "level", "level_low", "level_high",
                                                "flags"]


def test_a_chunk_reads_only_its_rows_and_never_merges_away_the_others(tmp_path, monkeypatch):
    """A Dask chunk reads the snapshot rows of its own sites (memory follows the chunk), and
    adding its new sites never rewrites the snapshot from that partial view."""
    monkeypatch.setattr(store, "SNAPSHOT_MAX_PARTS", 2)
    st = ResultStore(tmp_path)
    lon, lat = np.arange(10, dtype=float), np.zeros(10)
    lv = (np.arange(10) % 5 + 1).astype("int8")
    st.write_snapshot(["fp"], lon[:6], lat[:6], [_levels_result(lv[:6])])
    st.write_snapshot(["fp"], lon[6:8], lat[6:8], [_levels_result(lv[6:8])],
                      previous=st.read_snapshot(["fp"]))
    chunk = np.array([1, 6, 8, 9])  # two stored sites (in different parts), two new
    part = st.read_snapshot(["fp"], keys=store.location_keys(lon[chunk], lat[chunk]))
    assert part.partial and part.n_parts == 2 and len(part) == 2
    assert sorted(part.rows["0__level"].tolist()) == sorted(lv[[1, 6]].tolist())
    st.write_snapshot(["fp"], lon[chunk], lat[chunk], [_levels_result(lv[chunk])],
                      previous=part.held())
    whole = st.read_snapshot(["fp"])
    assert not whole.partial and whole.n_parts == 3  # a part added, none merged away
    assert len(whole) == 10
    assert np.array_equal(whole.rows.sort_index()["0__level"].to_numpy(), lv)


def test_location_keys_are_the_rounded_coordinates():
    lon = np.array([121.4, 121.4000004, 121.4000006, -0.0, 0.0, np.nan, -179.999999, 179.999999])
    lat = np.array([31.2, 31.2, 31.2, 0.0, 0.0, 10.0, -89.999999, 89.999999])
    keys = store.location_keys(lon, lat)
    assert keys.dtype == np.int64
    assert keys[0] == keys[1] != keys[2]  # the same location to 1e-6 degrees, or not
    assert keys[3] == keys[4]  # -0.0 and 0.0 are one place
    assert keys[5] == store.NO_LOCATION
    assert len(set(keys[[0, 2, 3, 6, 7]].tolist())) == 5 and (keys[[0, 2, 3, 6, 7]] >= 0).all()
    # Any two coordinates that round apart get different keys.
    rng = np.random.default_rng(3)
    lo, la = rng.uniform(-180, 180, 50_000), rng.uniform(-90, 90, 50_000)
    lo[:100], la[:100] = lo[100:200] + 4e-7, la[100:200]  # some rounding together
    pairs = set(zip(np.round(lo, 6).tolist(), np.round(la, 6).tolist(), strict=True))
    assert len(np.unique(store.location_keys(lo, la))) == len(pairs)


def _levels_result(lv: np.ndarray, flags: list[str] | None = None) -> HazardResult:
    return HazardResult(hazard="h", scenario=Narrative.PESSIMISTIC, year=2050,
                        pathway=pathway_for("aqueduct_floods", Narrative.PESSIMISTIC, 2050),
                        units="u", threshold_set="t", datasets=("d",), method="m",
                        values=lv.astype(float) / 2, levels=lv, level_low=lv, level_high=lv,
                        flags=np.array(flags or [f"f{v}" for v in lv], dtype=object),
                        extra={"note": np.array([f"n{v}" for v in lv], dtype=object),
                               "raw": lv.astype(float) * 3})


def test_sites_read_from_several_snapshot_parts_get_their_stored_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_ROW_GROUP", 4)  # parts written in several row groups
    st = ResultStore(tmp_path)
    snap = None
    lon = np.arange(12, dtype=float) + 100.0
    lat = np.full(12, 20.0)
    lv = (np.arange(12) % 5 + 1).astype("int8")
    for a, b in ((0, 6), (0, 9), (0, 12)):  # three parts: 6, then 3, then 3 new locations
        st.write_snapshot(["fp"], lon[a:b], lat[a:b], [_levels_result(lv[a:b])], previous=snap)
        snap = st.read_snapshot(["fp"])
    assert snap.n_parts == 3 and len(snap) == 12
    order = np.array([11, 0, 7, 3, 3, 10, 6])  # sites in another order, one twice
    extra_lon = np.append(lon[order], 150.0)  # and one the store lacks
    extra_lat = np.append(lat[order], 20.0)
    cached = st.cached_from_snapshot(snap, 0, extra_lon, extra_lat)
    assert cached.missing.tolist() == [len(order)]
    computed = _levels_result(np.array([4], dtype="int8"), flags=["new"])
    out = st.assemble(cached, extra_lon, extra_lat, computed)
    expect = np.append(lv[order], 4)
    assert out.levels.tolist() == expect.tolist()
    assert np.allclose(out.values, expect / 2) and np.allclose(out.extra["raw"], expect * 3)
    assert [str(f) for f in np.asarray(out.flags)] == [f"f{v}" for v in lv[order]] + ["new"]
    assert list(out.extra["note"][:-1]) == [f"n{v}" for v in lv[order]]
    assert list(out.flags.categories) == sorted({f"f{v}" for v in lv[order]} | {"new"})


def test_sites_sharing_a_location_get_the_last_computed_row(tmp_path):
    st = ResultStore(tmp_path)
    lon = np.array([120.0, 121.0, 120.0000001, 122.0])
    lat = np.array([30.0, 30.0, 30.0, 30.0])
    lv = np.array([1, 2, 3, 4], dtype="int8")
    first = st.lookup("fp", lon, lat)
    assert first.missing.tolist() == [0, 1, 2, 3] and not first.rows
    st.save("fp", lon, lat, _levels_result(lv))
    out = st.assemble(first, lon, lat, _levels_result(lv))
    assert out.levels.tolist() == [3, 2, 3, 4]  # sites 0 and 2 are one location
    part = pd.read_parquet(next((tmp_path / "fp").glob("part-*.parquet")))
    assert len(part) == 3 and part["loc"].is_monotonic_increasing  # one row per location
    again = st.lookup("fp", lon[::-1], lat[::-1])
    assert not len(again.missing)
    assert st.assemble(again, lon[::-1], lat[::-1], None).levels.tolist() == [4, 3, 2, 3]


def _site_result(lon: np.ndarray) -> HazardResult:
    """A result that is a function of each site's location (so any two runs agree)."""
    lv = (np.round(lon * 7).astype(np.int64) % 5 + 1).astype("int8")
    return _levels_result(lv)


def _assert_same(a: HazardResult, b: HazardResult) -> None:
    np.testing.assert_array_equal(a.values, b.values)
    for name in ("levels", "level_low", "level_high"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert [str(f) for f in np.asarray(a.flags)] == [str(f) for f in np.asarray(b.flags)]
    assert a.extra.keys() == b.extra.keys()
    for k in a.extra:
        assert np.asarray(a.extra[k]).dtype == np.asarray(b.extra[k]).dtype, k
        assert np.asarray(a.extra[k]).tolist() == np.asarray(b.extra[k]).tolist(), k


@pytest.mark.parametrize("case", ["same", "appended", "removed", "reordered", "both"])
def test_a_rerun_with_sites_changed_gets_what_a_fresh_run_computes(tmp_path, case):
    """The snapshot holds the first run's sites in their order: a re-run of the same sites
    (some removed, new ones appended) copies runs of rows as slices, any other order takes
    them row by row; either way each site gets its own stored row."""
    st = ResultStore(tmp_path)
    n = 3000
    lon, lat = 100.0 + np.arange(n) / 1000.0, np.full(n, 20.0)
    st.write_snapshot(["fp"], lon, lat, [_site_result(lon)])
    st.save("fp", lon[:1], lat[:1], _site_result(lon[:1]))  # the layer's meta.json
    rng = np.random.default_rng(5)
    order = {"same": np.arange(n),
             "appended": np.arange(n + 20),
             "removed": np.delete(np.arange(n), [7, 1500, 1501, 2999]),
             "reordered": rng.permutation(n),
             "both": np.concatenate([rng.permutation(n)[:2000], np.arange(n, n + 5)])}[case]
    all_lon = 100.0 + np.arange(n + 20) / 1000.0
    lon2, lat2 = all_lon[order], np.full(len(order), 20.0)
    snap = st.read_snapshot(["fp"])
    cached = st.cached_from_snapshot(snap, 0, lon2, lat2)
    assert cached.missing.tolist() == np.flatnonzero(order >= n).tolist()
    (group,) = snap.found(store.location_keys(lon2, lat2)).groups
    runs = {"same": 1, "appended": 1, "removed": 3, "reordered": None, "both": None}[case]
    assert (None if group.runs is None else len(group.runs)) == runs
    miss = cached.missing
    out = st.assemble(cached, lon2, lat2, _site_result(lon2[miss]) if len(miss) else None)
    _assert_same(out, _site_result(lon2))
    assert isinstance(out.flags, pd.Categorical)  # flags as before, text extras as str
    assert out.extra["note"].dtype == object and type(out.extra["note"][0]) is str


def test_sites_sharing_a_location_keep_their_order_in_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_ROW_GROUP", 4)  # written in several batches
    st = ResultStore(tmp_path)
    lon = np.array([1.0, 2.0, 1.0, 3.0, 4.0, 2.0, 5.0, 6.0, 7.0, 1.0])
    lat = np.zeros(len(lon))
    lv = np.arange(1, 11, dtype="int8")  # rows of one location differ: the last one counts
    first = st.lookup("fp", lon, lat)
    result = st.assemble(first, lon, lat, _levels_result(lv))
    assert result.levels.tolist() == [10, 6, 10, 4, 5, 6, 7, 8, 9, 10]
    st.write_snapshot(["fp"], lon, lat, [result])
    st.save("fp", lon, lat, result)  # the layer's meta.json
    snap = st.read_snapshot(["fp"])
    assert snap.n_parts == 1 and snap.parts[0].loc.tolist() == \
        store.location_keys(lon, lat).tolist()  # one row per site, in their order
    assert len(snap) == 7
    for sel in (np.arange(10), np.arange(10)[::-1], np.array([2, 6, 0])):
        cached = st.cached_from_snapshot(snap, 0, lon[sel], lat[sel])
        assert not len(cached.missing)
        out = st.assemble(cached, lon[sel], lat[sel], None)
        assert out.levels.tolist() == result.levels[sel].tolist()
        assert list(out.extra["note"]) == list(np.asarray(result.extra["note"])[sel])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_snapshot_part_is_ignored_with_a_warning(tmp_path, caplog, damage):
    st = ResultStore(tmp_path)
    lon, lat = np.arange(50, dtype=float), np.zeros(50)
    st.write_snapshot(["fp"], lon, lat, [_site_result(lon)])
    (path,) = (tmp_path / "snapshots").glob("*/part-*.arrow")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) - 100], "garbage": b"x" * len(data),
                      "empty": b""}[damage])
    with caplog.at_level("WARNING", logger="sitescreen.store"):
        snap = st.read_snapshot(["fp"])
    assert not snap.n_parts and snap.damaged == (path,)  # none of its rows is used
    assert "unreadable result snapshot" in caplog.text and str(path) in caplog.text


def test_a_truncated_snapshot_part_is_recomputed_by_a_rerun(demo_pack, example_sites,
                                                           tmp_path, monkeypatch, caplog):
    request = _request(example_sites, demo_pack, tmp_path)
    first = pipeline.screen(request, write=False)
    folder = tmp_path / "cache" / "results" / "snapshots"
    (path,) = folder.glob("*/part-*.arrow")
    path.write_bytes(path.read_bytes()[:-64])
    with caplog.at_level("WARNING", logger="sitescreen.store"):
        again = pipeline.screen(request, write=False)  # from the layer parts
    assert "unreadable result snapshot" in caplog.text
    # Once the sites are stored again, the damaged part is gone, with a warning naming it.
    assert f"removed the damaged result snapshot part {path}" in caplog.text
    (whole,) = folder.glob("*/part-*.arrow")
    assert whole != path and not path.exists()
    caplog.clear()
    # The next run is served by the new part alone.
    monkeypatch.setattr(ResultStore, "_read", lambda self, fp: pytest.fail("read layer parts"))
    monkeypatch.setattr(pipeline, "assess_missing", lambda *a, **k: pytest.fail("sampled"))
    with caplog.at_level("WARNING", logger="sitescreen.store"):
        third = pipeline.screen(request, write=False)
    assert "snapshot" not in caplog.text  # no warning on every run
    for run in (again, third):
        pd.testing.assert_frame_equal(run.shares, first.shares)
        for a, b in zip(run.results.level, first.results.level, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_merge_deletes_exactly_the_parts_it_merged(tmp_path, monkeypatch):
    """A part another process adds while the parts are being merged is kept."""
    monkeypatch.setattr(store, "SNAPSHOT_MAX_PARTS", 2)
    st, other = ResultStore(tmp_path), ResultStore(tmp_path)  # two processes on one store
    lon, lat = np.arange(12, dtype=float) + 100.0, np.full(12, 20.0)
    lv = (np.arange(12) % 5 + 1).astype("int8")
    st.write_snapshot(["fp"], lon[:4], lat[:4], [_levels_result(lv[:4])])
    st.write_snapshot(["fp"], lon[:8], lat[:8], [_levels_result(lv[:8])],
                      previous=st.read_snapshot(["fp"]).held())
    real = store._write_part

    def meanwhile(folder, loc, columns, **kw):
        if any(isinstance(v, store._Merged) for v in columns.values()):
            # The other process adds sites 10 and 11 (a chunk: it never merges).
            other.write_snapshot(["fp"], lon[10:], lat[10:], [_levels_result(lv[10:])],
                                 previous=other.read_snapshot(
                                     ["fp"], keys=store.location_keys(lon[10:], lat[10:])))
        return real(folder, loc, columns, **kw)

    monkeypatch.setattr(store, "_write_part", meanwhile)
    st.write_snapshot(["fp"], lon[:10], lat[:10], [_levels_result(lv[:10])],
                      previous=st.read_snapshot(["fp"]).held())
    snap = st.read_snapshot(["fp"])
    assert snap.n_parts == 2  # the merged part and the other process's
    merged, added = sorted(snap.parts, key=lambda part: -len(part.loc))
    assert merged.loc.tolist() == store.location_keys(lon[:10], lat[:10]).tolist()
    assert added.loc.tolist() == store.location_keys(lon[10:], lat[10:]).tolist()
    assert len(snap) == 12
    assert np.array_equal(snap.rows.sort_index()["0__level"].to_numpy(), lv)


def _bad_code_part(path, fingerprints, n):
    """A snapshot part whose text column has a code past its dictionary (at the last row)."""
    import json

    import pyarrow as pa

    codes = np.zeros(n, dtype=np.int8)
    codes[-1] = 5
    flags = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(["", "x"]), safe=False)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(store.location_keys(np.arange(n, dtype=float), np.zeros(n))),
         pa.array(np.ones(n, dtype="int8")), flags],
        schema=pa.schema([pa.field("loc", pa.int64()), pa.field("0__level", pa.int8()),
                          pa.field("0__flags", flags.type)],
                         metadata={b"sitescreen": json.dumps(
                             {"fingerprints": fingerprints}).encode()}))
    with pa.ipc.new_file(str(path), batch.schema) as writer:
        writer.write_batch(batch)


def test_a_part_with_codes_past_its_dictionary_is_damaged(tmp_path, caplog):
    """Codes are checked where they are used (once, as the columns are made): a whole read
    finds the bad code; a chunk reads only its own rows, and finds it when it takes them."""
    st = ResultStore(tmp_path)
    folder = st._snapshot_folder(("fp",))
    folder.mkdir(parents=True)
    path = folder / "part-bad.arrow"
    _bad_code_part(path, ["fp"], 6)
    with caplog.at_level("WARNING", logger="sitescreen.store"):
        whole = st.read_snapshot(["fp"])
        last = st.read_snapshot(["fp"], keys=store.location_keys(np.array([5.0]), np.zeros(1)))
    assert whole.damaged == last.damaged == (path,) and not whole.n_parts and not last.n_parts
    assert caplog.text.count(str(path)) == 2
    first = st.read_snapshot(["fp"], keys=store.location_keys(np.array([0.0]), np.zeros(1)))
    assert first.n_parts == 1 and first.parts[0].column("0__flags").tolist() == [""]


def test_each_site_keeps_its_own_row_as_assemble_makes_rows_of_one_location_equal(tmp_path):
    """The snapshot stores each site's own row, unsorted: correct only because assemble
    gives every site of a location the same row, from computed results (the last site of
    the location) and from stored ones. Were that not so, this test would fail."""
    st = ResultStore(tmp_path)
    lon = np.array([1.0, 2.0, 1.0, 3.0, 2.0, 1.0])
    lat = np.zeros(6)
    lv = np.array([1, 2, 3, 4, 5, 1], dtype="int8")  # rows of one location differ
    first = st.lookup("fp", lon, lat)
    out = st.assemble(first, lon, lat, _levels_result(lv))
    keys = store.location_keys(lon, lat)
    for key in np.unique(keys):
        same = np.flatnonzero(keys == key)
        for column in (out.levels, out.values, np.asarray(out.flags), out.extra["note"]):
            assert len({str(v) for v in np.asarray(column)[same]}) == 1
    st.save("fp", lon, lat, out)
    st.write_snapshot(["fp"], lon, lat, [out])
    snap = st.read_snapshot(["fp"])
    assert snap.parts[0].loc.tolist() == keys.tolist()
    assert snap.parts[0].columns["0__level"].tolist() == out.levels.tolist()
    # Read back in another order, each site gets its location's one row.
    order = np.array([5, 3, 1, 0, 4, 2])
    cached = st.cached_from_snapshot(snap, 0, lon[order], lat[order])
    again = st.assemble(cached, lon[order], lat[order], None)
    assert again.levels.tolist() == out.levels[order].tolist() == [1, 4, 5, 1, 5, 1]


def test_a_shared_store_stays_readable_and_is_never_deleted_as_damaged(tmp_path, monkeypatch):
    """Parts get the umask's mode (a temporary file's 0600 would lock other users of a shared
    store out), and a part this user may not read is an error naming it, not damage to
    delete. The tests run as root, whom no mode refuses: the refusal is simulated."""
    import os
    import stat

    from sitescreen.files import umask_mode

    st = ResultStore(tmp_path)
    lon, lat = np.arange(5, dtype=float), np.zeros(5)
    st.write_snapshot(["fp"], lon, lat, [_site_result(lon)])
    st.save("layer", lon, lat, _site_result(lon))
    parts = [*tmp_path.glob("snapshots/*/part-*.arrow"), *tmp_path.glob("layer/part-*")]
    assert len(parts) == 2
    for path in parts:
        assert stat.S_IMODE(os.stat(path).st_mode) == umask_mode(), path

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store, "_read_snapshot_part", refused)
    with pytest.raises(OutputError, match="cannot read the result snapshot .*readable"):
        st.read_snapshot(["fp"])
    assert all(p.exists() for p in parts)
