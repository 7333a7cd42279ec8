"""Human-readable views of a run: the shares table, the headline table and the sentences.

The headline table (medium-and-above share per headline hazard x scenario x year, with the
model range, the weighted share and the denominators) and one sentence per hazard are what
the first screen of the report and the Prefect summary artifact show; the per scenario and
year sentences are kept for those who copy them into a disclosure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from sitescreen.aggregate import APPROXIMATE_MARK
from sitescreen.data.sources import SYNTHETIC_WARNING, is_synthetic
from sitescreen.scenarios import Narrative, parse_narrative, scenario_rank, scenario_title

__all__ = ["format_shares_table", "disclosure_sentences", "hazard_sentences", "headline_table",
           "approximate_pathways", "report_title", "share_records", "unresolved_lines",
           "unresolved_weight_sentence", "unresolved_record", "pct_text", "range_text",
           "HEADLINE_HAZARDS",
           "SHARE_HEADLINE_COLUMNS"]

#: The groups corporate disclosures report (e.g. SenseTime's 2023 climate report: water
#: scarcity, floods and typhoons; heat, which both example companies name as a physical risk).
HEADLINE_HAZARDS = ("water_scarcity_drought", "floods_typhoons", "heat")


def pct_text(value: float) -> str:
    """A percentage in whole numbers, as every sentence and table cell prints it; 100 and 0
    only when exact, else ">99" and "<1" (199 of 200 sites are not "100 %").

    >>> [pct_text(v) for v in (100.0, 99.5, 57.89, 0.4, 0.0)]
    ['100', '>99', '58', '<1', '0']
    """
    v = float(value)
    text = f"{v:.0f}"
    if text == "100" and v < 100:
        return ">99"
    if text in ("0", "-0") and v > 0:
        return "<1"
    return text


def _between(lo: str, hi: str) -> str:
    """``lo-hi`` of two printed values; ``lo to hi`` when one is "<1" or ">99" ("<1->99"
    would read as an arrow)."""
    inexact = any(t.startswith(("<", ">")) for t in (lo, hi))
    return f"{lo} to {hi}" if inexact else f"{lo}-{hi}"


def _fmt_pct(v: float) -> str:
    return "  -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{pct_text(v):>3}"


def _range_of(lo: object, hi: object) -> tuple[str, str] | None:
    """The model range ``(low, high)`` as printed, or None when it is one value or unknown."""
    if _isnan(lo) or _isnan(hi):
        return None
    lo_t, hi_t = pct_text(lo), pct_text(hi)  # type: ignore[arg-type]
    return None if lo_t == hi_t else (lo_t, hi_t)


def range_text(lo: object, hi: object) -> str:
    """A share's model range as every output prints it ("53-65", "<1 to >99"), or "" when
    it is one printed value or unknown.

    >>> range_text(53.2, 65.1), range_text(0.4, 99.6), range_text(40.1, 39.9)
    ('53-65', '<1 to >99', '')
    """
    rng = _range_of(lo, hi)
    return _between(*rng) if rng else ""


def _range(row: pd.Series) -> str:
    text = range_text(row["medium_plus_pct_low"], row["medium_plus_pct_high"])
    return f" ({text})" if text else ""


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
    weighted = "w_medium_plus_pct" in shares.columns
    if weighted:
        field = str(shares["weight_field"].iloc[0]) if "weight_field" in shares else "weight"
        part = shares[shares["hazard"].isin(names)].to_dict("records")
        lines.append(f"w.medium+: share of {field} (screened sites{_base_note(part)}) at "
                     "medium or higher risk, beside the share of sites")
    for name in names:
        part = shares[shares["hazard"] == name]
        order = {n.value: i for i, n in enumerate(Narrative)}
        part = part.assign(_o=part["scenario"].map(order)).sort_values(["_o", "year"])
        if part.empty:
            continue
        lines.append("")
        lines.append(f"{part['hazard_label'].iloc[0]}: % of screened sites at each risk level")
        lines.append(f"{'scenario':<14} {'year':>4}  {'L1':>3} {'L2':>3} {'L3':>3} {'L4':>3} "
                     f"{'L5':>3}  {'medium+':>7} {'(range)':<9} "
                     + (f"{'w.medium+':>9} " if weighted else "")
                     + f"{'n':>4} {'no data':>7} {'unresolved':>10}  pathway")
        for _, row in part.iterrows():
            scen = parse_narrative(row["scenario"]).title
            pcts = " ".join(_fmt_pct(row[f"pct_level_{lvl}"]) for lvl in range(1, 6))
            mp = _fmt_pct(row["medium_plus_pct"])
            approx = approximate_pathways(row)
            codes = ", ".join(dict.fromkeys(
                p.split(":")[-1].replace(APPROXIMATE_MARK, "").strip()
                + (" (approx.)" if p.strip().replace(APPROXIMATE_MARK, "") in approx
                   or (approx and ":" not in p) else "")
                for p in str(row["pathway"]).split(";")))
            lower = _lower_bound_text([row])
            flag = f"; {lower}" if lower else ""
            wmp = f"{_fmt_pct(row['w_medium_plus_pct']):>8}% " if weighted else ""
            lines.append(
                f"{scen:<14} {row['year']:>4}  {pcts}  {mp:>6}% {_range(row):<9} {wmp}"
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
    ...            pathway="rcp4p5", w_medium_plus_pct=71.0, weight_field="asset_value",
    ...            weight_screened=57e6, weight_no_data=0.0, weight_unresolved=5e9)
    >>> disclosure_sentences(pd.DataFrame([row]))[0]
    'In 2030 under the Pessimistic scenario, 22 of 38 sites (58 %) face medium or higher water scarcity and drought risk; between 50 and 63 % across the model range; 71 % of the 57 M asset_value at screened sites (5 bn at sites not located or without data) (dataset pathway rcp4p5 approximates this scenario).'
    >>> row.update(hazard="floods_typhoons", hazard_label="Floods and typhoons",
    ...            medium_plus_count=199, sites_screened=200, medium_plus_pct=99.5,
    ...            medium_plus_pct_low=0.4, medium_plus_pct_high=100.0, pathway_exact=True,
    ...            sites_lower_bound=2, lower_bound_missing="typhoon")
    >>> disclosure_sentences(pd.DataFrame([row]), hazards=["floods_typhoons"])[0]
    'In 2030 under the Pessimistic scenario, 199 of 200 sites (>99 %) face medium or higher floods and typhoons risk; between <1 and 100 % across the model range; 71 % of the 57 M asset_value at screened sites (5 bn at sites not located or without data); of the screened sites, 2 without typhoon data, their level a lower bound.'
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
        span = _range_of(row["medium_plus_pct_low"], row["medium_plus_pct_high"])
        if span:
            rng = f"; between {span[0]} and {span[1]} % across the model range"
        weighted = ""
        if "w_medium_plus_pct" in row and not _isnan(row["w_medium_plus_pct"]):
            weighted = _weighted_text([row], pct_text(row["w_medium_plus_pct"]))
        lower = _lower_bound_text([row])
        if lower:
            weighted += f"; of the screened sites, {lower}"
        approx = ""
        if "pathway_exact" in row and not bool(row["pathway_exact"]):
            parts = approximate_pathways(row)
            approx = (f" (dataset pathway {_and(parts)} approximates this scenario)"
                      if len(parts) == 1 else
                      f" (dataset pathways {_and(parts)} approximate this scenario)"
                      if parts else " (dataset pathway approximates this scenario)")
        out.append(
            f"In {row['year']} under the {scen} scenario, {row['medium_plus_count']} of "
            f"{row['sites_screened']} sites ({pct_text(row['medium_plus_pct'])} %) face medium or "
            f"higher {row['hazard_label'].lower()} risk{rng}{weighted}{approx}.")
    return out


def _amount(value: float) -> str:
    """An amount in the words of a report: 790 M, 13.96 bn, 12.5 k."""
    for size, unit in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= size:
            return f"{value / size:.4g}{unit}"
    return f"{value:.4g}"


def _amount_span(values: Sequence[float]) -> str:
    vals = [float(v) for v in values if not _isnan(v)]
    if not vals:
        return "-"
    lo, hi = _amount(min(vals)), _amount(max(vals))
    return lo if lo == hi else f"{lo}-{hi}"


def _not_screened(rows: Sequence[Mapping]) -> list[float]:
    """Per shares row, the weight at the sites not screened (no location or no data)."""
    return [float(r.get("weight_no_data") or 0.0) + float(r.get("weight_unresolved") or 0.0)
            for r in rows]


def _weighted_text(rows: Sequence[Mapping], share: str) -> str:
    """The weighted share of a sentence with its base: "; 51 % of the 57 M asset_value at
    screened sites (5 bn at sites not located or without data)"."""
    field = rows[0].get("weight_field", "weight")
    if "weight_screened" not in rows[0]:  # a table without the amounts
        return f"; {share} % weighted by {field}"
    text = f"; {share} % of the {_amount_span([r['weight_screened'] for r in rows])} {field} " \
        "at screened sites"
    rest = _not_screened(rows)
    if max(rest) > 0:
        text += f" ({_amount_span(rest)} at sites not located or without data)"
    return text


def _base_note(rows: Sequence[Mapping]) -> str:
    """": 57 M; 5 bn not screened", the weighted base of ``rows`` ("" without amounts)."""
    if not rows or "weight_screened" not in rows[0]:
        return ""
    rest = _not_screened(rows)
    return f": {_amount_span([r['weight_screened'] for r in rows])}" + (
        f"; {_amount_span(rest)} not screened" if max(rest) > 0 else "")


def _lower_bound_text(rows: Sequence[Mapping]) -> str:
    """"2 without typhoon data, their level a lower bound": the composite sites screened
    with a component without data (``sites_lower_bound``), or ""."""
    counts = [int(r.get("sites_lower_bound") or 0) for r in rows]
    if not any(counts):
        return ""
    parts = sorted({p for r in rows for p in str(r.get("lower_bound_missing") or "").split(",")
                    if p})
    whose = "its" if max(counts) == 1 else "their"  # "1 ..., its level"; "1-2 ..., their"
    return (f"{_span(counts, '')} without {' or '.join(parts) or 'some component'} data, "
            f"{whose} level a lower bound")


def unresolved_weight_sentence(sites: pd.DataFrame, unresolved: pd.Series,
                               weight: str | None) -> str:
    """"790 M of 13.96 bn asset_value not located (2 of 16 sites)", or "" without weight.

    Parameters
    ----------
    sites : the located sites, with the ``weight`` column as numbers.
    unresolved : boolean mask of the sites without a location.
    weight : the weight column, or None.

    Examples
    --------
    >>> sites = pd.DataFrame({"v": [790e6, 13.17e9]})
    >>> unresolved_weight_sentence(sites, pd.Series([True, False]), "v")
    '790 M of 13.96 bn v not located (1 of 2 sites)'
    """
    if weight is None or weight not in sites:
        return ""
    values = pd.to_numeric(sites[weight], errors="coerce").fillna(0.0)
    lost, total = float(values[unresolved.to_numpy()].sum()), float(values.sum())
    n, k = len(sites), int(unresolved.sum())
    return (f"{_amount(lost)} of {_amount(total)} {weight} not located "
            f"({k} of {n} site{'s' if n != 1 else ''})")


def unresolved_record(sites: pd.DataFrame, weight: str | None = None) -> dict:
    """The sites without a location (:func:`~sitescreen.geocode.is_located`), as plain data
    for ``summary.json`` and the terminal: count, ids and, with a weight, the amount they
    carry and the sentence saying so."""
    from sitescreen.geocode import is_located

    unresolved = pd.Series(~is_located(sites), index=sites.index)
    out: dict = {"sites": int(unresolved.sum()),
                 "site_ids": sites.loc[unresolved, "site_id"].astype(str).tolist()}
    if weight is not None and weight in sites:
        values = pd.to_numeric(sites[weight], errors="coerce").fillna(0.0)
        out.update(weight_field=weight, weight_not_located=float(values[unresolved].sum()),
                   weight_total=float(values.sum()),
                   statement=unresolved_weight_sentence(sites, unresolved, weight))
    return out


def unresolved_lines(sites: pd.DataFrame, unresolved: pd.Series, *, weight: str | None = None,
                     limit: int = 20) -> list[str]:
    """The sites without a location, one line each (id, name, reason), and the weight they
    carry; empty when every site was located."""
    part = sites.loc[unresolved.to_numpy()]
    if part.empty:
        return []
    head = f"{len(part)} site{'s' if len(part) != 1 else ''} not located (counted as unresolved)"
    sentence = unresolved_weight_sentence(sites, unresolved, weight)
    lines = [head + (f"; {sentence}" if sentence else "") + ":"]
    for _, row in part.head(limit).iterrows():
        name = str(row.get("name") or "")
        reason = str(row.get("geocode_reason") or row.get("geocode_status") or "")
        lines.append(f"  {row['site_id']}" + (f" ({name})" if name else "")
                     + (f": {reason}" if reason else ""))
    if len(part) > limit:
        lines.append(f"  ... and {len(part) - limit} more (see unresolved_sites in sites.gpkg)")
    return lines


def _isnan(value: object) -> bool:
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value is None


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] \
        if items else ""


def approximate_pathways(row: Mapping) -> list[str]:
    """The dataset pathways of a shares row that only approximate its scenario.

    A composite's pathway lists every component (``hazard:code``, each marked by
    :data:`~sitescreen.aggregate.APPROXIMATE_MARK` when approximate), so only the
    approximate components are named; a single hazard names its own pathway.

    >>> approximate_pathways({"pathway": "river_flood:rcp4p5 (approximate); "
    ...                       "typhoon:ssp245", "pathway_exact": False})
    ['river_flood:rcp4p5']
    >>> approximate_pathways({"pathway": "rcp4p5", "pathway_exact": False})
    ['rcp4p5']
    >>> approximate_pathways({"pathway": "ssp245", "pathway_exact": True})
    []
    """
    if bool(row.get("pathway_exact", True)):
        return []
    parts = [p.strip() for p in str(row.get("pathway", "")).split(";") if p.strip()]
    marked = [p[: -len(APPROXIMATE_MARK)].strip() for p in parts if p.endswith(APPROXIMATE_MARK)]
    if marked:
        return list(dict.fromkeys(marked))
    # a single hazard (or a " | "-joined mix of its pathways): the pathway itself
    return [str(row.get("pathway", ""))] if not any(":" in p for p in parts) else []


def report_title(title: str | None, sites_meta: Mapping | None, sites_path: str | Path) -> str:
    """The portfolio name a report is titled with: the ``title`` given, else the sites
    file's top-level ``name`` (a GeoJSON FeatureCollection member), else its file name.

    >>> report_title(None, {"name": "Example portfolio"}, "data/sites.geojson")
    'Example portfolio'
    >>> report_title(None, {}, "data/sites.geojson")
    'sites.geojson'
    >>> report_title("  My sites ", {"name": "x"}, "s.csv")
    'My sites'
    """
    for candidate in (title, (sites_meta or {}).get("name")):
        if isinstance(candidate, str) and candidate.strip():
            return " ".join(candidate.split())
    return Path(str(sites_path)).name


def _ordered(shares: pd.DataFrame, hazards: Sequence[str]) -> pd.DataFrame:
    order = {h: i for i, h in enumerate(hazards)}
    part = shares[shares["hazard"].isin(hazards)]
    part = part.assign(_h=part["hazard"].map(order), _s=part["scenario"].map(scenario_rank))
    return part.sort_values(["_h", "_s", "year"], kind="stable")


def _span(values: Sequence[float], unit: str = " %") -> str:
    """The lowest to the highest of ``values`` (percentages or counts), as :func:`pct_text`
    prints them (counts, whole numbers, print as they are)."""
    vals = [v for v in values if not _isnan(v)]
    if not vals:
        return "-"
    lo, hi = pct_text(min(vals)), pct_text(max(vals))
    return f"{lo}{unit}" if lo == hi else f"{_between(lo, hi)}{unit}"


def _screened_text(part: pd.DataFrame) -> str:
    """The denominators of headline rows: "42 of 43 (1 no data); 2 without typhoon data,
    their level a lower bound; 5 bn asset_value not screened"."""
    total = int(part["sites_total"].max())
    screened = _span(part["sites_screened"].tolist(), "")
    gaps = []
    for col, what in (("sites_no_data", "no data"), ("sites_unresolved", "unresolved")):
        n = _span(part[col].tolist(), "")
        if n != "0":
            gaps.append(f"{n} {what}")
    rows = part.to_dict("records")
    text = f"{screened} of {total}" + (f" ({', '.join(gaps)})" if gaps else "")
    lower = _lower_bound_text(rows)
    if lower:
        text += f"; {lower}"
    if "weight_screened" in part.columns and max(_not_screened(rows)) > 0:
        text += f"; {_amount_span(_not_screened(rows))} {rows[0]['weight_field']} not screened"
    return text


def _present_headline(shares: pd.DataFrame, hazards: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(shares["hazard"]))
    return [h for h in hazards if h in present] or present


def headline_table(shares: pd.DataFrame, *, hazards: Sequence[str] = HEADLINE_HAZARDS
                   ) -> tuple[list[str], list[list[str]]]:
    """The compact headline table, as (header, rows) of plain text.

    One row per headline hazard x scenario, one column per year, each cell the share of
    screened sites at medium or higher (levels 3-5) with its model range in brackets, the
    weighted share after it when the shares were weighted (with its base: "51 % of 57 M
    asset_value"), and a dagger when a dataset pathway only approximates the scenario; the
    last column gives the denominators (sites screened of the portfolio, the sites not
    screened, the composite sites whose level is a lower bound as a component has no data
    there, and the weight at the sites not screened). A run with none of the headline
    hazards shows every hazard it screened.
    """
    if shares.empty:
        return ["Hazard", "Scenario", "Sites screened"], []
    names = _present_headline(shares, hazards)
    part = _ordered(shares, names)
    years = sorted({int(y) for y in part["year"]})
    weighted = "w_medium_plus_pct" in part.columns
    weight = str(part["weight_field"].iloc[0]) if weighted and len(part) else ""
    header = ["Hazard", "Scenario", *(f"{y} medium+" for y in years), "Sites screened"]
    rows: list[list[str]] = []
    for hazard in names:
        first = True
        for _, group in part[part["hazard"] == hazard].groupby("_s", sort=True):
            by_year = {int(r["year"]): r for r in group.to_dict("records")}
            cells = []
            for y in years:
                r = by_year.get(y)
                if r is None or not r["sites_screened"]:
                    cells.append("-")
                    continue
                text = f"{pct_text(r['medium_plus_pct'])} %"
                span = _range_of(r["medium_plus_pct_low"], r["medium_plus_pct_high"])
                if span:
                    text += f" ({_between(*span)})"
                if weighted and not _isnan(r.get("w_medium_plus_pct")):
                    text += f"; {pct_text(r['w_medium_plus_pct'])} % " + (
                        f"of {_amount(r['weight_screened'])} {weight}"
                        if "weight_screened" in r else f"by {weight}")
                if approximate_pathways(r):
                    text += " \u2020"
                cells.append(text)
            rows.append([str(group["hazard_label"].iloc[0]) if first else "",
                         scenario_title(group["scenario"].iloc[0]), *cells,
                         _screened_text(group)])
            first = False
    return header, rows


def _where(rows: Sequence[Mapping]) -> str:
    names = [f"{scenario_title(r['scenario'])} {int(r['year'])}" for r in rows]
    return names[0] if len(names) == 1 else \
        f"{names[0]} and {len(names) - 1} other{'s' if len(names) > 2 else ''}"


def hazard_sentences(shares: pd.DataFrame, *, hazards: Sequence[str] = HEADLINE_HAZARDS
                     ) -> list[str]:
    """One sentence per hazard: the medium-and-above share over every scenario and year.

    The sentence gives the lowest and highest share with where they occur and their counts,
    the model range and the weighted share when there are any, and names each dataset
    pathway that only approximates a scenario.

    >>> base = dict(hazard="water_scarcity_drought", hazard_label="Water scarcity and drought",
    ...             sites_screened=38, sites_total=40, pathway_exact=True, pathway="opt",
    ...             medium_plus_pct_low=float("nan"), medium_plus_pct_high=float("nan"))
    >>> rows = [dict(base, scenario="optimistic", year=2030, medium_plus_count=19,
    ...              medium_plus_pct=50.0),
    ...         dict(base, scenario="pessimistic", year=2050, medium_plus_count=22,
    ...              medium_plus_pct=57.9, pathway_exact=False, pathway="rcp8p5")]
    >>> hazard_sentences(pd.DataFrame(rows))[0]
    'Water scarcity and drought: from 50 % (19 of 38 screened sites, Optimistic 2030) to 58 % (22 of 38, Pessimistic 2050) face medium or higher risk across 2 scenarios and the years 2030 and 2050; dataset pathway rcp8p5 only approximates Pessimistic.'
    """
    if shares.empty:
        return []
    part = _ordered(shares, list(hazards))
    out = []
    for hazard in [h for h in hazards if h in set(part["hazard"])]:
        rows = [r for r in part[part["hazard"] == hazard].to_dict("records")
                if r["sites_screened"]]
        if not rows:
            continue
        label = str(rows[0]["hazard_label"])
        # Compared as printed (pct_text), so rows that read alike count as one share.
        pct = [pct_text(r["medium_plus_pct"]) for r in rows]
        values = [float(r["medium_plus_pct"]) for r in rows]
        low_t, high_t = pct_text(min(values)), pct_text(max(values))
        lo_rows = [r for r, p in zip(rows, pct, strict=True) if p == low_t]
        hi_rows = [r for r, p in zip(rows, pct, strict=True) if p == high_t]
        scen = list(dict.fromkeys(r["scenario"] for r in rows))
        years = sorted({int(r["year"]) for r in rows})
        across = (f"{len(scen)} scenarios" if len(scen) > 1 else
                  f"the {scenario_title(scen[0])} scenario") + \
            (f" and the years {_and([str(y) for y in years])}" if len(years) > 1
             else f" in {years[0]}")
        if low_t == high_t:
            counts = _span([r["medium_plus_count"] for r in rows], "")
            text = (f"{label}: {low_t} % ({counts} of {_span([r['sites_screened'] for r in rows], '')} "
                    f"screened sites) face medium or higher risk in every case, across {across}")
        else:
            lo, hi = lo_rows[0], hi_rows[0]
            text = (f"{label}: from {low_t} % ({lo['medium_plus_count']} of "
                    f"{lo['sites_screened']} screened sites, {_where(lo_rows)}) to {high_t} % "
                    f"({hi['medium_plus_count']} of {hi['sites_screened']}, {_where(hi_rows)}) "
                    f"face medium or higher risk across {across}")
        lows = [r["medium_plus_pct_low"] for r in rows]
        highs = [r["medium_plus_pct_high"] for r in rows]
        if any(_range_of(a, b) for a, b in zip(lows, highs, strict=True)):
            text += f"; {_span(lows + highs)} across the model range"
        if "w_medium_plus_pct" in rows[0]:
            w = [r["w_medium_plus_pct"] for r in rows]
            if any(not _isnan(v) for v in w):
                text += _weighted_text(rows, _span(w, ""))
        lower = _lower_bound_text(rows)
        if lower:
            text += f"; of the screened sites, {lower}"
        approx: dict[str, list[str]] = {}
        for r in rows:
            for p in approximate_pathways(r):
                approx.setdefault(p, [])
                title = scenario_title(r["scenario"])
                if title not in approx[p]:
                    approx[p].append(title)
        if approx:
            # Pathways grouped by the scenarios they approximate, each named once.
            groups: dict[tuple[str, ...], list[str]] = {}
            for p, titles in approx.items():
                groups.setdefault(tuple(titles), []).append(p)
            notes = [f"{'pathways' if len(ps) > 1 else 'pathway'} {_and(ps)} only "
                     f"approximate{'' if len(ps) > 1 else 's'} {_and(list(t))}"
                     for t, ps in groups.items()]
            text += f"; dataset {_and(notes)}"
        out.append(text + ".")
    return out


#: The columns a reader looks for first in the shares table (Prefect's table artifact is
#: wide; these come before the per-level detail).
SHARE_HEADLINE_COLUMNS = ("hazard", "scenario", "year", "medium_plus_pct",
                          "medium_plus_pct_low", "medium_plus_pct_high", "w_medium_plus_pct",
                          "sites_screened", "sites_total")


def share_records(shares: pd.DataFrame, *, hazards: Sequence[str] = HEADLINE_HAZARDS
                  ) -> list[dict]:
    """The shares table as records for a table artifact: headline hazards first, the
    headline columns (:data:`SHARE_HEADLINE_COLUMNS`) first, percentages to one decimal
    (100 and 0 only when exact: 99.96 is 99.9, 0.04 is 0.1) and missing values as None."""
    rest = ["sites_no_data", "sites_unresolved", "sites_lower_bound", "lower_bound_missing",
            "weight_screened", "weight_no_data", "weight_unresolved",
            *(f"pct_level_{i}" for i in range(1, 6)), "pathway", "period"]
    cols = [c for c in (*SHARE_HEADLINE_COLUMNS, *rest) if c in shares.columns]
    first = _present_headline(shares, hazards) if len(shares) else []
    order = {h: i for i, h in enumerate(first)}
    part = shares.assign(_h=shares["hazard"].map(order).fillna(len(order)),
                         _s=shares["scenario"].map(scenario_rank))
    part = part.sort_values(["_h", "_s", "year"], kind="stable")[cols]
    rounded = part.round(1)
    pct = [c for c in cols if "pct" in c]
    rounded[pct] = rounded[pct].mask((rounded[pct] == 100) & (part[pct] < 100), 99.9) \
        .mask((rounded[pct] == 0) & (part[pct] > 0), 0.1)
    rows = rounded.astype(object).where(part.notna(), None)
    return rows.to_dict("records")
