"""Sites from a GeoPackage layer and from a real PostGIS table or query.

The PostGIS tests run against the session's own PostgreSQL cluster (tests/postgis.py),
with a table of sites they create; the password reaches libpq through PGPASSWORD only.
"""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import pytest
import shapely

from sitescreen.errors import SiteValidationError
from sitescreen.site_sources import redact, source_label, split_password, with_query
from sitescreen.sites import read_sites, validate_sites

SITES = [("sh-hq", "Shanghai HQ", "Shanghai", 121.47, 31.23),
         ("sz-lab", "Shenzhen lab", "Shenzhen", 114.06, 22.54)]


def _frame(rows=SITES, crs="EPSG:4326"):
    gdf = gpd.GeoDataFrame(
        {"site_id": [r[0] for r in rows], "name": [r[1] for r in rows],
         "city": [r[2] for r in rows], "country": ["CN"] * len(rows)},
        geometry=shapely.points([r[3] for r in rows], [r[4] for r in rows]), crs="EPSG:4326")
    return gdf.to_crs(crs)


# ----------------------------------------------------------------------------- GeoPackage

def test_a_geopackage_layer_reads_as_sites_reprojected_to_wgs84(tmp_path):
    path = tmp_path / "portfolio.gpkg"
    _frame(crs="EPSG:3857").to_file(path, layer="offices", driver="GPKG")
    _frame(SITES[:1]).to_file(path, layer="other", driver="GPKG")
    sites = read_sites(f"{path}:offices")
    assert sites["site_id"].tolist() == ["sh-hq", "sz-lab"]
    assert sites["lon"].round(6).tolist() == [121.47, 114.06]
    assert sites["location_source"].tolist() == ["given", "given"]
    assert sites.attrs["source_format"] == "gpkg"
    assert sites.attrs["source_meta"]["reprojected_from"] == "EPSG:3857"
    # Several layers and none named: refused, listing them.
    report = validate_sites(path)
    assert "has 2 layers (offices, other); name one" in report.format()
    assert "no layer 'nope'" in validate_sites(f"{path}:nope").format()


def test_a_geopackage_gets_the_same_every_problem_report(tmp_path):
    path = tmp_path / "bad.gpkg"
    _frame(SITES + [("sh-hq", "Again", "Shanghai", 200.0, 31.0)]).to_file(path, driver="GPKG")
    report = validate_sites(path)
    text = report.format()
    assert not report.ok
    assert "feature 3 (site_id 'sh-hq')" in text
    assert "longitude 200 is outside -180..180" in text
    assert "feature 1 has the same id" in text
    with pytest.raises(SiteValidationError):
        read_sites(path)


def test_the_digest_of_a_layer_follows_its_rows_not_their_order(tmp_path):
    a, b, c = tmp_path / "a.gpkg", tmp_path / "b.gpkg", tmp_path / "c.gpkg"
    _frame().to_file(a, driver="GPKG")
    _frame(SITES[::-1]).to_file(b, driver="GPKG")
    _frame([*SITES[:1], ("sz-lab", "Shenzhen lab", "Shenzhen", 114.07, 22.54)]).to_file(
        c, driver="GPKG")
    digest = {p.name: read_sites(p).attrs["source_sha256"] for p in (a, b, c)}
    assert digest["a.gpkg"] == digest["b.gpkg"]
    assert digest["a.gpkg"] != digest["c.gpkg"]


# ----------------------------------------------------------------------------- URLs

def test_passwords_are_redacted_and_split_off():
    url = "postgresql://ana:s3cr%40t@db.example:5432/gis?table=public.sites"
    assert "s3cr" not in redact(url)
    assert split_password(url) == ("postgresql://ana@db.example:5432/gis?table=public.sites",
                                   "s3cr@t")
    assert source_label(url) == "gis.public.sites"
    assert "query=SELECT%20%2A" in with_query("postgresql://ana@db/gis", "SELECT *")


# ----------------------------------------------------------------------------- PostGIS

@pytest.fixture()
def sites_table(postgis, request):
    table = f"sites_{request.node.name[-20:].replace('[', '_').replace(']', '')}".lower()
    values = ", ".join(f"('{i}', '{n}', '{c}', 'CN', ST_Transform(ST_SetSRID("
                       f"ST_MakePoint({x}, {y}), 4326), 3857))" for i, n, c, x, y in SITES)
    postgis.psql(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id serial PRIMARY KEY, "
                 f"site_id text, name text, city text, country text, "
                 f"geom geometry(Point, 3857), asset_value numeric DEFAULT 10); "
                 f"INSERT INTO {table} (site_id, name, city, country, geom) VALUES {values}; "
                 f"ALTER TABLE {table} OWNER TO analyst")
    return table


def test_a_postgis_table_reads_as_sites(postgis, sites_table):
    sites = read_sites(f"{postgis.url}?table={sites_table}")
    assert sites["site_id"].tolist() == ["sh-hq", "sz-lab"]
    assert sites["lon"].round(6).tolist() == [121.47, 114.06]  # transformed from 3857
    assert sites["input_ref"].tolist() == ["id 1", "id 2"]
    assert sites["asset_value"].tolist() == ["10", "10"]  # numeric: exact, as text
    assert sites.attrs["source_format"] == "postgis"
    query = with_query(postgis.url, f"SELECT * FROM {sites_table} WHERE city = 'Shenzhen'")
    assert read_sites(query)["site_id"].tolist() == ["sz-lab"]


def test_a_postgis_table_gets_the_every_problem_report(postgis, sites_table):
    postgis.psql(f"INSERT INTO {sites_table} (site_id, name, city, country, geom) VALUES "
                 "('bad', 'Nowhere', '', 'CN', ST_SetSRID(ST_MakePoint(0, 0), 3857)), "
                 "('sh-hq', 'Twin', 'Shanghai', 'CN', NULL)")
    report = validate_sites(f"{postgis.url}?table={sites_table}")
    text = report.format()
    assert "4 sites read, 2 errors" in text
    assert "id 3 (site_id 'bad')" in text and "(0, 0)" in text
    assert "id 4 (site_id 'sh-hq')" in text


def test_an_insert_changes_the_digest_and_a_wrong_password_is_never_shown(postgis,
                                                                          sites_table):
    url = f"{postgis.url}?table={sites_table}"
    before = read_sites(url).attrs["source_sha256"]
    assert read_sites(url).attrs["source_sha256"] == before  # stable
    postgis.psql(f"INSERT INTO {sites_table} (site_id, name, city, country) "
                 "VALUES ('bj-new', 'Beijing office', 'Beijing', 'CN')")
    after = read_sites(url)
    assert after.attrs["source_sha256"] != before
    assert after["location_source"].tolist() == ["given", "given", ""]  # to be geocoded
    wrong = url.replace("analyst@", "analyst:hunter2-wrong@")
    report = validate_sites(wrong, password="hunter2-wrong")
    assert "password authentication failed" in report.format()
    assert "hunter2" not in report.format()
    missing = validate_sites(f"{postgis.url}?table=no_such_table").format()
    assert "there is no table 'no_such_table'" in missing


def test_the_cli_screens_a_postgis_table_end_to_end(postgis, sites_table, demo_pack,
                                                    tmp_path):
    from postgis import PASSWORD

    url = postgis.url.replace("analyst@", f"analyst:{PASSWORD}@") + f"?table={sites_table}"
    env = {k: v for k, v in __import__("os").environ.items() if k != "PGPASSWORD"}
    out = subprocess.run(
        [sys.executable, "-m", "sitescreen.cli", "screen", url, "--data", str(demo_pack),
         "--out", str(tmp_path / "results"), "-s", "pessimistic", "-y", "2030", "--no-report",
         "--no-prefect"], capture_output=True, text=True, env=env, timeout=300,
        cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run = (tmp_path / "results" / "latest").resolve()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["request"]["sites"] == postgis.url + f"?table={sites_table}"
    geo = json.loads((run / "sites.geojson").read_text())
    assert [f["id"] for f in geo["features"]] == ["sh-hq", "sz-lab"]
    for path in run.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in out.stdout + out.stderr
