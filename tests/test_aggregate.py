import numpy as np
import pandas as pd
import pytest

from sitescreen.aggregate import add_composites, results_table, shares
from sitescreen.catalog import CompositeSpec
from sitescreen.hazards import HazardResult
from sitescreen.scenarios import Narrative, pathway_for


def _result(hazard, levels, *, low=None, high=None, family="aqueduct_floods",
            scenario=Narrative.PESSIMISTIC, year=2030):
    levels = np.asarray(levels, dtype="int8")
    return HazardResult(
        hazard=hazard, scenario=scenario, year=year,
        pathway=pathway_for(family, scenario, year), units="u", threshold_set="ts",
        datasets=("d",), method="m", values=levels.astype(float),
        levels=levels, level_low=np.asarray(low if low is not None else levels, dtype="int8"),
        level_high=np.asarray(high if high is not None else levels, dtype="int8"),
        flags=np.array([""] * len(levels), dtype=object))


SITES = pd.DataFrame({
    "site_id": ["a", "b", "c", "d", "e", "f"],
    "location_source": ["given", "given", "geocoded", "given", "given", "unresolved"],
    "value": [10.0, 20.0, 30.0, 40.0, 0.0, 5.0],
})


def test_shares_count_levels_and_denominators():
    # e has no data (0); f is unresolved (its hazard level is 0 as it has no coordinates).
    r = _result("river_flood", [1, 3, 3, 5, 0, 0], low=[1, 2, 3, 4, 0, 0], high=[2, 3, 4, 5, 0, 0])
    table = results_table(SITES["site_id"], [r])
    out = shares(table, SITES).iloc[0]
    assert (out.sites_total, out.sites_unresolved, out.sites_no_data, out.sites_screened) == (6, 1, 1, 4)
    assert [out[f"count_level_{i}"] for i in range(1, 6)] == [1, 0, 2, 0, 1]
    assert out.pct_level_3 == pytest.approx(50.0)
    assert out.medium_plus_count == 3 and out.medium_plus_pct == pytest.approx(75.0)
    assert out.medium_plus_pct_low == pytest.approx(50.0)
    assert out.medium_plus_pct_high == pytest.approx(75.0)
    assert sum(out[f"pct_level_{i}"] for i in range(1, 6)) == pytest.approx(100.0)


def test_weighted_shares_use_the_named_property():
    r = _result("river_flood", [1, 3, 3, 5, 0, 0])
    out = shares(results_table(SITES["site_id"], [r]), SITES, weight="value").iloc[0]
    # screened weights: a 10 (L1), b 20 (L3), c 30 (L3), d 40 (L5) -> total 100
    assert out.w_pct_level_3 == pytest.approx(50.0)
    assert out.w_medium_plus_pct == pytest.approx(90.0)


def test_composite_takes_highest_component_and_names_driver():
    river = _result("river_flood", [1, 3, 0, 2, 0, 0])
    coast = _result("coastal_flood", [2, 1, 0, 4, 1, 0])
    typhoon = _result("typhoon", [2, 3, 0, 1, 0, 0], family="tc_change", high=[3, 3, 0, 1, 0, 0])
    table = results_table(SITES["site_id"], [river, coast, typhoon])
    comp = CompositeSpec("floods_typhoons", "Floods and typhoons",
                         ("river_flood", "coastal_flood", "typhoon"))
    full = add_composites(table, [comp])
    c = full[full.hazard == "floods_typhoons"].set_index("site_id")
    # e has coastal flood 1 and no river flood or typhoon data: "low" cannot be asserted.
    assert c.loc[["a", "b", "c", "d", "e"], "level"].tolist() == [2, 3, 0, 4, 0]
    assert c.loc["a", "driver"] == "coastal_flood,typhoon"
    assert c.loc["d", "driver"] == "coastal_flood"
    assert c.loc["a", "level_high"] == 3
    assert "missing:river_flood" in c.loc["e", "flags"] and c.loc["e", "driver"] == ""
    assert "typhoon:ssp585" in c.loc["a", "pathway"]
    s = shares(full, SITES).set_index("hazard").loc["floods_typhoons"]
    assert s.sites_screened == 3 and s.medium_plus_count == 2 and s.sites_no_data == 2


FLOODS_TYPHOONS = CompositeSpec("floods_typhoons", "Floods and typhoons",
                                ("river_flood", "coastal_flood", "typhoon"))


def _gap_run():
    """Typhoon without data at a (river flood 3: a lower bound) and b (river flood 2: no
    data); c and d have every component; e has none; f is unresolved."""
    river = _result("river_flood", [3, 2, 1, 4, 0, 0], low=[2, 1, 1, 4, 0, 0],
                    high=[4, 3, 1, 4, 0, 0])
    coast = _result("coastal_flood", [1, 1, 1, 1, 0, 0])
    typhoon = _result("typhoon", [0, 0, 2, 5, 0, 0], family="tc_change")
    return [river, coast, typhoon]


def test_composite_with_a_component_without_data_is_a_lower_bound_or_no_data():
    from sitescreen.aggregate import SiteResults

    results = _gap_run()
    full = add_composites(results_table(SITES["site_id"], results), [FLOODS_TYPHOONS])
    columnar = SiteResults.from_results(SITES["site_id"], results).with_composites(
        [FLOODS_TYPHOONS], chunk_sites=4)
    c = full[full.hazard == "floods_typhoons"].set_index("site_id")
    i = columnar.layer_index("floods_typhoons", "pessimistic", 2030)
    for got in (c, pd.DataFrame({"level": columnar.level[i], "level_low": columnar.level_low[i],
                                 "level_high": columnar.level_high[i],
                                 "value": columnar.value[i],
                                 "flags": np.asarray(columnar.flags[i], dtype=object),
                                 "driver": np.asarray(columnar.driver[i], dtype=object)},
                                index=SITES["site_id"])):
        # a: at least medium (river flood 3), whatever the typhoon: a lower bound, whose
        # high end is unknown (5); b: at least low, which says nothing: no data.
        assert got["level"].tolist() == [3, 0, 2, 5, 0, 0]
        assert got["level_low"].tolist() == [2, 0, 2, 5, 0, 0]
        assert got["level_high"].tolist() == [5, 0, 2, 5, 0, 0]
        assert got.loc["a", "flags"] == "missing:typhoon" == got.loc["b", "flags"]
        assert got.loc["a", "driver"] == "river_flood" and got.loc["b", "driver"] == ""
        assert np.isnan(got.loc["b", "value"]) and got.loc["a", "value"] == 3.0
    for weight in (None, "value"):
        for s in (shares(full, SITES, weight=weight),
                  columnar.shares(SITES, weight=weight, chunk_sites=2)):
            row = s.set_index("hazard").loc["floods_typhoons"]
            assert (row.sites_screened, row.sites_no_data, row.sites_unresolved) == (3, 2, 1)
            assert row.sites_lower_bound == 1 and row.lower_bound_missing == "typhoon"
            assert row.medium_plus_count == 2 and row.count_level_3 == 1
            single = s.set_index("hazard").loc["typhoon"]
            assert single.sites_lower_bound == 0 and single.lower_bound_missing == ""
            if weight:
                # screened a 10, c 30, d 40; no data b 20, e 0; unresolved f 5
                assert (row.weight_screened, row.weight_no_data, row.weight_unresolved) \
                    == (80.0, 20.0, 5.0)
                assert single.weight_no_data == 30.0  # a and b have no typhoon data


def test_composite_without_a_component_the_run_did_not_screen_is_that_of_the_others():
    river = _result("river_flood", [3, 2, 1, 4, 0, 0])
    full = add_composites(results_table(SITES["site_id"], [river]), [FLOODS_TYPHOONS])
    c = full[full.hazard == "floods_typhoons"].set_index("site_id")
    assert c["hazard_label"].iloc[0] == "Floods and typhoons (without coastal_flood, typhoon)"
    assert c["level"].tolist() == [3, 2, 1, 4, 0, 0]
    row = shares(full, SITES).set_index("hazard").loc["floods_typhoons"]
    assert row.sites_screened == 4 and row.sites_lower_bound == 0


def test_lower_bound_counts_add_up_over_chunks():
    from sitescreen.aggregate import SiteResults, add_counts, count_levels

    columnar = SiteResults.from_results(SITES["site_id"], _gap_run()).with_composites(
        [FLOODS_TYPHOONS])
    unresolved = SITES["location_source"].eq("unresolved").to_numpy()
    a = count_levels(columnar.take(0, 1), unresolved[:1])
    b = count_levels(columnar.take(1, 6), unresolved[1:])
    both = add_counts(b, a).set_index("hazard").loc["floods_typhoons"]
    assert both.sites_lower_bound == 1 and both.lower_bound_missing == "typhoon"
    assert b.set_index("hazard").loc["floods_typhoons", "lower_bound_missing"] == ""


def test_docstring_examples():
    import doctest

    import sitescreen.aggregate as aggregate_mod

    assert doctest.testmod(aggregate_mod).failed == 0


def test_results_table_rejects_misaligned_results():
    with pytest.raises(ValueError, match="3 results for 6 sites"):
        results_table(SITES["site_id"], [_result("river_flood", [1, 2, 3])])


def test_percentages_recompute_from_per_site_levels():
    rng = np.random.default_rng(7)
    results = [_result("river_flood", rng.integers(0, 6, 6), scenario=s)
               for s in Narrative]
    table = results_table(SITES["site_id"], results)
    out = shares(table, SITES)
    for _, row in out.iterrows():
        part = table[(table.scenario == row.scenario) & ~table.site_id.isin(["f"])]
        screened = part[part.level > 0]
        for lvl in range(1, 6):
            expected = 100 * (screened.level == lvl).sum() / len(screened) if len(screened) else np.nan
            assert row[f"pct_level_{lvl}"] == pytest.approx(expected, nan_ok=True)


def _random_run(n=50, seed=3):
    """Results of three hazards over 2 scenarios x 2 years with random levels and flags; the
    typhoon lacks 2050, so its composite misses it there."""
    from sitescreen.aggregate import SiteResults

    rng = np.random.default_rng(seed)
    ids = [f"s{i:03d}" for i in range(n)]
    results = []
    for hazard, family, years in (("river_flood", "aqueduct_floods", (2030, 2050)),
                                  ("coastal_flood", "aqueduct_floods", (2030, 2050)),
                                  ("typhoon", "tc_change", (2030,))):
        for scenario in (Narrative.OPTIMISTIC, Narrative.PESSIMISTIC):
            for year in years:
                lv = rng.integers(0, 6, n)
                r = _result(hazard, lv, low=np.maximum(lv - 1, 0) * (lv > 0),
                            high=np.minimum(lv + 1, 5) * (lv > 0), family=family,
                            scenario=scenario, year=year)
                flags = rng.choice(["", "edge", "nodata"], n).astype(object)
                results.append(HazardResult(**{**{f: getattr(r, f) for f in r.__dataclass_fields__},
                                               "flags": flags}))
    sites = pd.DataFrame({"site_id": ids,
                          "location_source": rng.choice(["given", "unresolved"], n, p=[.8, .2]),
                          "value": rng.uniform(0, 10, n)})
    comps = [CompositeSpec("floods_typhoons", "Floods and typhoons",
                           ("river_flood", "coastal_flood", "typhoon")),
             CompositeSpec("floods", "Floods", ("river_flood", "coastal_flood", "surge"))]
    return sites, results, comps, SiteResults


@pytest.mark.parametrize("weight", [None, "value"])
def test_columnar_shares_and_rows_equal_the_long_table(weight):
    sites, results, comps, SiteResults = _random_run()
    long = add_composites(results_table(sites["site_id"], results), comps)
    expected = shares(long, sites, weight=weight)
    columnar = SiteResults.from_results(sites["site_id"], results).with_composites(
        comps, chunk_sites=7)
    # Counts per chunk of 7 sites, added up, give the same table as the long form.
    got = columnar.shares(sites, weight=weight, chunk_sites=9)
    pd.testing.assert_frame_equal(got, expected)
    # The long rows of the columnar form are the long table's, whatever the row order.
    key = ["site_id", "hazard", "scenario", "year"]
    rows = pd.concat([part.long_table() for _, part in columnar.chunks(11)], ignore_index=True)
    a = rows.sort_values(key, ignore_index=True)
    b = long.sort_values(key, ignore_index=True)[list(rows.columns)]
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert "missing:surge" in set(a.loc[a.hazard == "floods", "flags"].str.split(";").sum())


def test_columnar_results_are_put_together_from_chunks_in_any_order():
    sites, results, comps, SiteResults = _random_run(n=20)
    whole = SiteResults.from_results(sites["site_id"], results).with_composites(comps)
    # Chunks of shuffled sites (as Dask chunks in spatial order), combined as they come.
    order = np.random.default_rng(3).permutation(len(whole))
    chunks = [order[a:a + 6] for a in range(0, len(order), 6)]
    again = SiteResults.scatter(whole.site_ids, ((idx, whole.select(idx)) for idx in chunks))
    assert again.layers == whole.layers
    assert again.site_ids.tolist() == whole.site_ids.tolist()
    for i in range(len(whole.layers)):
        assert np.array_equal(again.level[i], whole.level[i])
        assert np.array_equal(again.level_high[i], whole.level_high[i])
        assert np.allclose(again.value[i], whole.value[i], equal_nan=True)
        assert list(again.driver[i]) == list(whole.driver[i])
        assert list(again.flags[i]) == list(whole.flags[i])
        assert again.extra[i].keys() == whole.extra[i].keys()
    with pytest.raises(ValueError, match="different layers"):
        SiteResults.scatter(whole.site_ids, [(chunks[0], whole.select(chunks[0])),
                                             (chunks[1], whole.select(chunks[1]).take(0, 6)
                                              .with_composites(comps))])
    assert whole.level[0].dtype == np.int8 and whole.nbytes < 20 * len(whole) * len(whole.layers)


def test_chunks_combined_in_another_order_give_the_same_columns_and_wider_types():
    sites, results, comps, SiteResults = _random_run(n=20)
    whole = SiteResults.from_results(sites["site_id"], results).with_composites(comps)
    chunks = [np.arange(0, 10), np.arange(10, 20)]
    parts = [(idx, whole.select(idx)) for idx in chunks]
    # The second chunk's first layer has a decimal with no data where the first has counts.
    parts[0][1].extra[0]["n_models"] = np.arange(10, dtype=np.int64)
    parts[1][1].extra[0]["n_models"] = np.r_[2.5, np.full(9, np.nan)]
    parts[1][1].flags[0] = pd.Categorical(["zz-only-here"] * 10)
    a = SiteResults.scatter(whole.site_ids, parts)
    b = SiteResults.scatter(whole.site_ids, parts[::-1])  # as Dask futures may arrive
    for i in range(len(whole.layers)):
        for x, y in ((a.flags[i], b.flags[i]), (a.driver[i], b.driver[i])):
            assert list(x.categories) == list(y.categories) == sorted(x.categories)
            assert np.array_equal(x.codes, y.codes)
    for got in (a, b):
        n_models = got.extra[0]["n_models"]
        assert n_models.dtype == np.float64
        assert n_models[:10].tolist() == list(range(10)) and n_models[10] == 2.5
        assert np.isnan(n_models[11:]).all()
