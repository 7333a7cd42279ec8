"""Tests of the synthetic CCKP files of the demo pack (sitescreen.synthetic.cckp)."""

from __future__ import annotations

import numpy as np

from sitescreen.catalog import load_catalog
from sitescreen.data.datasets import expand_files
from sitescreen.netcdf import grid_values, read_grid
from sitescreen.synthetic import DemoArea
from sitescreen.synthetic import cckp as writer

AREA = DemoArea("Shanghai", 121.47, 31.23, 0.3, coastal=True)


def test_the_pack_has_every_file_under_its_upstream_name_labelled_synthetic(tmp_path):
    paths = writer.write(tmp_path, [AREA], seed=7)
    entry = load_catalog().dataset("cckp_cmip6")
    names = expand_files(entry)
    assert sorted(p.relative_to(tmp_path / "cckp").as_posix() for p in paths) == sorted(names)

    def grid(variable, run, pct, period):
        name = (f"cmip6-x0.25/{variable}/ensemble-all-{run}/climatology-{variable}-annual-mean_"
                f"cmip6-x0.25_ensemble-all-{run}_climatology_{pct}_{period}.nc")
        return read_grid(str(tmp_path / "cckp" / name))

    g = grid("hd35", "ssp585", "p90", "2060-2079")
    assert g.attrs["sitescreen_synthetic"].startswith("SYNTHETIC")
    assert (g.attrs["wb_scenario_label"], g.attrs["wb_percentile_label"],
            g.attrs["wb_period_label"], g.attrs["wb_variable_label"]) == (
        "ssp585", "p90", "2060-2079", "hd35")
    assert g.units == "days" and grid("cdd65", "historical", "median", "1995-2014").units == "degC days"

    land, sea, away = (np.array([121.3]), np.array([31.2])), (np.array([121.7]), np.array([31.2])), \
        (np.array([100.0]), np.array([10.0]))
    for variable in ("hd35", "cdd65"):
        today = grid(variable, "historical", "median", "1995-2014")
        assert np.isfinite(grid_values(today, *land)).all()
        assert np.isnan(grid_values(today, *sea)).all()      # the sea east of the city
        assert np.isnan(grid_values(today, *away)).all()     # no data outside the areas
        low, mid, high = (grid_values(grid(variable, "ssp585", p, "2040-2059"), *land)[0]
                          for p in ("p10", "median", "p90"))
        assert low <= mid <= high and mid > grid_values(today, *land)[0]

