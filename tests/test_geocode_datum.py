"""WGS 84 / GCJ-02 / BD-09 conversions against published reference points.

References
----------
- eviltransform (googollee/eviltransform, ``python/test.py``, ``go/transform_test.go``,
  ``javascript/test.js``): WGS 84 -> GCJ-02 pairs for Shanghai, Shenzhen and Beijing, to be
  matched to 1e-6 degrees; its exact inverse must come back within 0.5 m.
- geoChina R package by Jun Cai (``conv`` documentation): Beijing railway station,
  WGS-84 (39.90105, 116.42079), GCJ-02 (39.90245, 116.42703), BD-09 (39.90851, 116.43351),
  given to 5 decimals (lat, lon order there; lon, lat here).
"""

from __future__ import annotations

import numpy as np
import pytest

from sitescreen.geocode import datum
from sitescreen.geocode.gazetteer import haversine_km

# (wgs lon, wgs lat, gcj lon, gcj lat) from eviltransform's test suites.
EVILTRANSFORM = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),  # Shanghai
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),  # Shenzhen
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),  # Beijing
]
STATION_WGS = (116.42079, 39.90105)
STATION_GCJ = (116.42703, 39.90245)
STATION_BD = (116.43351, 39.90851)


@pytest.mark.parametrize("wlon, wlat, glon, glat", EVILTRANSFORM)
def test_wgs84_to_gcj02_matches_eviltransform(wlon, wlat, glon, glat):
    lon, lat = datum.wgs84_to_gcj02(wlon, wlat)
    assert float(lon) == pytest.approx(glon, abs=1e-6)
    assert float(lat) == pytest.approx(glat, abs=1e-6)


@pytest.mark.parametrize("wlon, wlat, glon, glat", EVILTRANSFORM)
def test_gcj02_to_wgs84_inverts_to_reference(wlon, wlat, glon, glat):
    lon, lat = datum.gcj02_to_wgs84(glon, glat)
    assert haversine_km(lon, lat, wlon, wlat) * 1000 < 0.5
    # and far tighter than the one-step approximation: the fixed point is exact to 1e-7 deg
    assert abs(float(lon) - wlon) < 1e-7 and abs(float(lat) - wlat) < 1e-7


def test_vectorised_matches_scalar():
    w = np.array(EVILTRANSFORM)
    lon, lat = datum.wgs84_to_gcj02(w[:, 0], w[:, 1])
    np.testing.assert_allclose(lon, w[:, 2], atol=1e-6)
    np.testing.assert_allclose(lat, w[:, 3], atol=1e-6)
    assert lon.shape == (3,)


def test_beijing_station_triplet():
    glon, glat = datum.wgs84_to_gcj02(*STATION_WGS)
    assert (float(glon), float(glat)) == pytest.approx(STATION_GCJ, abs=1e-5)
    blon, blat = datum.gcj02_to_bd09(*STATION_GCJ)
    assert (float(blon), float(blat)) == pytest.approx(STATION_BD, abs=1e-5)
    wlon, wlat = datum.bd09_to_wgs84(*STATION_BD)
    # the reference is rounded to 5 decimals (about 1 m)
    assert haversine_km(wlon, wlat, *STATION_WGS) * 1000 < 2.0
    assert datum.to_wgs84(*STATION_BD, "BD-09")[0] == pytest.approx(float(wlon))


def test_offset_is_hundreds_of_metres_in_china():
    lon, lat = datum.wgs84_to_gcj02(121.47, 31.23)
    shift_m = haversine_km(lon, lat, 121.47, 31.23) * 1000
    assert 200 < shift_m < 1000


def test_outside_china_unchanged_and_nan_kept():
    lon, lat = datum.wgs84_to_gcj02([139.69, -0.1, np.nan], [35.69, 51.5, 30.0])
    np.testing.assert_array_equal(lon[:2], [139.69, -0.1])
    np.testing.assert_array_equal(lat[:2], [35.69, 51.5])
    assert np.isnan(lon[2])
    lon, lat = datum.gcj02_to_wgs84([106.85], [-6.2])  # Jakarta: south of the rectangle
    assert (lon[0], lat[0]) == (106.85, -6.2)
    assert datum.out_of_china([106.85, 121.0], [-6.2, 31.0]).tolist() == [True, False]


def test_round_trip_below_one_metre_over_china():
    lon, lat = np.meshgrid(np.linspace(73.0, 135.0, 63), np.linspace(18.0, 53.5, 36))
    lon, lat = lon.ravel(), lat.ravel()
    back = datum.gcj02_to_wgs84(*datum.wgs84_to_gcj02(lon, lat))
    err_m = haversine_km(back[0], back[1], lon, lat) * 1000
    assert err_m.max() < 1.0
    assert np.abs(back[0] - lon).max() < 1e-7 and np.abs(back[1] - lat).max() < 1e-7
    bd_back = datum.bd09_to_wgs84(*datum.wgs84_to_bd09(lon, lat))
    assert (haversine_km(bd_back[0], bd_back[1], lon, lat) * 1000).max() < 1.0


def test_unknown_datum_names_the_known_ones():
    with pytest.raises(ValueError, match="GCJ-02"):
        datum.to_wgs84(1.0, 2.0, "Tokyo")
