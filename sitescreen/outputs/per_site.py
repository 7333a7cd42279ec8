"""Which per-site files a run writes, and the streamed writers of the long ones.

Counts-based outputs (summary, manifest, report, charts) are written at any size. Per-site
files grow with the portfolio: the long ``site_results.csv`` (one row per site x layer,
about 9 GB at a million sites) and ``sites.geojson`` (about 5 GB) are streamed chunk by chunk
of sites, and ``--per-site-outputs`` chooses them:

=============  ======================================================================
``auto``       ``all`` up to ``--per-site-limit`` sites (default 100,000), ``parquet``
               above it (the default)
``all``        ``site_results.csv``, ``sites.geojson``, ``sites.parquet``, ``sites.gpkg``
``compressed`` the same with ``site_results.csv.gz`` and ``sites.geojson.gz`` (gzip)
``parquet``    ``sites.parquet`` only (GeoParquet: one row per site, every layer)
``none``       no per-site file
=============  ======================================================================
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from sitescreen.aggregate import DEFAULT_CHUNK_SITES, SiteResults
from sitescreen.errors import ConfigError
from sitescreen.outputs.run_folder import SITE_RESULTS_CSV, SITES_GEOJSON

__all__ = ["PerSiteOutputs", "PerSitePlan", "plan_per_site", "DEFAULT_PER_SITE_LIMIT",
           "long_csv_writer", "site_geojson_writer"]

#: Sites up to which ``auto`` writes every per-site file (100,000 sites x 36 layers make a
#: 0.9 GB CSV and a 0.5 GB GeoJSON); above it only the GeoParquet file.
DEFAULT_PER_SITE_LIMIT = 100_000


class PerSiteOutputs(StrEnum):
    AUTO = "auto"
    ALL = "all"
    COMPRESSED = "compressed"
    PARQUET = "parquet"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class PerSitePlan:
    """The per-site files of one run."""

    mode: PerSiteOutputs          # as resolved (never AUTO)
    requested: PerSiteOutputs
    long_files: str | None        # "plain", "gzip" or None: site_results.csv and sites.geojson
    parquet: bool
    geopackage: bool
    limit: int

    @property
    def csv_name(self) -> str | None:
        return None if self.long_files is None else \
            SITE_RESULTS_CSV + (".gz" if self.long_files == "gzip" else "")

    @property
    def geojson_name(self) -> str | None:
        return None if self.long_files is None else \
            SITES_GEOJSON + (".gz" if self.long_files == "gzip" else "")

    def files(self) -> list[str]:
        from sitescreen.outputs.geopackage import GPKG_FILE
        from sitescreen.outputs.geoparquet import GEOPARQUET_FILE

        names = [self.csv_name, self.geojson_name,
                 GEOPARQUET_FILE if self.parquet else None,
                 GPKG_FILE if self.geopackage else None]
        return [n for n in names if n]

    def to_dict(self) -> dict:
        return {"requested": self.requested.value, "mode": self.mode.value,
                "limit_sites": self.limit, "files": self.files()}


def plan_per_site(mode: str | PerSiteOutputs, n_sites: int, *,
                  limit: int = DEFAULT_PER_SITE_LIMIT) -> PerSitePlan:
    """The per-site files for ``n_sites`` sites under ``mode`` (see the module docstring).

    >>> plan_per_site("auto", 1_000_000).files()
    ['sites.parquet']
    >>> plan_per_site("compressed", 10).files()
    ['site_results.csv.gz', 'sites.geojson.gz', 'sites.parquet', 'sites.gpkg']
    """
    try:
        requested = PerSiteOutputs(str(mode))
    except ValueError:
        raise ConfigError(f"--per-site-outputs {mode!r} is not one of "
                          f"{', '.join(m.value for m in PerSiteOutputs)}") from None
    if int(limit) < 0:
        raise ConfigError(f"--per-site-limit must be 0 or more sites, not {limit}")
    resolved = requested
    if requested == PerSiteOutputs.AUTO:
        resolved = PerSiteOutputs.ALL if n_sites <= limit else PerSiteOutputs.PARQUET
    long_files = {PerSiteOutputs.ALL: "plain", PerSiteOutputs.COMPRESSED: "gzip"}.get(resolved)
    return PerSitePlan(mode=resolved, requested=requested, long_files=long_files,
                       parquet=resolved != PerSiteOutputs.NONE,
                       geopackage=resolved in (PerSiteOutputs.ALL, PerSiteOutputs.COMPRESSED),
                       limit=int(limit))


def _open(path: Path, compressed: bool):
    # Level 3: within a few percent of the size of level 6 at a third of its time.
    return gzip.open(path, "wb", compresslevel=3) if compressed else \
        open(path, "wb", buffering=1 << 20)


def _sync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def long_csv_writer(sites: pd.DataFrame, results: SiteResults, *, data_origin: str,
                    compressed: bool = False,
                    chunk_sites: int = DEFAULT_CHUNK_SITES) -> Callable[[Path], None]:
    """A ``write_run`` writer of ``site_results.csv`` (one row per site x layer, as
    ``outputs.run_folder.site_results_frame`` lays it out), built and written one chunk of
    sites at a time.

    Written like ``outputs.run_folder.csv_writer`` (through Arrow, formula-like text cells
    neutralised, strings quoted, missing values empty); rows come chunk by chunk, layer by
    layer. ``sites`` and ``results`` are aligned (same sites, same order).
    """
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        from sitescreen.outputs.run_folder import _neutralise_arrow, site_results_frame

        with _open(path, compressed) as fh:
            header = True
            for a, part in results.chunks(chunk_sites):
                frame = site_results_frame(sites.iloc[a:a + len(part)], part.long_table(),
                                           data_origin=data_origin)
                table = pa.Table.from_pandas(frame, preserve_index=False)
                pa_csv.write_csv(_neutralise_arrow(table), fh,
                                 pa_csv.WriteOptions(include_header=header))
                header = False
        _sync(path)
    return write


def site_geojson_writer(sites: pd.DataFrame, results: SiteResults, *, data_origin: str,
                        site_columns: Sequence[str], members: Mapping, compressed: bool = False,
                        chunk_sites: int = DEFAULT_CHUNK_SITES) -> Callable[[Path], None]:
    """A ``write_run`` writer of the per-site GeoJSON (``outputs.run_folder.site_features``,
    one feature per site), built one chunk of sites at a time; ``members`` are the
    FeatureCollection's members after ``features`` (name, provenance)."""
    from sitescreen.outputs.run_folder import _write_feature_collection, site_features

    def features() -> Iterator[dict]:
        for a, part in results.chunks(chunk_sites):
            chunk = sites.iloc[a:a + len(part)]
            fc = site_features(chunk, part.long_table(), data_origin=data_origin,
                               site_columns=list(site_columns), lazy=True)
            yield from fc["features"]

    def write(path: Path) -> None:
        fc = {"type": "FeatureCollection", "features": features(), **members}
        with _open(path, compressed) as fh:
            _write_feature_collection(fh, fc)
        _sync(path)
    return write
