"""From per-site levels to the shares a disclosure reports.

Input is the long results table (one row per site x hazard x scenario x year, see
:func:`results_table`). Output is one row per hazard x scenario x year with the count and
percentage of sites at each level, the share at medium and above (with its range where an
ensemble or an uncertainty range exists), and every denominator: sites in the portfolio,
sites unresolved (no location), sites with no data, sites screened. Percentages are of the
sites screened; the other denominators are reported beside them so nothing is hidden.
Composite hazards ("floods and typhoons") take, per site, the highest level of their
components, and name the component that drove it.

Two forms of the same results. :class:`SiteResults` is the one a run keeps: one typed
column per layer and per field (levels int8, flags and drivers dictionary-encoded), the
constants of a layer (pathway, units, threshold set, datasets) stored once in a
:class:`LayerInfo`. Composites and counts are computed on it chunk by chunk of sites and the
counts added up (:func:`count_levels`, :func:`shares_from_counts`), so memory follows the chunk
size and the long table is only ever built for one chunk (:meth:`SiteResults.long_table`),
for the writers that stream it. :func:`results_table`, :func:`add_composites` and
:func:`shares` are the long-table form of the same rules, for small tables and tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.catalog import CompositeSpec
from sitescreen.categorical import recode
from sitescreen.classify import MEDIUM_AND_ABOVE
from sitescreen.geocode.frame import is_located
from sitescreen.hazards import HazardResult

__all__ = [
    "results_table",
    "add_composites",
    "shares",
    "LEVELS",
    "LayerInfo",
    "SiteResults",
    "count_levels",
    "shares_from_counts",
    "DEFAULT_CHUNK_SITES",
    "site_masks",
    "add_counts",
    "APPROXIMATE_MARK",
    "marked_pathway",
]

LEVELS = (1, 2, 3, 4, 5)
#: Appended to a composite component's ``hazard:code`` pathway when that component's dataset
#: pathway only approximates the scenario: ``"river_flood:rcp4p5 (approximate)"``.
APPROXIMATE_MARK = " (approximate)"


def marked_pathway(pathway: str, exact: bool, is_composite: bool = False) -> str:
    """A pathway as a per-site field says it: with :data:`APPROXIMATE_MARK` when the dataset
    has no exact one (a composite's pathways already mark their approximate components).

    >>> marked_pathway("rcp4p5", False), marked_pathway("rcp8p5", True)
    ('rcp4p5 (approximate)', 'rcp8p5')
    """
    if exact or is_composite or pathway.endswith(APPROXIMATE_MARK):
        return pathway
    return pathway + APPROXIMATE_MARK


#: A composite's flag for a component without data at the site: ``missing:typhoon``.
_MISSING = "missing:"

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

    The composite level is the highest level of its components (:func:`_composite_levels`).
    A component without data at a site (level 0) is listed in ``flags`` as
    ``missing:<hazard>``, and the composite is then only known to be at least the highest of
    the others: when that is medium or higher it is the site's level, a lower bound (counted
    in ``sites_lower_bound`` by :func:`shares`), else the site has no data (0), never low.
    ``level_low``/``level_high`` are the highest of the components' lows/highs (a lower
    bound's high is 5: the missing component may be anything). ``driver`` names the
    component(s) at the composite level. A component the run did not screen at all is named
    in the label ("... (without typhoon)") and flags, and the composite is that of the others.

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
        best, low_c, high_c = _composite_levels(level, low, high, axis=1)
        driver = _mask_labels((level == best[:, None]) & (best[:, None] > 0), hazards, ",")
        missing = _mask_labels(level == 0, [f"{_MISSING}{h}" for h in hazards], ";")
        if missing_components:
            extra = ";".join(f"{_MISSING}{h}" for h in sorted(missing_components))
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
            "level_low": low_c,
            "level_high": high_c,
            "flags": missing,
            "driver": driver,
            "threshold_set": "composite:max(" + ",".join(comp.components) + ")",
            "datasets": ",".join(sorted({d for ds in datasets_all.iloc[sel].unique()
                                         for d in str(ds).split(",") if d})),
        })
        rows.append(out)
    return pd.concat(rows, ignore_index=True)


def _composite_levels(level: np.ndarray, low: np.ndarray, high: np.ndarray, *, axis: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A composite's ``(level, level_low, level_high)`` from its components' along ``axis``
    (0: no data): the highest of each. With a component without data the composite is only
    known to be at least the highest of the others: a lower bound when that is medium or
    higher (its high end is 5), else no data (0), as "low" cannot be asserted.

    >>> lv = np.array([[3, 0], [2, 0], [2, 1], [0, 0]])
    >>> [c.tolist() for c in _composite_levels(lv, lv, lv, axis=1)]
    [[3, 0, 2, 0], [3, 0, 2, 0], [5, 0, 2, 0]]
    """
    top = level.max(axis=axis)
    gap = (level == 0).any(axis=axis)
    if not gap.any():  # the usual chunk
        return top, low.max(axis=axis), high.max(axis=axis)
    bound = gap & (top >= int(MEDIUM_AND_ABOVE))
    known = ~gap | bound
    dtype = level.dtype
    return (np.where(known, top, 0).astype(dtype),
            np.where(known, low.max(axis=axis), 0).astype(dtype),
            np.where(bound, LEVELS[-1], np.where(known, high.max(axis=axis), 0)).astype(dtype))


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
    share computed from each site's low and high level), ``sites_lower_bound`` (composite
    sites screened at a lower bound, a component without data: see :func:`add_composites`)
    and ``lower_bound_missing`` (those components); with ``weight``, ``weight_screened``,
    ``weight_no_data`` and ``weight_unresolved`` (the amounts at the sites of each count).
    """
    keys = ["hazard", "hazard_label", "is_composite", "scenario", "year"]
    unresolved_ids = set(sites.loc[~is_located(sites), "site_id"])
    # Only the columns counted (a copy of the whole long table would double its memory).
    t = table[list(dict.fromkeys(keys + ["pathway", "pathway_label", "period", "pathway_exact",
                                         "threshold_set", "site_id", "level", "level_low",
                                         "level_high", "flags"]))].copy()
    t["_unresolved"] = t["site_id"].isin(unresolved_ids)
    t["_screened"] = (t["level"] > 0) & ~t["_unresolved"]
    # Composite sites screened with a component missing: their level is a lower bound.
    composite = t["is_composite"].astype(bool).to_numpy()
    flag_c = np.full(len(t), -1, dtype=np.int64)  # only composite rows' flags are read
    flag_c[composite], flag_u = pd.factorize(t.loc[composite, "flags"].astype(str))
    named, parts = _lower_bound_rows(flag_c, flag_u, set(t.loc[~composite, "hazard"]))
    t["_lb"] = t["_screened"] & named
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
        sites_lower_bound=("_lb", "sum"),
    ).reset_index()
    # Groups are numbered in order of first appearance, the order of ``out`` (sort=False).
    gid = g.ngroup().to_numpy()
    out[_LOWER_BOUND_PARTS] = _parts_by_group(flag_c, parts, t["_lb"].to_numpy(), gid,
                                              len(out))
    for i, col in enumerate(("pathway", "pathway_label", "period")):
        out.insert(len(keys) + i, col, _first_or_mixed_by_group(t[col], gid, len(out)))
    if weight is not None:
        t["_ws"] = t["_w"] * t["_screened"]
        wg = t.assign(**{f"_wl{lvl}": t["_w"] * t[f"_l{lvl}"] for lvl in LEVELS},
                      _wmp=t["_w"] * t["_mp"], _wu=t["_w"] * t["_unresolved"],
                      _wn=t["_w"] * ~(t["_unresolved"] | t["_screened"])
                      ).groupby(keys, sort=False)
        out["_w_screened"] = wg["_ws"].sum().to_numpy()
        out["_w_no_data"] = wg["_wn"].sum().to_numpy()
        out["_w_unresolved"] = wg["_wu"].sum().to_numpy()
        for lvl in LEVELS:
            out[f"_w_level_{lvl}"] = wg[f"_wl{lvl}"].sum().to_numpy()
        out["_w_mp"] = wg["_wmp"].sum().to_numpy()
    return shares_from_counts(out, weight=weight)


#: Columns of a counts table (:func:`count_levels`) that identify a layer, in order.
_SHARE_KEYS = ["hazard", "hazard_label", "is_composite", "scenario", "year", "pathway",
               "pathway_label", "period", "pathway_exact", "threshold_set"]
_COUNT_COLUMNS = ["sites_total", "sites_unresolved", "sites_screened",
                  *(f"count_level_{lvl}" for lvl in LEVELS), "medium_plus_count",
                  "medium_plus_count_low", "medium_plus_count_high", "sites_lower_bound"]
#: The components without data at a composite's lower-bound sites (``sites_lower_bound``),
#: comma-joined; "" for single hazards.
_LOWER_BOUND_PARTS = "lower_bound_missing"
_WEIGHT_SUMS = ["_w_screened", "_w_no_data", "_w_unresolved",
                *(f"_w_level_{lvl}" for lvl in LEVELS), "_w_mp"]


def _missing_parts(flags: Sequence[str], hazards: set[str]) -> list[tuple[str, ...]]:
    """Per distinct ``flags`` text, the components it names ``missing:<hazard>`` among the
    run's ``hazards``. A composite site with a level and such a component is a lower bound
    (:func:`_composite_levels`); a component the run did not screen is not one of them."""
    return [tuple(f[len(_MISSING):] for f in str(text).split(";")
                  if f.startswith(_MISSING) and f[len(_MISSING):] in hazards)
            for text in flags]


def _lower_bound_rows(codes: np.ndarray, flags: Sequence[str], hazards: set[str]
                      ) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per row (``codes`` into the distinct ``flags``, -1 for none), whether its flags name
    a component of the run without data, and per distinct flags those components."""
    parts = _missing_parts(flags, hazards)
    return np.array([bool(p) for p in parts] + [False], dtype=bool)[codes], parts


def _parts_by_group(codes: np.ndarray, parts: Sequence[tuple[str, ...]], bound: np.ndarray,
                    gid: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the components missing at its lower-bound rows (``bound``), comma-joined."""
    out = np.full(n_groups, "", dtype=object)
    if bound.any():
        pairs = pd.unique(pd.Series(gid[bound] * (len(parts) + 1) + codes[bound]))
        found: dict[int, set[str]] = {}
        for pair in pairs:
            found.setdefault(int(pair) // (len(parts) + 1), set()).update(
                parts[int(pair) % (len(parts) + 1)])
        for grp, names in found.items():
            out[grp] = ",".join(sorted(names))
    return out


def shares_from_counts(counts: pd.DataFrame, *, weight: str | None = None) -> pd.DataFrame:
    """The shares table from a counts table (one row per layer: its keys, the site counts
    and, when weighted, the ``_w_*`` weight sums), as :func:`shares` returns it.

    Counts add up: the counts of chunks of sites, summed, give the counts of the whole
    portfolio (:func:`count_levels` computes them per chunk)."""
    out = counts.copy()
    out["sites_no_data"] = out["sites_total"] - out["sites_unresolved"] - out["sites_screened"]
    for lvl in LEVELS:
        out[f"pct_level_{lvl}"] = _pct(out[f"count_level_{lvl}"], out["sites_screened"])
    out["medium_plus_pct"] = _pct(out["medium_plus_count"], out["sites_screened"])
    # The range: the share if every site sat at its low (high) level of the ensemble or
    # uncertainty range. Lows never exceed highs, so the bounds are ordered.
    out["medium_plus_pct_low"] = _pct(out["medium_plus_count_low"], out["sites_screened"])
    out["medium_plus_pct_high"] = _pct(out["medium_plus_count_high"], out["sites_screened"])
    if weight is not None:
        wsum = out["_w_screened"].to_numpy(dtype="float64")
        out["weight_field"] = weight
        out["weight_screened"] = wsum
        # The amount at sites not screened, beside it: a share of a small base says so.
        out["weight_no_data"] = out["_w_no_data"].to_numpy(dtype="float64")
        out["weight_unresolved"] = out["_w_unresolved"].to_numpy(dtype="float64")
        for lvl in LEVELS:
            out[f"w_pct_level_{lvl}"] = _pct(out[f"_w_level_{lvl}"], wsum)
        out["w_medium_plus_pct"] = _pct(out["_w_mp"], wsum)
    out = out.drop(columns=[c for c in _WEIGHT_SUMS if c in out.columns])
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


# ----------------------------------------------------------------------------- columnar form

#: Sites per chunk when composites, counts and per-site outputs are computed: the long rows
#: of one chunk (36 layers x 100,000 sites) take about 0.5 GB at most, whatever the portfolio.
DEFAULT_CHUNK_SITES = 100_000


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """What is constant in one layer (hazard or composite x scenario x year): stored once,
    not once per site."""

    hazard: str
    hazard_label: str
    is_composite: bool
    scenario: str
    year: int
    pathway: str
    pathway_label: str
    period: str
    pathway_exact: bool
    pathway_note: str
    units: str
    threshold_set: str
    datasets: str

    @property
    def key(self) -> str:
        """``<hazard>_<scenario>_<year>``, the prefix of the layer's per-site columns."""
        return f"{self.hazard}_{self.scenario}_{self.year}"


def _categorical(values: Any) -> pd.Categorical:
    if isinstance(values, pd.Categorical):
        return values
    return pd.Categorical(np.asarray(values, dtype=object).astype(str))


def _blank(dtype: np.dtype, n: int) -> np.ndarray:
    """``n`` empty cells of a column: NaN for floats, 0 for other numbers, None for text
    (kept as objects: a fixed-width numpy string type would cut longer later values)."""
    if dtype.kind == "f":
        return np.full(n, np.nan, dtype=dtype)
    if dtype.kind in "iub":
        return np.zeros(n, dtype=dtype)
    return np.full(n, None, dtype=object)


def _wider(have: np.dtype, new: np.dtype) -> np.dtype:
    """The column type that holds both: numbers promote, anything else is objects."""
    if have.kind in "fiub" and new.kind in "fiub":
        return np.result_type(have, new)
    return np.dtype(object)


@dataclass(slots=True)
class SiteResults:
    """Per-site results of every layer as typed columns, aligned with ``site_ids``.

    Each layer ``i`` has ``value[i]`` (float64), ``level[i]``/``level_low[i]``/
    ``level_high[i]`` (int8, 0: no data), ``flags[i]`` and ``driver[i]`` (categoricals,
    "" when none) and its hazard's ``extra[i]`` columns; ``layers[i]`` holds the rest once.
    About 13 bytes per site and layer, against about 300 in the long table.
    """

    site_ids: np.ndarray
    layers: list[LayerInfo] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    level: list[np.ndarray] = field(default_factory=list)
    level_low: list[np.ndarray] = field(default_factory=list)
    level_high: list[np.ndarray] = field(default_factory=list)
    flags: list[pd.Categorical] = field(default_factory=list)
    driver: list[pd.Categorical] = field(default_factory=list)
    extra: list[dict[str, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.site_ids)

    @classmethod
    def from_results(cls, site_ids: Sequence[str], results: Sequence[HazardResult], *,
                     labels: dict[str, str] | None = None) -> SiteResults:
        """The hazard results of a run, one layer each (as :func:`results_table`)."""
        labels = labels or {}
        out = cls(np.asarray(site_ids, dtype=object))
        n = len(out.site_ids)
        for r in results:
            if len(r) != n:
                raise ValueError(f"{r.hazard}: {len(r)} results for {n} sites")
            info = LayerInfo(
                hazard=r.hazard, hazard_label=labels.get(r.hazard, r.hazard),
                is_composite=False, scenario=r.scenario.value, year=int(r.year),
                pathway=r.pathway.code, pathway_label=r.pathway.label, period=r.pathway.period,
                pathway_exact=bool(r.pathway.exact), pathway_note=r.pathway.note,
                units=r.units, threshold_set=r.threshold_set, datasets=",".join(r.datasets))
            out._append(info, np.asarray(r.values, dtype="float64"), r.levels, r.level_low,
                        r.level_high, _categorical(r.flags), _empty_categorical(n),
                        {k: np.asarray(v) for k, v in r.extra.items()})
        return out

    @classmethod
    def from_long_table(cls, table: pd.DataFrame, *,
                        site_ids: Sequence[str] | None = None) -> SiteResults:
        """The columnar form of a long table (:func:`results_table` plus
        :func:`add_composites`): one layer per hazard x scenario x year in order of first
        appearance, sites in ``site_ids`` order (default: order of first appearance); a site
        without a row in a layer has no data there."""
        ids = pd.unique(table["site_id"]) if site_ids is None else site_ids
        out = cls(np.asarray(ids, dtype=object))
        n = len(out.site_ids)
        index = pd.Index(out.site_ids)
        if not len(table):
            return out
        keys = ["hazard", "scenario", "year"]
        extra_cols = [c for c in table.columns if str(c).startswith("extra_")]
        for (hazard, scenario, year), rows in table.groupby(keys, sort=False):
            pos = index.get_indexer(rows["site_id"])
            keep = pos >= 0
            rows, pos = rows[keep], pos[keep]
            first = rows.iloc[0]
            info = LayerInfo(
                hazard=str(hazard), hazard_label=str(first["hazard_label"]),
                is_composite=bool(first["is_composite"]), scenario=str(scenario),
                year=int(year), pathway=str(first["pathway"]),
                pathway_label=str(first["pathway_label"]), period=str(first["period"]),
                pathway_exact=bool(rows["pathway_exact"].all()),
                pathway_note=str(first["pathway_note"]), units=str(first["units"]),
                threshold_set=str(first["threshold_set"]), datasets=str(first["datasets"]))

            def filled(col, fill, dtype, rows=rows, pos=pos):
                arr = np.full(n, fill, dtype=dtype)
                arr[pos] = pd.to_numeric(rows[col], errors="coerce").fillna(fill).to_numpy() \
                    if dtype is not object else rows[col].fillna(fill).astype(str).to_numpy()
                return arr

            prefix = f"extra_{hazard}_"
            extra = {c[len(prefix):]: filled(c, np.nan, "float64") if rows[c].dtype.kind in "fiub"
                     else filled(c, "", object)
                     for c in extra_cols if c.startswith(prefix) and rows[c].notna().any()}
            out._append(info, filled("value", np.nan, "float64"), filled("level", 0, np.int8),
                        filled("level_low", 0, np.int8), filled("level_high", 0, np.int8),
                        _categorical(filled("flags", "", object)),
                        _categorical(filled("driver", "", object)), extra)
        return out

    def _append(self, info: LayerInfo, value: np.ndarray, level: np.ndarray, low: np.ndarray,
                high: np.ndarray, flags: pd.Categorical, driver: pd.Categorical,
                extra: dict[str, np.ndarray]) -> None:
        self.layers.append(info)
        self.value.append(value)
        self.level.append(np.asarray(level, dtype=np.int8))
        self.level_low.append(np.asarray(low, dtype=np.int8))
        self.level_high.append(np.asarray(high, dtype=np.int8))
        self.flags.append(flags)
        self.driver.append(driver)
        self.extra.append(extra)

    def with_composites(self, composites: Sequence[CompositeSpec], *,
                        chunk_sites: int = DEFAULT_CHUNK_SITES) -> SiteResults:
        """These results with a layer per composite x scenario x year appended, by the rules
        of :func:`add_composites` (same levels, drivers, flags, pathways and layer order);
        computed chunk by chunk of sites."""
        out = SiteResults(self.site_ids, list(self.layers), list(self.value), list(self.level),
                          list(self.level_low), list(self.level_high), list(self.flags),
                          list(self.driver), list(self.extra))
        base = [i for i, info in enumerate(self.layers) if not info.is_composite]
        n = len(self)
        for comp in composites:
            comp_layers = [i for i in base if self.layers[i].hazard in comp.components]
            if not comp_layers:
                continue
            present = {self.layers[i].hazard for i in comp_layers}
            missing_components = sorted(set(comp.components) - present)
            hazards = sorted(present)
            label = comp.label if not missing_components else \
                f"{comp.label} (without {', '.join(missing_components)})"
            datasets = ",".join(sorted({d for i in comp_layers
                                        for d in self.layers[i].datasets.split(",") if d}))
            extra_flags = ";".join(f"{_MISSING}{h}" for h in missing_components)
            groups = sorted({(self.layers[i].scenario, self.layers[i].year) for i in comp_layers})
            for scenario, year in groups:
                members = [i for i in comp_layers
                           if (self.layers[i].scenario, self.layers[i].year) == (scenario, year)]
                # Each component's pathway carries its own exactness (see add_composites).
                pathway = "; ".join(f"{self.layers[i].hazard}:{self.layers[i].pathway}"
                                    + ("" if self.layers[i].pathway_exact else APPROXIMATE_MARK)
                                    for i in members)
                info = LayerInfo(
                    hazard=comp.name, hazard_label=label, is_composite=True, scenario=scenario,
                    year=year, pathway=pathway, pathway_label=pathway,
                    period="; ".join(sorted({str(self.layers[i].period) for i in members})),
                    pathway_exact=all(self.layers[i].pathway_exact for i in members),
                    pathway_note="", units="level (highest component)",
                    threshold_set="composite:max(" + ",".join(comp.components) + ")",
                    datasets=datasets)
                # Column j of the component matrix is hazards[j]; the first layer of a
                # hazard wins, as in add_composites.
                col_of = {}
                for i in members:
                    col_of.setdefault(hazards.index(self.layers[i].hazard), i)
                best = np.zeros(n, dtype=np.int8)
                low = np.zeros(n, dtype=np.int8)
                high = np.zeros(n, dtype=np.int8)
                drive_mask = np.zeros(n, dtype=np.int64)
                miss_mask = np.zeros(n, dtype=np.int64)
                for a in range(0, n, max(1, chunk_sites)):
                    b = min(n, a + chunk_sites)
                    mat = np.zeros((len(hazards), b - a), dtype=np.int8)
                    lo = np.zeros_like(mat)
                    hi = np.zeros_like(mat)
                    for j, i in col_of.items():
                        mat[j] = self.level[i][a:b]
                        lo[j] = self.level_low[i][a:b]
                        hi[j] = self.level_high[i][a:b]
                    top, low[a:b], high[a:b] = _composite_levels(mat, lo, hi, axis=0)
                    best[a:b] = top
                    bits = (1 << np.arange(len(hazards), dtype=np.int64))[:, None]
                    drive_mask[a:b] = (((mat == top) & (top > 0)) * bits).sum(axis=0)
                    miss_mask[a:b] = ((mat == 0) * bits).sum(axis=0)
                driver = _mask_categorical(drive_mask, hazards, ",")
                flags = _mask_categorical(miss_mask, [f"{_MISSING}{h}" for h in hazards], ";",
                                          extra=extra_flags)
                value = np.where(best > 0, best.astype("float64"), np.nan)
                out._append(info, value, best, low, high, flags, driver, {})
        return out

    def take(self, start: int, stop: int) -> SiteResults:
        """The sites ``start:stop`` (views, no copy of the columns)."""
        return SiteResults(self.site_ids[start:stop], self.layers,
                           [v[start:stop] for v in self.value],
                           [v[start:stop] for v in self.level],
                           [v[start:stop] for v in self.level_low],
                           [v[start:stop] for v in self.level_high],
                           [v[start:stop] for v in self.flags],
                           [v[start:stop] for v in self.driver],
                           [{k: v[start:stop] for k, v in e.items()} for e in self.extra])

    def select(self, positions: np.ndarray) -> SiteResults:
        """The sites at ``positions`` (integer positions or a boolean mask), copied."""
        idx = np.flatnonzero(positions) if np.asarray(positions).dtype == bool else \
            np.asarray(positions, dtype=np.int64)
        return SiteResults(self.site_ids[idx], self.layers, [v[idx] for v in self.value],
                           [v[idx] for v in self.level], [v[idx] for v in self.level_low],
                           [v[idx] for v in self.level_high], [v[idx] for v in self.flags],
                           [v[idx] for v in self.driver],
                           [{k: v[idx] for k, v in e.items()} for e in self.extra])

    def chunks(self, size: int = DEFAULT_CHUNK_SITES) -> Iterator[tuple[int, SiteResults]]:
        """``(first site, results of the chunk)`` for consecutive chunks of ``size`` sites."""
        size = max(1, int(size))
        for a in range(0, max(len(self), 1), size):
            yield a, self.take(a, min(len(self), a + size))

    @classmethod
    def scatter(cls, site_ids: np.ndarray,
                parts: Iterable[tuple[np.ndarray, SiteResults]]) -> SiteResults:
        """One run's results from chunks of its sites, each ``(positions, part)``: ``part``
        holds the sites at ``positions`` of ``site_ids`` (the chunks cover every site once;
        all have the same layers). Columns are allocated once and each part is copied into
        place as it comes, so a caller that yields parts as they are computed (Dask
        futures) holds the result plus one part, never all parts and their concatenation.
        """
        site_ids = np.asarray(site_ids, dtype=object)
        n = len(site_ids)
        out: SiteResults | None = None
        categories: list[tuple[dict[str, int], dict[str, int]]] = []
        codes: list[tuple[np.ndarray, np.ndarray]] = []
        for positions, part in parts:
            pos = np.asarray(positions, dtype=np.int64)
            if out is None:
                out = cls(site_ids, list(part.layers))
                for i in range(len(part.layers)):
                    out.value.append(np.full(n, np.nan))
                    for column in (out.level, out.level_low, out.level_high):
                        column.append(np.zeros(n, dtype=np.int8))
                    # Numbers keep their type; text is kept as objects (a fixed-width
                    # numpy string type would cut longer values of later parts).
                    out.extra.append({k: _blank(np.asarray(v).dtype, n)
                                      for k, v in part.extra[i].items()})
                    categories.append(({"": 0}, {"": 0}))
                    codes.append((np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32)))
            elif part.layers != out.layers:
                raise ValueError("chunks with different layers cannot be combined")
            for i in range(len(out.layers)):
                out.value[i][pos] = part.value[i]
                out.level[i][pos] = part.level[i]
                out.level_low[i][pos] = part.level_low[i]
                out.level_high[i][pos] = part.level_high[i]
                for key, values in part.extra[i].items():
                    values = np.asarray(values)
                    target = out.extra[i].get(key)
                    if target is None:  # a column this part has and earlier ones lacked
                        target = out.extra[i][key] = _blank(values.dtype, n)
                    wide = _wider(target.dtype, values.dtype)
                    if wide != target.dtype:  # e.g. integers, then a part with NaN
                        target = out.extra[i][key] = target.astype(wide)
                    target[pos] = values
                for known, column, cat in zip(categories[i], codes[i],
                                              (part.flags[i], part.driver[i]), strict=True):
                    names = [str(c) for c in cat.categories]
                    for name in names:
                        known.setdefault(name, len(known))
                    column[pos] = recode(np.asarray(cat.codes), names,
                                         pd.Index(list(known), dtype=object))
        if out is None:
            return cls(site_ids)
        for i in range(len(out.layers)):
            for column, known, store in zip(codes[i], categories[i], (out.flags, out.driver),
                                            strict=True):
                # Sorted, so that the order the chunks arrived in leaves no trace.
                names = pd.Index(sorted(known), dtype=object)
                store.append(pd.Categorical.from_codes(recode(column, list(known), names),
                                                       categories=names))
        return out

    @property
    def nbytes(self) -> int:
        """Memory held by the per-site columns."""
        total = self.site_ids.nbytes
        for i in range(len(self.layers)):
            total += self.value[i].nbytes + 3 * self.level[i].nbytes
            total += self.flags[i].codes.nbytes + self.driver[i].codes.nbytes
            total += sum(np.asarray(v).nbytes for v in self.extra[i].values())
        return int(total)

    def layer_table(self) -> pd.DataFrame:
        """One row per layer: the :class:`LayerInfo` fields (``hazard``, ``scenario``,
        ``year``, ...), in layer order; what readers of a long table's distinct layers need,
        without its rows."""
        from dataclasses import fields as info_fields

        names = [f.name for f in info_fields(LayerInfo)]
        return pd.DataFrame([[getattr(info, k) for k in names] for info in self.layers],
                            columns=names)

    def has_extra(self, key: str) -> np.ndarray:
        """Per site: whether some layer has a value for its extra column ``key`` (text not
        empty, numbers not NaN), e.g. the sites with data-center cooling columns."""
        out = np.zeros(len(self), dtype=bool)
        for extra in self.extra:
            if key in extra:
                values = pd.Series(extra[key])
                # Text (object, or pandas' str dtype that an array of strings now infers)
                # counts where it is not empty.
                text = values.dtype == object or pd.api.types.is_string_dtype(values)
                out |= (values.notna() & values.astype(str).ne("")).to_numpy() \
                    if text else values.notna().to_numpy()
        return out

    def layer_index(self, hazard: str, scenario: str, year: int) -> int | None:
        for i, info in enumerate(self.layers):
            if (info.hazard, info.scenario, info.year) == (hazard, scenario, int(year)):
                return i
        return None

    def long_table(self, layers: Sequence[int] | None = None) -> pd.DataFrame:
        """The long table of these sites (one row per site x layer, the columns of
        :func:`results_table` and :func:`add_composites`), layer by layer. Call it on a chunk
        (:meth:`chunks`): the whole portfolio's long table is what this class avoids."""
        frames = []
        n = len(self)
        for i in (range(len(self.layers)) if layers is None else layers):
            info = self.layers[i]
            frame = pd.DataFrame({
                "site_id": self.site_ids,
                "hazard": info.hazard,
                "hazard_label": info.hazard_label,
                "is_composite": info.is_composite,
                "scenario": info.scenario,
                "year": info.year,
                "pathway": info.pathway,
                "pathway_label": info.pathway_label,
                "period": info.period,
                "pathway_exact": info.pathway_exact,
                "pathway_note": info.pathway_note,
                "value": self.value[i],
                "units": info.units,
                "level": self.level[i].astype(np.int64),
                "level_low": self.level_low[i].astype(np.int64),
                "level_high": self.level_high[i].astype(np.int64),
                "flags": np.asarray(self.flags[i], dtype=object),
                "driver": np.asarray(self.driver[i], dtype=object),
                "threshold_set": info.threshold_set,
                "datasets": info.datasets,
            }, index=pd.RangeIndex(n))
            for key, arr in self.extra[i].items():
                # A key "=name" is a column of that name (the data-center cooling columns).
                frame[key[1:] if key.startswith("=") else f"extra_{info.hazard}_{key}"] = arr
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=_RESULT_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def shares(self, sites: pd.DataFrame, *, weight: str | None = None,
               chunk_sites: int = DEFAULT_CHUNK_SITES) -> pd.DataFrame:
        """:func:`shares` of these results, from counts added up chunk by chunk."""
        unresolved, weights = site_masks(sites, self.site_ids, weight=weight)
        total = None
        for a, part in self.chunks(chunk_sites):
            counts = count_levels(part, unresolved[a:a + len(part)],
                                  None if weights is None else weights[a:a + len(part)])
            total = counts if total is None else add_counts(total, counts)
        return shares_from_counts(total, weight=weight)


def _empty_categorical(n: int) -> pd.Categorical:
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""])


def _mask_categorical(mask: np.ndarray, names: Sequence[str], sep: str, *,
                      extra: str = "") -> pd.Categorical:
    """Per site, the ``names`` of the bits set in ``mask`` joined by ``sep`` (then ``extra``,
    after ``;``), as a categorical: the strings are built once per distinct mask."""
    uniq, inv = np.unique(mask, return_inverse=True)
    labels = []
    for m in uniq:
        text = sep.join(nm for b, nm in enumerate(names) if int(m) >> b & 1)
        if extra:
            text = f"{text};{extra}" if text else extra
        labels.append(text)
    # Equal labels from different masks cannot occur (names are distinct), so the
    # categories are unique.
    return pd.Categorical.from_codes(np.asarray(inv).ravel().astype(np.int32), categories=labels)


def site_masks(sites: pd.DataFrame, site_ids: np.ndarray, *, weight: str | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per result site: unresolved (no location) and, with ``weight``, its weight (0 when
    missing), as :func:`shares` counts them."""
    ids = pd.Index(site_ids)
    unresolved = ids.isin(sites.loc[~is_located(sites), "site_id"])
    weights = None
    if weight is not None:
        w = pd.to_numeric(sites.set_index("site_id")[weight], errors="coerce")
        weights = pd.Series(site_ids).map(w).fillna(0.0).to_numpy(dtype="float64")
    return np.asarray(unresolved, dtype=bool), weights


def count_levels(results: SiteResults, unresolved: np.ndarray,
                 weights: np.ndarray | None = None) -> pd.DataFrame:
    """The counts table (:func:`shares_from_counts`) of a chunk of sites: one row per layer.

    ``unresolved`` marks the chunk's sites without a location; ``weights`` (optional) their
    weights. Counts of chunks add up with :func:`add_counts`."""
    mplus = int(MEDIUM_AND_ABOVE)
    rows = []
    run_hazards = {info.hazard for info in results.layers if not info.is_composite}
    for i, info in enumerate(results.layers):
        level = results.level[i]
        screened = (level > 0) & ~unresolved
        lv = level[screened]
        bound = np.zeros(len(level), dtype=bool)
        parts_text = ""
        if info.is_composite:
            codes = np.asarray(results.flags[i].codes)
            named, parts = _lower_bound_rows(codes, results.flags[i].categories, run_hazards)
            bound = screened & named
            parts_text = _parts_by_group(codes, parts, bound, np.zeros(len(codes), np.int64),
                                         1)[0]
        counts = np.bincount(lv, minlength=6)
        row = {k: getattr(info, k) for k in _SHARE_KEYS}
        row.update({
            "sites_total": len(level),
            "sites_unresolved": int(unresolved.sum()),
            "sites_screened": int(screened.sum()),
            **{f"count_level_{lvl}": int(counts[lvl]) for lvl in LEVELS},
            "medium_plus_count": int((lv >= mplus).sum()),
            "medium_plus_count_low": int((results.level_low[i][screened] >= mplus).sum()),
            "medium_plus_count_high": int((results.level_high[i][screened] >= mplus).sum()),
            "sites_lower_bound": int(bound.sum()),
            _LOWER_BOUND_PARTS: parts_text,
        })
        if weights is not None:
            w = weights[screened]
            wl = np.bincount(lv, weights=w, minlength=6)
            row["_w_screened"] = float(w.sum())
            row["_w_no_data"] = float(weights[~(screened | unresolved)].sum())
            row["_w_unresolved"] = float(weights[unresolved].sum())
            row.update({f"_w_level_{lvl}": float(wl[lvl]) for lvl in LEVELS})
            row["_w_mp"] = float(w[lv >= mplus].sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=_SHARE_KEYS + _COUNT_COLUMNS + [_LOWER_BOUND_PARTS]
                        + (_WEIGHT_SUMS if weights is not None else []))


def add_counts(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The counts of two chunks of the same layers, added."""
    if list(a["hazard"]) != list(b["hazard"]) or len(a) != len(b):
        raise ValueError("counts of different layers cannot be added")
    out = a.copy()
    for cols in (_COUNT_COLUMNS, [c for c in _WEIGHT_SUMS if c in a.columns]):
        if cols:
            out[cols] = a[cols].to_numpy() + b[cols].to_numpy()
    out[_LOWER_BOUND_PARTS] = [",".join(sorted(set(filter(None, f"{x},{y}".split(",")))))
                               for x, y in zip(a[_LOWER_BOUND_PARTS], b[_LOWER_BOUND_PARTS],
                                               strict=True)]
    return out
