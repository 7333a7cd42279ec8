"""The files of a run: which file holds what, rendered from the run's tables and manifest.

:func:`render_files` returns ``{file name: bytes or writer}`` for
:func:`sitescreen.outputs.run_folder.write_run`, which writes them atomically. The file names
are those of :mod:`sitescreen.outputs.run_folder` (and of the GIS and report modules).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sitescreen.aggregate import DEFAULT_CHUNK_SITES, SiteResults
from sitescreen.geocode import GEOCODE_COLUMNS
from sitescreen.outputs.per_site import (
    PerSitePlan,
    long_csv_writer,
    plan_per_site,
    site_geojson_writer,
)
from sitescreen.outputs.run_folder import (
    CHANGES_CSV,
    CHANGES_JSON,
    MANIFEST_JSON,
    REPORT_HTML,
    REPORT_MD,
    SITE_RESULTS_CSV,
    SITES_GEOJSON,
    SUMMARY_CSV,
    SUMMARY_JSON,
    SharedRendering,
    csv_writer,
    json_bytes,
    user_columns,
)
from sitescreen.outputs.styling import map_layers
from sitescreen.outputs.summary import unresolved_record
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


def render_files(*, sites: pd.DataFrame, shares_table: pd.DataFrame, manifest: Mapping,
                 results: SiteResults | pd.DataFrame | None = None,
                 table: SiteResults | pd.DataFrame | None = None,
                 out_root: str | Path | None = None, report: bool = True,
                 plan: PerSitePlan | None = None,
                 chunk_sites: int = DEFAULT_CHUNK_SITES, defer_report: bool = False) -> Files:
    """All output files of a run, ready for :func:`~sitescreen.outputs.run_folder.write_run`.

    ``results`` are the run's per-site results (:class:`~sitescreen.aggregate.SiteResults`,
    or a long table, converted; ``table`` is the same argument under its former name).
    Per-site files follow ``plan`` (default: every file) and are streamed chunk by chunk of
    sites, from the columns. No long table of the portfolio is built: the report and charts
    read the columns and the long rows of the few sites they list, footprints those of the
    footprint sites; only a comparison site by site with a previous run (up to the plan's
    per-site limit) reads the long table; above the limit runs are compared by counts.

    With ``out_root``, the run is compared with the previous run of the same sites file
    there (``changes.json``/``changes.csv`` and a section of the report). With ``report``,
    charts and the HTML/Markdown report are rendered (matplotlib is imported only then);
    with ``defer_report`` as writers that draw them all once, the first of them first of
    all the writers (so they are drawn while the per-site files are written), else as
    bytes.
    """
    from sitescreen.outputs.changes import changes_table
    from sitescreen.outputs.fields import FIELDS_FILE, field_dictionary, field_sample
    from sitescreen.outputs.geopackage import (
        GPKG_FILE,
        SLD_FILE,
        STYLE_FILE,
        cooling_sites,
        footprint_files,
        footprint_sites,
        gis_styles,
        write_geopackage,
    )

    results = results if results is not None else table
    if results is None:
        raise TypeError("render_files needs the run's results")
    if isinstance(results, pd.DataFrame):
        results = SiteResults.from_long_table(results, site_ids=sites["site_id"].to_numpy())
    plan = plan or plan_per_site("all", len(sites))
    files = _core_files(sites=sites, results=results, shares_table=shares_table,
                        manifest=manifest, plan=plan, chunk_sites=chunk_sites)
    # Found once for the run: the data centers (field sample, GeoPackage, report) and the
    # default maps (charts, the headline layer of the GIS files and footprints).
    cooling = cooling_sites(results)
    maps = map_layers(results.layer_table())
    # The field dictionary and the GIS styles need the layers, not the sites: a few sites'
    # long rows carry every layer and column (the data centers' rows the cooling columns).
    sample = field_sample(results, cooling=cooling)
    fields = field_dictionary(sites, sample)
    files[FIELDS_FILE] = csv_writer(fields)
    changes = None
    if out_root is not None:
        changes = _changes(out_root, sites=sites, results=results, shares_table=shares_table,
                           manifest=manifest, plan=plan)
        files[CHANGES_JSON] = json_bytes(changes)
        files[CHANGES_CSV] = csv_writer(
            changes_table(changes).assign(data_origin=manifest["data_origin"]))
    if plan.geopackage:
        def gpkg(path: Path) -> None:
            write_geopackage(path, sites=sites, table=results, manifest=manifest,
                             fields=fields, maps=maps, cooling=cooling)
        files[GPKG_FILE] = gpkg
        files[STYLE_FILE], files[SLD_FILE] = gis_styles(sites, sample, maps=maps)
    footprints = results.select(footprint_sites(sites))  # footprint sites only
    files.update(footprint_files(sites, footprints.long_table(), manifest=manifest,
                                 maps=maps))
    if report:
        rendering = _report_rendering(sites=sites, results=results, shares_table=shares_table,
                                      manifest=manifest, changes=changes, maps=maps,
                                      cooling=cooling)
        if not defer_report:
            files.update(rendering.files())
        else:  # drawn by the first writer, the longest, while the per-site files are written
            first, *rest = rendering.writers().items()
            files = {first[0]: first[1], **files, **dict(rest)}
    return files


def _report_rendering(*, sites: pd.DataFrame, results: SiteResults,
                      shares_table: pd.DataFrame, manifest: Mapping,
                      changes: Mapping | None, maps: Sequence[tuple[str, str, int]],
                      cooling: np.ndarray) -> SharedRendering:
    """The charts and the HTML/Markdown report of a run, drawn together."""
    from sitescreen.outputs.charts import chart_names, render_charts
    from sitescreen.outputs.report import render_report

    def render() -> dict[str, bytes]:
        # Both read the columns: the maps draw a bounded number of markers, the report reads
        # the long rows of the sites it lists (a capped number) and of the data centers.
        charts = render_charts(shares_table, sites, results, manifest=manifest, maps=maps)
        return {**charts, **render_report(shares=shares_table, sites=sites, table=results,
                                          manifest=manifest, charts=charts, changes=changes,
                                          cooling=cooling)}

    return SharedRendering([*chart_names(shares_table, results, maps=maps), REPORT_MD,
                            REPORT_HTML],
                           render)


def _changes(out_root: str | Path, *, sites: pd.DataFrame, results: SiteResults,
             shares_table: pd.DataFrame, manifest: Mapping, plan: PerSitePlan) -> dict:
    """``changes.json`` of the run: site by site up to the plan's per-site limit (against a
    previous run that has its plain per-site files), by counts only above it."""
    from sitescreen.outputs.changes import compare_runs, find_previous_run

    previous = find_previous_run(out_root, manifest["request"]["sites"],
                                 before_run_id=manifest["run_id"])
    if len(sites) > plan.limit:
        return compare_runs(previous, sites=sites, table=None, manifest=manifest,
                            shares=shares_table, per_site=False)
    if previous is not None and not all(
            (Path(previous) / f).is_file() for f in (SITE_RESULTS_CSV, SITES_GEOJSON)):
        previous = None  # a run without its plain per-site files cannot be compared
    table = results.long_table() if previous is not None else None
    return compare_runs(previous, sites=sites, table=table, manifest=manifest,
                        shares=shares_table)


def _core_files(*, sites: pd.DataFrame, results: SiteResults, shares_table: pd.DataFrame,
                manifest: Mapping, plan: PerSitePlan,
                chunk_sites: int = DEFAULT_CHUNK_SITES) -> Files:
    """Summary tables, manifest and the per-site files of ``plan``."""
    from sitescreen.outputs.geoparquet import GEOPARQUET_FILE, geoparquet_writer, layer_records

    origin = manifest["data_origin"]
    site_columns = site_output_columns(sites)
    shares_out = shares_table.assign(data_origin=origin)
    unresolved = unresolved_record(sites, manifest.get("request", {}).get("weight"))
    summary = {
        "header": {"run_id": manifest["run_id"], "data_origin": origin,
                   "data_origin_note": manifest["data_origin_note"],
                   "threshold_sets": [t["name"] for t in manifest["threshold_sets"]],
                   "definitions": manifest["definitions"], "unresolved": unresolved},
        "shares": shares_out.to_dict("records"),
    }
    files: Files = {}
    if plan.geojson_name:
        members = {"name": "sitescreen results",
                   "sitescreen": {"run_id": manifest["run_id"], "data_origin": origin,
                                  "data_origin_note": manifest["data_origin_note"],
                                  "sitescreen_version": manifest["sitescreen_version"],
                                  "manifest": MANIFEST_JSON,
                                  "layers": layer_records(results)}}
        files[plan.geojson_name] = site_geojson_writer(
            sites, results, data_origin=origin, site_columns=site_columns, members=members,
            compressed=plan.long_files == "gzip", chunk_sites=chunk_sites)
    files[SUMMARY_CSV] = csv_writer(shares_out.round(4))
    files[SUMMARY_JSON] = json_bytes(summary)
    if plan.csv_name:
        files[plan.csv_name] = long_csv_writer(sites, results, data_origin=origin,
                                               compressed=plan.long_files == "gzip",
                                               chunk_sites=chunk_sites)
    if plan.parquet:
        files[GEOPARQUET_FILE] = geoparquet_writer(sites, results, site_columns=site_columns,
                                                   manifest=manifest, chunk_sites=chunk_sites)
    files[MANIFEST_JSON] = json_bytes(manifest)
    return files
