import sqlite3
import xml.etree.ElementTree as ET
from contextlib import closing

import numpy as np
import pandas as pd
import pyogrio
import pytest
from report_fixtures import SITES, build_run, sites_frame

from sitescreen.errors import OutputError
from sitescreen.outputs.fields import FIELD_COLUMNS
from sitescreen.outputs.geopackage import (
    layer_name,
    level_style_qml,
    level_style_sld,
    write_geopackage,
)
from sitescreen.outputs.styling import LEVEL_COLOURS

SLD = "{http://www.opengis.net/sld}"
OGC = "{http://www.opengis.net/ogc}"


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
    for table_name in ("site_details", "level_layers", "unresolved_sites", "run_metadata",
                       "fields", "layer_styles"):
        assert layers[table_name] is None  # attribute tables, no geometry
    assert "water_stress_current_trend_2030" in layers
    # The per-layer layers are views over the one point table, not copies of the points.
    with closing(sqlite3.connect(gpkg)) as db:
        kinds = dict(db.execute("SELECT name, type FROM sqlite_master"))
        registered = {r[0] for r in db.execute(
            "SELECT c.table_name FROM gpkg_contents c JOIN gpkg_geometry_columns g "
            "ON g.table_name = c.table_name WHERE c.data_type = 'features'")}
    assert {kinds[name] for name in expected} == {"view"} and kinds["sites"] == "table"
    assert expected | {"sites"} <= registered


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
    assert pd.isna(df.loc["bj", "level_low"]) and pd.isna(df.loc["bj", "value"])
    wide = pyogrio.read_dataframe(path, layer="sites").set_index("site_id")
    assert pd.isna(wide.loc["bj", "typhoon_optimistic_2030_level"])
    assert wide.loc["sh", "typhoon_optimistic_2030_level"] == 2


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


def test_the_same_run_writes_the_same_bytes_stamped_with_its_creation_time(tmp_path, run):
    import time

    sites, table, _, manifest = run
    manifest = {**manifest, "created_at": "2026-12-02T04:45:59+00:00"}
    first, second = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    write_geopackage(first, sites, table, manifest=manifest)
    time.sleep(1.1)  # GDAL would stamp the clock's second otherwise
    write_geopackage(second, sites, table, manifest=manifest)
    assert first.read_bytes() == second.read_bytes()
    with closing(sqlite3.connect(first)) as db:
        stamps = {r[0] for r in db.execute("SELECT last_change FROM gpkg_contents")}
    assert stamps == {"2026-12-02T04:45:59.000Z"}


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory):
    """A run whose sites carry numeric columns as a CSV gives them: text, some empty."""
    rows = [dict(r) for r in SITES]
    values = ["1200000", "850000.5", "", "40000", "7", ""]
    heads = ["350", "120", "40", "", "12", "3"]
    pue = ["1.35", "", "1.5", "1.2", "1.41", ""]
    codes = ["007", "12", "", "3", "4", "5"]  # a code with a leading zero stays text
    for r, v, h, p, c in zip(rows, values, heads, pue, codes, strict=True):
        r.update(asset_value=v, headcount=h, PUE=p, plant_code=c)
    run = build_run(sites=sites_frame(rows), years=(2030,))
    sites, table, _, manifest = run
    path = tmp_path_factory.mktemp("typed") / "sites.gpkg"
    write_geopackage(path, sites, table, manifest=manifest)
    return run, path


def test_sites_layer_carries_every_level_numeric_user_columns_and_precision(typed_run):
    (sites, table, _, _), path = typed_run
    info = pyogrio.read_info(path, layer="sites")
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    layers = table[["hazard", "scenario", "year"]].drop_duplicates()
    level_cols = [f"{layer_name(h, s, y)}_level" for h, s, y in layers.itertuples(index=False)]
    assert len(level_cols) == 4 * 3 + 2 * 3  # 4 hazards + 2 headline composites, 3 scenarios
    assert {types[c] for c in level_cols} == {"OFTInteger"}
    assert types["asset_value"] == "OFTReal" and types["headcount"] == "OFTInteger64"
    assert types["pue"] == "OFTReal" and types["plant_code"] == "OFTString"
    assert types["geocode_precision"] == "OFTString"
    df = pyogrio.read_dataframe(path, layer="sites", use_arrow=True).set_index("site_id")
    assert df.loc["bj", "asset_value"] == 850000.5 and pd.isna(df.loc["sz", "asset_value"])
    assert df.loc["sh", "headcount"] == 350 and pd.isna(df.loc["hk", "headcount"])
    assert df.loc["sh", "plant_code"] == "007"
    assert df.loc["sz", "geocode_precision"] == "district"
    expected = table.set_index(["site_id", "hazard", "scenario", "year"])["level"]
    for sid in df.index:
        for h, s, y in layers.itertuples(index=False):
            want = int(expected[(sid, h, s, y)])
            got = df.loc[sid, f"{layer_name(h, s, y)}_level"]
            assert (pd.isna(got) and want == 0) or got == want
    # every level layer reads back the same levels as the sites layer
    view = pyogrio.read_dataframe(path, layer="floods_typhoons_pessimistic_2030")
    view = view.set_index("site_id")
    assert (view["level"] == df.loc[view.index, "floods_typhoons_pessimistic_2030_level"]).all()
    assert set(view["driver"]) - {""} and set(view["exact"]) == {True}


def test_style_rows_are_qgis_layer_styles_with_qml_and_sld(typed_run):
    _, path = typed_run
    with closing(sqlite3.connect(path)) as db:
        schema = {r[1]: r[2] for r in db.execute("PRAGMA table_info(layer_styles)")}
        pk = [r[1] for r in db.execute("PRAGMA table_info(layer_styles)") if r[5]]
    # the schema QGIS creates (QgsOgrUtils::saveStyle): FID "id", the same widths
    assert pk == ["id"]
    assert schema["f_table_name"] == "TEXT(256)" and schema["styleName"] == "TEXT(30)"
    assert schema["useAsDefault"] == "BOOLEAN" and schema["update_time"] == "DATETIME"
    styles = pyogrio.read_dataframe(path, layer="layer_styles").set_index("f_table_name")
    assert styles["useAsDefault"].all() and set(styles["f_table_schema"]) == {""}
    assert set(styles["f_geometry_column"]) == {"geom"}
    head = "water_scarcity_drought_pessimistic_2030_level"  # the report's first map
    qml = ET.fromstring(styles.loc["sites", "styleQML"])
    assert qml.find("renderer-v2").get("attr") == head
    assert qml.get("labelsEnabled") == "1"
    assert qml.find("labeling/settings/text-style").get("fieldName") == "name"
    sld = ET.fromstring(styles.loc["sites", "styleSLD"].encode())
    names = [e.text for e in sld.iter(f"{OGC}PropertyName")]
    assert names.count(head) == 5 and names[-1] == "name"  # five level rules, then the label
    assert sld.find(f".//{SLD}ElseFilter") is not None
    view = ET.fromstring(styles.loc["typhoon_optimistic_2030", "styleSLD"].encode())
    assert {e.text for e in view.iter(f"{OGC}PropertyName")} == {"level"}
    assert ET.fromstring(styles.loc["typhoon_optimistic_2030", "styleQML"]).find(
        "renderer-v2").get("attr") == "level"


def test_field_dictionary_names_every_column_with_unique_short_aliases(typed_run):
    (sites, table, _, _), path = typed_run
    fields = pyogrio.read_dataframe(path, layer="fields")
    assert tuple(fields.columns) == FIELD_COLUMNS
    assert fields["name"].is_unique and fields["alias"].is_unique
    assert fields["alias"].str.len().max() <= 10
    by_name = fields.set_index("name")
    for layer in ("sites", "site_details", "typhoon_optimistic_2030"):
        for col in pyogrio.read_info(path, layer=layer)["fields"]:
            assert col in by_name.index, (layer, col)
    assert by_name.loc["asset_value", "type"] == "real"
    assert by_name.loc["headcount", "type"] == "integer"
    row = by_name.loc["typhoon_pessimistic_2030_level"]
    assert row["type"] == "integer" and row["alias"] == "typ30_lv"
    assert "sites.geojson" in row["outputs"] and "sites.gpkg:sites" in row["outputs"]
    assert by_name.loc["typhoon_pessimistic_2030_value", "unit"].startswith("m/s")
    assert by_name.loc["pue", "type"] == by_name.loc["PUE", "type"] == "real"
    assert "site_results.csv" in by_name.loc["geocode_precision", "outputs"]


def test_sld_is_one_rule_per_level_and_a_no_data_rule():
    root = ET.fromstring(level_style_sld("x", geometry="polygon"))
    rules = root.findall(f".//{SLD}Rule")
    assert [r.find(f"{SLD}Name").text for r in rules] == [
        "level 1", "level 2", "level 3", "level 4", "level 5", "no data"]
    fill = rules[4].find(f".//{SLD}PolygonSymbolizer/{SLD}Fill/{SLD}CssParameter").text
    assert fill.lower() == LEVEL_COLOURS[5].lower()
    assert np.isin([r.find(f".//{OGC}Literal").text for r in rules[:5]],
                   ["1", "2", "3", "4", "5"]).all()


def test_data_centers_get_a_cooling_layer(tmp_path):
    from report_fixtures import cooling_run

    sites, table, _, manifest = cooling_run()
    path = tmp_path / "sites.gpkg"
    write_geopackage(path, sites, table, manifest=manifest)

    layer = pyogrio.read_dataframe(path, layer="data_center_cooling")
    assert layer["site_id"].tolist() == ["cd"] and layer.crs.to_epsg() == 4326
    row = layer.iloc[0]
    assert (row.geometry.x, row.geometry.y) == pytest.approx((104.07, 30.67))
    assert row["dc_cooling_change_pct"] == pytest.approx(25.0)
    assert row["dc_cooling_change_mwh"] == pytest.approx(1226.4)
    assert (row["dc_cooling_change_mwh_low"], row["dc_cooling_change_mwh_high"]) == \
        pytest.approx((490.56, 2452.8))
    assert row["scenario"] == "pessimistic" and row["period"] == "2040-2059"
    assert "pue=1.4 (site)" in row["dc_assumptions"]


def test_field_sample_is_bounded_and_holds_the_data_centers(tmp_path, monkeypatch):
    """The field dictionary reads the first sites and the first data centers, however many
    there are, and the GeoPackage built without a dictionary reads the same sample."""
    from report_fixtures import cooling_run

    from sitescreen.aggregate import SiteResults
    from sitescreen.outputs import fields as fields_module

    sites, table, _, manifest = cooling_run()
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    monkeypatch.setattr(fields_module, "SAMPLE_SITES", 1)
    sample = fields_module.field_sample(results)
    assert set(sample["site_id"]) == {sites["site_id"].iloc[0], "cd"}  # cd: the data center
    path = tmp_path / "sites.gpkg"
    write_geopackage(path, sites, results, manifest=manifest)
    written = pyogrio.read_dataframe(path, layer="fields")
    expected = fields_module.field_dictionary(sites, sample)
    assert written["name"].tolist() == expected["name"].tolist()
    assert written["type"].tolist() == expected["type"].tolist()
