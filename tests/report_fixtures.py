"""Hand-built screening runs for the report, chart, GIS and change-tracking tests.

A run is built the way the pipeline builds it (HazardResult objects -> ``summarise`` ->
``build_manifest``), but with levels chosen by hand, so tests can compute expectations.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from sitescreen.catalog import load_catalog
from sitescreen.classify import ThresholdSet
from sitescreen.data.sources import DataOrigin, DataSource
from sitescreen.hazards import HazardResult
from sitescreen.manifest import build_manifest
from sitescreen.outputs.run_files import render_files
from sitescreen.pipeline import ScreeningRequest, summarise
from sitescreen.scenarios import Narrative, pathway_for

YEARS = (2030, 2050)

# Six sites: four placed from given coordinates, one geocoded, one unresolved.
SITES = [
    dict(site_id="sh", name="Shanghai office", city="Shanghai", country="CN", lon=121.47,
         lat=31.23, location_source="given", geocode_precision="coordinates"),
    dict(site_id="bj", name="Beijing office", city="Beijing", country="CN", lon=116.40,
         lat=39.90, location_source="given", geocode_precision="coordinates"),
    dict(site_id="sz", name="Shenzhen lab", city="Shenzhen", country="CN", lon=114.06,
         lat=22.54, location_source="geocoded", geocode_precision="district",
         geocoder="offline", geocode_status="ok"),
    dict(site_id="hk", name="Hong Kong office", city="Hong Kong", country="HK", lon=114.21,
         lat=22.43, location_source="given", geocode_precision="coordinates"),
    dict(site_id="cd", name="Chengdu data center", city="Chengdu", country="CN", lon=104.07,
         lat=30.67, location_source="geocoded", geocode_precision="city", geocoder="offline",
         geocode_status="ok"),
    dict(site_id="xx", name="Lost site", city="", country="CN", lon=math.nan, lat=math.nan,
         location_source="unresolved", geocode_precision="", geocoder="offline",
         geocode_status="unresolved", geocode_reason="no match for 'Nowhere Road'"),
]

# Levels per hazard for the six sites (optimistic); other scenarios add an offset, capped at 5.
BASE_LEVELS = {
    "water_stress": [4, 5, 1, 2, 3, 0],
    "river_flood": [1, 3, 2, 0, 2, 0],
    "coastal_flood": [3, 1, 4, 1, 1, 0],
    "typhoon": [2, 1, 3, 3, 1, 0],
}
OFFSET = {Narrative.OPTIMISTIC: 0, Narrative.CURRENT_TREND: 0, Narrative.PESSIMISTIC: 1}
FAMILY = {"water_stress": "aqueduct40", "river_flood": "aqueduct_floods",
          "coastal_flood": "aqueduct_floods", "typhoon": "tc_change"}
DATASET = {"water_stress": "aqueduct40", "river_flood": "aqueduct_floods",
           "coastal_flood": "aqueduct_floods", "typhoon": "ibtracs_wp"}


def sites_frame(rows: list[dict] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows if rows is not None else SITES)
    for col in ("company", "kind", "address", "geocoder", "geocode_status", "geocode_reason",
                "location_flags"):
        if col not in frame:
            frame[col] = ""
    return frame.fillna({c: "" for c in frame.columns if frame[c].dtype == object})


def _levels(hazard: str, site_ids: list[str], scenario: Narrative, year: int,
            overrides: dict) -> np.ndarray:
    base = dict(zip([s["site_id"] for s in SITES], BASE_LEVELS[hazard], strict=True))
    out = []
    for sid in site_ids:
        key = (hazard, sid, scenario.value, year)
        if key in overrides:
            out.append(overrides[key])
            continue
        lvl = base.get(sid, 2)
        out.append(0 if lvl == 0 else min(5, lvl + OFFSET[scenario] + (year == 2050)))
    return np.asarray(out, dtype="int8")


def build_run(*, sites: pd.DataFrame | None = None, run_id: str = "20250101T000000Z-aaaaaa",
              origin: DataOrigin = DataOrigin.SYNTHETIC_DEMO, sites_path: str = "sites.geojson",
              hazards=("water_stress", "river_flood", "coastal_flood", "typhoon"),
              scenarios=tuple(Narrative), years=YEARS, overrides: dict | None = None,
              typhoon_thresholds: ThresholdSet | None = None, typhoon_range: bool = True):
    """(sites, table, shares, manifest) of a hand-built run."""
    sites = sites_frame() if sites is None else sites
    overrides = overrides or {}
    catalog = load_catalog()
    if typhoon_thresholds is not None:
        catalog = dataclasses.replace(
            catalog, thresholds={**catalog.thresholds, typhoon_thresholds.name: typhoon_thresholds})
    ids = sites["site_id"].tolist()
    unresolved = sites["location_source"].eq("unresolved").to_numpy()
    results = []
    for hazard in hazards:
        spec = catalog.hazard(hazard)
        ts = spec.threshold_set
        if hazard == "typhoon" and typhoon_thresholds is not None:
            ts = typhoon_thresholds.name
        for scenario in scenarios:
            for year in years:
                lv = _levels(hazard, ids, scenario, year, overrides)
                lv[unresolved] = 0
                low, high = lv.copy(), lv.copy()
                if hazard == "typhoon" and typhoon_range:
                    # a model spread: the high end is one level up for every screened site
                    high = np.where(lv > 0, np.minimum(lv + 1, 5), 0).astype("int8")
                results.append(HazardResult(
                    hazard=hazard, scenario=scenario, year=year,
                    pathway=pathway_for(FAMILY[hazard], scenario, year),
                    units=catalog.threshold_set(ts).units, threshold_set=ts,
                    datasets=(DATASET[hazard],), method=f"{hazard} method text",
                    values=np.where(lv > 0, lv * 10.0, np.nan), levels=lv, level_low=low,
                    level_high=high, flags=np.array([""] * len(ids), dtype=object),
                    details={"note": f"{hazard} details"}))
    request = ScreeningRequest(sites=sites_path, data="demo", scenarios=tuple(scenarios),
                               years=tuple(years))
    columns, shares = summarise(sites, results, request)
    table = columns.long_table()
    data = DataSource(root="/demo", origin=origin, description="test data")
    manifest = build_manifest(request=request.to_dict(), run_id=run_id, catalog=catalog, data=data,
                              sites=sites, results=results, timings={}, input_sha256="0" * 64)
    return sites, table, shares, manifest


def write_run_folder(out_root, run, *, created_at: str | None = None):
    """Write a run's standard files (as the pipeline does with ``--no-report``: a later run
    is compared with its manifest, sites and tables, never its charts) and return its folder."""
    from sitescreen.outputs.run_folder import write_run

    sites, table, shares, manifest = run
    if created_at:
        manifest = {**manifest, "created_at": created_at}
    files = render_files(sites=sites, table=table, shares_table=shares, manifest=manifest,
                         report=False)
    return write_run(out_root, manifest["run_id"], files)


def cooling_run():
    """(sites, table, shares, manifest) of a run with one cooling-demand layer (Pessimistic
    2050) and one data center, "cd" (2 MW of IT, PUE 1.4): CDD 1000 today, 1250 (median),
    1100 (p10) and 1500 (p90) then, so the cooling electricity rises by 25 % (10 to 50 %)."""
    rows = [dict(s, kind="data_center", it_load_mw=2.0, pue=1.4) if s["site_id"] == "cd"
            else dict(s, it_load_mw=None, pue=None) for s in SITES]
    sites = sites_frame(rows)
    catalog = load_catalog()
    n = len(sites)
    cdd = np.full(n, 800.0)
    today = np.full(n, 700.0)
    is_cd = sites["site_id"].eq("cd").to_numpy()
    cdd[is_cd], today[is_cd] = 1250.0, 1000.0
    p10, p90 = np.where(is_cd, 1100.0, cdd - 50), np.where(is_cd, 1500.0, cdd + 50)
    ts = catalog.threshold_set("cooling-degree-days-18c-v1")
    from sitescreen.classify import classify

    result = HazardResult(
        hazard="cooling_demand", scenario=Narrative.PESSIMISTIC, year=2050,
        pathway=pathway_for("cckp_cmip6", Narrative.PESSIMISTIC, 2050), units=ts.units,
        threshold_set=ts.name, datasets=("cckp_cmip6",), method="cooling method text",
        values=cdd, levels=classify(cdd, ts), level_low=classify(p10, ts),
        level_high=classify(p90, ts), flags=np.array([""] * n, dtype=object),
        extra={"p10": p10, "p90": p90, "baseline": today})
    request = ScreeningRequest(sites="sites.geojson", data="demo",
                               scenarios=(Narrative.PESSIMISTIC,), years=(2050,))
    columns, shares = summarise(sites, [result], request)
    table = columns.long_table()
    data = DataSource(root="/demo", origin=DataOrigin.SYNTHETIC_DEMO, description="test data")
    manifest = build_manifest(request=request.to_dict(), run_id="20250101T000000Z-cccccc",
                              catalog=catalog, data=data, sites=sites, results=[result],
                              timings={}, input_sha256="0" * 64)
    return sites, table, shares, manifest
