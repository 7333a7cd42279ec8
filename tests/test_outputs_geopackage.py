import xml.etree.ElementTree as ET

import pandas as pd
import pyogrio
import pytest
from report_fixtures import build_run

from sitescreen.errors import OutputError
from sitescreen.outputs.geopackage import layer_name, level_style_qml, write_geopackage
from sitescreen.outputs.styling import LEVEL_COLOURS


@pytest.fixture(scope="module")
def run():
    return build_run(hazards=("water_stress", "typhoon"), years=(2030,))


@pytest.fixture(scope="module")
def gpkg(run, tmp_path_factory):
    sites, table, _, manifest = run
    path = tmp_path_factory.mktemp("gis") / "sites.gpkg"
    write_geopackage(path, sites, table, manifest=manifest)
    return path


def test_layers_are_listed(gpkg, run):
    _, table, _, _ = run
    layers = dict(pyogrio.list_layers(gpkg))
    expected = {layer_name(h, s, y) for h, s, y in
                table[["hazard", "scenario", "year"]].drop_duplicates().itertuples(index=False)}
    # 2 hazards + 2 composites, 3 scenarios, 1 year
    assert len(expected) == 12
    assert expected <= set(layers)
    assert layers["sites"] == "Point" and layers["typhoon_pessimistic_2030"] == "Point"
    for table_name in ("unresolved_sites", "run_metadata", "layer_styles"):
        assert layers[table_name] is None  # attribute tables, no geometry
    assert "water_stress_current_trend_2030" in layers


def test_level_layer_reads_back_with_crs_and_values(gpkg):
    df = pyogrio.read_dataframe(gpkg, layer="typhoon_optimistic_2030")
    assert df.crs.to_epsg() == 4326
    df = df.set_index("site_id")
    # fixture levels for typhoon, optimistic 2030: sh 2, bj 1, sz 3, hk 3, cd 1 (high one up)
    assert df["level"].to_dict() == {"sh": 2, "bj": 1, "sz": 3, "hk": 3, "cd": 1}
    assert df.loc["sz", "level_high"] == 4
    assert df.loc["sh", "geometry"].x == pytest.approx(121.47)
    assert df.loc["sh", "geometry"].y == pytest.approx(31.23)
    assert set(df["data_origin"]) == {"synthetic-demo"}
    assert set(df["threshold_set"]) == {"typhoon-china-grade-rp50-v1"}
    assert set(df["pathway"]) == {"ssp126"} and set(df["period"]) == {"2021-2040"}
    assert df.loc["sh", "name"] == "Shanghai office"
    assert "xx" not in df.index  # unresolved sites are not placed
    info = pyogrio.read_info(gpkg, layer="typhoon_optimistic_2030")
    assert info["layer_metadata"]["DESCRIPTION"].startswith("SYNTHETIC DEMO DATA")


def test_no_data_level_is_null(tmp_path):
    sites, table, _, manifest = build_run(hazards=("typhoon",), years=(2030,),
                                          overrides={("typhoon", "bj", "optimistic", 2030): 0})
    path = tmp_path / "t.gpkg"
    write_geopackage(path, sites, table, manifest=manifest)
    df = pyogrio.read_dataframe(path, layer="typhoon_optimistic_2030").set_index("site_id")
    assert pd.isna(df.loc["bj", "level"]) and df.loc["sh", "level"] == 2


def test_sites_unresolved_and_metadata_tables(gpkg):
    sites = pyogrio.read_dataframe(gpkg, layer="sites")
    assert sorted(sites["site_id"]) == ["bj", "cd", "hk", "sh", "sz"]
    assert {"geocoder", "geocode_precision", "location_source", "data_origin"} <= set(sites)
    unresolved = pyogrio.read_dataframe(gpkg, layer="unresolved_sites")
    assert unresolved["site_id"].tolist() == ["xx"]
    assert unresolved["geocode_reason"].tolist() == ["no match for 'Nowhere Road'"]
    meta = pyogrio.read_dataframe(gpkg, layer="run_metadata").set_index("key")["value"]
    assert meta["run_id"] == "20250101T000000Z-aaaaaa"
    assert meta["data_origin"] == "synthetic-demo"
    assert "CC BY 4.0" in meta["dataset:aqueduct40"]
    assert "17.2" in meta["threshold_set:typhoon-china-grade-rp50-v1"]
    styles = pyogrio.read_dataframe(gpkg, layer="layer_styles")
    assert "typhoon_optimistic_2030" in set(styles["f_table_name"])
    assert styles["useAsDefault"].all()


def test_qml_has_six_categories_on_level():
    root = ET.fromstring(level_style_qml())
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "level"
    cats = renderer.findall("categories/category")
    assert len(cats) == 6
    assert [c.get("value") for c in cats] == ["1", "2", "3", "4", "5", ""]
    assert cats[-1].get("label") == "no data"
    symbols = {s.get("name"): s for s in renderer.findall("symbols/symbol")}
    colour = symbols[cats[4].get("symbol")].find("layer/Option/Option[@name='color']").get("value")
    r, g, b = (int(LEVEL_COLOURS[5][i:i + 2], 16) for i in (1, 3, 5))
    assert colour == f"{r},{g},{b},255"


def test_failed_write_leaves_nothing(tmp_path, run):
    sites, table, _, manifest = run
    target = tmp_path / "sub" / "x.gpkg"
    target.parent.mkdir()
    (target.parent / "blocker").mkdir()
    bad = table.assign(year="not a year")  # int conversion fails mid-write
    with pytest.raises(OutputError, match="x.gpkg"):
        write_geopackage(target, sites, bad, manifest=manifest)
    assert sorted(p.name for p in target.parent.iterdir()) == ["blocker"]
