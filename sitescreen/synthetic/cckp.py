"""SYNTHETIC World Bank CCKP CMIP6 0.25-degree climatologies in the upstream NetCDF layout.

Writes, under ``root/cckp/``, the files :mod:`sitescreen.hazards.heat` reads, with the upstream
bucket layout and names (worldbank/climateknowledgeportal ``docs/file-structure.md``):
``cmip6-x0.25/{variable}/ensemble-all-{run}/climatology-{variable}-annual-mean_cmip6-x0.25_
ensemble-all-{run}_climatology_{percentile}_{period}.nc``, for the variables of the catalog's
CCKP hazards (``hd35``, ``cdd65``), the percentiles p10/median/p90, the historical
1995-2014 reference and the future runs and periods of the scenario crosswalk. Names come
from :func:`sitescreen.data.datasets.expand_files`, so the writer, ``sitescreen data fetch``
and the hazard use one naming rule.

Contents follow the repository's example notebook: NetCDF-4 (HDF5) with dimensions
``time`` (1: an annual climatology), ``lat`` (721 values, -90..90, ascending), ``lon``
(1440 values, -180..179.75; or 0..359.75 with ``lon_start=0``) and ``bnds``; ``lat_bnds``
and ``lon_bnds``; the data variable named after the product
(``climatology-hd35-annual-mean``), float32 with ``units`` and ``_FillValue`` 1e20; global
``wb_*`` labels. Every file also says ``sitescreen_synthetic`` in its global attributes.
Written with h5netcdf; only the chunks that hold data are stored (the rest read as the fill
value), so a global file is a few kB instead of 4 MB.

The values are NOT climate data. Inside each :class:`DemoArea` they are smooth functions
of latitude (hotter towards the tropics) with a per-area offset, rising with the run's
(invented) warming and with the period; p10 and p90 bracket the median. Coastal areas have
sea (no data) on their eastern column of cells, so coastal sites exercise the nearest-land
rule. Elsewhere the files are no data.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sitescreen.synthetic import DemoArea

__all__ = ["write", "write_cckp_file", "FILL_VALUE", "RESOLUTION", "SYNTHETIC_NOTE"]

FILL_VALUE = np.float32(1e20)
RESOLUTION = 0.25
SYNTHETIC_NOTE = ("SYNTHETIC demo data written by sitescreen in the CCKP file layout; invented "
                  "values, not climate data")
_CHUNKS = (1, 91, 180)

# Invented warming (degC above the reference) per run and period: drives the synthetic change.
_WARMING = {"historical": {"1995-2014": 0.0},
            "ssp126": {"2020-2039": 0.6, "2040-2059": 0.8, "2060-2079": 0.9},
            "ssp245": {"2020-2039": 0.6, "2040-2059": 1.1, "2060-2079": 1.5},
            "ssp370": {"2020-2039": 0.6, "2040-2059": 1.2, "2060-2079": 1.9},
            "ssp585": {"2020-2039": 0.7, "2040-2059": 1.5, "2060-2079": 2.4}}
_PERCENTILE_SHIFT = {"p10": -1.0, "median": 0.0, "p90": 1.0}


def _axis(start: float, n: int) -> np.ndarray:
    return (start + RESOLUTION * np.arange(n)).astype("float32")


def write_cckp_file(path: str | Path, *, variable: str, run: str, percentile: str,
                    period: str, patches: Sequence[tuple[float, float, np.ndarray]],
                    units: str | None = "days", lon_start: float = -180.0,
                    collection: str = "cmip6-x0.25", extra_attrs: dict | None = None) -> Path:
    """Write one CCKP annual climatology file in the upstream layout.

    Parameters
    ----------
    path : target file (its folders are created); written to a temporary name and renamed.
    variable, run, percentile, period : the ``wb_*`` labels (``hd35``, ``ssp585``, ``median``,
        ``2040-2059``); the data variable is ``climatology-{variable}-annual-mean``.
    patches : ``(west_lon, south_lat, values)``: ``values[i, j]`` is the cell whose centre is
        at ``(west_lon + j * 0.25, south_lat + i * 0.25)`` (rows south to north, as the
        file stores them); NaN writes the fill value. Cell centres lie on the 0.25 grid.
    units : the data variable's ``units`` attribute; None writes none (for tests).
    lon_start : -180 (upstream) or 0 for a 0..360 grid.
    """
    import h5netcdf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lat = _axis(-90.0, 721)
    lon = _axis(lon_start, 1440)
    name = f"climatology-{variable}-annual-mean"
    fd, tmp = tempfile.mkstemp(prefix=".cckp-", suffix=".nc", dir=path.parent)
    os.close(fd)
    try:
        with h5netcdf.File(tmp, "w") as f:
            f.dimensions = {"time": 1, "lat": len(lat), "lon": len(lon), "bnds": 2}
            start_year = int(period.split("-")[0])
            t = f.create_variable("time", ("time",), "f8")
            t[:] = [(start_year - 1950) * 365.25 + 181.0]   # mid-point of the first year
            t.attrs.update({"units": "days since 1950-01-01 00:00:00", "calendar": "standard",
                            "axis": "T", "long_name": "time", "climatology_period": period})
            for axis, values, units_, std in (("lat", lat, "degrees_north", "latitude"),
                                              ("lon", lon, "degrees_east", "longitude")):
                v = f.create_variable(axis, (axis,), "f4")
                v[:] = values
                v.attrs.update({"axis": "Y" if axis == "lat" else "X", "units": units_,
                                "long_name": std, "standard_name": std,
                                "bounds": f"{axis}_bnds"})
                b = f.create_variable(f"{axis}_bnds", (axis, "bnds"), "f8")
                b[:] = np.stack([values - RESOLUTION / 2, values + RESOLUTION / 2], axis=1)
            data = f.create_variable(name, ("time", "lat", "lon"), "f4", chunks=_CHUNKS,
                                     fillvalue=FILL_VALUE, compression="gzip",
                                     compression_opts=4)
            attrs = {"long_name": f"{variable} annual climatology ({percentile})",
                     "comment": SYNTHETIC_NOTE}
            if units is not None:
                attrs["units"] = units
            data.attrs.update(attrs)
            for west, south, values in patches:
                values = np.asarray(values, dtype="float32")
                r0 = int(round((south + 90.0) / RESOLUTION))
                c0 = int(round(((west - lon_start) % 360.0) / RESOLUTION))
                block = np.where(np.isnan(values), FILL_VALUE, values)[None]
                data[0:1, r0:r0 + block.shape[1], c0:c0 + block.shape[2]] = block
            f.attrs.update({
                "wb_truncation_label": "1", "wb_grid_label": collection.split("-")[-1],
                "wb_period_label": period, "wb_percentile_label": percentile,
                "wb_type_label": "climatology", "wb_model_label": "ensemble-all",
                "wb_scenario_label": run, "wb_statistic_label": "mean",
                "wb_aggregation_label": "annual", "wb_variable_label": variable,
                "wb_product_label": "climatology", "wb_collection_label": collection,
                "sitescreen_synthetic": SYNTHETIC_NOTE, **(extra_attrs or {})})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _labels(relpath: str) -> dict[str, str]:
    """``variable``, ``run``, ``percentile``, ``period`` from an upstream relative path."""
    collection, variable, model_run, name = relpath.split("/")
    parts = name[: -len(".nc")].split("_")
    return {"collection": collection, "variable": variable,
            "run": model_run.removeprefix("ensemble-all-"), "percentile": parts[-2],
            "period": parts[-1]}


def _area_values(area: DemoArea, variable: str, run: str, period: str, percentile: str,
                 offset: float) -> tuple[float, float, np.ndarray]:
    """The cells of one area (south-west corner and values, rows south to north)."""
    x0, y0, x1, y1 = area.bounds
    west = math.floor(x0 / RESOLUTION) * RESOLUTION
    south = math.floor(y0 / RESOLUTION) * RESOLUTION
    lons = np.arange(west, x1 + RESOLUTION / 2, RESOLUTION)
    lats = np.arange(south, y1 + RESOLUTION / 2, RESOLUTION)
    glon, glat = np.meshgrid(lons, lats)
    warming = _WARMING.get(run, {}).get(period, 1.0)
    shift = _PERCENTILE_SHIFT.get(percentile, 0.0)
    tropical = np.clip(1.0 - (np.abs(glat) - 20.0) / 30.0, 0.05, 1.3)   # 1 at 20N, 0.05 at 48N
    if variable.startswith("cdd"):
        # C-days: ~2300 at 20N, ~450 at 45N today; ~+180 C-days per degree of warming.
        values = 300.0 + 1900.0 * tropical + offset * 150.0 + 180.0 * warming \
            + shift * (90.0 + 60.0 * warming)
    else:
        # Hot days above 35 C: 0-25 today, rising ~5 days per degree of warming.
        values = 16.0 * tropical ** 2 + offset * 4.0 + 5.0 * warming * (0.4 + tropical) \
            + shift * (1.5 + 2.5 * warming)
    values = np.maximum(values + 0.02 * (glon - area.lon), 0.0)
    if area.coastal:
        values[:, glon[0] > area.lon] = np.nan  # the sea, east of the city centre
    return float(west), float(south), values


def write(root: Path, areas: Sequence[DemoArea], *, seed: int) -> list[Path]:
    """Write every CCKP file the catalog's hazards read, with data around ``areas``."""
    from sitescreen.catalog import load_catalog
    from sitescreen.data.datasets import expand_files

    entry = load_catalog().dataset("cckp_cmip6")
    rng = np.random.default_rng([seed, 0xCC6])
    offsets = {a.name: float(rng.uniform(-1.0, 1.0)) for a in areas}
    paths = []
    for relpath in expand_files(entry):
        lab = _labels(relpath)
        quantity = "degC days" if lab["variable"].startswith("cdd") else "days"
        patches = [_area_values(a, lab["variable"], lab["run"], lab["period"],
                                lab["percentile"], offsets[a.name]) for a in areas]
        paths.append(write_cckp_file(Path(root) / entry.local_dir / relpath, units=quantity,
                                     patches=patches, **lab))
    return paths
