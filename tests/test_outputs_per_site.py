"""Which per-site files a run writes, and the streamed long CSV and GeoJSON."""

from __future__ import annotations

import gzip
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from sitescreen.errors import ConfigError
from sitescreen.outputs.per_site import (
    PerSiteOutputs,
    long_csv_writer,
    plan_per_site,
    site_geojson_writer,
)
from tests.report_fixtures import build_run


@pytest.mark.parametrize(("mode", "n", "files"), [
    ("auto", 10, ["site_results.csv", "sites.geojson", "sites.parquet", "sites.gpkg"]),
    ("auto", 11, ["sites.parquet"]),
    ("all", 11, ["site_results.csv", "sites.geojson", "sites.parquet", "sites.gpkg"]),
    ("compressed", 1, ["site_results.csv.gz", "sites.geojson.gz", "sites.parquet",
                       "sites.gpkg"]),
    ("parquet", 1, ["sites.parquet"]),
    ("none", 1, []),
])
def test_plan_follows_mode_and_limit(mode, n, files):
    plan = plan_per_site(mode, n, limit=10)
    assert plan.files() == files
    assert plan.mode != PerSiteOutputs.AUTO and plan.to_dict()["files"] == files


def test_plan_rejects_unknown_modes_and_negative_limits():
    with pytest.raises(ConfigError, match="'csv' is not one of auto, all"):
        plan_per_site("csv", 1)
    with pytest.raises(ConfigError, match="0 or more"):
        plan_per_site("auto", 1, limit=-1)


def test_streamed_files_equal_one_chunk_and_decompress(tmp_path):
    from sitescreen.aggregate import SiteResults

    sites, table, _, manifest = build_run()
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    members = {"name": "sitescreen results"}
    out = {}
    for chunk in (len(sites), 3):
        for compressed in (False, True):
            path = tmp_path / f"r-{chunk}-{compressed}.csv"
            long_csv_writer(sites, results, data_origin="synthetic-demo",
                            compressed=compressed, chunk_sites=chunk)(path)
            gj = tmp_path / f"s-{chunk}-{compressed}.geojson"
            site_geojson_writer(sites, results, data_origin="synthetic-demo",
                                site_columns=["site_id", "name"], members=members,
                                compressed=compressed, chunk_sites=chunk)(gj)
            read = gzip.open if compressed else open
            with read(path, "rb") as fh:
                csv = fh.read()
            with read(gj, "rb") as fh:
                geo = fh.read()
            out[(chunk, compressed)] = (csv, geo)
    # Chunking and compression change neither the GeoJSON bytes nor the CSV rows.
    assert len({v[1] for v in out.values()}) == 1
    frames = [pd.read_csv(io.BytesIO(v[0])).sort_values(
        ["site_id", "hazard", "scenario", "year"], ignore_index=True) for v in out.values()]
    for f in frames[1:]:
        pd.testing.assert_frame_equal(f, frames[0])
    assert len(frames[0]) == len(table)
    assert frames[0]["level"].to_numpy().tolist() == table.sort_values(
        ["site_id", "hazard", "scenario", "year"])["level"].to_numpy().tolist()
    fc = json.loads(out[(3, False)][1])
    assert len(fc["features"]) == len(sites) and fc["name"] == "sitescreen results"
    assert np.isin([f["id"] for f in fc["features"]], sites["site_id"]).all()


def _tricky_run():
    """A run whose cells exercise every encoding rule: text needing JSON escapes and
    formula guards, numeric and mixed user columns, missing values, small and large values,
    whole-number values, flags and drivers, an unresolved site."""
    from sitescreen.aggregate import SiteResults

    sites, table, _, manifest = build_run()
    sites = sites.assign(
        name=['Quote "A"', "=cmd|x", "line\nbreak", "back\\slash", "中文 site", None],
        asset_value=["1200", "", "35", "7", "1e3", "12"],
        code=["007", "1", "", "x", "2", "3"],
        mixed=pd.array([1.5, np.nan, 2.0, -0.0, 1e-7, 3e17], dtype="float64"))
    rng = np.random.default_rng(0)
    values = np.array([1.0, 1e-5, 123456789012.5, 2.5e-7, np.inf, 0.1])
    table["value"] = np.where(table["level"] > 0, values[rng.integers(0, 6, len(table))],
                              np.nan)
    table.loc[table.index[::7], "flags"] = "near-threshold;-x"
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    n = len(results)
    for i, extra in enumerate(results.extra):  # extras of some layers, of every layer
        extra["count"] = np.arange(n, dtype=np.int64) + i
        if i % 3 == 0:
            extra["p10"] = np.where(np.arange(n) % 2, 0.25 * i, np.nan)
            extra["label"] = np.array(['=x', 'a "b"', "", "-1", "ok", "@y"], dtype=object)
            extra["rank"] = np.arange(n, dtype=np.int64)
    return sites, results, manifest


def test_long_csv_and_geojson_equal_the_long_table_writers(tmp_path):
    """The column-built CSV and GeoJSON are byte for byte what the long-table writers
    (``site_results_frame`` + ``csv_writer``, ``site_features`` + the JSON encoder) give."""
    from sitescreen.outputs.run_folder import (
        csv_writer,
        json_bytes,
        site_features,
        site_results_frame,
    )

    sites, results, _ = _tricky_run()
    columns = ["site_id", "name", "lon", "lat", "asset_value", "code", "mixed"]
    table = results.long_table()
    csv_writer(site_results_frame(sites, table, data_origin="synthetic-demo"))(
        tmp_path / "old.csv")
    long_csv_writer(sites, results, data_origin="synthetic-demo", chunk_sites=4)(
        tmp_path / "new.csv")
    old_rows = sorted((tmp_path / "old.csv").read_bytes().splitlines()[1:])
    new = (tmp_path / "new.csv").read_bytes().splitlines()
    assert new[0] == (tmp_path / "old.csv").read_bytes().splitlines()[0]
    assert sorted(new[1:]) == old_rows and b"'=cmd|x" in b"".join(new)

    old_fc = site_features(sites, table, data_origin="synthetic-demo", site_columns=columns)
    old_fc["name"] = "sitescreen results"
    site_geojson_writer(sites, results, data_origin="synthetic-demo", site_columns=columns,
                        members={"name": "sitescreen results"}, chunk_sites=4)(
        tmp_path / "new.geojson")
    assert (tmp_path / "new.geojson").read_bytes() == json_bytes(old_fc)


def test_csv_lines_are_what_arrows_csv_writer_writes():
    """Every path of ``csv_lines`` (fixed, coded, joint, many distinct values, the shared
    site columns) gives the bytes of ``pyarrow.csv.write_csv``."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from sitescreen.outputs.per_site import csv_lines
    from sitescreen.outputs.run_folder import EncodedLines

    n = 5000
    rng = np.random.default_rng(7)
    words = np.array(['a "quoted" word', "", "plain", "comma, inside", "line\nbreak", None],
                     dtype=object)
    floats = rng.uniform(-1e6, 1e6, n)
    floats[::7] = np.nan
    table = pa.table({
        "site_id": pa.array([f"s{i}" for i in range(n)]),
        "few": pa.array(words[rng.integers(0, len(words), n)], type=pa.string()),
        "constant": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                   pa.array(['say "x"'])),
        "missing": pa.nulls(n, type=pa.float64()),
        "flag": pa.array(np.full(n, True)),
        "level": pa.array(rng.integers(0, 6, n)),
        "distinct": pa.array(floats, from_pandas=True),
        "some": pa.array(np.round(rng.uniform(0, 1, n), 3)),  # ~1000 of 5000 distinct
        "mid": pa.array(np.round(rng.uniform(0, 20, n), 2)),  # ~2000 of 5000 distinct
        "tiny": pa.array(rng.choice([1e-7, 2.5, -0.0, 1e22, np.inf], n)),
        "code": pa.DictionaryArray.from_arrays(
            pa.array(rng.integers(0, 1500, n).astype(np.int32), mask=rng.random(n) < 0.1),
            pa.array([f"c{i}" for i in range(1500)])),
        "ints": pa.array(rng.integers(-10**12, 10**12, n), mask=rng.random(n) < 0.2),
    })
    expected = io.BytesIO()
    pa_csv.write_csv(table, expected, pa_csv.WriteOptions(include_header=False))
    shared = {"site_id": None}
    for _ in range(2):  # the second time with the site column's texts kept
        lines = csv_lines(table, shared=shared)
        assert bytes(EncodedLines.of(lines).text) == expected.getvalue()
    assert shared["site_id"] is not None


@pytest.mark.parametrize("distinct", [True, False])
def test_json_floats_are_pythons_repr(distinct):
    """Every layout of a float (exponents from the smallest subnormal to the largest
    double, Arrow's and Python's thresholds, integral values, -0.0) is written as
    ``repr`` writes it, for mostly distinct values and for few repeated ones."""
    from sitescreen.outputs.per_site import _json_floats

    rng = np.random.default_rng(5)
    n = 20_000
    with np.errstate(over="ignore", invalid="ignore"):
        v = rng.uniform(1, 10, n) * 10.0 ** rng.integers(-323, 308, n)
        v = np.where(rng.random(n) < 0.3, np.round(v, 3), v)  # integral and short ones
    v = np.concatenate([v, np.round(rng.uniform(-1e15, 1e15, 2000)),
                        np.round(rng.uniform(-1, 1, 2000), 6)])
    edges = [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e-5, 1e16, 9999999999999998.0, 1e10,
             9999999999.999998, 1e15, 1234567890123456.8, 5e-324, 1.7976931348623157e308,
             2.0 ** 63, 0.1, 123.0, np.nan, np.inf, -np.inf]
    v = np.concatenate([v, -v, edges])
    if not distinct:
        v = np.resize(v[rng.integers(0, len(v), 300)], 5 * len(v))
    expected = [repr(x) if math.isfinite(x) else "null" for x in v.tolist()]
    assert _json_floats(v).to_pylist() == expected


def test_geojson_alone_says_which_pathways_are_approximate(tmp_path):
    """Opened on its own (a GIS user rarely has the manifest beside it), the GeoJSON marks a
    layer whose dataset has no exact pathway, as its composites and the CSV's pathway_exact
    do, and lists every layer's pathway, period, exactness, units and threshold set."""
    from tests.report_fixtures import write_run_folder

    folder = write_run_folder(tmp_path, build_run(hazards=("river_flood", "typhoon"),
                                                  years=(2030,)))
    fc = json.loads((folder / "sites.geojson").read_text("utf-8"))
    props = fc["features"][0]["properties"]
    assert props["river_flood_current_trend_2030_pathway"] == "rcp4p5 (approximate)"
    assert props["river_flood_pessimistic_2030_pathway"] == "rcp8p5"
    assert props["typhoon_current_trend_2030_pathway"] == "ssp245"
    layers = {x["column_prefix"]: x for x in fc["sitescreen"]["layers"]}
    approx = layers["river_flood_current_trend_2030"]
    assert approx["pathway_exact"] is False and "RCP4.5" in approx["pathway_note"]
    assert layers["typhoon_pessimistic_2030"]["pathway_exact"] is True
    assert {"period", "units", "threshold_set"} <= set(approx)
    assert set(layers) == {k[: -len("_level")] for k in props if k.endswith("_level")}
