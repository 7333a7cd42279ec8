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
    snapshots = list((tmp_path / "cache" / "results" / "snapshots").glob("*/part-*.parquet"))
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
    parts = list((tmp_path / "cache" / "results" / "snapshots").glob("*/part-*.parquet"))
    assert len(parts) == 2 and pd.read_parquet(min(parts, key=lambda p: p.stat().st_size)
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
