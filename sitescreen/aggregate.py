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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.catalog import CompositeSpec
from sitescreen.classify import MEDIUM_AND_ABOVE
from sitescreen.geocode.frame import is_located
from sitescreen.hazards import HazardResult

__all__ = ["results_table", "add_composites", "shares", "LEVELS", "APPROXIMATE_MARK"]

LEVELS = (1, 2, 3, 4, 5)
#: Appended to a composite component's ``hazard:code`` pathway when that component's dataset
#: pathway only approximates the scenario: ``"river_flood:rcp4p5 (approximate)"``.
APPROXIMATE_MARK = " (approximate)"

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

    Rows come sorted by site, scenario and year. The work is done on arrays (one
    site x scenario x year group per row of a levels matrix), and strings are built once
    per distinct combination, so 100,000 sites cost about a second.
    """
    rows = [table]
    keys = ["site_id", "scenario", "year"]
    cols = keys + ["hazard", "pathway", "period", "pathway_exact", "level", "level_low",
                   "level_high", "datasets"]
    # Only the columns needed, and every string column factorized once for all composites.
    is_comp = table["is_composite"].astype(bool).to_numpy()
    core = table.loc[~is_comp, cols] if is_comp.any() else table[cols]
    key_codes = [pd.factorize(core[k], sort=True) for k in keys]
    haz_c, haz_u = pd.factorize(core["hazard"])
    pw_c, pw_u = pd.factorize(core["pathway"])
    period_c, period_u = pd.factorize(core["period"].astype(str), sort=True)
    exact_all = core["pathway_exact"].to_numpy(dtype=bool)
    level_all = {c: pd.to_numeric(core[c], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
                 for c in ("level", "level_low", "level_high")}
    datasets_all = core["datasets"]
    for comp in composites:
        sel = np.flatnonzero(np.isin(np.asarray(haz_u, dtype=object),
                                     list(comp.components))[haz_c])
        if not len(sel):
            continue
        present = {str(haz_u[c]) for c in np.unique(haz_c[sel])}
        missing_components = set(comp.components) - present
        # Groups sorted by (site_id, scenario, year), as a pivot table orders them.
        group_index, g = _group_codes([(c[sel], u) for c, u in key_codes], keys)
        n_groups = len(group_index)
        hazards = sorted(present)
        j = pd.Index(hazards).get_indexer(np.asarray(haz_u, dtype=object)[haz_c[sel]])
        level, low, high = (_component_matrix(level_all[c][sel], g, j, n_groups, len(hazards))
                            for c in ("level", "level_low", "level_high"))
        best = level.max(axis=1)
        driver = _mask_labels((level == best[:, None]) & (best[:, None] > 0), hazards, ",")
        missing = _mask_labels(level == 0, [f"missing:{h}" for h in hazards], ";")
        if missing_components:
            extra = ";".join(f"missing:{h}" for h in sorted(missing_components))
            missing = np.array([f"{s};{extra}" if s else extra for s in missing], dtype=object)
        # Each component's pathway carries its own exactness, so an approximate flood
        # pathway is not blamed on the typhoon pathway beside it.
        pair = (haz_c[sel].astype(np.int64) * len(pw_u) + pw_c[sel]) * 2 + ~exact_all[sel]
        pair_c, pair_u = pd.factorize(pair)
        pair_labels = [f"{haz_u[p // 2 // len(pw_u)]}:{pw_u[p // 2 % len(pw_u)]}"
                       + (APPROXIMATE_MARK if p % 2 else "") for p in pair_u]
        pathways = _joined_in_order(pair_c, pair_labels, g, n_groups, "; ")
        present_periods = np.zeros((n_groups, len(period_u)), dtype=bool)
        present_periods[g, period_c[sel]] = True
        periods = _mask_labels(present_periods, [str(u) for u in period_u], "; ")
        exact = np.ones(n_groups, dtype=bool)
        np.logical_and.at(exact, g, exact_all[sel])
        # A composite screened without some components says so in its label.
        label = comp.label if not missing_components else \
            f"{comp.label} (without {', '.join(sorted(missing_components))})"
        out = group_index.to_frame(index=False)
        out = out.assign(**{
            "hazard": comp.name,
            "hazard_label": label,
            "is_composite": True,
            "pathway": pathways,
            "pathway_label": pathways,
            "period": periods,
            "pathway_exact": exact,
            "pathway_note": "",
            "value": np.where(best > 0, best.astype(float), np.nan),
            "units": "level (highest component)",
            "level": best,
            "level_low": low.max(axis=1),
            "level_high": high.max(axis=1),
            "flags": missing,
            "driver": driver,
            "threshold_set": "composite:max(" + ",".join(comp.components) + ")",
            "datasets": ",".join(sorted({d for ds in datasets_all.iloc[sel].unique()
                                         for d in str(ds).split(",") if d})),
        })
        rows.append(out)
    return pd.concat(rows, ignore_index=True)


def _group_codes(columns: list[tuple[np.ndarray, Any]], keys: list[str]
                 ) -> tuple[pd.MultiIndex, np.ndarray]:
    """The distinct combinations of factorized key ``columns`` ((codes, uniques) pairs with
    sorted uniques), sorted, and each row's group number."""
    levels = [u for _, u in columns]
    sizes = [max(1, len(u)) for u in levels]
    # One integer per combination (mixed radix), so grouping is a 1-D sort.
    combined = np.zeros(len(columns[0][0]), dtype=np.int64)
    for (c, _), n in zip(columns, sizes, strict=True):
        combined = combined * n + c
    uniq, g = np.unique(combined, return_inverse=True)
    split = []
    for n in reversed(sizes):
        split.append(uniq % n)
        uniq = uniq // n
    groups = pd.MultiIndex(levels=levels, codes=split[::-1], names=keys)
    return groups, np.asarray(g).ravel()


def _unique_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a small non-negative integer matrix and each row's number among them
    (rows packed into one integer when they fit, else ``np.unique(axis=0)``)."""
    n, w = matrix.shape
    base = int(matrix.max()) + 1 if matrix.size else 1
    if w and w * math.log2(max(base, 2)) < 62:
        packed = np.zeros(n, dtype=np.int64)
        for col in range(w):
            packed = packed * base + matrix[:, col]
        uniq, inv = np.unique(packed, return_inverse=True)
        rows = np.empty((len(uniq), w), dtype=matrix.dtype)
        for col in range(w - 1, -1, -1):
            rows[:, col] = uniq % base
            uniq = uniq // base
        return rows, np.asarray(inv).ravel()
    rows, inv = np.unique(matrix, axis=0, return_inverse=True)
    return rows, np.asarray(inv).ravel()


def _component_matrix(values: np.ndarray, g: np.ndarray, j: np.ndarray, n_groups: int,
                      n_components: int) -> np.ndarray:
    """(groups x components) integer levels; 0 where a component has no row (no data).
    With several rows for one cell the first wins (as ``aggfunc="first"`` would)."""
    out = np.zeros((n_groups, n_components), dtype=np.int64)
    out[g[::-1], j[::-1]] = values[::-1]
    return out


def _mask_labels(mask: np.ndarray, names: Sequence[str], sep: str) -> np.ndarray:
    """Per row of a boolean (rows x names) matrix, the names where it is True, joined."""
    if mask.shape[1] == 0 or mask.shape[0] == 0:
        return np.full(mask.shape[0], "", dtype=object)
    combos, inv = _unique_rows(mask.astype(np.int64))
    labels = np.array([sep.join(n for n, on in zip(names, row, strict=True) if on)
                       for row in combos], dtype=object)
    return labels[inv]


def _joined_in_order(codes: np.ndarray, labels: Sequence[str], g: np.ndarray,
                     n_groups: int, sep: str) -> np.ndarray:
    """Per group, the ``labels`` of its rows' ``codes`` joined in row order."""
    order = np.argsort(g, kind="stable")
    gs = g[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(gs)) - starts[gs]
    width = int(counts.max()) if len(counts) else 0
    # Code + 1, so 0 marks "no row".
    matrix = np.zeros((n_groups, width), dtype=np.int64)
    matrix[gs, rank] = np.asarray(codes, dtype=np.int64)[order] + 1
    combos, inv = _unique_rows(matrix)
    joined = np.array([sep.join(labels[c - 1] for c in row if c > 0) for row in combos],
                      dtype=object)
    return joined[inv]


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
    unresolved_ids = set(sites.loc[~is_located(sites), "site_id"])
    # Only the columns counted (a copy of the whole long table would double its memory).
    t = table[list(dict.fromkeys(keys + ["pathway", "pathway_label", "period", "pathway_exact",
                                         "threshold_set", "site_id", "level", "level_low",
                                         "level_high"]))].copy()
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
    # Groups are numbered in order of first appearance, the order of ``out`` (sort=False).
    gid = g.ngroup().to_numpy()
    for i, col in enumerate(("pathway", "pathway_label", "period")):
        out.insert(len(keys) + i, col, _first_or_mixed_by_group(t[col], gid, len(out)))
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


def _first_or_mixed_by_group(values: pd.Series, gid: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`_first_or_mixed` of each group's values, on integer codes: groups with a single
    distinct value (nearly all) cost no Python work."""
    codes, uniq = pd.factorize(values, use_na_sentinel=False)
    c = pd.Series(codes).groupby(gid, sort=True)
    lo, hi, first = c.min().to_numpy(), c.max().to_numpy(), c.first().to_numpy()
    out = np.array([str(uniq[k]) for k in first], dtype=object)
    for grp in np.flatnonzero(lo != hi):
        out[grp] = _first_or_mixed(values[gid == grp])
    return out[:n_groups]


def _first_or_mixed(values: pd.Series) -> str:
    unique = list(dict.fromkeys(str(v) for v in values))
    return unique[0] if len(unique) == 1 else " | ".join(unique)
