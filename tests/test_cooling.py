"""Tests of the data-center cooling electricity estimate (sitescreen.cooling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sitescreen.catalog import load_catalog
from sitescreen.cooling import (
    COOLING_COLUMNS,
    add_cooling_energy,
    cooling_change,
    cooling_frame,
    cooling_records,
)
from sitescreen.errors import SiteValidationError


def test_the_degree_day_formula_on_a_worked_example():
    # Checked by hand: 2 MW of IT at PUE 1.362, 70 % of the overhead for cooling:
    # 2000 kW x 8760 h = 17,520,000 kWh; x 0.362 = 6,342,240 kWh; x 0.7 = 4,439,568 kWh,
    # i.e. 4,439.568 MWh/year of cooling today. CDD 850 -> 1105 C-days is +30 %, so
    # +1,331.8704 MWh/year, and at 0.65 per kWh +865,715.76 a year.
    r = cooling_change(850.0, 1105.0, it_load_kw=2000.0, pue=1.362, cooling_share=0.7,
                       price_per_kwh=0.65)
    assert float(r["change_pct"]) == pytest.approx(30.0)
    assert float(r["base_mwh"]) == pytest.approx(4439.568)
    assert float(r["change_mwh"]) == pytest.approx(1331.8704)
    assert float(r["change_cost"]) == pytest.approx(865715.76)


def test_no_cooling_today_or_no_data_gives_no_number():
    r = cooling_change(np.array([0.0, np.nan, 500.0]), np.array([100.0, 900.0, 400.0]))
    assert np.isnan(r["change_pct"][:2]).all() and r["change_pct"][2] == pytest.approx(-20.0)
    assert np.isnan(r["change_mwh"]).all()  # no IT load given


def _table(sites):
    rows = []
    for sid in sites["site_id"]:
        for hazard in ("cooling_demand", "extreme_heat"):
            rows.append({"site_id": sid, "hazard": hazard, "scenario": "pessimistic",
                         "year": 2050, "pathway": "ssp585", "period": "2040-2059",
                         "value": 1250.0, f"extra_{hazard}_baseline": 1000.0,
                         f"extra_{hazard}_p10": 1100.0, f"extra_{hazard}_p90": 1500.0})
    return pd.DataFrame(rows)


def _sites(**props):
    base = {"site_id": ["dc1", "dc2", "office"],
            "kind": ["data_center", "data_center", "office"]}
    base.update(props)
    return pd.DataFrame(base)


def test_site_properties_win_over_the_stated_defaults():
    sites = _sites(pue=[1.362, None, None], it_load_mw=[2.0, None, None])
    out = add_cooling_energy(_table(sites), sites, catalog=load_catalog())
    frame = cooling_frame(out).set_index("site_id")

    assert set(frame.index) == {"dc1", "dc2"}  # offices get nothing
    dc1, dc2 = frame.loc["dc1"], frame.loc["dc2"]
    assert dc1.dc_cooling_change_pct == pytest.approx(25.0)
    assert (dc1.dc_cooling_change_pct_low, dc1.dc_cooling_change_pct_high) == pytest.approx((10.0, 50.0))
    # 2000 kW x 8760 x 0.362 x 0.7 (default share) = 4,439.568 MWh; +25 % = 1,109.892 MWh.
    assert dc1.dc_cooling_base_mwh == pytest.approx(4439.568)
    assert dc1.dc_cooling_change_mwh == pytest.approx(1109.892)
    assert dc1.dc_cooling_change_cost == pytest.approx(1109.892 * 1000 * 0.65)
    assert dc1.dc_cooling_change_mwh_per_mw_it == pytest.approx(1109.892 / 2)
    assert "pue=1.362 (site)" in dc1.dc_assumptions and "it_load_kw=2000 (site)" in dc1.dc_assumptions
    # dc2: no IT load, default PUE 1.5: a % and a per-MW figure, no total.
    assert np.isnan(dc2.dc_cooling_change_mwh) and dc2.dc_cooling_change_pct == pytest.approx(25.0)
    assert dc2.dc_cooling_change_mwh_per_mw_it == pytest.approx(1000 * 8760 * 0.5 * 0.7 / 1000 * 0.25)
    assert "pue=1.5 (default)" in dc2.dc_assumptions
    # Only the cooling hazard's rows carry values; the columns are named after it.
    heat_rows = out[out.hazard == "extreme_heat"]
    assert heat_rows[f"extra_cooling_demand_{COOLING_COLUMNS[0]}"].isna().all()

    records = cooling_records(sites, catalog=load_catalog(), hazards={"cooling_demand"})
    assert records[0]["default_pue"] == 1.5 and records[0]["currency"] == "CNY"
    assert records[0]["sites"] == 2 and records[0]["sites_with_it_load"] == 1
    assert set(records[0]["per_site"]) == {"dc1", "dc2"}


def test_without_data_centers_the_table_is_unchanged():
    sites = pd.DataFrame({"site_id": ["a"], "kind": ["office"]})
    table = _table(sites)
    assert add_cooling_energy(table, sites, catalog=load_catalog()).columns.tolist() == \
        table.columns.tolist()


def test_bad_inputs_are_listed_at_once():
    sites = _sites(pue=[0.9, "high", None], cooling_share=[None, 1.5, None])
    with pytest.raises(SiteValidationError) as info:
        add_cooling_energy(_table(sites), sites, catalog=load_catalog())
    text = str(info.value)
    assert "site 'dc1': pue = '0.9' is not a PUE between 1 and 5" in text
    assert "site 'dc2': pue = 'high'" in text and "site 'dc2': cooling_share = '1.5'" in text


def test_the_module_examples_hold():
    import doctest

    import sitescreen.cooling

    assert doctest.testmod(sitescreen.cooling).failed == 0
