"""Plausibility flags on final coordinates."""

from __future__ import annotations

from pathlib import Path

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


def test_flag_memo_checks_only_new_sites_and_gives_the_same_flags(tmp_path, monkeypatch):
    from sitescreen.geocode import checks

    lon = np.array([31.23, 103.85, 36.8, 0.0, NAN, 121.47, 121.47])
    lat = np.array([121.47, 1.29, -1.3, 0.0, 31.0, 31.23, 31.23])
    country = ["CN", "SG", "CN", "", "CN", "CN", "JP"]
    city = ["", "", "", "", "Shanghai", "Beijing", "Shanghai"]
    plain = ["; ".join(f) for f in location_flags(lon, lat, country=country, city=city)]
    checked: list[int] = []
    real = checks.location_flags

    def spy(lon, lat, **kw):
        checked.append(len(lon))
        return real(lon, lat, **kw)

    monkeypatch.setattr(checks, "location_flags", spy)
    first = checks.FlagMemo(tmp_path).flags(lon, lat, country, city)
    assert first.tolist() == plain and checked == [7]
    assert "far_from_city" in plain[5] and "outside_country" in plain[6]
    again = checks.FlagMemo(tmp_path).flags(lon, lat, country, city)
    assert again.tolist() == plain and checked == [7]  # all from the memo
    # A moved site and a changed stated city are checked again; the rest are not.
    lon2, city2 = lon.copy(), list(city)
    lon2[1], city2[6] = 77.2, "Tokyo"
    moved = checks.FlagMemo(tmp_path).flags(lon2, lat, country, city2)
    assert checked == [7, 2]
    assert moved.tolist() == ["; ".join(f) for f in real(lon2, lat, country=country, city=city2)]
    assert moved[1] == "outside_country" and moved[6] == "outside_country; far_from_city"
    # Other settings are another memo.
    assert checks.FlagMemo(tmp_path, far_km=10.0).path != checks.FlagMemo(tmp_path).path


def test_flag_memo_keeps_nothing_without_a_kept_gazetteer(tmp_path, monkeypatch):
    from sitescreen.geocode import checks

    monkeypatch.setenv("SITESCREEN_GAZETTEER_CACHE", "off")
    memo = checks.FlagMemo(tmp_path)
    assert memo.path is None
    assert memo.flags(np.array([0.0]), np.array([0.0]), [""], [""]).tolist() == ["null_island"]
    assert not list(tmp_path.iterdir())


def test_flag_memo_keeps_the_stated_cities_it_placed(tmp_path, monkeypatch, caplog):
    from sitescreen.geocode import OfflineGeocoder, checks

    lon, lat = np.array([118.80, 121.45, 116.84]), np.array([32.06, 31.22, 40.38])
    country, city = ["CN", "CN", "CN"], ["Shanghai", "Shanghai", "Beijing"]
    memo = checks.FlagMemo(tmp_path)
    assert memo.flags(lon, lat, country, city).tolist() == ["far_from_city", "", ""]
    placed = memo._read_cities()
    assert set(placed) == {("shanghai", "CN"), ("beijing", "CN")}
    assert min(placed.values()) >= 0
    # New sites in those cities: no city is placed again (the resolver is not called).
    calls: list[object] = []
    geocoder = OfflineGeocoder()
    real = geocoder.resolve
    monkeypatch.setattr(geocoder, "resolve", lambda q: calls.append(q) or real(q))
    new = checks.FlagMemo(tmp_path, geocoder=geocoder).flags(lon + 0.01, lat, country, city)
    assert not calls
    assert new.tolist() == ["; ".join(f) for f in location_flags(lon + 0.01, lat,
                                                                 country=country, city=city)]
    # Another geocoder setting is another memo (as is a change of code); distances are not.
    assert checks.FlagMemo(tmp_path, geocoder=OfflineGeocoder(dominance=5.0)).cities_path != \
        memo.cities_path
    assert checks.FlagMemo(tmp_path, far_km=10.0).cities_path == memo.cities_path
    # A damaged memo is ignored with a warning and the cities placed again.
    memo.cities_path.write_bytes(b"[[\"shanghai\", ")
    with caplog.at_level("WARNING"):
        again = checks.FlagMemo(tmp_path, geocoder=geocoder).flags(lon - 0.01, lat, country,
                                                                    city)
    assert "unreadable" in caplog.text and len(calls) == 2
    assert again.tolist() == ["; ".join(f) for f in location_flags(lon - 0.01, lat,
                                                                   country=country, city=city)]
    assert memo._read_cities() == placed


def test_flag_memo_is_named_after_the_text_and_distance_code_too(tmp_path, monkeypatch):
    """A change of ``normalise_text`` (the stated city's key) or ``haversine_km`` (the
    distances) starts a new memo, as a change of the checks does."""
    from sitescreen import geodesy
    from sitescreen.geocode import checks, model

    before = checks.FlagMemo(tmp_path)
    assert checks.FlagMemo(tmp_path).path == before.path  # one name per process and settings
    for module in (model, geodesy):
        changed = tmp_path / f"changed_{module.__name__.rsplit('.', 1)[1]}.py"
        changed.write_bytes(Path(module.__file__).read_bytes() + b"\n# another version\n")
        monkeypatch.setattr(module, "__file__", str(changed))
        checks._code_fingerprint.cache_clear()
        memo = checks.FlagMemo(tmp_path)
        assert memo.path != before.path and memo.cities_path != before.cities_path
        monkeypatch.undo()
        checks._code_fingerprint.cache_clear()
    assert checks.FlagMemo(tmp_path).path == before.path
