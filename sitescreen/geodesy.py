"""Distances on the Earth: one sphere (the IUGG mean radius) and one haversine for every module."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["EARTH_RADIUS_KM", "KM_PER_DEGREE", "haversine_km", "km_between"]

#: IUGG mean Earth radius, km.
EARTH_RADIUS_KM = 6371.0088
#: Length of one degree of a great circle, km.
KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180.0


def haversine_km(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    """Great-circle distance in km between points (degrees); numpy-vectorised and broadcast.

    >>> round(float(haversine_km(0, 0, 1, 0)), 3)
    111.195
    """
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype="float64"))
                              for v in (lon1, lat1, lon2, lat2))
    h = (np.sin((lat2 - lat1) / 2) ** 2
         + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def km_between(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Scalar :func:`haversine_km` without numpy overhead, for inner loops."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))
