"""The terminal views of a run: the shares table with weights, and the unresolved sites."""

from __future__ import annotations

import doctest

import pandas as pd
from report_fixtures import build_run, sites_frame

import sitescreen.outputs.summary as summary_mod
from sitescreen.aggregate import shares as compute_shares
from sitescreen.outputs.summary import (
    disclosure_sentences,
    format_shares_table,
    hazard_sentences,
    headline_table,
    share_records,
    unresolved_lines,
    unresolved_weight_sentence,
)

VALUES = [1_200e6, 800e6, 500e6, 300e6, 2_000e6, 790e6]  # the unresolved site "xx" last


def _weighted_run():
    sites = sites_frame().assign(asset_value=VALUES)
    sites_, table, _, _ = build_run(sites=sites, hazards=("water_stress",))
    return sites_, table, compute_shares(table, sites_, weight="asset_value")


def test_weighted_medium_plus_share_is_printed_beside_the_count_share():
    sites, table, shares = _weighted_run()
    text = format_shares_table(shares, hazards=["water_stress"])
    assert "w.medium+: share of asset_value" in text
    header = next(ln for ln in text.splitlines() if ln.startswith("scenario"))
    assert header.index("medium+") < header.index("w.medium+") < header.index(" n ")
    # optimistic 2030: levels [4, 5, 1, 2, 3] at the located sites -> by count 3 of 5 (60 %);
    # by value (1200 + 800 + 2000) / 4800 = 83 %
    row = next(ln for ln in text.splitlines() if ln.startswith("Optimistic") and " 2030 " in ln)
    assert " 60% " in row and " 83% " in row
    unweighted = format_shares_table(compute_shares(table, sites), hazards=["water_stress"])
    assert "w.medium+" not in unweighted


def test_unresolved_sites_are_named_with_their_reason_and_weight():
    sites, _, _ = _weighted_run()
    unresolved = sites["location_source"].eq("unresolved")
    lines = unresolved_lines(sites, unresolved, weight="asset_value")
    assert lines[0] == ("1 site not located (counted as unresolved); 790 M of 5.59 bn "
                        "asset_value not located (1 of 6 sites):")
    assert lines[1] == "  xx (Lost site): no match for 'Nowhere Road'"
    assert unresolved_lines(sites, unresolved & False) == []
    assert unresolved_weight_sentence(sites, unresolved, None) == ""


def test_docstring_examples():
    result = doctest.testmod(summary_mod)
    assert result.attempted >= 3 and result.failed == 0


def _row(**kw):
    """One shares row of a composite: 199 of 200 sites at medium or above, a range from
    0.4 to 99.6 %."""
    row = dict(hazard="floods_typhoons", hazard_label="Floods and typhoons", is_composite=True,
               scenario="pessimistic", year=2030, pathway="river_flood:rcp8p5; typhoon:ssp585",
               pathway_exact=True, sites_total=200, sites_unresolved=0, sites_no_data=0,
               sites_screened=200, medium_plus_count=199, medium_plus_pct=99.5,
               medium_plus_pct_low=0.4, medium_plus_pct_high=99.6,
               **{f"pct_level_{i}": v for i, v in enumerate([0.5, 0.0, 0.0, 0.0, 99.5], 1)},
               sites_lower_bound=0, lower_bound_missing="")
    return {**row, **kw}


def test_shares_print_100_and_0_only_when_exact():
    shares = pd.DataFrame([_row()])
    _, rows = headline_table(shares)
    assert rows[0][2] == ">99 % (<1 to >99)"
    (sentence,) = disclosure_sentences(shares, hazards=["floods_typhoons"])
    assert "199 of 200 sites (>99 %)" in sentence
    assert "between <1 and >99 % across the model range" in sentence
    (sentence,) = hazard_sentences(shares, hazards=["floods_typhoons"])
    assert sentence.startswith("Floods and typhoons: >99 % (199 of 200 screened sites)")
    assert "; <1 to >99 % across the model range" in sentence
    text = format_shares_table(shares)
    line = next(ln for ln in text.splitlines() if ln.startswith("Pessimistic"))
    assert line.split()[2:8] == ["<1", "0", "0", "0", ">99", ">99%"] and "(<1 to >99)" in line
    # exact ends print as they are, and other values as before
    exact = pd.DataFrame([_row(medium_plus_count=200, medium_plus_pct=100.0,
                               medium_plus_pct_low=0.0, medium_plus_pct_high=57.89)])
    assert headline_table(exact)[1][0][2] == "100 % (0-58)"
    records = share_records(shares)
    assert records[0]["medium_plus_pct"] == 99.5 and records[0]["medium_plus_pct_low"] == 0.4
    near = share_records(pd.DataFrame([_row(medium_plus_pct=99.96, medium_plus_pct_low=0.04)]))
    assert near[0]["medium_plus_pct"] == 99.9 and near[0]["medium_plus_pct_low"] == 0.1


def test_lower_bound_sites_are_named_with_the_missing_component():
    shares = pd.DataFrame([_row(sites_lower_bound=2, lower_bound_missing="typhoon",
                                sites_no_data=1, sites_screened=199, medium_plus_pct=60.0,
                                medium_plus_count=120)])
    _, rows = headline_table(shares)
    assert rows[0][-1] == ("199 of 200 (1 no data); 2 without typhoon data, their level a "
                           "lower bound")
    (sentence,) = disclosure_sentences(shares, hazards=["floods_typhoons"])
    assert sentence.endswith(
        "; of the screened sites, 2 without typhoon data, their level a lower bound.")
    (sentence,) = hazard_sentences(shares, hazards=["floods_typhoons"])
    assert "; of the screened sites, 2 without typhoon data, their level a lower bound" \
        in sentence
    line = next(ln for ln in format_shares_table(shares).splitlines()
                if ln.startswith("Pessimistic"))
    assert line.endswith("; 2 without typhoon data, their level a lower bound")
    # none: the texts are as before
    plain = pd.DataFrame([_row(medium_plus_pct=60.0)])
    assert headline_table(plain)[1][0][-1] == "200 of 200"
    assert "lower bound" not in " ".join(disclosure_sentences(plain, hazards=["floods_typhoons"])
                                         + hazard_sentences(plain, hazards=["floods_typhoons"]))


def test_weighted_share_states_its_base_and_what_is_not_screened():
    # 5 bn of 5.057 bn sit with an unlocated site: the weighted share is of 57 M.
    shares = pd.DataFrame([_row(medium_plus_pct=43.0, w_medium_plus_pct=51.0,
                                weight_field="asset_value", weight_screened=57e6,
                                weight_no_data=0.0, weight_unresolved=5e9, sites_unresolved=1,
                                sites_total=201)])
    _, rows = headline_table(shares)
    assert rows[0][2] == "43 % (<1 to >99); 51 % of 57 M asset_value"
    assert rows[0][-1] == "200 of 201 (1 unresolved); 5 bn asset_value not screened"
    (sentence,) = disclosure_sentences(shares, hazards=["floods_typhoons"])
    assert ("; 51 % of the 57 M asset_value at screened sites (5 bn at sites not located or "
            "without data)") in sentence
    (sentence,) = hazard_sentences(shares, hazards=["floods_typhoons"])
    assert ("; 51 % of the 57 M asset_value at screened sites (5 bn at sites not located or "
            "without data)") in sentence
    text = format_shares_table(shares)
    assert ("w.medium+: share of asset_value (screened sites: 57 M; 5 bn not screened) at "
            "medium or higher risk") in text
