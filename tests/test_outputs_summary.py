"""The terminal views of a run: the shares table with weights, and the unresolved sites."""

from __future__ import annotations

import doctest

from report_fixtures import build_run, sites_frame

import sitescreen.outputs.summary as summary_mod
from sitescreen.aggregate import shares as compute_shares
from sitescreen.outputs.summary import (
    format_shares_table,
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
