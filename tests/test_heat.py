"""Tests of the CCKP heat hazards (sitescreen.hazards.heat) on files in the upstream layout."""

from __future__ import annotations

import numpy as np
import pytest

from sitescreen.catalog import load_catalog
from sitescreen.data.datasets import expand_files
from sitescreen.data.sources import DataSource
from sitescreen.errors import CatalogError, HazardDataError
from sitescreen.hazards import HazardContext, load_hazard
from sitescreen.hazards.heat import _file_name
from sitescreen.scenarios import Narrative
from sitescreen.synthetic.cckp import write_cckp_file

# Sites: A on land (cell 31.25 N, 121.5 E), B in the sea cell east of it, C far from any
# data, D without coordinates.
LON = np.array([121.5, 121.74, 100.0, np.nan])
LAT = np.array([31.25, 31.25, 10.0, np.nan])


# A new CCKP indicator: one catalog entry (and a threshold set), no code.
HD40 = '''
[hazards.extreme_heat_40]
label = "Hot days above 40 C"
plugin = "cckp_indicator"
datasets = ["cckp_cmip6"]
threshold_set = "heat-hot-days-40c-v1"
scenarios = ["optimistic", "current_trend", "pessimistic"]
years = [2030, 2050, 2080]
[hazards.extreme_heat_40.params]
variable = "hd40"
quantity = "days"
'''


def _write(root, entry, variable, run, percentile, period, west_value, east_value=np.nan,
           units="days"):
    relpath = _file_name(entry, variable, run, percentile, period)
    write_cckp_file(root / entry.local_dir / relpath, variable=variable, run=run,
                    percentile=percentile, period=period, units=units,
                    patches=[(121.5, 31.25, np.array([[west_value, east_value]]))])


@pytest.fixture()
def heat_root(tmp_path):
    entry = load_catalog().dataset("cckp_cmip6")
    # Hot days: today 15 (medium), 2050 pessimistic median 25 (high), p10 12, p90 50.
    _write(tmp_path, entry, "hd35", "historical", "median", "1995-2014", 15.0)
    for pct, value in (("p10", 12.0), ("median", 25.0), ("p90", 50.0)):
        _write(tmp_path, entry, "hd35", "ssp585", pct, "2040-2059", value)
    # Cooling degree days in F-days: 1800 F-days = 1000 C-days today, 2250 = 1250 in 2050.
    _write(tmp_path, entry, "cdd65", "historical", "median", "1995-2014", 1800.0,
           units="degF days")
    for pct, value in (("p10", 1980.0), ("median", 2250.0), ("p90", 2700.0)):
        _write(tmp_path, entry, "cdd65", "ssp585", pct, "2040-2059", value, units="degF days")
    return tmp_path


def _assess(root, hazard, catalog=None, scenario=Narrative.PESSIMISTIC, year=2050):
    catalog = catalog or load_catalog()
    context = HazardContext.build(catalog, hazard, DataSource.open(root))
    return load_hazard(context.spec).assess(LON, LAT, scenario=scenario, year=year,
                                            context=context)


def test_hot_days_levels_range_and_baseline(heat_root):
    r = _assess(heat_root, "extreme_heat")

    assert (r.pathway.code, r.pathway.period) == ("ssp585", "2040-2059")
    assert r.units == "days per year" and r.threshold_set == "heat-hot-days-35c-v1"
    # Edges 1, 7, 20, 45 days: 25 -> high (4), p10 12 -> medium (3), p90 50 -> very high (5).
    assert r.values[0] == 25.0 and r.levels.tolist() == [4, 4, 0, 0]
    assert r.level_low.tolist() == [3, 3, 0, 0] and r.level_high.tolist() == [5, 5, 0, 0]
    assert r.extra["p10"][0] == 12.0 and r.extra["p90"][0] == 50.0
    assert r.extra["baseline"][0] == 15.0 and r.extra["level_baseline"][0] == 3
    assert r.extra["change"][0] == 10.0
    assert r.extra["change_pct"][0] == pytest.approx(100 * 10 / 15)
    assert r.flags[0] == "models-disagree"
    # B is on the sea cell: it takes A's cell, 0.24 deg east of it, and says so.
    assert r.values[1] == 25.0 and r.flags[1].startswith("nearest-land-cell:22.")
    assert r.extra["nearest_land_km"][1] == pytest.approx(22.8, abs=0.1)
    assert r.flags[2] == "no-data" and r.flags[3] == "no-data"
    assert r.details["reference"]["period"] == "1995-2014"
    # The files carry the synthetic mark, so the result is synthetic whatever the folder says.
    assert r.details["data_origin"] == "synthetic-demo" and len(r.details["synthetic_files"]) == 4
    assert r.details["files"]["median"].endswith(
        "climatology-hd35-annual-mean_cmip6-x0.25_ensemble-all-ssp585_climatology_median_"
        "2040-2059.nc")


def test_cooling_degree_days_in_fahrenheit_are_reported_in_celsius(heat_root):
    r = _assess(heat_root, "cooling_demand")

    assert r.units == "C-days per year"
    assert r.values[0] == pytest.approx(1250.0) and r.extra["baseline"][0] == pytest.approx(1000.0)
    # Edges 250, 1000, 2000, 3000 C-days: 1250 and its p10 1100 / p90 1500 are all medium (3).
    assert r.levels[0] == 3 and (r.level_low[0], r.level_high[0]) == (3, 3)
    assert r.extra["change_pct"][0] == pytest.approx(25.0)


def test_a_missing_file_names_the_fetch_command(heat_root):
    with pytest.raises(HazardDataError, match="sitescreen data fetch cckp_cmip6"):
        _assess(heat_root, "extreme_heat", scenario=Narrative.OPTIMISTIC)


def test_a_new_cckp_indicator_is_one_catalog_entry(heat_root, tmp_path):
    user = tmp_path / "catalog.toml"
    user.write_text(HD40)
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text('''
[sets.heat-hot-days-40c-v1]
hazard = "extreme_heat_40"
version = "1"
kind = "ascending"
units = "days per year with Tmax > 40 C"
edges = [0.5, 3, 10, 30]
''')
    catalog = load_catalog(user, thresholds=thresholds)
    entry = catalog.dataset("cckp_cmip6")
    files = expand_files(entry, hazards=["extreme_heat_40"])
    assert len(files) == 30 and all("/hd40/" in f for f in files)
    assert len(expand_files(entry)) == 90  # hd35, cdd65 and hd40

    _write(heat_root, entry, "hd40", "historical", "median", "1995-2014", 1.0)
    for pct, value in (("p10", 2.0), ("median", 4.0), ("p90", 12.0)):
        _write(heat_root, entry, "hd40", "ssp585", pct, "2040-2059", value)
    r = _assess(heat_root, "extreme_heat_40", catalog=catalog)
    assert r.hazard == "extreme_heat_40" and r.values[0] == 4.0
    assert (r.levels[0], r.level_low[0], r.level_high[0]) == (3, 2, 4)


def test_a_hazard_without_its_variable_is_refused(tmp_path):
    user = tmp_path / "catalog.toml"
    # The same entry without its params: the file names cannot be built.
    user.write_text(HD40.split("[hazards.extreme_heat_40.params]")[0])
    with pytest.raises(CatalogError, match=r"extreme_heat_40.*no params.variable"):
        load_catalog(user)


def test_a_composite_may_not_take_a_hazard_name(tmp_path):
    user = tmp_path / "catalog.toml"
    user.write_text('[composites.extreme_heat]\nlabel = "Heat"\ncomponents = ["extreme_heat"]\n')
    with pytest.raises(CatalogError, match="has the name of a hazard"):
        load_catalog(user)
