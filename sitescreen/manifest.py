"""The run manifest: everything an output says, traceable to its inputs, data and method.

``manifest.json`` lists the request, the input file and its SHA-256, the data source and its
origin, each dataset used (version, licence, citation), the threshold sets, the scenario
crosswalk, per layer the dataset pathway and method, the data-center cooling assumptions
(method, defaults and per data center what was given), geocoding counts, and step timings.
Its keys are defined here only; every output that repeats a fact of the run reads it from
the manifest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd

from sitescreen import __version__
from sitescreen.catalog import Catalog
from sitescreen.cooling import cooling_records
from sitescreen.data.sources import DataOrigin, DataSource, is_synthetic, origin_note
from sitescreen.hazards import HazardResult
from sitescreen.outputs.summary import report_title

__all__ = ["build_manifest", "run_origin", "DEFINITIONS", "VOLATILE_KEYS"]

log = logging.getLogger(__name__)

#: What the numbers of every output mean; repeated in the summary header.
DEFINITIONS = {
    "levels": "1 very low, 2 low, 3 medium, 4 high, 5 very high; 0/empty: no data",
    "medium_plus": "share of screened sites at level 3 or above",
    "percent_denominator": "sites_screened (sites with a location and a level); "
                           "sites_unresolved and sites_no_data are reported beside it",
    "range": "medium_plus_pct_low/high: the share with every site at the low/high end "
             "of its ensemble or uncertainty range",
    "lower_bound": "a composite is the highest level of its components; where one has no "
                   "data at a site, that level only when medium or higher (a lower bound, "
                   "counted in sites_lower_bound, the components in lower_bound_missing), "
                   "else no data",
}

#: Keys that differ between two runs of the same request (when and how fast it ran).
VOLATILE_KEYS = ("created_at", "timings_s")


def _datasets_used(catalog: Catalog, results: Sequence[HazardResult]) -> list[dict]:
    used = sorted({d for r in results for d in r.datasets})
    return [catalog.dataset(d).to_dict() for d in used]


def run_origin(data: DataSource, results: Sequence[HazardResult]) -> tuple[DataOrigin, list[str]]:
    """The run's data origin: the folder's, unless a file read says it is synthetic.

    A file that declares itself synthetic (each hazard lists them in its result's
    ``details["synthetic_files"]``, see :func:`sitescreen.data.sources.says_synthetic`) makes
    the whole run synthetic, whatever the folder's ``PACK.json`` or sidecars say.
    """
    files = sorted({f for r in results for f in r.details.get("synthetic_files", ())})
    if not files:
        return data.origin, []
    if not is_synthetic(data.origin):
        log.warning("%d hazard file(s) in %s declare themselves synthetic (%s); the run is "
                    "reported as %s, not %s", len(files), data.root, ", ".join(files[:3]),
                    DataOrigin.SYNTHETIC_DEMO.value, data.origin.value)
    return DataOrigin.SYNTHETIC_DEMO, files


def build_manifest(*, request: Mapping, run_id: str, catalog: Catalog, data: DataSource,
                   sites: pd.DataFrame, results: Sequence[HazardResult], timings: Mapping,
                   input_sha256: str | None = None, geocoders: Sequence[str] = (),
                   fetched: Mapping | None = None) -> dict:
    """The manifest of one run.

    Parameters
    ----------
    request : the request as a plain dict (``ScreeningRequest.to_dict()``).
    results : one :class:`HazardResult` per hazard layer, in plan order.
    timings : seconds per pipeline step.
    fetched : what this run fetched before its hazard work, per dataset (files or windows,
        bytes, requests: :func:`sitescreen.data.prepare.fetch_missing`); empty when it
        needed nothing.
    """
    precision_counts = (sites["geocode_precision"].fillna("").value_counts().to_dict()
                        if "geocode_precision" in sites else {})
    layers = [{
        "hazard": r.hazard, "scenario": r.scenario.value, "year": r.year,
        "pathway": r.pathway.to_dict(), "units": r.units, "threshold_set": r.threshold_set,
        "datasets": list(r.datasets), "method": r.method, "details": r.details,
    } for r in results]
    used_sets = sorted({r.threshold_set for r in results})
    origin, synthetic_files = run_origin(data, results)
    return {
        "sitescreen_version": __version__,
        "run_id": run_id,
        "title": report_title(request.get("title"), sites.attrs.get("source_meta"),
                              request["sites"]),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_origin": origin.value,
        "data_origin_note": origin_note(origin),
        **({"synthetic_files": synthetic_files} if synthetic_files else {}),
        "request": dict(request),
        "inputs": {"sites": {"path": str(request["sites"]), "sha256": input_sha256,
                             "n_sites": int(len(sites))}},
        "data_source": data.to_dict(),
        "fetched": dict(fetched or {}),
        "datasets": _datasets_used(catalog, results),
        "catalog_sources": list(catalog.sources),
        "threshold_sets": [catalog.threshold_set(n).to_dict() for n in used_sets],
        "composites": [c.to_dict() for c in catalog.composites.values()],
        "scenario_crosswalk": [p.to_dict() for p in sorted(
            {r.pathway for r in results}, key=lambda p: (p.family, p.narrative, p.year))],
        "layers": layers,
        "data_center_cooling": cooling_records(sites, catalog=catalog,
                                               hazards={r.hazard for r in results}),
        "geocoding": {"providers": list(geocoders),
                      "precision_counts": precision_counts,
                      "location_source_counts": sites["location_source"].value_counts().to_dict()
                      if "location_source" in sites else {}},
        "definitions": dict(DEFINITIONS),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
