"""The pipeline's one sequence of steps: the same request gives the same run with and without
Prefect; defaults live in the request; the steps and the result store work on their own."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from small_pack import site, sites_doc, small_pack

from sitescreen import home, pipeline
from sitescreen.data.sources import DEFAULT_DATA, DEMO_PACK, SYNTHETIC_WARNING
from sitescreen.errors import HazardDataError
from sitescreen.geocode import is_located
from sitescreen.manifest import VOLATILE_KEYS

SITES = sites_doc(
    site("sh-1", "Shanghai office", lon=121.47, lat=31.23),
    site("sh-2", "Shanghai lab", lon=121.52, lat=31.26),
    site("bj-1", "Beijing office", lon=116.40, lat=39.95, city="Beijing"),
    site("nowhere", "Unplaceable", address="Qqxz Zzvv 17", city="Xqzzyvw", country=""),
)
COMPARED = ["sites.geojson", "summary.csv", "summary.json", "site_results.csv", "report.md"]


@pytest.fixture()
def sites_file(tmp_path):
    path = tmp_path / "sites.geojson"
    path.write_text(json.dumps(SITES), "utf-8")
    return path


def _request(tmp_path, sites_file, pack, tag):
    return pipeline.make_request(sites=sites_file, data=pack, out=tmp_path / f"out-{tag}",
                                 cache_dir=tmp_path / f"cache-{tag}", run_id="same-run",
                                 years=[2030], scenarios=["pessimistic", "optimistic"])


def _comparable(manifest: dict) -> dict:
    m = {k: v for k, v in manifest.items() if k not in VOLATILE_KEYS}
    m["request"] = {k: v for k, v in m["request"].items() if k not in ("out", "cache_dir")}
    return m


@pytest.mark.prefect
def test_plain_and_prefect_runs_are_the_same_run(prefect_api, tmp_path, tmp_path_factory,
                                                 sites_file):
    from flows.screen import screen_flow

    pack = small_pack(tmp_path_factory)
    plain = pipeline.screen(_request(tmp_path, sites_file, pack, "plain"))
    request = _request(tmp_path, sites_file, pack, "flow")
    summary = screen_flow(**request.to_dict())

    flow_dir = tmp_path / "out-flow" / "same-run"
    assert summary["run_dir"] == str(flow_dir)
    assert summary["sampled"] == plain.sampled
    flow_manifest = json.loads((flow_dir / "manifest.json").read_text("utf-8"))
    plain_manifest = json.loads((plain.run_dir / "manifest.json").read_text("utf-8"))
    # The same steps, timed under the same names, and the same record of everything else.
    assert flow_manifest["timings_s"].keys() == plain_manifest["timings_s"].keys()
    assert _comparable(flow_manifest) == _comparable(plain_manifest)
    for name in COMPARED:
        a = (plain.run_dir / name).read_bytes()
        b = (flow_dir / name).read_bytes()
        if name == "report.md":  # the report states when it was created
            a, b = (x.decode().replace(plain_manifest["created_at"], "T").replace(
                flow_manifest["created_at"], "T") for x in (a, b))
        assert a == b, name


def test_defaults_live_in_the_request_and_never_name_the_demo_pack(monkeypatch):
    monkeypatch.delenv("SITESCREEN_DATA", raising=False)
    assert pipeline.ScreeningRequest(sites="s.geojson").data == str(home.data_dir())
    assert str(home.data_dir()).endswith(DEFAULT_DATA)
    assert pipeline.make_request(sites="s.geojson", data=None, years=None).years == \
        pipeline.DEFAULT_YEARS
    assert pipeline.make_request(sites="s.geojson", demo=True).data == str(home.demo_pack_dir())
    monkeypatch.setenv("SITESCREEN_DATA", "/srv/hazard-data")
    assert pipeline.make_request(sites="s.geojson").data == "/srv/hazard-data"
    with pytest.raises(TypeError, match="unknown screening option"):
        pipeline.make_request(sites="s.geojson", dataa="x")


def test_flow_parameters_default_to_the_request(monkeypatch):
    import inspect

    from flows.screen import screen_flow

    params = inspect.signature(screen_flow.fn).parameters
    assert params["data"].default is None and params["demo"].default is False
    # Every flow parameter is a request field, so the flow cannot grow defaults of its own.
    assert set(params) <= set(pipeline.ScreeningRequest.__dataclass_fields__)


@pytest.mark.prefect
def test_a_flow_run_without_data_does_not_screen_synthetic_data(prefect_api, tmp_path,
                                                               monkeypatch, sites_file):
    from flows.screen import screen_flow

    monkeypatch.delenv("SITESCREEN_DATA", raising=False)
    monkeypatch.setenv("SITESCREEN_HOME", str(tmp_path))
    (tmp_path / DEMO_PACK).mkdir(parents=True)  # a demo pack lying around is not used
    with pytest.raises(HazardDataError, match="hazard data for this run is missing from"):
        screen_flow(sites=str(sites_file))


def test_the_steps_run_on_their_own_and_fill_the_store(tmp_path, tmp_path_factory, sites_file):
    request = pipeline.make_request(sites=sites_file, data=small_pack(tmp_path_factory),
                                    cache_dir=tmp_path / "cache", hazards=["river_flood"],
                                    scenarios=["pessimistic"], years=[2030])
    layers = pipeline.preflight(request)
    assert [layer.key for layer in layers] == ["river_flood/pessimistic/2030"]
    sites = pipeline.locate_sites(pipeline.load_sites(request), request)
    lon, lat = pipeline.coordinates(sites)
    assert np.isnan(lon[-1])  # the unplaceable site is never sampled
    store = pipeline.result_store(request)
    first = pipeline.check_layer(layers[0], lon=lon, lat=lat, request=request)
    assert len(first.missing) == 4  # an empty store
    computed = pipeline.assess_missing(layers[0], first, lon=lon, lat=lat, request=request)
    assert len(computed.levels) == 4
    result = pipeline.complete_layer(store, first, lon, lat, computed)
    assert len(result.levels) == 4 and result.levels[-1] == 0  # no location: no data
    again = pipeline.check_layer(layers[0], lon=lon, lat=lat, request=request)
    assert set(again.missing) <= {3}  # the store now holds every located site
    np.testing.assert_array_equal(
        pipeline.complete_layer(store, again, lon, lat, None).levels, result.levels)


def test_one_definition_of_unresolved_in_every_output(tmp_path, tmp_path_factory, sites_file):
    # Three ways a site may lack a usable location: geocoding failed; the source says
    # unresolved although stale coordinates remain; coordinates are not numbers.
    request = pipeline.make_request(sites=sites_file, data=small_pack(tmp_path_factory),
                                    cache_dir=tmp_path / "cache", out=tmp_path / "out",
                                    hazards=["river_flood"], scenarios=["pessimistic"],
                                    years=[2030], run_id="unresolved")
    sites = pipeline.locate_sites(pipeline.load_sites(request), request)
    sites.loc[sites["site_id"] == "sh-2", "location_source"] = "unresolved"
    sites.loc[sites["site_id"] == "bj-1", "lon"] = np.nan
    assert is_located(sites).tolist() == [True, False, False, False]
    lon, lat = pipeline.coordinates(sites)
    assert np.isfinite(lon).tolist() == [True, False, False, False]
    layer = pipeline.plan_layers(pipeline.catalog_for(request), request)[0]
    store = pipeline.result_store(request)
    cached = pipeline.check_layer(layer, lon=lon, lat=lat, request=request)
    results = [pipeline.complete_layer(store, cached, lon, lat, pipeline.assess_missing(
        layer, cached, lon=lon, lat=lat, request=request))]
    table, shares = pipeline.summarise(sites, results, request)
    assert int(shares.iloc[0]["sites_unresolved"]) == 3
    from sitescreen.manifest import build_manifest

    manifest = build_manifest(request=request.to_dict(), run_id="unresolved",
                              catalog=pipeline.catalog_for(request),
                              data=pipeline.open_data(request), sites=sites, results=results,
                              timings={})
    run_dir = pipeline.write_outputs(sites, table, shares, manifest, request)
    report = (run_dir / "report.md").read_text("utf-8")
    assert "Unresolved sites (3)" in report
    import pyogrio

    assert len(pyogrio.read_dataframe(run_dir / "sites.gpkg", layer="unresolved_sites")) == 3
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary["sites_unresolved"]) == {3}  # the layer and its composite


def test_synthetic_runs_carry_one_warning_everywhere(tmp_path, tmp_path_factory, sites_file):
    import pyogrio

    request = pipeline.make_request(sites=sites_file, data=small_pack(tmp_path_factory),
                                    cache_dir=tmp_path / "cache", out=tmp_path / "out",
                                    hazards=["river_flood"], scenarios=["pessimistic"],
                                    years=[2030])
    run = pipeline.screen(request)
    assert run.manifest["data_origin_note"] == SYNTHETIC_WARNING
    assert SYNTHETIC_WARNING in pipeline.run_summary(run)["table"]
    assert SYNTHETIC_WARNING in (run.run_dir / "report.md").read_text("utf-8")
    # The CSV tables carry the origin on every row (no comment line); the manifest the note.
    for name in ("summary.csv", "site_results.csv"):
        table = pd.read_csv(run.run_dir / name)
        assert set(table["data_origin"]) == {"synthetic-demo"}, name
    layers = {name for name, _ in pyogrio.list_layers(run.run_dir / "sites.gpkg")}
    level_layer = next(n for n in layers if n.startswith("river_flood"))
    info = pyogrio.read_info(run.run_dir / "sites.gpkg", layer=level_layer)
    assert SYNTHETIC_WARNING in info["layer_metadata"]["DESCRIPTION"]
