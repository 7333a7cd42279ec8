"""The kept gazetteer: arrays read at once, the place index on first use, damage rebuilt.

The kept file is the one this process read its gazetteer from (or one written from it), so
no test pays for a second build: a rebuild after damage returns that same gazetteer (a real
build of this code) through ``_build``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from importlib import metadata

import numpy as np
import pytest

from sitescreen.files import UNUSED_DAYS
from sitescreen.geocode import AddressQuery, OfflineGeocoder, location_flags
from sitescreen.geocode import gazetteer as gazetteer_module
from sitescreen.geocode.gazetteer import Kind, cjk_key, is_cjk, latin_key, load_gazetteer

CITIES = "cities500"


@pytest.fixture(scope="module")
def full():
    gaz = load_gazetteer(CITIES)
    gaz.index  # noqa: B018 - the heavy part, read (or built) once for the whole module
    return gaz


@pytest.fixture(scope="module")
def kept(full, tmp_path_factory):
    """A kept gazetteer file (only read): a copy of the user's, else one written from the
    full one. A copy, because another checkout of other code sharing the cache folder
    replaces the user's file as its own version (its stale-file cleanup)."""
    folder = tmp_path_factory.mktemp("gazetteer")
    path = gazetteer_module.cache_path(CITIES)
    if path is not None and path.is_file():
        try:
            return shutil.copy(path, folder / path.name)
        except OSError:
            pass  # replaced meanwhile: write one
    path = folder / f"gazetteer-x-{CITIES}-y.pickle"
    gazetteer_module._keep(full, path, CITIES)
    return path


def _lazy(path):
    gaz = gazetteer_module._read_kept(path, CITIES)
    assert gaz._lookup is None  # only the arrays, country tables and trees are read
    return gaz


def _geocoder(gaz) -> OfflineGeocoder:
    geocoder = OfflineGeocoder(cities=CITIES)
    geocoder._gaz = gaz
    return geocoder


def test_kept_arrays_are_the_built_ones_and_the_index_is_read_on_first_use(full, kept):
    lazy = _lazy(kept)
    for f in gazetteer_module._LIGHT_FIELDS:
        a, b = getattr(lazy, f), getattr(full, f)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f
        else:
            assert a == b, f
    # The arrays are the place columns, so the checks may use either.
    assert np.array_equal(lazy.lon, np.asarray(full.places.lon), equal_nan=True)
    assert lazy.adcode.tolist() == full.places.adcode
    assert lazy.kind.tolist() == full.places.kind
    pts = (np.array([121.47, 116.84, 36.8, 103.85, np.nan]), np.array([31.23, 40.38, -1.3, 1.29,
                                                                        0.0]))
    for within in ("all", "counties", "CN", "SG"):
        for got, want in zip(lazy.nearest(*pts, within=within), full.nearest(*pts, within=within),
                             strict=True):
            assert np.array_equal(got, want), within
    assert lazy._lookup is None
    assert lazy.lookup("shanghai") == full.lookup("shanghai") != ()
    assert lazy._lookup is not None and lazy._kept is None  # read, and the file let go
    got, want = lazy.places.columns(), full.places.columns()
    for f in ("lon", "lat"):  # countries without places have NaN, which is not == NaN
        assert np.array_equal(got.pop(f), want.pop(f), equal_nan=True)
    assert got == want
    assert lazy.ancestors(lazy.lookup("xuhui")[0]) == full.ancestors(full.lookup("xuhui")[0])


def test_country_code_without_the_index_is_the_index_answer(full, kept):
    lazy = _lazy(kept)

    def by_index(text: str) -> str | None:  # the rule country_code followed before
        code = text.strip().upper()
        if code in full.country_uid:
            return code
        key = cjk_key(text) if is_cjk(text) else latin_key(text)
        for uid in full.index.get(key, ()):
            if full.places.kind[uid] == Kind.COUNTRY:
                return full.places.country[uid]
        return None

    texts = ["CN", " cn ", "China", "中国", "People's Republic of China", "Hong Kong",
             "hong kong sar", "香港", "UK", "England", "United States", "USA", "Korea",
             "South Korea", "Japan", "日本", "Shanghai", "Atlantis", "", "ZZ", "CHN"]
    texts += [full.places.name[u] for u in full.country_uid.values()]
    assert [lazy.country_code(t) for t in texts] == [by_index(t) for t in texts]
    assert lazy._lookup is None


# Far from its city, swapped, outside the stated country, inside a Chinese municipality far
# from its centre, a SAR stated as China, unknown country and city, cities written
# differently, places abroad.
_SITES = [  # lon, lat, country, city
    (118.80, 32.06, "CN", "Shanghai"), (121.45, 31.22, "CN", "shanghai"),
    (31.23, 121.47, "CN", ""), (28.6, 77.2, "IN", "Delhi"), (36.8, -1.3, "CN", "Nanjing"),
    (116.84, 40.38, "CN", "Beijing"), (116.84, 40.38, "CN", "Tianjin"),
    (106.2, 29.0, "China", "Chongqing"), (114.17, 22.32, "CN", "Hong Kong"),
    (114.17, 22.32, "HK", "Kowloon"), (103.85, 1.29, "SG", "Singapore"),
    (121.47, 31.23, "ZZ", "Shanghai"), (121.47, 31.23, "CN", "Atlantis"),
    (139.69, 35.69, "JP", "Tokyo"), (135.50, 34.69, "JP", "Tokyo"),
    (120.62, 31.30, "CN", "苏州"), (121.47, 31.23, "", "Shanghai"), (0.0, 0.0, "CN", "Shanghai"),
    (150.0, 20.0, "JP", ""), (np.nan, 31.0, "CN", "Shanghai"), (113.26, 23.13, "CN", "Canton"),
]


def test_flags_from_the_arrays_and_the_city_memo_equal_a_fully_loaded_gazetteer(full, kept):
    lon, lat, country, city = (list(c) for c in zip(*_SITES, strict=True))
    resolved: dict[tuple[str, str], int] = {}
    want = location_flags(lon, lat, country=country, city=city,
                          geocoder=_geocoder(full), resolved=resolved)
    assert ("far_from_city",) in want and ("invalid_range", "swapped_lat_lon") in want
    assert ("outside_country",) in want and ("unknown_country",) in want
    assert want[5] == () and want[6] == ("far_from_city",)  # Miyun: in Beijing, not Tianjin
    assert resolved[("shanghai", "CN")] >= 0 and resolved[("atlantis", "CN")] == -1
    # Cities placed before: the checks read no name index at all.
    lazy = _lazy(kept)
    assert location_flags(lon, lat, country=country, city=city, geocoder=_geocoder(lazy),
                          resolved=dict(resolved)) == want
    assert lazy._lookup is None
    # Without the memo the cities are placed again, through the index read on demand.
    lazy = _lazy(kept)
    again: dict[tuple[str, str], int] = {}
    assert location_flags(lon, lat, country=country, city=city, geocoder=_geocoder(lazy),
                          resolved=again) == want
    assert again == resolved and lazy._lookup is not None


def test_geocoding_with_a_kept_gazetteer_is_unchanged(full, kept):
    queries = [AddressQuery("1900 Hongmei Road, Xuhui District, Shanghai", "", "CN"),
               AddressQuery("上海市浦东新区临港新片区", "", ""),
               AddressQuery("", "Suzhou", "CN"), AddressQuery("Kyoto office", "", "JP"),
               AddressQuery("Honggutan, Nanchang", "", "CN"), AddressQuery("神秘园", "", "CN")]
    lazy = _geocoder(_lazy(kept))
    plain = _geocoder(full)
    assert [lazy.geocode(q) for q in queries] == [plain.geocode(q) for q in queries]


def _kept_at_cache_path(full, kept, tmp_path, monkeypatch):
    monkeypatch.setenv("SITESCREEN_GAZETTEER_CACHE", str(tmp_path))
    path = gazetteer_module.cache_path(CITIES)
    shutil.copyfile(kept, path)
    builds: list[str] = []

    def build(cities):  # a rebuild gives what the build of this code gives: ``full``
        builds.append(cities)
        return full

    monkeypatch.setattr(gazetteer_module, "_build", build)
    return path, builds


def test_a_truncated_kept_gazetteer_is_rebuilt_with_a_warning(full, kept, tmp_path, monkeypatch,
                                                              caplog):
    path, builds = _kept_at_cache_path(full, kept, tmp_path, monkeypatch)
    assert metadata.version("scipy") in path.name  # its KD-trees are kept: an upgrade rebuilds
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 1000])
    # Other versions' files: one unread for longer than STALE_DAYS, one in use (another
    # checkout's current file, read yesterday: it must not be deleted and rebuilt there).
    stale = path.with_name(f"gazetteer-1-{CITIES}-old.pickle")
    stale.write_bytes(b"old")
    in_use = path.with_name(f"gazetteer-1-{CITIES}-other.pickle")
    in_use.write_bytes(b"other")
    day = 86400
    os.utime(stale, (time.time() - (UNUSED_DAYS + 1) * day,) * 2)
    os.utime(in_use, (time.time() - day,) * 2)
    with caplog.at_level(logging.WARNING, logger=gazetteer_module.__name__):
        gaz = gazetteer_module._load_or_build(CITIES)
    assert gaz is full and builds == [CITIES]
    assert "unreadable gazetteer cache" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, in_use.name])
    in_use.unlink()
    again = gazetteer_module._load_or_build(CITIES)  # kept again, whole: read, not rebuilt
    assert again._lookup is None and builds == [CITIES]
    assert again.lookup("xuhui") == full.lookup("xuhui") and builds == [CITIES]
    monkeypatch.setenv("SITESCREEN_GAZETTEER_CACHE", "off")
    path.unlink()
    assert gazetteer_module._load_or_build(CITIES) is full and builds == [CITIES] * 2
    assert not list(tmp_path.iterdir())


def test_reading_a_kept_gazetteer_marks_it_used_at_most_once_a_day(full, kept, tmp_path,
                                                                   monkeypatch):
    """So that another version's cleanup (unread for STALE_DAYS days) never deletes it."""
    path, builds = _kept_at_cache_path(full, kept, tmp_path, monkeypatch)
    long_ago = time.time() - (UNUSED_DAYS + 1) * 86400
    os.utime(path, (long_ago, long_ago))
    gazetteer_module._read_kept(path, CITIES)
    marked = path.stat().st_mtime
    assert marked > time.time() - 60
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    gazetteer_module._read_kept(path, CITIES)  # read within the day: not written again
    assert path.stat().st_mtime == pytest.approx(hour_ago) and not builds


def test_a_damaged_place_index_is_rebuilt_when_first_needed(full, kept, tmp_path, monkeypatch,
                                                            caplog):
    path, builds = _kept_at_cache_path(full, kept, tmp_path, monkeypatch)
    whole = bytearray(path.read_bytes())
    whole[-5000] ^= 0xFF  # inside the heavy part: the arrays still read
    path.write_bytes(bytes(whole))
    gaz = gazetteer_module._load_or_build(CITIES)
    assert gaz._lookup is None and not builds
    assert gaz.country_code("China") == "CN" and not builds
    with caplog.at_level(logging.WARNING, logger=gazetteer_module.__name__):
        assert gaz.lookup("shanghai") == full.lookup("shanghai")
    assert builds == [CITIES] and "damaged" in caplog.text
    fresh = gazetteer_module._load_or_build(CITIES)  # the file was kept again, undamaged
    assert fresh.lookup("xuhui") == full.lookup("xuhui") and builds == [CITIES]
