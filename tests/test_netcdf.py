"""Tests of sitescreen.netcdf on small NetCDF files written in the CCKP upstream layout.

The files are global 0.25-degree grids (721 x 1440, as upstream) with data in a few cells
only; NetCDF-4 through h5netcdf (the synthetic writer), and one classic-format file through
scipy, read back through GDAL's netCDF driver.
"""

from __future__ import annotations

import numpy as np
import pytest

from sitescreen.errors import HazardDataError
from sitescreen.netcdf import convert_units, data_variable, read_grid, sample_grid
from sitescreen.synthetic.cckp import write_cckp_file

NAME = "climatology-hd35-annual-mean_cmip6-x0.25_ensemble-all-ssp585_climatology_median_2040-2059.nc"

# A 3 x 3 block of cells around Shanghai, rows south to north: cell centres 121.25..121.75 E,
# 31.0..31.5 N. The north-east cell is sea (NaN).
BLOCK = np.array([[10.0, 11.0, 12.0],
                  [13.0, 14.0, 15.0],
                  [16.0, 17.0, np.nan]])


def _write(tmp_path, name=NAME, **kwargs):
    options = {"variable": "hd35", "run": "ssp585", "percentile": "median",
               "period": "2040-2059", "patches": [(121.25, 31.0, BLOCK)], "units": "days"}
    options.update(kwargs)
    return str(write_cckp_file(tmp_path / name, **options))


def test_a_cckp_file_reads_with_its_units_and_labels(tmp_path):
    grid = read_grid(_write(tmp_path))

    assert grid.variable == "climatology-hd35-annual-mean" == data_variable(NAME)
    assert grid.values.shape == (721, 1440) and grid.values.dtype == np.float32
    assert grid.units == "days"
    assert grid.attrs["wb_variable_label"] == "hd35" and grid.attrs["wb_period_label"] == "2040-2059"
    assert grid.lon_range == pytest.approx((-180.125, 179.875))
    # The fill value (1e20) everywhere else is no data, not a huge number of days.
    assert np.isnan(grid.values).sum() == 721 * 1440 - 8


def test_sampling_takes_the_cell_holding_each_site(tmp_path):
    grid = read_grid(_write(tmp_path))
    # Cell (31.25 N, 121.5 E) spans 121.375-121.625 E x 31.125-31.375 N; the others are its
    # western and southern neighbours; a point far away is no data.
    values, dist = sample_grid(grid, np.array([121.47, 121.30, 121.60, 100.0]),
                               np.array([31.23, 31.23, 31.01, 10.0]))
    assert values[:3].tolist() == [14.0, 13.0, 11.0]
    assert dist[:3].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(values[3]) and np.isnan(dist[3])


def test_day_counts_are_numbers_not_timedeltas(tmp_path):
    grid = read_grid(_write(tmp_path, patches=[(121.25, 31.0, np.array([[12.5]]))]))
    values, _ = sample_grid(grid, np.array([121.25]), np.array([31.0]))
    assert values.dtype == np.float64 and values.tolist() == [12.5]


def test_a_0_to_360_grid_serves_sites_given_in_minus_180_to_180(tmp_path):
    # The same cells written on a 0..360 longitude axis, plus one cell west of Greenwich.
    path = _write(tmp_path, lon_start=0.0,
                  patches=[(121.25, 31.0, BLOCK), (-0.25, 51.5, np.array([[3.0]]))])
    grid = read_grid(path)
    assert grid.lon_range == pytest.approx((-0.125, 359.875))
    values, _ = sample_grid(grid, np.array([121.47, -0.2, 359.8]), np.array([31.23, 51.5, 51.5]))
    assert values.tolist() == [14.0, 3.0, 3.0]


def test_a_sea_cell_takes_the_nearest_land_cell_within_the_distance(tmp_path):
    grid = read_grid(_write(tmp_path))
    site = (np.array([121.74]), np.array([31.49]))  # in the sea cell (31.5 N, 121.75 E)

    values, dist = sample_grid(grid, *site, max_km=30.0)
    # Its neighbours: 17 (31.5 N, 121.5 E), 0.24 deg x 111.2 km x cos(31.5) = 22.8 km west
    # (and 0.01 deg = 1.1 km north); 15 (31.25 N, 121.75 E), 0.24 x 111.2 = 26.7 km south.
    # The nearer one wins.
    assert values.tolist() == [17.0]
    assert dist[0] == pytest.approx(22.8, abs=0.1)

    values, dist = sample_grid(grid, *site, max_km=20.0)  # no land cell within 20 km
    assert np.isnan(values[0]) and np.isnan(dist[0])


def test_a_missing_unit_is_refused(tmp_path):
    grid = read_grid(_write(tmp_path, units=None))
    assert grid.units is None
    with pytest.raises(HazardDataError, match="no 'units' attribute"):
        convert_units(grid.values, grid.units, "days", source=NAME)


@pytest.mark.parametrize("units, quantity", [("hours", "days"), ("degree days", "degree_days"),
                                             ("days", "degree_days"), ("degC", "degree_days")])
def test_an_unknown_or_ambiguous_unit_is_refused(units, quantity):
    with pytest.raises(HazardDataError, match="not a known unit"):
        convert_units(np.array([1.0]), units, quantity, source="x.nc")


def test_degree_days_in_fahrenheit_are_converted_to_celsius(tmp_path):
    name = NAME.replace("hd35", "cdd65")
    grid = read_grid(_write(tmp_path, name=name, variable="cdd65", units="degF days",
                            patches=[(121.25, 31.0, np.array([[1800.0, 900.0]]))]))
    values, _ = sample_grid(grid, np.array([121.25, 121.5]), np.array([31.0, 31.0]))
    converted, factor, reported = convert_units(values, grid.units, "degree_days", source=name)
    assert converted.tolist() == pytest.approx([1000.0, 500.0])
    assert factor == pytest.approx(5 / 9) and reported == "C-days per year"
    same, factor, _ = convert_units(values, "°C·days", "degree_days", source=name)
    assert same.tolist() == [1800.0, 900.0] and factor == 1.0


def test_a_classic_format_file_reads_too(tmp_path):
    from scipy.io import netcdf_file

    path = tmp_path / NAME
    with netcdf_file(path, "w", version=2) as f:
        for dim, n in (("time", 1), ("lat", 721), ("lon", 1440), ("bnds", 2)):
            f.createDimension(dim, n)
        lat = f.createVariable("lat", "f4", ("lat",))
        lat[:] = np.linspace(-90, 90, 721)
        lat.units = "degrees_north"
        lon = f.createVariable("lon", "f4", ("lon",))
        lon[:] = -180 + 0.25 * np.arange(1440)
        lon.units = "degrees_east"
        var = f.createVariable("climatology-hd35-annual-mean", "f4", ("time", "lat", "lon"))
        data = np.full((1, 721, 1440), 1e20, dtype="f4")
        data[0, 484, 1206] = 7.0  # 31.0 N, 121.5 E
        var[:] = data
        var.units = "days"
        var._FillValue = np.float32(1e20)
    grid = read_grid(str(path))
    values, _ = sample_grid(grid, np.array([121.5]), np.array([31.0]))
    assert values.tolist() == [7.0] and grid.units == "days"


def test_a_file_without_the_variable_is_a_clear_error(tmp_path):
    path = _write(tmp_path)
    with pytest.raises(HazardDataError, match="climatology-tr-annual-mean"):
        read_grid(path, "climatology-tr-annual-mean")


def test_the_module_examples_hold():
    import doctest

    import sitescreen.netcdf

    assert doctest.testmod(sitescreen.netcdf).failed == 0


@pytest.mark.parametrize("lon_start", [-180.0, 0.0])
def test_a_few_points_read_only_their_window_and_agree_with_the_whole_grid(tmp_path, lon_start):
    from sitescreen import netcdf

    path = _write(tmp_path, lon_start=lon_start,
                  patches=[(121.25, 31.0, BLOCK), (-0.25, 51.5, np.array([[3.0]]))])
    shanghai = (np.array([121.47, 121.30, 121.74, np.nan, 121.74]),
                np.array([31.23, 31.23, 31.26, 31.0, 31.49]))
    greenwich = (np.array([-0.2, 359.8]), np.array([51.5, 51.5]))  # one cell, wrapped
    spread = (np.array([121.47, -179.9, 179.9, 100.0]), np.array([31.23, -89.9, 89.9, 10.0]))
    for (lon, lat), windowed in ((shanghai, True), (greenwich, True), (spread, False)):
        netcdf._CACHE.clear()
        values, units, attrs = netcdf.read_points(path, lon, lat)
        assert len(netcdf._CACHE) == (0 if windowed else 1)  # a window is not kept
        grid = read_grid(path)
        np.testing.assert_array_equal(values, netcdf.grid_values(grid, lon, lat))
        assert (units, attrs) == (grid.units, grid.attrs)
    netcdf._CACHE.clear()
    values = netcdf.read_points(path, *shanghai)[0]
    assert values[:3].tolist() == [14.0, 13.0, 15.0] and np.isnan(values[3:]).all()
    assert netcdf.read_points(path, *greenwich)[0].tolist() == [3.0, 3.0]


@pytest.mark.parametrize("lon_start", [-180.0, 0.0])
def test_a_window_read_for_a_few_points_carries_the_window_s_own_transform(tmp_path, lon_start):
    """The window's values and transform agree: each of its cells, placed by its transform,
    is the same cell of the whole grid (the window's values with the whole grid's transform
    would put Shanghai's cells at the grid's north-west corner)."""
    from sitescreen import netcdf

    path = _write(tmp_path, lon_start=lon_start)
    lon, lat = np.array([121.30, 121.74]), np.array([31.01, 31.49])
    window, values = netcdf._read(path, data_variable(NAME), points=(lon, lat))
    assert values is not None and window.values.shape == (3, 3)  # windowed, the BLOCK cells
    whole = read_grid(path)
    rows, cols = np.indices(window.values.shape)
    a, _, c, _, e, f = window.transform
    centre_lon, centre_lat = c + (cols.ravel() + 0.5) * a, f + (rows.ravel() + 0.5) * e
    np.testing.assert_array_equal(window.values.ravel(),
                                  netcdf.grid_values(whole, centre_lon, centre_lat))
    assert np.isfinite(window.values).sum() == 8  # the block's land cells, all inside
    np.testing.assert_array_equal(values, netcdf.grid_values(window, lon, lat))
