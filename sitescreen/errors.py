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
    "ContentError",
    "OfflineError",
    "GeocodeError",
    "GeocoderAuthError",
    "HazardDataError",
    "MissingDataError",
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

    #: Problems listed in the message; the rest are counted by kind and written to a file.
    MAX_SHOWN = 20

    def __init__(self, source: str, problems: list, *, kinds: list[tuple[str, int]] = (),
                 report_path: str | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        self.report_path = report_path
        n = len(self.problems)
        shown = self.problems[: self.MAX_SHOWN]
        lines = [f"  - {p}" for p in shown]
        if n > len(shown):
            lines.append(f"  ... and {n - len(shown)} more; problems by kind:")
            lines += [f"    {count} x {kind}" for kind, count in kinds[:15]]
            if len(kinds) > 15:
                lines.append(f"    ... and {len(kinds) - 15} more kinds")
        if report_path:
            lines.append(f"  full report: {report_path}")
        text = "\n".join(lines)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''} found\n{text}")


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


class ContentError(ChecksumError):
    """A fetched or cached file is not the dataset (an error page, a cut transfer); like a
    checksum mismatch, it is removed and not kept."""


class OfflineError(DownloadError):
    """Offline mode was requested and a needed file is not in the cache."""


class GeocodeError(SitescreenError, LookupError):
    """An address could not be geocoded, or a provider failed."""


class GeocoderAuthError(GeocodeError):
    """A geocoding provider rejected the key or the quota is exhausted."""


class HazardDataError(SitescreenError, ValueError):
    """A hazard dataset is missing, malformed or does not fit the request."""


class MissingDataError(HazardDataError):
    """A run needs data files (or windows of them) that the data folder lacks; the message
    lists them with their size and the command that fetches them."""


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
