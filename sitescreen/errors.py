"""One error hierarchy for sitescreen.

Every error derives from :class:`SitescreenError`, and each subclass also extends the builtin
it resembles, so callers may catch either (``except ValueError`` keeps working).
Messages name the offending site, row, file or dataset and say what to do about it.
"""

from __future__ import annotations

__all__ = [
    "SitescreenError",
    "SiteValidationError",
    "CatalogError",
    "ConfigError",
    "DownloadError",
    "ChecksumError",
    "OfflineError",
    "GeocodeError",
    "GeocoderAuthError",
    "HazardDataError",
    "OutputError",
    "UnsafePathError",
]


class SitescreenError(Exception):
    """Root of every error sitescreen raises on purpose."""


class SiteValidationError(SitescreenError, ValueError):
    """The sites file has problems; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: list) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''} found\n{lines}")


class CatalogError(SitescreenError, ValueError):
    """The data catalog, a threshold set or a scenario request is invalid."""


class ConfigError(SitescreenError, ValueError):
    """A user setting (option, environment variable, config file) is invalid."""


class DownloadError(SitescreenError, OSError):
    """A dataset could not be fetched; the message names the URL and the cause."""


class ChecksumError(DownloadError):
    """A fetched or cached file does not match its expected checksum."""


class OfflineError(DownloadError):
    """Offline mode was requested and a needed file is not in the cache."""


class GeocodeError(SitescreenError, LookupError):
    """An address could not be geocoded, or a provider failed."""


class GeocoderAuthError(GeocodeError):
    """A geocoding provider rejected the key or the quota is exhausted."""


class HazardDataError(SitescreenError, ValueError):
    """A hazard dataset is missing, malformed or does not fit the request."""


class OutputError(SitescreenError, OSError):
    """Results could not be written; nothing partial is left behind."""


class UnsafePathError(SitescreenError, ValueError):
    """A path would escape the folder it must stay in (archive member, output name)."""
