"""Geocoding: addresses to WGS 84 coordinates, with provenance, caching and plausibility checks.

Offline by default (GeoNames and Chinese administrative units shipped in installed
packages, :mod:`.offline`); Nominatim and AMap online (:mod:`.online`); Chinese datums
(:mod:`.datum`); a shared SQLite cache (:mod:`.cache`); coordinate checks (:mod:`.checks`).

Typical use::

    from sitescreen.sites import read_sites
    from sitescreen.geocode import GeocodeCache, default_geocoders, geocode_sites

    sites = read_sites("sites.geojson")
    located = geocode_sites(sites, geocoders=default_geocoders(["offline", "amap"]),
                            cache=GeocodeCache("cache/geocode.sqlite"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sitescreen.errors import ConfigError
from sitescreen.geocode.cache import DEFAULT_CACHE_PATH, GeocodeCache
from sitescreen.geocode.checks import LocationFlag, location_flags
from sitescreen.geocode.frame import (
    GEOCODE_COLUMNS,
    UNRESOLVED,
    geocode_problems,
    geocode_sites,
    is_located,
    read_overrides,
)
from sitescreen.geocode.model import AddressQuery, Geocoder, GeocodeResult, Precision
from sitescreen.geocode.offline import OfflineGeocoder
from sitescreen.geocode.online import AMapGeocoder, NominatimGeocoder, RetryPolicy

__all__ = [
    "UNRESOLVED",
    "is_located",
    "AddressQuery",
    "GeocodeResult",
    "Geocoder",
    "Precision",
    "GeocodeCache",
    "DEFAULT_CACHE_PATH",
    "OfflineGeocoder",
    "NominatimGeocoder",
    "AMapGeocoder",
    "RetryPolicy",
    "GEOCODERS",
    "default_geocoders",
    "geocode_sites",
    "geocode_problems",
    "read_overrides",
    "location_flags",
    "LocationFlag",
    "GEOCODE_COLUMNS",
]

#: Provider names to their classes; options are passed to the constructor.
GEOCODERS: Mapping[str, Callable[..., Geocoder]] = {
    "offline": OfflineGeocoder,
    "nominatim": NominatimGeocoder,
    "amap": AMapGeocoder,
}


def default_geocoders(names: Sequence[str] = ("offline",),
                      **opts: Mapping[str, Any]) -> list[Geocoder]:
    """Build geocoders by name, in the order given.

    Parameters
    ----------
    names : provider names among ``offline``, ``nominatim``, ``amap`` (case-insensitive).
    **opts : per-provider constructor options, keyed by provider name, e.g.
        ``amap={"key": key}`` or ``nominatim={"user_agent": "acme-screening/1.0 (x@acme.org)"}``.

    Raises
    ------
    ConfigError
        For an unknown or repeated name (listing the valid ones), options for a provider
        that is not requested, or a provider that cannot be set up (e.g. AMap without key).

    Examples
    --------
    >>> [g.name for g in default_geocoders()]
    ['offline']
    >>> default_geocoders(["google"])
    Traceback (most recent call last):
    ...
    sitescreen.errors.ConfigError: unknown geocoder 'google'; valid names: offline, nominatim, amap
    """
    if isinstance(names, str):
        names = [names]
    wanted = [str(n).strip().lower() for n in names]
    valid = ", ".join(GEOCODERS)
    for n in wanted:
        if n not in GEOCODERS:
            raise ConfigError(f"unknown geocoder {n!r}; valid names: {valid}")
    repeated = sorted({n for n in wanted if wanted.count(n) > 1})
    if repeated:
        raise ConfigError(f"geocoder(s) {', '.join(repeated)} listed twice; give each once")
    stray = sorted(set(opts) - set(wanted))
    if stray:
        raise ConfigError(
            f"options given for geocoder(s) {', '.join(stray)} that are not requested "
            f"({', '.join(wanted) or 'none'}); valid names: {valid}")
    out: list[Geocoder] = []
    for n in wanted:
        options = dict(opts.get(n) or {})
        try:
            out.append(GEOCODERS[n](**options))
        except TypeError as exc:
            raise ConfigError(f"bad options for geocoder {n!r}: {exc}") from exc
    return out
