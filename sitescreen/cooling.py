"""Data-center cooling electricity from cooling degree days (the degree-day method).

SenseTime reports the cost of cooling electricity under three scenarios for 2030 and 2050;
Kingsoft Cloud names the rise of cooling energy with temperature and reports each data
center's PUE. A first-order, transparent estimate (REFERENCE "Data-center cooling demand"):
cooling energy scales with cooling degree days (CDD), so for a facility

    E_cool_today = IT load x 8760 h x (PUE - 1) x cooling share of the non-IT overhead
    change       = E_cool_today x (CDD_future / CDD_today - 1)

with CDD_today the 1995-2014 reference and CDD_future the scenario period's ensemble median.
The range puts the period's p10 and p90 maps over the same median reference: it is the
models' spread of the future climate, which also holds their disagreement about today's, so
its low end can be below zero while every model warms; it is not the spread of the change
(CCKP's ``anomaly`` product would give that). The change in percent needs CDD
alone; MWh/year needs the IT load (site property ``it_load_kw`` or ``it_load_mw``), and money
the electricity price (``electricity_price``, per kWh, in the catalog's currency). PUE and the
cooling share come from the site (``pue``, ``cooling_share``) or from stated defaults in the
catalog (``[hazards.cooling_demand.params.data_center]``); every default used is named per
site in ``extra_<hazard>_dc_assumptions`` and all of them go into the manifest.

The method assumes the cooling plant's efficiency and the IT load stay as today; it ignores
free-cooling hours, humidity and part-load behaviour. It is a screening figure, not a
facility energy model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.catalog import Catalog
from sitescreen.errors import SiteValidationError

__all__ = ["CoolingAssumptions", "cooling_change", "add_cooling_energy", "cooling_records",
           "cooling_frame",
           "HOURS_PER_YEAR", "COOLING_COLUMNS"]

HOURS_PER_YEAR = 8760.0
#: Per-layer columns (after ``extra_<hazard>_``) added to the long table for data centers.
COOLING_COLUMNS = ("dc_cooling_change_pct", "dc_cooling_change_pct_low",
                   "dc_cooling_change_pct_high", "dc_cooling_base_mwh", "dc_cooling_change_mwh",
                   "dc_cooling_change_mwh_low", "dc_cooling_change_mwh_high",
                   "dc_cooling_change_cost", "dc_cooling_change_cost_low",
                   "dc_cooling_change_cost_high", "dc_cooling_change_mwh_per_mw_it",
                   "dc_cooling_change_mwh_per_mw_it_low", "dc_cooling_change_mwh_per_mw_it_high",
                   "dc_cooling_change_cost_per_mw_it", "dc_assumptions")
METHOD = ("degree-day method: E_cool = IT load x 8760 h x (PUE - 1) x cooling share; change = "
          "E_cool x (CDD_future / CDD_1995-2014 - 1), CDD of the ensemble median; range: the "
          "period's p10 and p90 CDD maps over the same median reference (the models' spread "
          "of the future climate, not of the change: its low end can be below zero); plant "
          "efficiency and IT load held at today's")


@dataclass(frozen=True, slots=True)
class CoolingAssumptions:
    """Which sites are data centers and the defaults used where a site says nothing."""

    hazard: str
    kind: str = "data_center"
    default_pue: float = 1.5
    default_cooling_share: float = 0.7
    default_electricity_price: float | None = None
    currency: str = ""

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> list[CoolingAssumptions]:
        """One per hazard whose params have a ``data_center`` table (cooling_demand)."""
        out = []
        for name, spec in catalog.hazards.items():
            table = spec.params.get("data_center")
            if isinstance(table, dict):
                price = table.get("default_electricity_price")
                out.append(cls(hazard=name, kind=str(table.get("kind", "data_center")),
                               default_pue=float(table.get("default_pue", 1.5)),
                               default_cooling_share=float(
                                   table.get("default_cooling_share", 0.7)),
                               default_electricity_price=None if price is None else float(price),
                               currency=str(table.get("currency", ""))))
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["method"] = METHOD
        d["site_properties"] = {"it_load_kw": "IT load in kW (or it_load_mw in MW); no default",
                                "pue": "annual PUE (>= 1)", "cooling_share":
                                "share of the non-IT overhead that is cooling (0-1)",
                                "electricity_price": f"price per kWh in {self.currency or 'the catalog currency'}"}
        return d


def cooling_change(cdd_today: Any, cdd_future: Any, *, it_load_kw: Any = np.nan,
                   pue: Any = 1.5, cooling_share: Any = 0.7,
                   price_per_kwh: Any = np.nan) -> dict[str, np.ndarray]:
    """Change of cooling electricity by the degree-day method, vectorised.

    Returns ``change_pct``, ``base_mwh`` (cooling electricity today, MWh/year),
    ``change_mwh`` (MWh/year) and ``change_cost`` (per year, in the price's currency); NaN
    where an input is missing or CDD today is not positive.

    Examples
    --------
    1 MW of IT at PUE 1.4 with 70 % of the overhead for cooling uses
    1000 kW x 8760 h x 0.4 x 0.7 = 2,452.8 MWh/year for cooling; CDD from 1000 to 1250 C-days
    is +25 %, so +613.2 MWh/year, and at 0.65 per kWh 398,580 a year:

    >>> r = cooling_change(1000.0, 1250.0, it_load_kw=1000.0, pue=1.4, cooling_share=0.7,
    ...                    price_per_kwh=0.65)
    >>> [round(float(r[k]), 1) for k in ("change_pct", "base_mwh", "change_mwh", "change_cost")]
    [25.0, 2452.8, 613.2, 398580.0]
    """
    today = np.asarray(cdd_today, dtype="float64")
    future = np.asarray(cdd_future, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(today > 0, future / today - 1.0, np.nan)
    base = (np.asarray(it_load_kw, dtype="float64") * HOURS_PER_YEAR
            * (np.asarray(pue, dtype="float64") - 1.0)
            * np.asarray(cooling_share, dtype="float64") / 1000.0)
    change_mwh = base * ratio
    return {"change_pct": 100.0 * ratio, "base_mwh": np.broadcast_to(base, ratio.shape).copy(),
            "change_mwh": change_mwh,
            "change_cost": change_mwh * 1000.0 * np.asarray(price_per_kwh, dtype="float64")}


#: Site properties read for data centers: (lowest, highest, lowest allowed itself, wording).
_RANGES = {"it_load_kw": (0.0, math.inf, False, "a load > 0 in kW"),
           "it_load_mw": (0.0, math.inf, False, "a load > 0 in MW"),
           "pue": (1.0, 5.0, True, "a PUE between 1 and 5"),
           "cooling_share": (0.0, 1.0, True, "a share between 0 and 1"),
           "electricity_price": (0.0, math.inf, True, "a price >= 0 per kWh")}


def _site_inputs(dcs: pd.DataFrame, a: CoolingAssumptions) -> tuple[pd.DataFrame, list[str]]:
    """Per data center: IT load (kW), PUE, cooling share, price, and where each came from."""
    problems: list[str] = []
    num: dict[str, pd.Series] = {}
    for name, (lo, hi, closed, what) in _RANGES.items():
        raw = dcs[name] if name in dcs else pd.Series(np.nan, index=dcs.index, dtype=object)
        text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        num[name] = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        ok = (num[name] >= lo if closed else num[name] > lo) & (num[name] <= hi)
        for i in np.flatnonzero(((text != "") & ~ok).to_numpy()):
            problems.append(f"site {dcs['site_id'].iloc[i]!r}: {name} = {text.iloc[i]!r} is "
                            f"not {what}")
    out = pd.DataFrame({"it_load_kw": num["it_load_kw"].fillna(num["it_load_mw"] * 1000.0),
                        "pue": num["pue"], "cooling_share": num["cooling_share"],
                        "price": num["electricity_price"]}, index=dcs.index)
    notes = [np.where(out["it_load_kw"].notna(),
                      "it_load_kw=" + out["it_load_kw"].map("{:g}".format) + " (site)",
                      "it_load_kw=none (MWh and cost need it)")]
    for col, default, label in (("pue", a.default_pue, "pue"),
                                ("cooling_share", a.default_cooling_share, "cooling_share"),
                                ("price", a.default_electricity_price, "electricity_price")):
        given = out[col].notna()
        if default is not None:
            out[col] = out[col].fillna(default)
        fallback = f"{default:g} (default)" if default is not None else "none"
        notes.append(np.where(given, f"{label}=" + out[col].map("{:g}".format) + " (site)",
                              f"{label}={fallback}"))
    out["assumptions"] = ["; ".join(parts) for parts in zip(*notes, strict=True)]
    return out, problems


def _data_centers(sites: pd.DataFrame, catalog: Catalog, hazards: set[str]
                  ) -> list[tuple[CoolingAssumptions, pd.DataFrame]]:
    """(assumptions, validated inputs indexed by site_id) per cooling hazard screened."""
    out = []
    for a in CoolingAssumptions.from_catalog(catalog):
        if "kind" not in sites or a.hazard not in hazards:
            continue
        dcs = sites[sites["kind"].astype(str).eq(a.kind)]
        if dcs.empty:
            continue
        inputs, problems = _site_inputs(dcs.reset_index(drop=True), a)
        if problems:
            raise SiteValidationError(
                f"sites of kind {a.kind!r} (cooling energy inputs)",
                problems + ["fix the value, or leave it empty to use the stated default"])
        inputs.index = dcs["site_id"].astype(str).to_numpy()
        out.append((a, inputs))
    return out


def cooling_records(sites: pd.DataFrame, *, catalog: Catalog, hazards: set[str]) -> list[dict]:
    """The cooling-energy assumptions of a run, for the manifest: method, defaults, site
    properties read, and per data center what was given and what was defaulted."""
    return [{**a.to_dict(), "sites": int(len(inputs)),
             "sites_with_it_load": int(inputs["it_load_kw"].notna().sum()),
             "per_site": inputs["assumptions"].to_dict()}
            for a, inputs in _data_centers(sites, catalog, hazards)]


def add_cooling_energy(table: pd.DataFrame, sites: pd.DataFrame, *,
                       catalog: Catalog) -> pd.DataFrame:
    """Add the data-center cooling columns (:data:`COOLING_COLUMNS`) to the long table.

    Only rows of a hazard with a ``data_center`` table in its params (``cooling_demand``)
    and sites of that kind get values; with no data center among the sites the table is
    returned unchanged (no columns added).

    Raises
    ------
    SiteValidationError
        A data center's ``pue``, ``cooling_share``, ``it_load_kw``/``it_load_mw`` or
        ``electricity_price`` is not a number in its range (every problem listed at once).
    """
    for a, inputs in _data_centers(sites, catalog, set(table["hazard"].unique())):
        rows = table.index[table["hazard"].eq(a.hazard).to_numpy()
                           & table["site_id"].astype(str).isin(inputs.index).to_numpy()]
        part = table.loc[rows]
        sid = part["site_id"].astype(str)
        p = f"extra_{a.hazard}_"
        today = part[f"{p}baseline"].to_numpy(dtype="float64")
        kwargs = {"it_load_kw": inputs.loc[sid, "it_load_kw"].to_numpy(),
                  "pue": inputs.loc[sid, "pue"].to_numpy(),
                  "cooling_share": inputs.loc[sid, "cooling_share"].to_numpy(),
                  "price_per_kwh": inputs.loc[sid, "price"].to_numpy()}
        future = {k: part[col].to_numpy(dtype="float64")
                  for k, col in (("", "value"), ("_low", f"{p}p10"), ("_high", f"{p}p90"))}
        est = {k: cooling_change(today, f, **kwargs) for k, f in future.items()}
        new = {"dc_cooling_base_mwh": est[""]["base_mwh"],
               "dc_assumptions": inputs.loc[sid, "assumptions"].to_numpy()}
        per_mw = {**kwargs, "it_load_kw": 1000.0}  # the same change for 1 MW of IT load
        for k, r in est.items():
            new[f"dc_cooling_change_pct{k}"] = r["change_pct"]
            new[f"dc_cooling_change_mwh{k}"] = r["change_mwh"]
            new[f"dc_cooling_change_cost{k}"] = r["change_cost"]
            one_mw = cooling_change(today, future[k], **per_mw)
            new[f"dc_cooling_change_mwh_per_mw_it{k}"] = one_mw["change_mwh"]
            if not k:
                new["dc_cooling_change_cost_per_mw_it"] = one_mw["change_cost"]
        table = table.copy()
        for col in COOLING_COLUMNS:
            text = col == "dc_assumptions"
            full = pd.Series("" if text else np.nan, index=table.index,
                             dtype=object if text else "float64")
            full.loc[rows] = new[col]
            table[f"{p}{col}"] = full
    return table


def cooling_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The data-center rows of the long table in short form, for the report and GIS layer.

    Columns: ``site_id``, ``hazard``, ``scenario``, ``year``, ``pathway``, ``period``,
    ``cdd_today``, ``cdd`` (C-days per year) and :data:`COOLING_COLUMNS` without their
    ``extra_<hazard>_`` prefix; empty when the run has no data center.
    """
    parts = []
    for hazard in table["hazard"].unique():
        p = f"extra_{hazard}_"
        if f"{p}{COOLING_COLUMNS[0]}" not in table:
            continue
        rows = table[table["hazard"].eq(hazard).to_numpy()
                     & table[f"{p}dc_assumptions"].fillna("").astype(str).ne("").to_numpy()]
        frame = rows[["site_id", "hazard", "scenario", "year", "pathway", "period"]].copy()
        frame["cdd_today"] = rows[f"{p}baseline"].to_numpy()
        frame["cdd"] = rows["value"].to_numpy()
        for col in COOLING_COLUMNS:
            frame[col] = rows[f"{p}{col}"].to_numpy()
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=["site_id", "hazard", "scenario", "year", "pathway",
                                     "period", "cdd_today", "cdd", *COOLING_COLUMNS])
    return pd.concat(parts, ignore_index=True)
