"""Plausibility flags on final coordinates."""

from __future__ import annotations

import numpy as np

from sitescreen.geocode import LocationFlag, location_flags
from sitescreen.geocode.checks import outside_country

NAN = float("nan")


def test_null_island_missing_and_out_of_range():
    flags = location_flags([0.0, NAN, 200.0], [0.0, 31.0, 10.0])
    assert flags == [("null_island",), ("no_coordinates",), ("invalid_range",)]


def test_swapped_coordinates_are_recognised():
    # Shanghai written as lon=31.23, lat=121.47 (lat out of range): swapped it is in China
    flags = location_flags([31.23, 103.85], [121.47, 1.29], country=["CN", "SG"])
    assert flags[0] == ("invalid_range", "swapped_lat_lon")
    assert flags[1] == ()
    # Nairobi (36.8, -1.3) stated as China: outside, and (-1.3, 36.8) is not in China either
    assert location_flags([36.8], [-1.3], country=["CN"]) == [("outside_country",)]


def test_swap_into_stated_country_when_both_orders_are_valid():
    # Delhi (lon 77.2, lat 28.6) written the other way round: (28.6, 77.2) is a valid point in
    # the Arctic, outside India; swapped back it is in India.
    assert location_flags([28.6], [77.2], country=["IN"]) == [
        ("swapped_lat_lon", "outside_country")]
    # Suez (32.55, 29.97) stated as Saudi Arabia: outside, and swapping does not help
    assert location_flags([32.55], [29.97], country=["SA"]) == [("outside_country",)]


def test_outside_country_vectorised():
    lon = np.array([121.47, 139.69, 114.17, 150.0])
    lat = np.array([31.23, 35.69, 22.32, 20.0])  # Shanghai, Tokyo, Hong Kong, Pacific
    assert outside_country(lon, lat, "CN").tolist() == [False, True, False, True]
    assert outside_country(lon, lat, "JP").tolist() == [True, False, True, True]


def test_far_from_city():
    flags = location_flags([118.80, 121.45], [32.06, 31.22], country=["CN", "CN"],
                           city=["Shanghai", "Shanghai"])
    assert flags == [("far_from_city",), ()]  # Nanjing is 270 km from Shanghai


def test_large_municipality_is_not_far_from_itself():
    # Miyun district seat, about 70 km from central Beijing but inside Beijing municipality
    flags = location_flags([116.84], [40.38], country=["CN"], city=["Beijing"], far_km=50)
    assert flags == [()]
    assert location_flags([116.84], [40.38], country=["CN"], city=["Tianjin"]) == [
        ("far_from_city",)]


def test_unknown_country_and_unknown_city_are_not_guessed():
    flags = location_flags([121.47, 121.47], [31.23, 31.23], country=["ZZ", "CN"],
                           city=["", "Atlantis"])
    assert flags == [("unknown_country",), ()]
    assert LocationFlag.SWAPPED.value == "swapped_lat_lon"
