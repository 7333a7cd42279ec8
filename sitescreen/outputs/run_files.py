"""The files of a run: which file holds what, rendered from the run's tables and manifest.

:func:`render_files` returns ``{file name: bytes or writer}`` for
:func:`sitescreen.outputs.run_folder.write_run`, which writes them atomically. The file names
are those of :mod:`sitescreen.outputs.run_folder` (and of the GIS and report modules).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import pandas as pd

from sitescreen.geocode import GEOCODE_COLUMNS
from sitescreen.outputs.run_folder import (
    CHANGES_CSV,
    CHANGES_JSON,
    MANIFEST_JSON,
    SITE_RESULTS_CSV,
    SITES_GEOJSON,
    SUMMARY_CSV,
    SUMMARY_JSON,
    csv_writer,
    geojson_writer,
    json_bytes,
    site_features,
    site_results_frame,
    user_columns,
)
from sitescreen.sites import CORE_COLUMNS

__all__ = ["render_files", "SITE_OUTPUT_COLUMNS", "site_output_columns"]

#: The site columns every per-site output starts with, in this order.
SITE_OUTPUT_COLUMNS: tuple[str, ...] = (*CORE_COLUMNS, "lon", "lat")

Files = dict[str, bytes | Callable[[Path], None]]


def site_output_columns(sites: pd.DataFrame) -> list[str]:
    """The site columns of per-site outputs: :data:`SITE_OUTPUT_COLUMNS`, the geocoding
    provenance, then the user's own columns in their order."""
    own = [c for c in user_columns(sites) if c not in SITE_OUTPUT_COLUMNS]
    return [*SITE_OUTPUT_COLUMNS, *(c for c in GEOCODE_COLUMNS if c in sites), *own]


def render_files(*, sites: pd.DataFrame, table: pd.DataFrame, shares_table: pd.DataFrame,
                 manifest: Mapping, out_root: str | Path | None = None,
                 report: bool = True) -> Files:
    """All output files of a run, ready for :func:`~sitescreen.outputs.run_folder.write_run`.

    With ``out_root``, the run is compared with the previous run of the same sites file
    there (``changes.json``/``changes.csv`` and a section of the report). With ``report``,
    charts and the HTML/Markdown report are rendered (matplotlib is imported only then).
    """
    from sitescreen.outputs.changes import changes_table, compare_runs, find_previous_run
    from sitescreen.outputs.fields import FIELDS_FILE, field_dictionary
    from sitescreen.outputs.geopackage import (
        GPKG_FILE,
        SLD_FILE,
        STYLE_FILE,
        footprint_files,
        gis_styles,
        write_geopackage,
    )

    files = _core_files(sites=sites, table=table, shares_table=shares_table, manifest=manifest)
    fields = field_dictionary(sites, table)
    files[FIELDS_FILE] = csv_writer(fields)
    changes = None
    if out_root is not None:
        previous = find_previous_run(out_root, manifest["request"]["sites"],
                                     before_run_id=manifest["run_id"])
        changes = compare_runs(previous, sites=sites, table=table, manifest=manifest)
        files[CHANGES_JSON] = json_bytes(changes)
        files[CHANGES_CSV] = csv_writer(
            changes_table(changes).assign(data_origin=manifest["data_origin"]))
    if report:
        from sitescreen.outputs.charts import render_charts
        from sitescreen.outputs.report import render_report

        chart_files = render_charts(shares_table, sites, table, manifest=manifest)
        files.update(chart_files)
        files.update(render_report(shares=shares_table, sites=sites, table=table,
                                   manifest=manifest, charts=chart_files, changes=changes))
    files[GPKG_FILE] = partial(write_geopackage, sites=sites, table=table, manifest=manifest,
                               fields=fields)
    files[STYLE_FILE], files[SLD_FILE] = gis_styles(sites, table)
    files.update(footprint_files(sites, table, manifest=manifest))  # footprint sites only
    return files


def _core_files(*, sites: pd.DataFrame, table: pd.DataFrame, shares_table: pd.DataFrame,
                manifest: Mapping) -> Files:
    """GeoJSON, summary tables and manifest: the files every run has."""
    origin = manifest["data_origin"]
    fc = site_features(sites, table, data_origin=origin, site_columns=site_output_columns(sites),
                       lazy=True)
    fc["name"] = "sitescreen results"
    fc["sitescreen"] = {"run_id": manifest["run_id"], "data_origin": origin,
                        "data_origin_note": manifest["data_origin_note"],
                        "sitescreen_version": manifest["sitescreen_version"],
                        "manifest": MANIFEST_JSON}
    shares_out = shares_table.assign(data_origin=origin)
    summary = {
        "header": {"run_id": manifest["run_id"], "data_origin": origin,
                   "data_origin_note": manifest["data_origin_note"],
                   "threshold_sets": [t["name"] for t in manifest["threshold_sets"]],
                   "definitions": manifest["definitions"]},
        "shares": shares_out.to_dict("records"),
    }
    return {
        SITES_GEOJSON: geojson_writer(fc),
        SUMMARY_CSV: csv_writer(shares_out.round(4)),
        SUMMARY_JSON: json_bytes(summary),
        SITE_RESULTS_CSV: csv_writer(site_results_frame(sites, table, data_origin=origin)),
        MANIFEST_JSON: json_bytes(manifest),
    }
