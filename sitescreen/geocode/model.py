"""Value types shared by every geocoder: the query, the result, the precision vocabulary.

A geocoder answers one :class:`AddressQuery` with one :class:`GeocodeResult`. Results always
carry WGS 84 longitude/latitude; ``datum`` records what the provider answered in (AMap answers
in GCJ-02 and is converted), so an output can say where a coordinate came from.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Precision",
    "COARSE_PRECISIONS",
    "Status",
    "AddressQuery",
    "GeocodeResult",
    "Geocoder",
    "normalise_text",
]

Status = Literal["ok", "ambiguous", "unresolved"]
_STATUSES = ("ok", "ambiguous", "unresolved")


class Precision(StrEnum):
    """How fine a location is, finest first.

    ``coordinates`` marks coordinates given in the sites file and ``override`` coordinates
    pinned by an overrides file; the others describe what a geocoder matched.
    """

    COORDINATES = "coordinates"
    OVERRIDE = "override"
    ADDRESS = "address"
    STREET = "street"
    DISTRICT = "district"
    CITY = "city"
    PROVINCE = "province"
    COUNTRY = "country"
    NONE = ""


#: Precisions that place a site at the point of an area (a district, city, province or
#: country), not at the building: hazard grids of about 1 km describe that point, not the site.
COARSE_PRECISIONS: frozenset[str] = frozenset(
    {Precision.DISTRICT, Precision.CITY, Precision.PROVINCE, Precision.COUNTRY})


_SPACES = re.compile(r"\s+")
_COMMA = re.compile(r"\s*,\s*")
_SEMICOLON = re.compile(r"\s*;\s*")


def normalise_text(text: object) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed; '' for None and NaN.

    NFKC folds full-width forms (``，`` -> ``,``, ``１`` -> ``1``) common in Chinese input.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = _SEMICOLON.sub("; ", _COMMA.sub(", ", text))
    return _SPACES.sub(" ", text).strip(" ,;")


def _clean(text: object) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return _SPACES.sub(" ", str(text)).strip()


@dataclass(frozen=True, slots=True)
class AddressQuery:
    """What is known about a site's location, as text.

    Parameters
    ----------
    address : free-form address, any language ("1900 Hongmei Road, Xuhui District, Shanghai",
        "上海市浦东新区临港新片区").
    city : the site's city as stated in the sites file (context for disambiguation).
    country : ISO 3166-1 alpha-2 code ("CN", "HK"); narrows the search when given.
    name : the site's name; only used when there is neither address nor city.
    """

    address: str = ""
    city: str = ""
    country: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", _clean(self.address))
        object.__setattr__(self, "city", _clean(self.city))
        object.__setattr__(self, "country", _clean(self.country).upper())
        object.__setattr__(self, "name", _clean(self.name))

    @property
    def key(self) -> str:
        """Normalised cache key: equal for queries that differ only in case, width or spacing.

        The name takes part only when it is the sole text (it is then what is geocoded), so
        two sites at one address share a cache entry whatever they are called.
        """
        parts = [normalise_text(self.address), normalise_text(self.city), self.country.lower()]
        if not parts[0] and not parts[1]:
            parts.append(normalise_text(self.name))
        return " | ".join(parts)

    @property
    def text(self) -> str:
        """One line for a provider or a report: address, then the city when not in it."""
        parts = [self.address] if self.address else []
        if self.city and normalise_text(self.city) not in normalise_text(self.address):
            parts.append(self.city)
        if not parts and self.name:
            parts.append(self.name)
        return ", ".join(parts)

    @property
    def is_empty(self) -> bool:
        return not (self.address or self.city or self.name)

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddressQuery:
        return cls(**{k: data.get(k, "") for k in ("address", "city", "country", "name")})


@dataclass(frozen=True, slots=True, eq=False)
class GeocodeResult:
    """One geocoder's answer to one query.

    Attributes
    ----------
    status : "ok" (lon/lat set), "ambiguous" (``candidates`` lists the namesakes, lon/lat NaN)
        or "unresolved" (``reason`` says why, lon/lat NaN).
    lon, lat : WGS 84 degrees (NaN unless ok).
    provider : name of the geocoder that answered.
    precision : what the coordinate stands for (see :class:`Precision`).
    confidence : 0-1, the provider's own score or this package's heuristic.
    datum : datum the provider answered in before conversion: "WGS84", "GCJ-02" or "BD-09".
    query : the text that was looked up.
    matched : the place the provider matched, as it names it.
    candidates : competing places when ambiguous (or when a prominent one was preferred).
    reason : why the result is not ok, or what to know about it.
    transient : the failure may pass (timeout, server error); such results are not cached.
    """

    status: Status
    lon: float = math.nan
    lat: float = math.nan
    provider: str = ""
    precision: Precision = Precision.NONE
    confidence: float = 0.0
    datum: str = "WGS84"
    query: str = ""
    matched: str = ""
    candidates: tuple[str, ...] = ()
    reason: str = ""
    transient: bool = False

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {self.status!r}")
        object.__setattr__(self, "precision", Precision(self.precision))
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "lon", float(self.lon))
        object.__setattr__(self, "lat", float(self.lat))
        object.__setattr__(self, "confidence", float(min(1.0, max(0.0, self.confidence))))

    def __eq__(self, other: object) -> bool:
        # Compared as dicts (pystac's convention), so two unresolved results with NaN
        # coordinates are equal.
        if not isinstance(other, GeocodeResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.status, self.provider, self.query, self.matched, self.reason))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def unresolved(cls, provider: str, query: str, reason: str, *,
                   candidates: tuple[str, ...] = (), transient: bool = False) -> GeocodeResult:
        return cls(status="unresolved", provider=provider, query=query, reason=reason,
                   candidates=candidates, transient=transient)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; NaN coordinates and empty fields are omitted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isnan(value):
                continue
            if value is False or (isinstance(value, str | tuple) and not value):
                continue
            if f.name == "precision":
                value = value.value
            elif f.name == "candidates":
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeocodeResult:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown GeocodeResult keys {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        values.setdefault("lon", math.nan)
        values.setdefault("lat", math.nan)
        values["candidates"] = tuple(values.get("candidates", ()))
        return cls(**values)


@runtime_checkable
class Geocoder(Protocol):
    """A provider: a name (used in outputs and as the cache key) and one lookup method.

    Providers return results rather than raising for things that happen to single
    addresses (no match, malformed answer, timeout); they raise
    :class:`~sitescreen.errors.GeocoderAuthError` when the key or quota is refused, since
    every following request would fail the same way.
    """

    name: str

    def geocode(self, query: AddressQuery) -> GeocodeResult: ...
