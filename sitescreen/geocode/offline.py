"""Offline geocoder: parse an address into place names and resolve them in the gazetteer.

Method
------
1. The address (and the site's city, a second source of context) is split at commas and
   similar separators. Latin text is matched word n-gram by n-gram, longest first, against
   normalised names ("Xuhui District" -> key "xuhuidistrict"); Chinese text is scanned for the
   longest known name at each position ("上海市浦东新区临港新片区" -> 上海市, 浦东新区, 临港).
   A name followed by a street word ("Hongmei Road", "虹梅路") is a street, not a place.
   Generic single words ("park", "tower", "new") never match on their own.
2. Each match (a *mention*) has candidate places, narrowed to the site's country when known
   (China also admits Hong Kong, Macau and Taiwan, which cpca lists as provinces).
3. A candidate's *support* is the number of mentions that name it or a unit that may contain
   it (code prefixes for Chinese units; province and nearby counties for GeoNames places in
   China; a larger place nearby in the same country elsewhere). The best-supported candidates
   win, and among nested winners of one mention the larger unit (the text "Hong Kong" means
   the SAR, not a district that GeoNames also calls Hong Kong).
4. One winner: status "ok", at the finest unit the address supports (district beats city
   beats province). Several unrelated winners: the most important (population, or rank of
   the administrative level) is taken only when it is at least ``dominance`` times as
   important as the next, and the others are listed in ``candidates`` and the reason; else
   the status is "ambiguous" with every candidate listed. Nothing is ever picked silently.

Street and house-number detail cannot be placed offline: such an address resolves to its
district or city, with precision saying so and a reason naming the part that was not used.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from sitescreen.geocode import gazetteer as gazetteer_module
from sitescreen.geocode.gazetteer import (
    CITY_PROVINCES,
    CITY_STATES,
    GAZETTEER_VERSION,
    GREATER_CHINA,
    Gazetteer,
    Kind,
    km_between,
    latin_key,
    load_gazetteer,
)
from sitescreen.geocode.model import AddressQuery, GeocodeResult, Precision

__all__ = ["OfflineGeocoder", "Resolution"]

_SEPARATORS = re.compile(r"[,;，、；|/\\()\[\]（）【】\n\t]+")
_CJK_RUN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff"
_TOKENS = re.compile(
    f"(?P<cjk>[{_CJK_RUN}]+)|(?P<word>[0-9A-Za-z\u00c0-\u024f\u1e00-\u1eff'’.\\-]+)")
_DIGIT = re.compile(r"\d")
_DIGITS = re.compile(r"\d+")

# Words after a name that make it a street ("Hongmei Road", "Nanjing Lu").
_STREET_WORDS = frozenset({
    "road", "rd", "street", "st", "avenue", "ave", "av", "lane", "ln", "boulevard", "blvd",
    "highway", "hwy", "expressway", "drive", "dr", "way", "alley", "lu", "jie", "dajie",
    "dadao", "hutong", "nonglu", "gonglu",
})
_DIRECTIONS = frozenset({"east", "west", "north", "south", "middle", "central", "upper", "lower",
                         "dong", "xi", "nan", "bei", "zhong"})
_CJK_STREET = ("大道", "大街", "胡同", "公路", "路", "街", "巷", "弄", "号", "道")
# Words that never match a place on their own (they still may inside a longer name).
_GENERIC = frozenset({
    "road", "street", "district", "city", "province", "county", "new", "area", "zone",
    "park", "building", "bldg", "tower", "floor", "room", "unit", "block", "center", "centre",
    "plaza", "square", "garden", "gardens", "industrial", "science", "technology", "tech",
    "high", "development", "economic", "international", "data", "cloud", "office", "campus",
    "free", "trade", "port", "station", "north", "south", "east", "west", "central", "middle",
    "upper", "lower", "town", "village", "lane", "avenue", "number", "phase", "estate",
    "house", "hall", "court", "place", "the", "and", "near", "next", "opposite", "airport",
    "bay", "hill", "island", "lake", "river", "mountain", "sar", "region", "prefecture",
    "level", "suite", "wing", "gate", "pilot", "base", "hub", "headquarters", "research", "institute", "university",
    "school", "hospital", "hotel", "mall", "market", "computing", "intelligence", "ai",
    "innovation", "valley", "software", "group", "company", "limited", "ltd", "co", "inc",
})
# Country words in an address are the query's country, not a place to match.
_COUNTRY_WORDS = frozenset({"china", "prc", "mainland", "hongkong", "singapore", "japan"})
# Building detail in Chinese addresses (floor, room, block): not a place, never "unmatched".
_CJK_BUILDING = "楼层室座栋幢单元期号大厦中心广场"
_MAX_WORDS = 6  # longest Latin name in words ("Hong Kong Special Administrative Region")
_MAX_CJK = 12  # longest Chinese name in characters
_MAX_CANDIDATES = 60  # per mention; the index is ordered by importance
_MAX_SCAN = 2000  # namesakes looked at per mention when filtering by country
_NEAR_DUPLICATE_KM = 5.0
_MEMO_SIZE = 50_000  # parsed address parts kept per geocoder
_BASE_CONFIDENCE = {Precision.DISTRICT: 0.8, Precision.CITY: 0.7, Precision.PROVINCE: 0.4,
                    Precision.COUNTRY: 0.2}


@dataclass(frozen=True, slots=True)
class _Mention:
    text: str
    key: str
    source: str  # "address", "city" or "name"
    cands: tuple[int, ...]


@dataclass(slots=True)
class Resolution:
    """What the resolver found, before it becomes a :class:`GeocodeResult`."""

    status: str
    uid: int = -1
    precision: Precision = Precision.NONE
    confidence: float = 0.0
    candidates: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reason: str = ""


def _edits(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def _radius_km(population: int) -> float:
    """How far from a place's point its area may reach (km), by population.

    10 km for a town of 10,000, +10 km per tenfold population, at most 60 km: a rough
    stand-in for city boundaries, used to tell whether a smaller place lies in a larger one.
    """
    return min(60.0, 10.0 + 10.0 * math.log10(max(population, 10_000) / 10_000))


@functools.cache
def _code_hash() -> str:
    """Short hash of the matching code and the gazetteer builder (once per process)."""
    digest = hashlib.sha256()
    for module in (__file__, gazetteer_module.__file__, gazetteer_module.ZONES_FILE):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:8]


class OfflineGeocoder:
    """Geocoder that needs no network: GeoNames and cpca gazetteers (see module docstring).

    Parameters
    ----------
    cities : GeoNames city file ("cities500" default; see
        :func:`~sitescreen.geocode.gazetteer.load_gazetteer`).
    dominance : how many times more important the first of several unrelated namesakes must
        be to be taken (10: a city of 4 million over a county of 200,000); below that the
        result is "ambiguous".

    The gazetteer is loaded on the first lookup, not at construction.
    """

    name = "offline"

    def __init__(self, *, cities: str = "cities500", dominance: float = 10.0) -> None:
        self.cities = cities
        self.dominance = float(dominance)
        self._gaz: Gazetteer | None = None
        self._memo: dict[tuple, tuple[tuple[_Mention, ...], bool]] = {}

    @property
    def version(self) -> str:
        """Changes whenever results may change (settings, gazetteer, this code), so cached
        offline answers are redone after an upgrade."""
        return f"{GAZETTEER_VERSION}-{self.cities}-d{self.dominance:g}-{_code_hash()}"

    @property
    def gazetteer(self) -> Gazetteer:
        if self._gaz is None:
            self._gaz = load_gazetteer(self.cities)
        return self._gaz

    def __repr__(self) -> str:
        return f"OfflineGeocoder(cities={self.cities!r}, dominance={self.dominance:g})"

    # ----------------------------------------------------------------------------- public
    def geocode(self, query: AddressQuery) -> GeocodeResult:
        """Resolve one query; never raises for a bad address (the result says why)."""
        res = self.resolve(query)
        gaz = self.gazetteer
        text = query.text
        cand_labels = tuple(self._describe(u) for u in res.candidates)
        if res.status != "ok":
            return GeocodeResult(status=res.status, provider=self.name, query=text,
                                 candidates=cand_labels, reason=res.reason)
        p = gaz.places
        return GeocodeResult(
            status="ok", lon=p.lon[res.uid], lat=p.lat[res.uid], provider=self.name,
            precision=res.precision, confidence=res.confidence, datum="WGS84", query=text,
            matched=p.label[res.uid], candidates=cand_labels, reason="; ".join(res.notes))

    def resolve(self, query: AddressQuery) -> Resolution:
        """The place a query resolves to, with the evidence (see module docstring)."""
        gaz = self.gazetteer
        allowed: frozenset[str] | None = None
        if query.country:
            code = gaz.country_code(query.country)
            if code is None:
                return Resolution("unresolved", reason=(
                    f"unknown country {query.country!r}; use an ISO 3166-1 alpha-2 code "
                    "such as CN, HK, SG or JP"))
            allowed = frozenset(GREATER_CHINA) if code == "CN" else frozenset((code,))
        street: list[str] = []
        left: list[str] = []  # address parts that matched no place name
        mentions = self._mentions(query.address, "address", allowed, street, left)
        seen = {m.key for m in mentions}
        for m in self._mentions(query.city, "city", allowed, [], left):
            if m.key not in seen:
                mentions.append(m)
                seen.add(m.key)
        if not mentions and not query.address and not query.city and query.name:
            mentions = self._mentions(query.name, "name", allowed, [], left)
        unmatched = self._unmatched_note(left, allowed)
        if not mentions:
            what = query.text or "(empty)"
            scope = f" in {query.country}" if query.country else ""
            hint = [h for h in self._suggestions(left, allowed)]
            return Resolution("unresolved", reason=(
                f"no known place name{scope} found in {what!r}"
                + (f"; did you mean {' or '.join(map(repr, hint))}?" if hint else "")
                + "; add the city or district, or pin the site with an overrides file"))
        res = self._choose(mentions, street)
        if unmatched:
            if res.status == "ok":
                res.notes.append(unmatched)
            else:
                res.reason = f"{res.reason}; {unmatched}"
        return res

    def _unmatched_note(self, left: list[str], allowed: frozenset[str] | None) -> str:
        """"not matched: 'X' (did you mean 'Y'?), 'Z'" for the parts no place name explains."""
        if not left:
            return ""
        parts = []
        for piece in dict.fromkeys(left):
            hint = self._suggestions([piece], allowed)
            parts.append(repr(piece) + (f" (did you mean {' or '.join(map(repr, hint))}?)"
                                        if hint else ""))
        return "not matched: " + ", ".join(parts)

    @functools.cached_property
    def _typo_keys(self) -> dict[int, list[tuple[str, int]]]:
        """Name keys of prominent places (cities, provinces, prefectures, zones) by length,
        for "did you mean" suggestions; never used to pick a place."""
        gaz = self.gazetteer
        p = gaz.places
        by_len: dict[int, list[tuple[str, int]]] = {}
        for key, uids in gaz.index.items():
            if not key.isascii() or len(key) < 4:
                continue
            u = uids[0]
            if p.kind[u] == Kind.COUNTY or (p.kind[u] == Kind.PLACE and p.source[u] != "zones"
                                            and p.population[u] < 100_000):
                continue
            by_len.setdefault(len(key), []).append((key, u))
        return by_len

    def _suggestions(self, pieces: list[str], allowed: frozenset[str] | None) -> list[str]:
        """Names of prominent places within one or two edits of a piece (or of a word of it)."""
        p = self.gazetteer.places
        out: list[str] = []
        for piece in pieces:
            words = [w for w in re.findall(r"[^\W\d_]+", piece) if w.isascii()]
            keys = {latin_key(piece)} | {latin_key(w) for w in words
                                         if latin_key(w) not in _GENERIC}
            for key in keys:
                if len(key) < 4:
                    continue
                limit = 1 if len(key) < 7 else 2
                best: tuple[int, float, int] | None = None
                for n in range(len(key) - limit, len(key) + limit + 1):
                    for cand, u in self._typo_keys.get(n, ()):
                        # typos seldom hit the first letter; requiring it keeps the
                        # suggestions few and plausible ("Honggutan" is not "Dongguan")
                        if cand[0] != key[0] or (allowed is not None
                                                 and p.country[u] not in allowed):
                            continue
                        d = _edits(key, cand, limit)
                        if 0 < d <= limit and (best is None or (d, -p.importance[u]) <
                                               (best[0], -best[1])):
                            best = (d, p.importance[u], u)
                if best is not None:
                    name = p.name[best[2]] or p.local[best[2]]
                    if name not in out:
                        out.append(name)
        return out[:3]

    # ------------------------------------------------------------------------- parsing
    def _mentions(self, text: str, source: str, allowed: frozenset[str] | None,
                  street: list[str], left: list[str]) -> list[_Mention]:
        if not text:
            return []
        out: list[_Mention] = []
        for segment in _SEPARATORS.split(text):
            segment = segment.strip()
            if not segment:
                continue
            found, streetish, unmatched = self._segment(segment, source, allowed)
            if streetish and source == "address":
                street.append(segment)  # reported as street-level detail
            else:
                left.extend(unmatched)
            out.extend(found)
        return out

    def _segment(self, segment: str, source: str, allowed: frozenset[str] | None
                 ) -> tuple[tuple[_Mention, ...], bool, tuple[str, ...]]:
        """Mentions in one comma-separated part, whether it names a street, and the pieces
        of it that matched no place; memoised: city and district parts repeat across a
        portfolio ("Xuhui District", "Shanghai")."""
        # House numbers differ from site to site but never name a place: one memo entry
        # serves "12 Hongmei Road" and "1900 Hongmei Road".
        memo_key = (_DIGITS.sub("0", segment), source, allowed)
        hit = self._memo.get(memo_key)
        if hit is not None:
            return hit
        found: list[_Mention] = []
        left: list[str] = []
        words: list[tuple[str, str]] = []  # (key, original) of the current Latin run
        streetish = bool(_DIGIT.search(segment))
        for tok in _TOKENS.finditer(segment):
            if tok.lastgroup == "cjk":
                streetish |= self._scan_latin(words, source, allowed, found, left)
                words = []
                streetish |= self._scan_cjk(tok.group(), source, allowed, found, left)
            else:
                word = tok.group()
                words.append(("" if _DIGIT.search(word) else latin_key(word), word))
        streetish |= self._scan_latin(words, source, allowed, found, left)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        result = self._memo[memo_key] = (tuple(found), streetish, tuple(left))
        return result

    def _filter(self, uids: tuple[int, ...], allowed: frozenset[str] | None) -> tuple[int, ...]:
        if allowed is None:
            return uids[:_MAX_CANDIDATES]
        country = self.gazetteer.places.country
        kept = []
        # Lists are ordered by importance: the first few thousand hold every prominent one.
        for u in uids[:_MAX_SCAN]:
            if country[u] in allowed:
                kept.append(u)
                if len(kept) == _MAX_CANDIDATES:
                    break
        return tuple(kept)

    def _scan_latin(self, words: list[tuple[str, str]], source: str,
                    allowed: frozenset[str] | None, found: list[_Mention],
                    left: list[str]) -> bool:
        """Longest word n-grams that are place names; True if a street name was seen.

        Runs of words that match nothing go to ``left`` unless every word is generic
        ("Tower", "Floor"), a number or a letter or two ("Block B").
        """
        index = self.gazetteer.index
        street = False
        run: list[str] = []

        def flush() -> None:
            if any(len(latin_key(w)) > 2 and latin_key(w) not in _GENERIC
                   and latin_key(w) not in _COUNTRY_WORDS for w in run if not _DIGIT.search(w)):
                left.append(" ".join(run))
            run.clear()

        i, n = 0, len(words)
        while i < n:
            if not words[i][0]:
                run.append(words[i][1])
                i += 1
                continue
            # Keys of the n-grams starting at i, shortest first, up to a number or the end.
            grams = []
            key = ""
            for k, _ in words[i:i + _MAX_WORDS]:
                if not k:
                    break
                key += k
                grams.append(key)
            matched = 0
            for length in range(len(grams), 0, -1):
                key = grams[length - 1]
                if key in index and (length > 1 or key not in _GENERIC):
                    matched = length
                    break
            if not matched:
                run.append(words[i][1])
                i += 1
                continue
            flush()
            after = [k for k, _ in words[i + matched:i + matched + 2]]
            if after and after[0] in _DIRECTIONS:  # "Xiaoying West Road"
                after = after[1:]
            if after and after[0] in _STREET_WORDS:
                street = True
            else:
                cands = self._filter(index[key], allowed)
                if cands:
                    text = " ".join(w for _, w in words[i:i + matched])
                    found.append(_Mention(text, key, source, cands))
            i += matched
        flush()
        return street

    def _scan_cjk(self, run: str, source: str, allowed: frozenset[str] | None,
                  found: list[_Mention], left: list[str]) -> bool:
        """Longest known Chinese names, left to right; True if a street name was seen.

        Characters that match nothing go to ``left`` (as runs), except building detail.
        """
        index = self.gazetteer.index
        street = False
        rest_start = 0

        def flush(end: int) -> None:
            piece = run[rest_start:end]
            if piece.strip(_CJK_BUILDING):
                left.append(piece)

        i, n = 0, len(run)
        while i < n:
            for length in range(min(_MAX_CJK, n - i), 1, -1):
                key = run[i:i + length]
                if key in index:
                    break
            else:
                if run[i] in "路街巷弄号":
                    street = True
                i += 1
                continue
            flush(i)
            rest = run[i + length:]
            if rest.startswith(_CJK_STREET):
                street = True
            else:
                cands = self._filter(index[key], allowed)
                if cands:
                    found.append(_Mention(key, key, source, cands))
            i += length
            rest_start = i
        flush(n)
        return street

    # ---------------------------------------------------------------------- resolution
    def _contains(self, outer: int, inner: int) -> bool:
        """May place ``outer`` contain place ``inner``?"""
        gaz = self.gazetteer
        if outer in gaz.ancestors(inner):
            return True
        p = gaz.places
        if p.kind[inner] != Kind.PLACE or p.kind[outer] != Kind.PLACE:
            return False
        if p.country[inner] != p.country[outer] or p.importance[outer] <= p.importance[inner]:
            return False
        return km_between(p.lon[inner], p.lat[inner], p.lon[outer],
                          p.lat[outer]) <= _radius_km(p.population[outer])

    def _choose(self, mentions: list[_Mention], street: list[str]) -> Resolution:
        gaz = self.gazetteer
        p = gaz.places
        sets = [frozenset(m.cands) for m in mentions]
        kind, country = p.kind, p.country
        # GeoNames places abroad have no containment sets; they may lie in a larger place.
        places_in = [[u for u in m.cands if kind[u] == Kind.PLACE and country[u] not in
                      GREATER_CHINA] for m in mentions]
        support: dict[int, int] = {}
        for m in mentions:
            for c in m.cands:
                if c in support:
                    continue
                anc = gaz.ancestors(c)
                abroad_place = kind[c] == Kind.PLACE and country[c] not in GREATER_CHINA
                s = 0
                for j, members in enumerate(sets):
                    if c in members or not anc.isdisjoint(members):
                        s += 1
                    elif abroad_place and places_in[j] and any(
                            self._contains(d, c) for d in places_in[j] if d != c):
                        s += 1
                support[c] = s
        best = max(support.values())
        top = [c for c, s in support.items() if s == best]
        # Nested winners come from one mention: keep the larger unit, except that a
        # city-state's country entry yields to the city itself.
        if len(top) > 1:
            inner = set()
            for a in top:
                for b in top:
                    if a != b and self._contains(a, b):
                        city_state = (p.kind[a] == Kind.COUNTRY
                                      and p.country[a] in (*CITY_STATES, "TW"))
                        inner.add(a if city_state else b)
            top = [c for c in top if c not in inner] or top
        top.sort(key=lambda u: (-p.importance[u], u))
        first = top[0]
        others = [u for u in top[1:] if km_between(p.lon[u], p.lat[u], p.lon[first],
                                                   p.lat[first]) > _NEAR_DUPLICATE_KM]
        notes: list[str] = []
        confidence_factor = 1.0
        if others:
            names = sorted({m.text for m in mentions if m.cands and set(m.cands) & set(top)})
            what = ", ".join(repr(n) for n in names)
            if p.importance[first] < self.dominance * p.importance[others[0]]:
                return Resolution("ambiguous", candidates=[first, *others], reason=(
                    f"{what} matches {len(others) + 1} places that the rest of the address "
                    "does not tell apart; add the city, district or province, or pin the site "
                    "with an overrides file"))
            notes.append(f"took the most prominent of {len(others) + 1} places matching "
                         f"{what}; others listed in candidates")
            confidence_factor = 0.75
        unexplained = [m.text for m in mentions
                       if first not in m.cands and gaz.ancestors(first).isdisjoint(m.cands)
                       and not any(self._contains(d, first) for d in m.cands if d != first)]
        if unexplained:
            notes.append("ignored " + ", ".join(repr(t) for t in unexplained)
                         + " (no match consistent with the rest of the address)")
        precision = self._precision(first, mentions)
        if street:
            notes.append("street-level detail (" + ", ".join(repr(s) for s in street)
                         + f") is beyond the offline gazetteer; located at the {precision.value}"
                         " seat or centre")
        base = _BASE_CONFIDENCE.get(precision, 0.5)
        confidence = base * (0.6 + 0.4 * best / len(mentions)) * confidence_factor
        return Resolution("ok", uid=first, precision=precision,
                          confidence=round(confidence, 3),
                          candidates=others if confidence_factor < 1.0 else [], notes=notes)

    def _precision(self, uid: int, mentions: list[_Mention]) -> Precision:
        gaz = self.gazetteer
        p = gaz.places
        if p.kind[uid] != Kind.PLACE:
            return gaz.precision(uid)
        if p.source[uid] == "zones":
            return Precision.DISTRICT  # a development zone, at its own location
        country = p.country[uid]
        if country in ("HK", "MO"):
            return Precision.DISTRICT  # the SAR itself is the cpca unit, a city
        if country in CITY_STATES:
            return Precision.CITY if gaz.city_state_main.get(country) == uid else \
                Precision.DISTRICT
        if p.province[uid] in CITY_PROVINCES:
            return Precision.DISTRICT  # a town in Beijing, Shanghai, Tianjin or Chongqing
        for m in mentions:
            for d in m.cands:
                if d != uid and p.kind[d] != Kind.COUNTRY and self._contains(d, uid) and \
                        gaz.precision(d) in (Precision.CITY, Precision.DISTRICT):
                    return Precision.DISTRICT
        return Precision.CITY

    def _describe(self, uid: int) -> str:
        p = self.gazetteer.places
        return f"{p.label[uid]} @ {p.lon[uid]:.4f},{p.lat[uid]:.4f}"

