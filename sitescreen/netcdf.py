"""Read gridded indicators from NetCDF files (World Bank CCKP climatologies) and sample sites.

Reader: GDAL's netCDF driver, through rasterio. It is in the pinned rasterio wheel already
(no new dependency), reads both containers a NetCDF file may use (classic CDF-1/2 and
NetCDF-4/HDF5), and applies no CF decoding of its own: a day count whose unit is ``days`` stays
a number (xarray would decode it to ``timedelta64`` unless told ``decode_timedelta=False``).
GDAL orients the grid north-up from the file's ``lat``/``lon`` coordinate variables whatever
their order; ``scale_factor``/``add_offset`` and ``_FillValue`` are applied here.

Units are read from the data variable's ``units`` attribute and converted explicitly to the
quantity the caller expects (:data:`UNITS`); a missing or unknown unit is refused, never
guessed. Degree days in Fahrenheit are converted to Celsius degree days (x 5/9).

Sampling: the value of the 0.25-degree cell holding each site (nearest cell centre on a
regular grid), through :func:`sitescreen.raster.nearest_valid_pixel`, which also wraps
longitudes into the grid's range (a 0..360 grid serves -180..180 sites) and, for a site on a
no-data cell (sea: NEX-GDDP-CMIP6 covers land only), takes the nearest valid cell within a
stated distance.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from sitescreen.errors import HazardDataError

# _pixel_index is the raster sampler's own pixel rule (floor, far edge inside, longitudes
# wrapped on global grids), shared so a NetCDF cell and a GeoTIFF pixel are found alike.
from sitescreen.raster import RasterInfo, _pixel_index, nearest_valid_pixel

__all__ = ["Grid", "UNITS", "read_grid", "read_points", "locate_cells", "grid_values",
           "sample_grid",
           "convert_units", "data_variable"]

log = logging.getLogger(__name__)

#: Accepted units per quantity, normalised (see :func:`_norm_unit`), and the factor to the
#: quantity's reporting unit. Anything else is refused: "degree days" without a scale, for
#: one, could be Celsius or Fahrenheit.
UNITS: dict[str, dict[str, Any]] = {
    "days": {"reported": "days per year",
             "factors": {"days": 1.0, "d": 1.0, "days/year": 1.0, "days/yr": 1.0,
                         "daysperyear": 1.0, "count": 1.0}},
    # A kelvin and a Celsius degree are the same interval; a Fahrenheit degree is 5/9 of it.
    "degree_days": {"reported": "C-days per year",
                    "factors": {"degcdays": 1.0, "degfdays": 5.0 / 9.0,
                                "degcdays/year": 1.0, "degfdays/year": 5.0 / 9.0}},
}

# Fill values of files that declare none (the netCDF default for floats is 9.97e36).
_HUGE = 1e30


def _norm_unit(units: str) -> str:
    """One spelling per unit: ``"°F days"``, ``"degF-days"``, ``"degree_Fahrenheit day"``
    are all ``degfdays``.

    >>> _norm_unit("°C·days"), _norm_unit("degree_Fahrenheit day"), _norm_unit("K days")
    ('degcdays', 'degfdays', 'degcdays')
    >>> _norm_unit("Days"), _norm_unit("degree days")
    ('days', 'degreedays')
    """
    u = units.strip().lower().replace("°", "deg").replace("º", "deg")
    u = re.sub(r"[\s_\-·.*()]", "", u)
    u = re.sub(r"^(?:degrees?|deg)?(?:celsius|c)(?=day)", "degc", u)
    u = re.sub(r"^(?:degrees?|deg)?(?:fahrenheit|f)(?=day)", "degf", u)
    u = re.sub(r"^(?:kelvin|k)(?=day)", "degc", u)
    return re.sub(r"days?", "days", u)


def convert_units(values: np.ndarray, units: str | None, quantity: str, *,
                  source: str) -> tuple[np.ndarray, float, str]:
    """Convert ``values`` from the file's ``units`` to the reporting unit of ``quantity``.

    Returns the converted values, the factor applied and the reporting unit.

    Raises
    ------
    HazardDataError
        The unit is missing or not one of :data:`UNITS` for the quantity.

    >>> convert_units(np.array([180.0]), "degF days", "degree_days", source="f.nc")[0].tolist()
    [100.0]
    """
    if quantity not in UNITS:
        raise HazardDataError(f"{source}: unknown quantity {quantity!r}; known: "
                              f"{', '.join(UNITS)}")
    spec = UNITS[quantity]
    if units is None or not str(units).strip():
        raise HazardDataError(
            f"{source}: the data variable has no 'units' attribute; sitescreen does not guess "
            f"the unit of {quantity.replace('_', ' ')} (expected e.g. "
            f"{_examples(quantity)}). Check that this is the upstream file, or fetch it again "
            "with 'sitescreen data fetch'")
    factor = spec["factors"].get(_norm_unit(str(units)))
    if factor is None:
        raise HazardDataError(
            f"{source}: unit {units!r} is not a known unit of {quantity.replace('_', ' ')} "
            f"(accepted: {_examples(quantity)}); nothing is converted by guesswork. Check the "
            "file, or add the unit to sitescreen.netcdf.UNITS if it is a correct spelling")
    return np.asarray(values, dtype="float64") * factor, factor, spec["reported"]


def _examples(quantity: str) -> str:
    return {"days": "'days'", "degree_days": "'degC days' or 'degF days'"}.get(quantity, "?")


@dataclass(frozen=True, slots=True)
class Grid:
    """One 2-D field of a NetCDF file, north-up, with NaN for no data (file units)."""

    path: str
    variable: str
    values: np.ndarray                 # float32, (rows, cols), north-up
    transform: tuple[float, ...]       # affine (a, b, c, d, e, f) in degrees
    units: str | None
    attrs: dict[str, str] = field(default_factory=dict)   # global attributes (wb_*)

    @property
    def lon_range(self) -> tuple[float, float]:
        a, _, c = self.transform[:3]
        return c, c + a * self.values.shape[1]


def data_variable(file_name: str) -> str:
    """The CCKP data variable of a file: the first part of its name (the product).

    >>> data_variable("climatology-hd35-annual-mean_cmip6-x0.25_ensemble-all-ssp585_climatology_median_2040-2059.nc")
    'climatology-hd35-annual-mean'
    """
    return os.path.basename(file_name).split("_", 1)[0]


_CACHE: OrderedDict[tuple, Grid] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 24  # about 100 MB of 0.25-degree float32 grids


def read_grid(path: str, variable: str | None = None) -> Grid:
    """Read one data variable of a NetCDF file (one time step) into a :class:`Grid`.

    Results are kept per process, keyed by the file's size and modification time.

    Raises
    ------
    HazardDataError
        The file cannot be opened, lacks the variable, has more than one time step, or its
        grid is not a regular longitude/latitude grid.
    """
    variable = variable or data_variable(path)
    key = _key(path, variable)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    grid, _ = _read(path, variable)
    _keep(key, grid)
    return grid


def read_points(path: str, lon: Any, lat: Any, variable: str | None = None
                ) -> tuple[np.ndarray, str | None, dict[str, str]]:
    """``grid_values(read_grid(path), lon, lat)``, the grid's units and its global
    attributes, with the same checks; when the points' cells fill a small window of the grid
    (a few sites), only that window is read (and nothing is kept), else the whole grid is
    (and kept, as :func:`read_grid` keeps it)."""
    variable = variable or data_variable(path)
    key = _key(path, variable)
    with _CACHE_LOCK:
        grid = _CACHE.get(key)
    if grid is None:
        x, y = (np.asarray(v, dtype="float64").ravel() for v in (lon, lat))
        grid, values = _read(path, variable, points=(x, y))
        if values is not None:
            return values, grid.units, grid.attrs
        _keep(key, grid)
    return grid_values(grid, lon, lat), grid.units, grid.attrs


def _key(path: str, variable: str) -> tuple:
    if path.startswith("/vsi"):
        raise HazardDataError(
            f"{path}: NetCDF files are read from a local folder, not over HTTP; fetch them "
            "with 'sitescreen data fetch cckp_cmip6' (add --mirror URL for a mirror)")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise HazardDataError(f"cannot read NetCDF file {path}: {exc.strerror}") from exc
    return (path, variable, st.st_size, st.st_mtime_ns)


def _keep(key: tuple, grid: Grid) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = grid
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)


def _grid_info(path: str, rows: int, cols: int, transform: tuple) -> RasterInfo:
    """The raster sampler's view of a whole grid (one block), for its pixel rule."""
    a, _, c, _, e, f = transform[:6]
    return RasterInfo(path=path, width=cols, height=rows, transform=(a, 0.0, c, 0.0, e, f),
                      block_shape=(rows, cols), dtype="float32", nodata=None,
                      nodata_declared=True)


#: A window of the points' cells is read instead of the grid when it is at most this share.
_WINDOW_SHARE = 1 / 16


def _read(path: str, variable: str, points: tuple[np.ndarray, np.ndarray] | None = None
          ) -> tuple[Grid, np.ndarray | None]:
    """The grid, or with ``points`` whose cells fit a small window: a :class:`Grid` of only
    that window (with the window's own transform, so its values and transform agree) and the
    points' values, taken at the cells of the whole grid (longitudes wrapped as there)."""
    name = f'NETCDF:"{path}":{variable}'
    window = None
    try:
        with rasterio.open(name) as ds:
            tags, ds_tags = ds.tags(1), ds.tags()
            if ds.count != 1:
                raise HazardDataError(
                    f"{path}: variable {variable!r} has {ds.count} time steps; an annual "
                    "climatology has one (is this a monthly or seasonal file?)")
            t = ds.transform
            if t.is_identity or t.b != 0 or t.d != 0:
                raise HazardDataError(
                    f"{path}: variable {variable!r} is not on a regular longitude/latitude "
                    "grid (GDAL found no geotransform in its lat/lon coordinates)")
            transform = (t.a, t.b, t.c, t.d, t.e, t.f)
            if points is not None:
                r, k, inside = _pixel_index(_grid_info(path, ds.height, ds.width, transform),
                                            *points)
                r0, r1 = (int(r[inside].min()), int(r[inside].max()) + 1) if inside.any() \
                    else (0, 0)
                k0, k1 = (int(k[inside].min()), int(k[inside].max()) + 1) if inside.any() \
                    else (0, 0)
                if (r1 - r0) * (k1 - k0) <= _WINDOW_SHARE * ds.height * ds.width:
                    window = (r0, k0)
            if window is None:
                raw = ds.read(1, masked=False).astype("float32")
            else:
                raw = ds.read(1, window=Window(k0, r0, k1 - k0, r1 - r0),
                              masked=False).astype("float32")
            scale, offset = ds.scales[0], ds.offsets[0]
            nodata = ds.nodata
    except RasterioError as exc:
        raise HazardDataError(
            f"cannot read variable {variable!r} of NetCDF file {path}: {exc}; check that the "
            "file is complete (fetch it again with 'sitescreen data fetch') and names the "
            "variable after the product, as CCKP files do") from exc
    lon_units = ds_tags.get("lon#units", ds_tags.get("longitude#units", ""))
    if lon_units and not lon_units.lower().startswith("degree"):
        raise HazardDataError(f"{path}: longitude is in {lon_units!r}, not degrees east")
    bad = ~np.isfinite(raw) | (np.abs(raw) >= _HUGE)
    missing = tags.get("missing_value")
    for fill in (nodata, _float(missing)):
        if fill is not None and np.isfinite(fill):
            bad |= raw == np.float32(fill)
    values = raw * np.float32(scale) + np.float32(offset) if (scale, offset) != (1.0, 0.0) \
        else raw
    values[bad] = np.nan
    attrs = {k.split("#", 1)[1]: v for k, v in ds_tags.items() if k.startswith("NC_GLOBAL#")}
    log.debug("read %s:%s %s, units %r", path, variable, values.shape, tags.get("units"))
    if window is not None:  # the window's top-left corner is cell (r0, k0) of the grid
        a, b, c, d, e, f = transform
        transform = (a, b, c + k0 * a, d, e, f + r0 * e)
    grid = Grid(path=path, variable=variable, values=values, transform=transform,
                units=tags.get("units"), attrs=attrs)
    if window is None:
        return grid, None
    out = np.full(points[0].shape, np.nan)
    out[inside] = values[r[inside] - r0, k[inside] - k0]
    return grid, out


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def locate_cells(grid: Grid, lon: Any, lat: Any, *, max_km: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each site reads the grid: its own cell when that has data, else the centre of
    the nearest cell with data within ``max_km``.

    Returns the longitude and latitude to read at (NaN where neither has data) and the
    distance in km from the site to that cell's centre (0 for the site's own cell).
    """
    rows, cols = grid.values.shape
    # A tiled GeoTIFF in memory (a copy of a few MB) lets the one raster sampler and its
    # nearest-valid search serve NetCDF too: GDAL's netCDF dataset carries no CRS and is not
    # safe to share between threads.
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": 1,
               "dtype": "float32", "crs": "EPSG:4326", "nodata": float("nan"),
               "transform": rasterio.Affine(*grid.transform[:6]), "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    with MemoryFile() as mem, mem.open(**profile) as ds:
        ds.write(grid.values, 1)
        _, dist, plon, plat = nearest_valid_pixel(ds, lon, lat, max_km=max_km)
    return plon, plat, dist


def grid_values(grid: Grid, lon: Any, lat: Any) -> np.ndarray:
    """Value (file units, float64) of the cell holding each point; NaN outside and at no
    data. Longitudes are wrapped into a global grid's range (0..360 or -180..180)."""
    x, y = (np.asarray(v, dtype="float64").ravel() for v in (lon, lat))
    rows, cols = grid.values.shape
    r, k, inside = _pixel_index(_grid_info(grid.path, rows, cols, grid.transform), x, y)
    out = np.full(x.shape, np.nan)
    out[inside] = grid.values[r[inside], k[inside]]
    return out


def sample_grid(grid: Grid, lon: Any, lat: Any, *, max_km: float = 0.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Value of the cell holding each site, or of the nearest valid cell within ``max_km``,
    and the distance in km to the cell used (0: the site's own cell; NaN: no data)."""
    plon, plat, dist = locate_cells(grid, lon, lat, max_km=max_km)
    return grid_values(grid, plon, plat), dist
