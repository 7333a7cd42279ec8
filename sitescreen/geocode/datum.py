"""WGS 84 <-> GCJ-02 <-> BD-09, vectorised over numpy arrays.

Chinese map services do not answer in WGS 84: AMap (Gaode) and Tencent use GCJ-02, Baidu uses
BD-09 (GCJ-02 shifted again). The offsets are a few hundred metres, enough to move a site
into the next flood cell, so every coordinate from those services is converted before use.

Method
------
GCJ-02 is the published obfuscation formula on the Krasovsky 1940 ellipsoid
(a = 6378245.0 m, e^2 = 0.00669342162296594323), as implemented in the widely used
coordtransform (wandergis/coordTransform_py) and eviltransform (googollee/eviltransform)
libraries. It is only defined for a rough rectangle around China (lon 72.004-137.8347,
lat 0.8293-55.8271, eviltransform's ``outOfChina``); points outside are returned unchanged.
The rectangle also covers neighbours (Singapore, Seoul, much of South-East Asia), so apply
these conversions only to coordinates a Chinese provider gave for a place in China.
BD-09 adds Baidu's published rotation/offset (x_pi = pi * 3000 / 180) to GCJ-02.

Neither forward transform has a closed-form inverse. The inverses here solve
``forward(x) = y`` by fixed-point iteration ``x <- x - (forward(x) - y)`` until every point
moves less than 1e-9 degrees (about 0.1 mm); the offset field is smooth and its Jacobian close
to the identity, so this converges in a handful of iterations. The common one-step inverse
(``y - delta(y)``) is off by up to a few metres; the iterative one is below 1e-7 degrees.

All functions accept scalars or arrays (broadcast together) and return float64 arrays of the
broadcast shape; NaN stays NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "WGS84",
    "GCJ02",
    "BD09",
    "DATUMS",
    "out_of_china",
    "wgs84_to_gcj02",
    "gcj02_to_wgs84",
    "gcj02_to_bd09",
    "bd09_to_gcj02",
    "wgs84_to_bd09",
    "bd09_to_wgs84",
    "to_wgs84",
]

WGS84 = "WGS84"
GCJ02 = "GCJ-02"
BD09 = "BD-09"
DATUMS = (WGS84, GCJ02, BD09)

_A = 6378245.0  # Krasovsky 1940 semi-major axis, metres
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # Baidu's BD-09 constant
_TOL = 1e-9  # degrees: stop iterating when no point moves more than this
_MAX_ITER = 50


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype="float64"),
                                       np.asarray(lat, dtype="float64"))
    return lon_a.copy(), lat_a.copy()


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """True where GCJ-02 does not apply (outside the rectangle around China, or NaN)."""
    lon_a, lat_a = _arrays(lon, lat)
    with np.errstate(invalid="ignore"):
        inside = (lon_a >= 72.004) & (lon_a <= 137.8347) & (lat_a >= 0.8293) & (lat_a <= 55.8271)
    return ~inside


def _delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS 84 (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    x_pi = x * np.pi
    y_pi = y * np.pi
    common = (20.0 * np.sin(6.0 * x_pi) + 20.0 * np.sin(2.0 * x_pi)) * 2.0 / 3.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x + common
            + (20.0 * np.sin(y_pi) + 40.0 * np.sin(y_pi / 3.0)) * 2.0 / 3.0
            + (160.0 * np.sin(y_pi / 12.0) + 320.0 * np.sin(y_pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x + common
            + (20.0 * np.sin(x_pi) + 40.0 * np.sin(x_pi / 3.0)) * 2.0 / 3.0
            + (150.0 * np.sin(x_pi / 12.0) + 300.0 * np.sin(x_pi / 30.0)) * 2.0 / 3.0)
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 -> GCJ-02 (points outside China unchanged)."""
    lon_a, lat_a = _arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    if inside.any():
        dlon, dlat = _delta(lon_a[inside], lat_a[inside])
        lon_a[inside] += dlon
        lat_a[inside] += dlat
    return lon_a, lat_a


def _invert(forward, target_lon: np.ndarray, target_lat: np.ndarray,
            start_lon: np.ndarray, start_lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``forward(x) = target`` per point by fixed-point iteration from ``start``."""
    x_lon, x_lat = start_lon.copy(), start_lat.copy()
    active = np.isfinite(x_lon) & np.isfinite(x_lat)
    for _ in range(_MAX_ITER):
        if not active.any():
            break
        f_lon, f_lat = forward(x_lon[active], x_lat[active])
        step_lon = f_lon - target_lon[active]
        step_lat = f_lat - target_lat[active]
        x_lon[active] -= step_lon
        x_lat[active] -= step_lat
        moving = (np.abs(step_lon) > _TOL) | (np.abs(step_lat) > _TOL)
        idx = np.flatnonzero(active)
        active[idx[~moving]] = False
    return x_lon, x_lat


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 -> WGS 84, iterative inverse (error < 1e-7 degrees; outside China unchanged)."""
    lon_a, lat_a = _arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    if inside.any():
        glon, glat = lon_a[inside], lat_a[inside]
        lon_a[inside], lat_a[inside] = _invert(wgs84_to_gcj02, glon, glat, glon, glat)
    return lon_a, lat_a


def _gcj_to_bd(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 -> BD-09 (Baidu's published formula; outside China unchanged)."""
    lon_a, lat_a = _arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    if inside.any():
        lon_a[inside], lat_a[inside] = _gcj_to_bd(lon_a[inside], lat_a[inside])
    return lon_a, lat_a


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 -> GCJ-02, iterative inverse of :func:`gcj02_to_bd09` (outside China unchanged).

    Baidu's published one-step inverse is used as the starting point; iterating removes its
    residual of up to about 1e-5 degrees.
    """
    lon_a, lat_a = _arrays(lon, lat)
    inside = ~out_of_china(lon_a, lat_a)
    if inside.any():
        bx, by = lon_a[inside], lat_a[inside]
        x = bx - 0.0065
        y = by - 0.006
        z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
        theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
        # Baidu's one-step inverse is the starting point; iterating removes its residual.
        lon_a[inside], lat_a[inside] = _invert(_gcj_to_bd, bx, by,
                                               z * np.cos(theta), z * np.sin(theta))
    return lon_a, lat_a


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 -> BD-09 (via GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 -> WGS 84 (via GCJ-02, both steps iterative)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon: ArrayLike, lat: ArrayLike, datum: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert from a named datum ("WGS84", "GCJ-02", "BD-09") to WGS 84.

    Raises
    ------
    ValueError
        For an unknown datum name (the message lists the known ones).
    """
    key = datum.upper().replace("_", "-").replace(" ", "")
    if key in ("WGS84", "WGS-84", "EPSG:4326"):
        return _arrays(lon, lat)
    if key in ("GCJ-02", "GCJ02"):
        return gcj02_to_wgs84(lon, lat)
    if key in ("BD-09", "BD09"):
        return bd09_to_wgs84(lon, lat)
    raise ValueError(f"unknown datum {datum!r}; known: {', '.join(DATUMS)}")
