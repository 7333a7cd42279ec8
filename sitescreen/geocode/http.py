"""JSON over HTTP for the online geocoders: timeouts, bounded retries, rate limit, redaction.

Retried: connection errors, timeouts, HTTP 429 and 5xx, and answers a provider marks as
"try again" (AMap's QPS infocodes). The wait doubles from ``backoff`` up to ``max_backoff``; a
``Retry-After`` header (seconds or HTTP date) is honoured when it asks for longer, and the
request is given up when it asks for more than ``max_retry_after``. Nothing is retried
forever: at most ``max_retries`` retries per request.

Secrets (API keys) are replaced by ``***`` in every message this module produces, and in
urllib3's debug log lines, which would otherwise print request URLs with their query string.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from sitescreen.data.fetch import retry_after_seconds

__all__ = ["RetryPolicy", "HttpFailure", "JsonClient", "redact", "register_secret"]

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_KEY_PARAM = re.compile(r"((?:key|apikey|api_key|token|sig)=)[^&\s'\"]+", re.IGNORECASE)
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember a secret so that every later message and urllib3 log line hides it."""
    if secret:
        with _SECRETS_LOCK:
            _SECRETS.add(secret)
        _install_log_filter()


def redact(text: object, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets and ``key=...`` URL parameters replaced by ``***``."""
    out = str(text)
    for s in sorted({*secrets, *_SECRETS}, key=len, reverse=True):
        if s:
            out = out.replace(s, "***")
    return _KEY_PARAM.sub(r"\1***", out)


class _RedactingFilter(logging.Filter):
    """Hides secrets in urllib3's DEBUG lines ("GET /v3/geocode/geo?...&key=... HTTP/1.1")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_FILTER = _RedactingFilter()


def _install_log_filter() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry (seconds)."""

    max_retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 16.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = min(self.max_backoff, self.backoff * (2 ** attempt))
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def to_dict(self) -> dict[str, float]:
        return {"max_retries": self.max_retries, "backoff": self.backoff,
                "max_backoff": self.max_backoff, "max_retry_after": self.max_retry_after}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(**data)


class HttpFailure(Exception):
    """A request that did not give usable JSON; ``message`` is already redacted."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool,
                 payload: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.transient = transient
        self.payload = payload


def _retry_after(response: requests.Response) -> float | None:
    return retry_after_seconds(response.headers.get("Retry-After"))


# Per-host pacing shared by every client in the process (Nominatim's policy is per client
# application, not per object).
_NEXT_SLOT: dict[str, float] = {}
_PACE_LOCK = threading.Lock()


def _pace(host: str, min_interval: float) -> None:
    if min_interval <= 0:
        return
    with _PACE_LOCK:
        now = time.monotonic()
        slot = max(now, _NEXT_SLOT.get(host, 0.0))
        _NEXT_SLOT[host] = slot + min_interval
    if slot > now:
        time.sleep(slot - now)


class JsonClient:
    """GET requests answering JSON, with the policy above.

    Parameters
    ----------
    user_agent : sent with every request (providers require an identifying one).
    timeout : seconds to connect and to wait for the answer.
    retry : the :class:`RetryPolicy`.
    min_interval : seconds between two requests to one host (process-wide).
    secrets : strings to hide in messages (API keys).
    session : a ``requests.Session`` to reuse (one is created otherwise).
    """

    def __init__(self, *, user_agent: str, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, min_interval: float = 0.0,
                 secrets: Iterable[str] = (), session: requests.Session | None = None) -> None:
        self.user_agent = user_agent
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        self.min_interval = float(min_interval)
        self.secrets = tuple(s for s in secrets if s)
        for s in self.secrets:
            register_secret(s)
        self.session = session or requests.Session()
        self.requests_sent = 0

    def get_json(self, url: str, params: dict[str, Any], *,
                 retry_payload: Callable[[Any], str | None] | None = None) -> Any:
        """Decoded JSON of ``GET url?params``.

        ``retry_payload(data)`` may return a reason to retry a well-formed answer (a
        provider's "too many requests" in the body), or None to accept it.

        Raises
        ------
        HttpFailure
            When no usable answer came within the retries; ``transient`` tells whether a
            later attempt may succeed (never for 4xx other than 429).
        """
        host = urlsplit(url).netloc
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        attempt = 0
        while True:
            _pace(host, self.min_interval)
            retry_after: float | None = None
            try:
                self.requests_sent += 1
                response = self.session.get(url, params=params, headers=headers,
                                            timeout=self.timeout)
            except requests.Timeout as exc:
                problem = f"no answer from {host} within {self.timeout:g} s ({type(exc).__name__})"
            except requests.ConnectionError as exc:
                problem = f"cannot connect to {host}: {self._redact(exc)}"
            except requests.RequestException as exc:
                raise HttpFailure(f"request to {host} failed: {self._redact(exc)}",
                                  transient=False) from None
            else:
                status = response.status_code
                if status in _RETRY_STATUS:
                    retry_after = _retry_after(response)
                    problem = f"{host} answered HTTP {status}"
                elif status >= 400:
                    raise HttpFailure(
                        f"{host} answered HTTP {status}: {self._redact(response.text[:200])}",
                        status=status, transient=False)
                else:
                    try:
                        data = response.json()
                    except ValueError:
                        raise HttpFailure(
                            f"{host} sent malformed JSON: {self._redact(response.text[:120])!r}",
                            status=status, transient=True) from None
                    problem = retry_payload(data) if retry_payload else None
                    if problem is None:
                        return data
            if attempt >= self.retry.max_retries:
                raise HttpFailure(f"{problem}; gave up after {attempt + 1} attempts",
                                  transient=True)
            if retry_after is not None and retry_after > self.retry.max_retry_after:
                raise HttpFailure(
                    f"{problem}; it asks to retry after {retry_after:.0f} s, longer than "
                    f"{self.retry.max_retry_after:g} s", transient=True)
            wait = self.retry.delay(attempt, retry_after)
            log.info("%s; retrying in %.1f s (attempt %d of %d)", problem, wait, attempt + 2,
                     self.retry.max_retries + 1)
            time.sleep(wait)
            attempt += 1

    def _redact(self, text: object) -> str:
        return redact(text, self.secrets)
