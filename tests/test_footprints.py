"""Site footprints in the run outputs: the ``site_footprints`` GeoPackage layer and
``site_footprints.geojson`` (sitescreen.outputs.geopackage), written only when an input site is a
Polygon/MultiPolygon. Whole screenings without Prefect on the shared small demo pack."""

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pyogrio
import pytest
import shapely
from report_fixtures import build_run, sites_frame
from small_pack import site, sites_doc, small_pack

from sitescreen import pipeline
from sitescreen.outputs.geopackage import (
    FOOTPRINT_FILE,
    FOOTPRINT_LAYER,
    GPKG_FILE,
    footprint_files,
    level_style_qml,
    write_geopackage,
)

# An L-shaped (concave) campus in Shanghai, exterior ring counterclockwise as RFC 7946 asks.
CAMPUS = [[121.440, 31.200], [121.460, 31.200], [121.460, 31.205], [121.445, 31.205],
          [121.445, 31.215], [121.440, 31.215], [121.440, 31.200]]
# Two buildings given clockwise (legal GeoJSON, but not the RFC 7946 winding).
LAB_A = [[121.500, 31.260], [121.500, 31.262], [121.502, 31.262], [121.502, 31.260],
         [121.500, 31.260]]
LAB_B = [[121.510, 31.270], [121.510, 31.272], [121.512, 31.272], [121.512, 31.270],
         [121.510, 31.270]]
POINTS = (site("sh-1", "Shanghai office", lon=121.47, lat=31.23),
          site("bj-1", "Beijing office", lon=116.40, lat=39.95, city="Beijing"))
# The shared level fields of the level layers (besides site_id/name and the geometry).
LEVEL_FIELDS = ["hazard", "scenario", "year", "level", "level_low", "level_high", "value",
                "units", "flags", "driver", "pathway", "period", "exact", "threshold_set",
                "data_origin"]


def _footprint(site_id: str, name: str, gtype: str, coordinates: list) -> dict:
    props = {"site_id": site_id, "name": name, "city": "Shanghai", "country": "CN"}
    return {"type": "Feature", "geometry": {"type": gtype, "coordinates": coordinates},
            "properties": props}


def _screen(tmp_path, pack, features, run_id):
    path = tmp_path / f"{run_id}.geojson"
    path.write_text(json.dumps(sites_doc(*features)), encoding="utf-8")
    # Two scenarios, so the headline (worst scenario of the run) is a real choice.
    request = pipeline.make_request(
        sites=str(path), data=str(pack), out=str(tmp_path / "out"),
        scenarios=["optimistic", "pessimistic"], years=[2030],
        hazards=["water_stress", "typhoon"], cache_dir=str(tmp_path / "cache"),
        run_id=run_id, report=False)
    return pipeline.screen(request).run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pack = small_pack(tmp_path_factory)
    tmp = tmp_path_factory.mktemp("footprints")
    features = (*POINTS, _footprint("campus", "Xuhui campus", "Polygon", [CAMPUS]),
                _footprint("labs", "Yangpu labs", "MultiPolygon", [[LAB_A], [LAB_B]]))
    return _screen(tmp, pack, features, "with-footprints")


@pytest.fixture(scope="module")
def gpkg(run_dir):
    return run_dir / GPKG_FILE


def test_footprint_layer_is_multipolygon_wgs84(gpkg):
    layers = dict(pyogrio.list_layers(gpkg))
    assert layers[FOOTPRINT_LAYER] == "MultiPolygon"
    assert layers["sites"] == "Point"  # the point layer is unchanged
    footprints = pyogrio.read_dataframe(gpkg, layer=FOOTPRINT_LAYER)
    assert footprints.crs.to_epsg() == 4326
    assert sorted(footprints["site_id"]) == ["campus", "labs"]  # points have no footprint
    points = pyogrio.read_dataframe(gpkg, layer="sites")
    assert sorted(points["site_id"]) == ["bj-1", "campus", "labs", "sh-1"]


def test_footprint_coordinates_match_the_input(gpkg):
    df = pyogrio.read_dataframe(gpkg, layer=FOOTPRINT_LAYER).set_index("site_id")
    campus = df.loc["campus", "geometry"]
    assert len(campus.geoms) == 1  # a Polygon, promoted to a one-part MultiPolygon
    assert [list(xy) for xy in campus.geoms[0].exterior.coords] == CAMPUS
    labs = df.loc["labs", "geometry"]
    # The GeoPackage keeps the rings as given (clockwise here).
    assert [[list(xy) for xy in g.exterior.coords] for g in labs.geoms] == [LAB_A, LAB_B]
    assert df.loc["campus", "name"] == "Xuhui campus"


def test_footprint_levels_equal_the_point_layers(gpkg):
    df = pyogrio.read_dataframe(gpkg, layer=FOOTPRINT_LAYER).set_index("site_id")
    # Headline: first headline hazard (water scarcity and drought), worst scenario of the
    # run (pessimistic), first year.
    headline = "water_scarcity_drought_pessimistic_2030"
    assert set(df["hazard"]) == {"water_scarcity_drought"}
    assert set(df["scenario"]) == {"pessimistic"} and set(df["year"]) == {2030}
    points = pyogrio.read_dataframe(gpkg, layer=headline).set_index("site_id")
    for sid in ("campus", "labs"):
        for field in LEVEL_FIELDS:
            a, b = df.loc[sid, field], points.loc[sid, field]
            assert (pd.isna(a) and pd.isna(b)) or a == b, (sid, field, a, b)
    assert df.loc["campus", "level"] in range(1, 6)
    # One <layer>_level field per level layer, equal to that layer's level.
    for layer, kind in pyogrio.list_layers(gpkg):
        if kind != "Point" or layer == "sites":
            continue
        points = pyogrio.read_dataframe(gpkg, layer=layer).set_index("site_id")
        for sid in ("campus", "labs"):
            a, b = df.loc[sid, f"{layer}_level"], points.loc[sid, "level"]
            assert (pd.isna(a) and pd.isna(b)) or a == b, (layer, sid, a, b)
    assert {"typhoon_optimistic_2030_level", "floods_typhoons_pessimistic_2030_level"} <= set(df)


def test_footprint_layer_is_styled_with_fills(gpkg):
    styles = pyogrio.read_dataframe(gpkg, layer="layer_styles").set_index("f_table_name")
    root = ET.fromstring(styles.loc[FOOTPRINT_LAYER, "styleQML"])
    assert root.findtext("layerGeometryType") == "2"
    renderer = root.find("renderer-v2")
    assert renderer.get("attr") == "level"
    assert {s.get("type") for s in renderer.findall("symbols/symbol")} == {"fill"}
    assert root.findtext("layerGeometryType") != ET.fromstring(
        styles.loc["typhoon_pessimistic_2030", "styleQML"]).findtext("layerGeometryType")


def test_polygon_style_has_the_point_style_categories():
    point, polygon = (ET.fromstring(level_style_qml(geometry=g)) for g in ("point", "polygon"))
    cats = [[(c.get("value"), c.get("label")) for c in q.findall("renderer-v2/categories/category")]
            for q in (point, polygon)]
    assert cats[0] == cats[1] and len(cats[0]) == 6
    with pytest.raises(ValueError, match="line"):
        level_style_qml(geometry="line")


def test_footprint_geojson(run_dir, gpkg):
    fc = json.loads((run_dir / FOOTPRINT_FILE).read_text("utf-8"))
    assert fc["type"] == "FeatureCollection" and "crs" not in fc  # RFC 7946: WGS 84 only
    assert fc["sitescreen"]["data_origin"] == "synthetic-demo"
    by_id = {f["id"]: f for f in fc["features"]}
    assert sorted(by_id) == ["campus", "labs"]
    campus, labs = by_id["campus"], by_id["labs"]
    assert campus["geometry"] == {"type": "Polygon", "coordinates": [CAMPUS]}
    # RFC 7946 section 3.1.6: exterior rings counterclockwise, so the labs are reversed.
    assert labs["geometry"]["type"] == "MultiPolygon"
    assert labs["geometry"]["coordinates"] == [[LAB_A[::-1]], [LAB_B[::-1]]]
    assert all(shapely.is_ccw(shapely.linearrings(ring[0]))
               for ring in labs["geometry"]["coordinates"])
    layer = pyogrio.read_dataframe(gpkg, layer=FOOTPRINT_LAYER).set_index("site_id")
    for sid, feature in by_id.items():
        props = feature["properties"]
        assert props["site_id"] == sid and props["name"] == layer.loc[sid, "name"]
        assert set(props) == set(layer.columns.drop("geometry")) | {"site_id"}
        for field, value in props.items():
            if field == "site_id":
                continue
            expected = layer.loc[sid, field]
            assert (value is None and pd.isna(expected)) or value == expected, (sid, field)


def test_sites_geojson_stays_point_only(run_dir):
    fc = json.loads((run_dir / "sites.geojson").read_text("utf-8"))
    assert {f["geometry"]["type"] for f in fc["features"]} == {"Point"}
    campus = next(f for f in fc["features"] if f["id"] == "campus")
    # the representative point lies inside the footprint
    assert shapely.Polygon(CAMPUS).contains(shapely.Point(campus["geometry"]["coordinates"]))


def test_points_only_run_writes_no_footprints(tmp_path, tmp_path_factory):
    run_dir = _screen(tmp_path, small_pack(tmp_path_factory), POINTS, "points-only")
    assert not (run_dir / FOOTPRINT_FILE).exists()
    assert FOOTPRINT_LAYER not in dict(pyogrio.list_layers(run_dir / GPKG_FILE))
    assert (run_dir / "sites.geojson").exists()


# --- hand-built run: levels chosen by hand (tests/report_fixtures.py) ----------------------

def _square(x: float, y: float, d: float = 0.01) -> shapely.Polygon:
    return shapely.box(x - d, y - d, x + d, y + d)


@pytest.fixture(scope="module")
def hand_run():
    sites = sites_frame()
    geoms = [shapely.Point(x, y) if x == x else None for x, y in zip(sites["lon"], sites["lat"],
                                                                       strict=True)]
    geoms[0] = _square(121.47, 31.23)  # sh
    geoms[1] = shapely.MultiPolygon([_square(116.40, 39.90), _square(116.45, 39.90)])  # bj
    sites["geometry"] = pd.Series(geoms, dtype=object)
    overrides = {("water_stress", "bj", "pessimistic", 2030): 2,  # headline: sh 5, bj 2
                 ("typhoon", "bj", "optimistic", 2030): 0}  # no data: NULL
    return build_run(sites=sites, hazards=("water_stress", "typhoon"), overrides=overrides)


def test_hand_levels_in_layer_and_geojson(hand_run, tmp_path):
    sites, table, _, manifest = hand_run
    path = tmp_path / "x.gpkg"
    write_geopackage(path, sites, table, manifest=manifest)
    df = pyogrio.read_dataframe(path, layer=FOOTPRINT_LAYER).set_index("site_id")
    assert sorted(df.index) == ["bj", "sh"]
    # Headline water_scarcity_drought (= water_stress), pessimistic, 2030: sh 4 + 1, bj set to 2.
    assert df["level"].to_dict() == {"sh": 5, "bj": 2}
    assert set(df["hazard"]) == {"water_scarcity_drought"} and set(df["year"]) == {2030}
    # typhoon optimistic 2030: sh 2 (high end one up: 3), bj no data
    assert df.loc["sh", "typhoon_optimistic_2030_level"] == 2
    assert pd.isna(df.loc["bj", "typhoon_optimistic_2030_level"])
    # typhoon pessimistic 2050: base + 1 (scenario) + 1 (year)
    assert df["typhoon_pessimistic_2050_level"].to_dict() == {"sh": 4, "bj": 3}
    assert df.loc["bj", "geometry"].equals(sites.loc[1, "geometry"])

    fc = json.loads(footprint_files(sites, table, manifest=manifest)[FOOTPRINT_FILE])
    props = {f["id"]: f["properties"] for f in fc["features"]}
    assert props["sh"]["level"] == 5 and props["bj"]["level"] == 2
    assert props["sh"]["typhoon_optimistic_2030_level"] == 2
    assert props["bj"]["typhoon_optimistic_2030_level"] is None
    assert props["bj"]["typhoon_pessimistic_2050_level"] == 3
    assert fc["sitescreen"]["level_fields_layer"] == "water_scarcity_drought_pessimistic_2030"


def test_hand_run_without_footprints_has_none(tmp_path):
    sites, table, _, manifest = build_run(hazards=("typhoon",), years=(2030,))
    assert footprint_files(sites, table, manifest=manifest) == {}
    path = tmp_path / "x.gpkg"
    write_geopackage(path, sites, table, manifest=manifest)
    assert FOOTPRINT_LAYER not in dict(pyogrio.list_layers(path))
