"""One error hierarchy for sitescreen.

Every error derives from :class:`SitescreenError`, and each subclass also extends the builtin
it resembles, so callers may catch either (``except ValueError`` keeps working).
Messages name the offending site, row, file or dataset and say what to do about it.
"""

from __future__ import annotations

__all__ = [
    "is_transient",
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

    #: Whether the same call may succeed later (a dropped connection, a timeout, HTTP 429 or
    #: 5xx after the client's own retries). Only transient errors are retried by the flow's
    #: tasks; bad input, bad data, a checksum mismatch, offline mode, a rejected key or a
    #: missing dependency never are.
    transient: bool = False


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
    """A dataset could not be fetched; the message names the URL and the cause.

    ``transient=True`` marks a failure of the network or the server that a later attempt may
    not meet (the fetch gave up after its retries, or the server asked to come back later).
    """

    def __init__(self, *args: object, transient: bool = False) -> None:
        super().__init__(*args)
        self.transient = transient


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


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may not recur on a retry: a transient :class:`SitescreenError`, or a
    builtin connection error or timeout. The one retry policy of the flows."""
    if isinstance(exc, SitescreenError):
        return exc.transient
    return isinstance(exc, ConnectionError | TimeoutError)
