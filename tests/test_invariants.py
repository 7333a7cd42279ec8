"""Properties that must hold for every input (hypothesis), and reproducible runs.

- Shares: per hazard x scenario x year the level percentages of the screened sites sum to
  100 % (or are all undefined when nothing was screened), counts add up to every
  denominator, and the medium-and-above range is ordered.
- Composites: a site's composite level is the highest of its components', never lower;
  with a component without data, that level only when medium or higher (a lower bound).
- Monotonicity: a worse hazard value never gives a lower level (classification, flood depth
  through return periods, typhoon wind through the return level).
- Reproducibility: the same inputs and run id give byte-identical outputs, whether the
  hazard layers are computed or read back from the result store.

Example counts are kept small (the properties are cheap, the point is variety).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from small_pack import site, sites_doc, small_pack

from sitescreen import pipeline
from sitescreen.aggregate import LEVELS, add_composites, results_table, shares
from sitescreen.catalog import CompositeSpec, load_catalog
from sitescreen.classify import ThresholdSet, classify
from sitescreen.hazards import HazardResult
from sitescreen.hazards._extremes import PotFit, return_level
from sitescreen.hazards.flood import ensemble_summary, member_return_periods
from sitescreen.outputs.run_folder import json_bytes
from sitescreen.scenarios import Narrative, pathway_for

SETTINGS = settings(max_examples=40, deadline=None)
FAMILY = {"water_stress": "aqueduct40", "river_flood": "aqueduct_floods",
          "coastal_flood": "aqueduct_floods", "typhoon": "tc_change"}
COMPOSITES = [CompositeSpec("floods_typhoons", "Floods and typhoons",
                            ("river_flood", "coastal_flood", "typhoon")),
              CompositeSpec("water_scarcity_drought", "Water scarcity and drought",
                            ("water_stress",))]


# ------------------------------------------------------------------------- shares, composites


@st.composite
def portfolios(draw):
    """Sites (some unresolved, optional weights) and per-site levels with ranges, for a random
    set of hazards, narratives and years."""
    n = draw(st.integers(1, 12))
    hazards = draw(st.lists(st.sampled_from(sorted(FAMILY)), min_size=1, max_size=4,
                            unique=True))
    scenarios = draw(st.lists(st.sampled_from(list(Narrative)), min_size=1, max_size=3,
                              unique=True))
    years = draw(st.lists(st.sampled_from([2030, 2050]), min_size=1, max_size=2, unique=True))
    unresolved = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    weights = draw(st.none() | st.lists(st.floats(0, 1e6), min_size=n, max_size=n))
    results = []
    for hazard in hazards:
        for scenario in scenarios:
            for year in years:
                level = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
                down = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
                up = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
                low = np.where(level > 0, np.maximum(level - down, 1), 0)
                high = np.where(level > 0, np.minimum(level + up, 5), 0)
                results.append(_result(hazard, scenario, year, level, low, high))
    sites = pd.DataFrame({
        "site_id": [f"s{i}" for i in range(n)],
        "location_source": ["unresolved" if u else "given" for u in unresolved],
    })
    if weights is not None:
        sites["value"] = weights
    return sites, results


def _result(hazard: str, scenario: Narrative, year: int, level, low, high) -> HazardResult:
    level = np.asarray(level, dtype="int8")
    return HazardResult(
        hazard=hazard, scenario=scenario, year=year,
        pathway=pathway_for(FAMILY[hazard], scenario, year), units="u", threshold_set="ts",
        datasets=("d",), method="m", values=np.where(level > 0, level, np.nan).astype(float),
        levels=level, level_low=np.asarray(low, dtype="int8"),
        level_high=np.asarray(high, dtype="int8"),
        flags=np.array([""] * len(level), dtype=object))


@settings(max_examples=20, deadline=None)
@given(portfolios())
def test_shares_sum_to_100_percent_and_composites_take_the_highest_level(portfolio):
    sites, results = portfolio
    weight = "value" if "value" in sites else None
    table = add_composites(results_table(sites["site_id"], results), COMPOSITES)
    out = shares(table, sites, weight=weight)

    n_groups = len({(r.hazard, r.scenario, r.year) for r in results})
    n_comp = len({(c.name, r.scenario, r.year) for c in COMPOSITES for r in results
                  if r.hazard in c.components})
    assert len(out) == n_groups + n_comp
    n_unresolved = int((sites["location_source"] == "unresolved").sum())
    for row in out.itertuples():
        counts = [getattr(row, f"count_level_{lvl}") for lvl in LEVELS]
        pcts = np.array([getattr(row, f"pct_level_{lvl}") for lvl in LEVELS])
        assert row.sites_total == len(sites) and row.sites_unresolved == n_unresolved
        assert row.sites_unresolved + row.sites_no_data + row.sites_screened == row.sites_total
        assert sum(counts) == row.sites_screened and row.sites_no_data >= 0
        if row.sites_screened:
            assert pcts.sum() == pytest.approx(100.0, abs=1e-9)
            assert (row.medium_plus_pct_low <= row.medium_plus_pct + 1e-9
                    <= row.medium_plus_pct_high + 2e-9)
            assert row.medium_plus_pct == pytest.approx(sum(pcts[2:]), abs=1e-9)
        else:
            assert np.isnan(pcts).all() and math.isnan(row.medium_plus_pct)
        if weight is not None:
            wpcts = np.array([getattr(row, f"w_pct_level_{lvl}") for lvl in LEVELS])
            if row.weight_screened > 0:
                assert wpcts.sum() == pytest.approx(100.0, abs=1e-6)
            else:
                assert np.isnan(wpcts).all()

    # Composites: per site, narrative and year, the highest level (and low, high) of the
    # components present, hence never below any of them; with a component without data
    # there, only when that is medium or higher (a lower bound, high end 5), else no data.
    # The driver names the components at the composite level.
    keys = ["site_id", "scenario", "year"]
    for comp in COMPOSITES:
        parts = table[table["hazard"].isin(comp.components)]
        if parts.empty:
            assert comp.name not in set(table["hazard"])
            continue
        composite = table[table["hazard"] == comp.name].set_index(keys).sort_index()
        best = parts.groupby(keys)[["level", "level_low", "level_high"]].max().sort_index()
        gap = parts.assign(_gap=parts["level"].eq(0)).groupby(keys)["_gap"].any().sort_index()
        bound = gap & (best["level"] >= 3)
        known = ~gap | bound
        best = best.where(known, 0)
        best.loc[bound, "level_high"] = 5
        assert composite.index.equals(best.index)
        for col in ("level", "level_low", "level_high"):
            assert (composite[col].to_numpy() == best[col].to_numpy()).all()
        screened = composite["level"].gt(0) & ~composite.index.get_level_values(
            "site_id").isin(sites.loc[sites["location_source"] == "unresolved", "site_id"])
        lower = (screened & bound.to_numpy()).groupby(["scenario", "year"]).sum()
        counted = out[out["hazard"] == comp.name].set_index(["scenario", "year"])
        assert (counted["sites_lower_bound"] == lower.reindex(counted.index)).all()
        top = parts.merge(best["level"].rename("top").reset_index(), on=keys)
        drivers = (top[(top.level == top.top) & (top.level > 0)].groupby(keys)["hazard"]
                   .agg(lambda h: ",".join(sorted(h))))
        got = composite["driver"].map(lambda d: ",".join(sorted(filter(None, d.split(",")))))
        assert got.to_dict() == drivers.reindex(composite.index, fill_value="").to_dict()


# ------------------------------------------------------------------------------ monotonicity

_finite = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def threshold_sets(draw, kind: str) -> ThresholdSet:
    edges = sorted(draw(st.lists(_finite, min_size=4, max_size=4, unique=True)))
    return ThresholdSet("t", "h", "1", kind, "u", tuple(edges))


@SETTINGS
@given(threshold_sets("ascending"), threshold_sets("descending"),
       st.lists(st.floats(allow_nan=False), min_size=1, max_size=50))
def test_classify_is_monotonic_in_the_hazard_value(asc, desc, values):
    v = np.sort(np.asarray(values, dtype="float64"))
    up, down = classify(v, asc), classify(v, desc)
    assert set(up.tolist()) <= set(LEVELS) and set(down.tolist()) <= set(LEVELS)
    assert np.all(np.diff(up.astype(int)) >= 0)  # more hazard, never a lower level
    assert np.all(np.diff(down.astype(int)) <= 0)  # a longer return period: never higher
    with_nan = np.append(v, np.nan)
    assert classify(with_nan, asc)[-1] == 0 and classify(with_nan, desc)[-1] == 0


RIVER_RPS = [2, 5, 10, 25, 50, 100, 250, 500, 1000]
FLOOD_SET = load_catalog().threshold_set("flood-return-period-50cm-v1")
TYPHOON_SET = load_catalog().threshold_set("typhoon-china-grade-rp50-v1")


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 5), st.floats(0.05, 3.0), st.data())
def test_deeper_flooding_never_lowers_the_flood_level(n_sites, n_members, damaging, data):
    """Depths rise with return period (each member); adding depth anywhere can only make the
    damaging depth arrive at a more frequent return period: level and range never drop."""
    shape = (n_members, len(RIVER_RPS), n_sites)
    steps = np.array(data.draw(st.lists(st.floats(0, 2), min_size=int(np.prod(shape)),
                                        max_size=int(np.prod(shape))))).reshape(shape)
    extra = np.array(data.draw(st.lists(st.floats(0, 2), min_size=int(np.prod(shape)),
                                        max_size=int(np.prod(shape))))).reshape(shape)
    depth = np.cumsum(steps, axis=1)
    deeper = depth + extra

    rp, rp_deeper = (member_return_periods(d, RIVER_RPS, damaging) for d in (depth, deeper))
    assert np.all(rp_deeper <= rp)
    a, b = ensemble_summary(rp, FLOOD_SET), ensemble_summary(rp_deeper, FLOOD_SET)
    assert np.all(classify(b.value, FLOOD_SET) >= classify(a.value, FLOOD_SET))
    assert np.all(b.level_low >= a.level_low) and np.all(b.level_high >= a.level_high)
    assert np.all(a.level_low <= a.level_high)


@SETTINGS
@given(st.floats(0.1, 30), st.floats(0.1, 20), st.floats(-0.5, 0.0), st.integers(1, 200),
       st.floats(0.5, 1.5), st.floats(0.0, 0.5), st.floats(0.5, 2.0), st.floats(0.0, 1.0))
# Found by hypothesis: a subnormal shape gave NaN (sigma/xi overflowed, m^xi - 1 was 0).
@example(1.0, 1.0, -2.225073858507203e-309, 1, 1.0, 0.0, 1.0, 0.0)
def test_stronger_or_more_frequent_typhoons_never_lower_the_wind_level(
        rate, sigma, xi, n_events, intensity, more_intensity, frequency, more_frequency):
    fit = PotFit(15.0, np.array([rate]), np.array([sigma]), np.array([xi]),
                 np.array([n_events]), 40.0)
    base = return_level(fit, 50, frequency=frequency, intensity=intensity)
    assert np.isfinite(base).all()  # a site with events always has a return level
    # ... continuous in the shape at 0 (the exponential tail is the xi -> 0 limit)
    exponential = return_level(PotFit(15.0, fit.rate, fit.sigma, np.zeros(1), fit.n, 40.0), 50,
                               frequency=frequency, intensity=intensity)
    assert base == pytest.approx(exponential, rel=1e-6) or xi < -1e-7
    stronger = return_level(fit, 50, frequency=frequency, intensity=intensity + more_intensity)
    busier = return_level(fit, 50, frequency=frequency + more_frequency, intensity=intensity)
    assert np.all(stronger >= base) and np.all(busier >= base - 1e-9)
    level = classify(base, TYPHOON_SET)
    assert np.all(classify(stronger, TYPHOON_SET) >= level)
    assert np.all(classify(busier, TYPHOON_SET) >= level)


# ------------------------------------------------------------------------------ reproducibility

SITES = sites_doc(
    site("sh-1", "Shanghai office", lon=121.45, lat=31.22),
    site("sh-2", "Xuhui lab", address="Xuhui District"),
    site("bj-1", "Beijing office", lon=116.38, lat=39.92, city="Beijing"),
    site("xx-1", "Lost site", address="99 Nowhere Road", city="Atlantis"),
)
IDENTICAL = ["sites.geojson", "summary.csv", "summary.json", "site_results.csv", "report.md"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return small_pack(tmp_path_factory)


def _report_without_timestamp(text: bytes) -> bytes:
    # The report echoes the manifest's created_at, the one thing a re-run may change.
    stamped = re.subn(rb"; created [0-9T:+-]+;", b"; created TIME;", text)
    assert stamped[1] == 1
    return stamped[0]


@pytest.mark.slow
def test_a_rerun_with_the_same_run_id_is_byte_identical(tmp_path, pack):
    sites = tmp_path / "sites.geojson"
    sites.write_text(json.dumps(SITES), encoding="utf-8")
    request = pipeline.make_request(sites=str(sites), data=str(pack), out=str(tmp_path / "out"),
                                    scenarios=["pessimistic"], years=[2050],
                                    hazards=["river_flood", "coastal_flood", "typhoon"],
                                    cache_dir=str(tmp_path / "cache"), run_id="same-run")
    first = pipeline.screen(request).run_dir
    kept = shutil.move(first, tmp_path / "first")  # the second run writes the same folder
    second = pipeline.screen(request).run_dir  # every layer now comes from the result store

    assert second == first
    parts = list((tmp_path / "cache" / "results").glob("*/part-*.parquet"))
    assert len(parts) == 3  # one per layer, all written by the first run
    kept = Path(kept)
    charts = sorted(p.relative_to(kept).as_posix() for p in (kept / "charts").iterdir())
    assert charts and charts == sorted(p.relative_to(second).as_posix()
                                       for p in (second / "charts").iterdir())
    for name in IDENTICAL[:-1] + charts:
        assert (kept / name).read_bytes() == (second / name).read_bytes(), name
    assert _report_without_timestamp((kept / "report.md").read_bytes()) == \
        _report_without_timestamp((second / "report.md").read_bytes())

    a, b = (json.loads((d / "manifest.json").read_text("utf-8")) for d in (kept, second))
    assert a["timings_s"].keys() == b["timings_s"].keys()
    for m in (a, b):
        del m["created_at"], m["timings_s"]
    assert json_bytes(a) == json_bytes(b)  # same content, same key order
    levels = pd.read_csv(second / "site_results.csv")
    assert set(levels["site_id"]) == {"sh-1", "sh-2", "bj-1", "xx-1"}
    assert (levels.loc[levels.site_id == "xx-1", "level"] == 0).all()  # unresolved: no data
    assert (levels.loc[levels.site_id == "sh-1", "level"] > 0).any()
