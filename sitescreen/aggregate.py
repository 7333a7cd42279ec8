"""From per-site levels to the shares a disclosure reports.

Input is the long results table (one row per site x hazard x scenario x year, see
:func:`results_table`). Output is one row per hazard x scenario x year with the count and
percentage of sites at each level, the share at medium and above (with its range where an
ensemble or an uncertainty range exists), and every denominator: sites in the portfolio,
sites unresolved (no location), sites with no data, sites screened. Percentages are of the
sites screened; the other denominators are reported beside them so nothing is hidden.
Composite hazards ("floods and typhoons") take, per site, the highest level of their
components, and name the component that drove it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .catalog import CompositeSpec
from .classify import MEDIUM_AND_ABOVE
from .hazards import HazardResult

__all__ = ["results_table", "add_composites", "shares", "LEVELS"]

LEVELS = (1, 2, 3, 4, 5)

_RESULT_COLUMNS = [
    "site_id", "hazard", "hazard_label", "is_composite", "scenario", "year", "pathway",
    "pathway_label", "period", "pathway_exact", "pathway_note", "value", "units", "level",
    "level_low", "level_high", "flags", "driver", "threshold_set", "datasets",
]


def results_table(site_ids: Sequence[str], results: Sequence[HazardResult], *,
                  labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Stack hazard results into the long per-site table (extras become ``extra_*`` columns)."""
    labels = labels or {}
    site_ids = np.asarray(site_ids, dtype=object)
    frames = []
    for r in results:
        if len(r) != len(site_ids):
            raise ValueError(f"{r.hazard}: {len(r)} results for {len(site_ids)} sites")
        frame = pd.DataFrame({
            "site_id": site_ids,
            "hazard": r.hazard,
            "hazard_label": labels.get(r.hazard, r.hazard),
            "is_composite": False,
            "scenario": r.scenario.value,
            "year": int(r.year),
            "pathway": r.pathway.code,
            "pathway_label": r.pathway.label,
            "period": r.pathway.period,
            "pathway_exact": bool(r.pathway.exact),
            "pathway_note": r.pathway.note,
            "value": np.asarray(r.values, dtype="float64"),
            "units": r.units,
            "level": np.asarray(r.levels, dtype="int64"),
            "level_low": np.asarray(r.level_low, dtype="int64"),
            "level_high": np.asarray(r.level_high, dtype="int64"),
            "flags": np.asarray(r.flags, dtype=object),
            "driver": "",
            "threshold_set": r.threshold_set,
            "datasets": ",".join(r.datasets),
        })
        for key, arr in r.extra.items():
            frame[f"extra_{r.hazard}_{key}"] = np.asarray(arr)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=_RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def add_composites(table: pd.DataFrame, composites: Sequence[CompositeSpec]) -> pd.DataFrame:
    """Append one row per site x scenario x year for each composite hazard.

    The composite level is the highest level among components that have data (level > 0);
    with none, it is 0 (no data). ``level_low``/``level_high`` are the highest of the
    components' lows/highs. ``driver`` names the component(s) at the composite level; a
    component without data is listed in ``flags`` as ``missing:<hazard>``.
    """
    rows = [table]
    core = table[~table["is_composite"].astype(bool)]
    for comp in composites:
        part = core[core["hazard"].isin(comp.components)]
        if part.empty:
            continue
        missing_components = set(comp.components) - set(part["hazard"])
        keys = ["site_id", "scenario", "year"]
        wide = {col: part.pivot_table(index=keys, columns="hazard", values=col, aggfunc="first")
                for col in ("level", "level_low", "level_high")}
        pathways = part.assign(pw=part["hazard"] + ":" + part["pathway"]).groupby(
            keys, sort=False)["pw"].agg("; ".join)
        exact = part.groupby(keys, sort=False)["pathway_exact"].all()
        periods = part.groupby(keys, sort=False)["period"].agg(lambda s: "; ".join(sorted(set(s))))
        levels = wide["level"].fillna(0).astype(int)
        best = levels.max(axis=1)
        driver = levels.apply(
            lambda row: ",".join(h for h in row.index if row[h] == row.max() and row.max() > 0),
            axis=1)
        missing = levels.apply(
            lambda row: ";".join(f"missing:{h}" for h in row.index if row[h] == 0), axis=1)
        if missing_components:
            extra = ";".join(f"missing:{h}" for h in sorted(missing_components))
            missing = missing.map(lambda s, extra=extra: f"{s};{extra}" if s else extra)
        # A composite screened without some components says so in its label.
        label = comp.label if not missing_components else \
            f"{comp.label} (without {', '.join(sorted(missing_components))})"
        out = pd.DataFrame({
            "hazard": comp.name,
            "hazard_label": label,
            "is_composite": True,
            "pathway": pathways,
            "pathway_label": pathways,
            "period": periods,
            "pathway_exact": exact,
            "pathway_note": "",
            "value": best.astype(float).where(best > 0),
            "units": "level (highest component)",
            "level": best,
            "level_low": wide["level_low"].fillna(0).astype(int).max(axis=1),
            "level_high": wide["level_high"].fillna(0).astype(int).max(axis=1),
            "flags": missing,
            "driver": driver,
            "threshold_set": "composite:max(" + ",".join(comp.components) + ")",
            "datasets": ",".join(sorted({d for ds in part["datasets"] for d in ds.split(",") if d})),
        }).reset_index()
        rows.append(out)
    return pd.concat(rows, ignore_index=True)


def _pct(num: pd.Series | np.ndarray, den: pd.Series | np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 100.0 * num / den, np.nan)


def shares(table: pd.DataFrame, sites: pd.DataFrame, *, weight: str | None = None) -> pd.DataFrame:
    """Shares of sites per level for every hazard x scenario x year.

    Parameters
    ----------
    table : the long results table (with composites if wanted).
    sites : the located sites, with ``site_id`` and ``location_source`` ("unresolved" marks
        sites without a location) and, when ``weight`` is given, that numeric column.
    weight : a numeric site column (asset value, headcount); weighted shares are added as
        ``w_pct_level_N`` and ``w_medium_plus_pct``.

    Returns
    -------
    DataFrame with ``sites_total``, ``sites_unresolved``, ``sites_no_data``,
    ``sites_screened``, ``count_level_N``/``pct_level_N`` for N = 1..5,
    ``medium_plus_count``/``medium_plus_pct`` and ``medium_plus_pct_low``/``_high`` (the same
    share computed from each site's low and high level).
    """
    keys = ["hazard", "hazard_label", "is_composite", "scenario", "year"]
    located = sites["location_source"].ne("unresolved") if "location_source" in sites else \
        pd.Series(True, index=sites.index)
    unresolved_ids = set(sites.loc[~located, "site_id"])
    t = table.copy()
    t["_unresolved"] = t["site_id"].isin(unresolved_ids)
    t["_screened"] = (t["level"] > 0) & ~t["_unresolved"]
    t["_w"] = 1.0
    if weight is not None:
        w = pd.to_numeric(sites.set_index("site_id")[weight], errors="coerce")
        t["_w"] = t["site_id"].map(w).fillna(0.0).astype(float)
    mplus = int(MEDIUM_AND_ABOVE)
    for lvl in LEVELS:
        t[f"_l{lvl}"] = t["_screened"] & (t["level"] == lvl)
    t["_mp"] = t["_screened"] & (t["level"] >= mplus)
    t["_mp_low"] = t["_screened"] & (t["level_low"] >= mplus)
    t["_mp_high"] = t["_screened"] & (t["level_high"] >= mplus)

    g = t.groupby(keys, sort=False)
    out = g.agg(
        pathway=("pathway", _first_or_mixed),
        pathway_label=("pathway_label", _first_or_mixed),
        period=("period", _first_or_mixed),
        pathway_exact=("pathway_exact", "all"),
        threshold_set=("threshold_set", "first"),
        sites_total=("site_id", "nunique"),
        sites_unresolved=("_unresolved", "sum"),
        sites_screened=("_screened", "sum"),
        **{f"count_level_{lvl}": (f"_l{lvl}", "sum") for lvl in LEVELS},
        medium_plus_count=("_mp", "sum"),
        medium_plus_count_low=("_mp_low", "sum"),
        medium_plus_count_high=("_mp_high", "sum"),
    ).reset_index()
    out["sites_no_data"] = out["sites_total"] - out["sites_unresolved"] - out["sites_screened"]
    for lvl in LEVELS:
        out[f"pct_level_{lvl}"] = _pct(out[f"count_level_{lvl}"], out["sites_screened"])
    out["medium_plus_pct"] = _pct(out["medium_plus_count"], out["sites_screened"])
    # The range: the share if every site sat at its low (high) level of the ensemble or
    # uncertainty range. Lows never exceed highs, so the bounds are ordered.
    out["medium_plus_pct_low"] = _pct(out["medium_plus_count_low"], out["sites_screened"])
    out["medium_plus_pct_high"] = _pct(out["medium_plus_count_high"], out["sites_screened"])
    if weight is not None:
        t["_ws"] = t["_w"] * t["_screened"]
        wg = t.assign(**{f"_wl{lvl}": t["_w"] * t[f"_l{lvl}"] for lvl in LEVELS},
                      _wmp=t["_w"] * t["_mp"]).groupby(keys, sort=False)
        wsum = wg["_ws"].sum().to_numpy()
        out["weight_field"] = weight
        out["weight_screened"] = wsum
        for lvl in LEVELS:
            out[f"w_pct_level_{lvl}"] = _pct(wg[f"_wl{lvl}"].sum().to_numpy(), wsum)
        out["w_medium_plus_pct"] = _pct(wg["_wmp"].sum().to_numpy(), wsum)
    int_cols = [c for c in out.columns if c.startswith(("count_", "sites_", "medium_plus_count"))]
    out[int_cols] = out[int_cols].astype(int)
    return out


def _first_or_mixed(values: pd.Series) -> str:
    unique = list(dict.fromkeys(str(v) for v in values))
    return unique[0] if len(unique) == 1 else " | ".join(unique)
