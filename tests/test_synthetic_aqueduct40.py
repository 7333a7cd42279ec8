"""The synthetic Aqueduct 4.0 pack: upstream names, layers, columns, labels and sentinels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from sitescreen.catalog import load_catalog
from sitescreen.data.sources import SYNTHETIC_MARK
from sitescreen.synthetic import DemoArea
from sitescreen.synthetic import aqueduct40 as writer

AREAS = [DemoArea("Beijing", 116.40, 39.90), DemoArea("Shenzhen", 114.06, 22.54, 0.4),
         DemoArea("Dubai", 55.27, 25.20)]
RELEASE = "Aqueduct40_waterrisk_download_Y2023M07D05"
FUTURE_LABELS = {"Low (<10%)", "Low-medium (10-20%)", "Medium-high (20-40%)", "High (40-80%)",
                 "Extremely high (>80%)", "Arid and low water use", "No Data"}
BASELINE_LABELS = {"Low (<10%)", "Low - Medium (10-20%)", "Medium - High (20-40%)",
                   "High (40-80%)", "Extremely High (>80%)", "Arid and Low Water Use", "No Data"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("pack")
    return root, writer.write(root, AREAS, seed=11)


@pytest.fixture(scope="module")
def future(pack) -> pd.DataFrame:
    return pd.read_csv(pack[1][0])


def test_upstream_file_names_match_the_catalog(pack):
    root, paths = pack
    rel = [p.relative_to(root / "aqueduct40").as_posix() for p in paths]
    assert rel == [
        f"{RELEASE}/CVS/Aqueduct40_future_annual_y2023m07d05.csv",
        f"{RELEASE}/CVS/Aqueduct40_baseline_annual_y2023m07d05.csv",
        f"{RELEASE}/GDB/Aq40_Y2023D07M05.gdb",
    ]
    entry = load_catalog().dataset("aqueduct40")
    assert entry.local_dir == "aqueduct40"
    assert set(rel) == set(entry.files)
    assert paths[2].is_dir() and all(p.is_file() for p in paths[:2])
    # nothing but the release folder is left behind (no temp files)
    assert [p.name for p in (root / "aqueduct40").iterdir()] == [RELEASE]


def test_gdb_layers(pack):
    _, paths = pack
    layers = {name: kind for name, kind in pyogrio.list_layers(paths[2])}
    assert layers == {"future_annual": "MultiPolygon", "baseline_annual": "MultiPolygon"}
    for layer in layers:
        info = pyogrio.read_info(paths[2], layer=layer)
        assert info["crs"] == "EPSG:4326" and info["driver"] == "OpenFileGDB"
        assert "pfaf_id" in info["fields"]
    base_fields = set(pyogrio.read_info(paths[2], layer="baseline_annual")["fields"])
    assert {"string_id", "aq30_id", "gid_1", "aqid", "bws_raw", "bws_score", "bws_cat",
            "bws_label", "bwd_cat", "rfr_cat", "cfr_cat"} <= base_fields


def test_future_columns_follow_the_upstream_pattern(future):
    cols = list(future.columns)
    assert cols[:2] == ["fid", "pfaf_id"]
    assert cols[-1] == SYNTHETIC_MARK  # the file says it is synthetic (not an upstream column)
    cols = cols[:-1]
    pattern = re.compile(r"^(opt|bau|pes)(30|50|80)_(ws|wd|iv|sv|ww|ba)_(x_[rscl]|x_u|y_[rscl])$")
    assert [c for c in cols[2:] if not pattern.match(c)] == []
    for s in ("opt", "bau", "pes"):
        for p in ("30", "50", "80"):
            for ind in ("ws", "wd", "iv", "sv"):
                assert {f"{s}{p}_{ind}_x_{t}" for t in "rsclu"} <= set(cols)
            for ind in ("ba", "ww"):
                assert {f"{s}{p}_{ind}_x_r", f"{s}{p}_{ind}_x_l"} <= set(cols)
            for ind in ("ws", "wd", "iv", "sv", "ba", "ww"):
                assert {f"{s}{p}_{ind}_y_{t}" for t in "rscl"} <= set(cols)


def test_labels_and_sentinels(future):
    labels = set(future["bau50_ws_x_l"].dropna())
    assert labels <= FUTURE_LABELS
    assert {"Arid and low water use", "No Data"} <= labels
    arid = future["bau50_ws_x_c"] == -1
    assert arid.any()
    assert (future.loc[arid, "bau50_ws_x_r"] == 1.0).all()
    assert (future.loc[arid, "bau50_ws_x_s"] == 5.0).all()
    assert (future.loc[arid, "bau50_wd_x_l"] == "Arid and Low Water Use").all()
    nodata = future["bau50_ws_x_l"] == "No Data"
    assert (future.loc[nodata, ["bau50_ws_x_r", "bau50_ws_x_s", "bau50_ws_x_c"]] == -9999).all().all()
    extreme = future["bau50_ws_x_r"] == 9999
    assert extreme.any() and (future.loc[extreme, "bau50_ws_x_c"] == 4).all()
    assert (future.loc[extreme, "bau50_ws_x_l"] == "Extremely high (>80%)").all()
    assert future["bau50_ws_x_r"].isna().any()  # blank rows, as in WRI's file
    assert (future["pfaf_id"] == -9999).any()
    # Categories follow the ratio: 10, 20, 40 and 80 % are the edges.
    ok = future["bau50_ws_x_c"].between(0, 4) & (future["bau50_ws_x_r"] != 9999)
    r, c = future.loc[ok, "bau50_ws_x_r"], future.loc[ok, "bau50_ws_x_c"]
    expected = np.searchsorted([0.1, 0.2, 0.4, 0.8], r.to_numpy(), side="right")
    assert (np.abs(expected - c.to_numpy()) <= (np.abs(r.to_numpy()[:, None]
            - [0.1, 0.2, 0.4, 0.8]).min(axis=1) < 1e-5)).all()


def test_pfaf_ids_and_polygons_agree(pack, future):
    _, paths = pack
    basins = pyogrio.read_dataframe(paths[2], layer="future_annual")
    ids = future["pfaf_id"]
    real = ids[ids != -9999]
    assert real.is_unique and real.between(100_000, 999_999).all()
    assert sorted(basins["pfaf_id"]) == sorted(ids)
    # Every demo area (its square) is covered by basins.
    cover = shapely.union_all(basins.geometry.to_numpy())
    for a in AREAS:
        assert cover.contains(shapely.box(*a.bounds)), a.name
    assert len(basins) < 3000


def test_values_rise_with_scenario_and_period(future):
    normal = future["opt30_ws_x_c"].between(0, 4) & (future["opt30_ws_x_r"] != 9999)
    f = future[normal]
    for p in ("30", "50", "80"):
        assert (f[f"opt{p}_ws_x_r"] < f[f"bau{p}_ws_x_r"]).all()
        assert (f[f"bau{p}_ws_x_r"] < f[f"pes{p}_ws_x_r"]).all()
    for s in ("opt", "bau", "pes"):
        assert (f[f"{s}30_ws_x_r"] < f[f"{s}50_ws_x_r"]).all()
        assert (f[f"{s}50_ws_x_r"] < f[f"{s}80_ws_x_r"]).all()
        assert (f[f"{s}80_ws_x_c"] >= f[f"{s}30_ws_x_c"]).all()


def test_baseline_table(pack):
    _, paths = pack
    base = pd.read_csv(paths[1])
    assert list(base.columns[:5]) == ["string_id", "aq30_id", "pfaf_id", "gid_1", "aqid"]
    assert {f"{i}_{t}" for i in ("bws", "bwd", "rfr", "cfr")
            for t in ("raw", "score", "cat", "label")} <= set(base.columns)
    assert (base["string_id"] == base["pfaf_id"].astype(str) + "-" + base["gid_1"] + "-"
            + base["aqid"].astype(str)).all()
    assert base["string_id"].is_unique
    assert base["pfaf_id"].duplicated().any()  # a basin split over provinces
    assert set(base["bws_label"]) <= BASELINE_LABELS
    assert base["bws_raw"].notna().all()  # no blanks in the baseline: -9999 instead
    assert ((base["cfr_cat"] == -1) == (base["cfr_label"] == "No Risk")).all()
    # Basin indicators repeat unchanged on every unit of the basin.
    assert (base.groupby("pfaf_id")["bws_cat"].nunique() == 1).all()


def test_same_seed_same_bytes(pack, tmp_path):
    _, paths = pack
    again = writer.write(tmp_path, AREAS, seed=11)
    assert again[0].read_bytes() == paths[0].read_bytes()
    assert again[1].read_bytes() == paths[1].read_bytes()


def test_another_seed_other_values(tmp_path):
    one = writer.write(tmp_path / "one", AREAS[:1], seed=1)
    two = writer.write(tmp_path / "two", AREAS[:1], seed=2)
    assert one[0].read_bytes() != two[0].read_bytes()


def test_rewrite_replaces_the_pack(tmp_path):
    first = writer.write(tmp_path, AREAS[:1], seed=1)
    n_first = len(pd.read_csv(first[0], usecols=["pfaf_id"]))
    second = writer.write(tmp_path, AREAS[:2], seed=1)
    assert first == second
    basins = pyogrio.read_dataframe(second[2], layer="future_annual")
    n_second = len(pd.read_csv(second[0], usecols=["pfaf_id"]))
    assert len(basins) == n_second > n_first


def test_no_areas_means_the_whole_default_extent():
    # Writing it takes seconds, so only the plan is checked: lon 40..150, lat -12..56, with a
    # seed spacing that keeps it near 2,000 basins.
    region, spacing = writer.region([])
    assert region.bounds == (40.0, -12.0, 150.0, 56.0)
    assert region.area / spacing**2 == pytest.approx(2000)
