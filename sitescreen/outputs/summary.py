"""Human-readable views of a run: the shares table and disclosure sentences."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from sitescreen.data.sources import SYNTHETIC_WARNING, is_synthetic
from sitescreen.scenarios import Narrative, parse_narrative, scenario_rank

__all__ = ["format_shares_table", "disclosure_sentences", "HEADLINE_HAZARDS"]

#: The two groups corporate disclosures report (e.g. SenseTime's 2023 climate report).
HEADLINE_HAZARDS = ("water_scarcity_drought", "floods_typhoons")


def _fmt_pct(v: float) -> str:
    return "  -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:3.0f}"


def _range(row: pd.Series) -> str:
    lo, hi = row["medium_plus_pct_low"], row["medium_plus_pct_high"]
    if any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return ""
    if round(lo) == round(hi):
        return ""
    return f" ({lo:.0f}-{hi:.0f})"


def format_shares_table(shares: pd.DataFrame, *, hazards: Sequence[str] | None = None,
                        data_origin: str = "") -> str:
    """Plain-text table: per hazard, the share of sites at each level per scenario and year."""
    lines = []
    if is_synthetic(data_origin):
        lines.append(f"!! {SYNTHETIC_WARNING}")
    present = list(dict.fromkeys(shares["hazard"]))
    names = [h for h in hazards if h in present] if hazards else present
    if not names:  # e.g. a run of one hazard: show what was screened
        names = present
    for name in names:
        part = shares[shares["hazard"] == name]
        order = {n.value: i for i, n in enumerate(Narrative)}
        part = part.assign(_o=part["scenario"].map(order)).sort_values(["_o", "year"])
        if part.empty:
            continue
        lines.append("")
        lines.append(f"{part['hazard_label'].iloc[0]}: % of screened sites at each risk level")
        lines.append(f"{'scenario':<14} {'year':>4}  {'L1':>3} {'L2':>3} {'L3':>3} {'L4':>3} "
                     f"{'L5':>3}  {'medium+':>7} {'(range)':<9} {'n':>4} {'no data':>7} "
                     f"{'unresolved':>10}  pathway")
        for _, row in part.iterrows():
            scen = parse_narrative(row["scenario"]).title
            pcts = " ".join(_fmt_pct(row[f"pct_level_{lvl}"]) for lvl in range(1, 6))
            mp = _fmt_pct(row["medium_plus_pct"])
            flag = "" if row["pathway_exact"] else " (approx.)"
            codes = ", ".join(dict.fromkeys(p.split(":")[-1].strip()
                                            for p in str(row["pathway"]).split(";")))
            lines.append(
                f"{scen:<14} {row['year']:>4}  {pcts}  {mp:>6}% {_range(row):<9} "
                f"{row['sites_screened']:>4} {row['sites_no_data']:>7} "
                f"{row['sites_unresolved']:>10}  {codes}{flag}")
    return "\n".join(lines)


def disclosure_sentences(shares: pd.DataFrame, *, hazards: Sequence[str] = HEADLINE_HAZARDS) -> list[str]:
    """Sentences of the kind disclosures use, generated from the numbers.

    One sentence per hazard x scenario x year with screened sites, ordered by hazard (as in
    ``hazards``), year and scenario. The model range is added when it is not a single value,
    the weighted share when the shares were weighted (IFRS S2 asks for amounts as well as
    counts), and a note when the dataset pathway only approximates the scenario.

    >>> row = dict(hazard="water_scarcity_drought", hazard_label="Water scarcity and drought",
    ...            scenario="pessimistic", year=2030, medium_plus_count=22, sites_screened=38,
    ...            medium_plus_pct=57.89, medium_plus_pct_low=57.89, medium_plus_pct_high=57.89,
    ...            pathway_exact=True)
    >>> disclosure_sentences(pd.DataFrame([row]))[0]
    'In 2030 under the Pessimistic scenario, 22 of 38 sites (58 %) face medium or higher water scarcity and drought risk.'
    >>> row.update(medium_plus_pct_low=50.0, medium_plus_pct_high=63.2, pathway_exact=False,
    ...            pathway="rcp4p5", w_medium_plus_pct=71.0, weight_field="asset_value")
    >>> disclosure_sentences(pd.DataFrame([row]))[0]
    'In 2030 under the Pessimistic scenario, 22 of 38 sites (58 %) face medium or higher water scarcity and drought risk; between 50 and 63 % across the model range; 71 % weighted by asset_value (dataset pathway rcp4p5 approximates this scenario).'
    """
    order = {h: i for i, h in enumerate(hazards)}
    part = shares[shares["hazard"].isin(hazards)]
    part = part.assign(_h=part["hazard"].map(order),
                       _s=part["scenario"].map(scenario_rank))
    out = []
    for _, row in part.sort_values(["_h", "year", "_s"], kind="stable").iterrows():
        if row["sites_screened"] == 0:
            continue
        scen = parse_narrative(row["scenario"]).title
        rng = ""
        lo, hi = row["medium_plus_pct_low"], row["medium_plus_pct_high"]
        if not (_isnan(lo) or _isnan(hi)) and round(lo) != round(hi):
            rng = f"; between {lo:.0f} and {hi:.0f} % across the model range"
        weighted = ""
        if "w_medium_plus_pct" in row and not _isnan(row["w_medium_plus_pct"]):
            weighted = f"; {row['w_medium_plus_pct']:.0f} % weighted by {row.get('weight_field', 'weight')}"
        approx = ""
        if "pathway_exact" in row and not bool(row["pathway_exact"]):
            approx = (f" (dataset pathway {row['pathway']} approximates this scenario)"
                      if "pathway" in row else " (dataset pathway approximates this scenario)")
        out.append(
            f"In {row['year']} under the {scen} scenario, {row['medium_plus_count']} of "
            f"{row['sites_screened']} sites ({row['medium_plus_pct']:.0f} %) face medium or "
            f"higher {row['hazard_label'].lower()} risk{rng}{weighted}{approx}.")
    return out


def _isnan(value: object) -> bool:
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value is None
