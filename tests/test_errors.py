"""The error hierarchy says which errors are transient, and the flow retries only those."""

from __future__ import annotations

import pytest

from sitescreen.errors import (
    CatalogError,
    ChecksumError,
    DownloadError,
    GeocodeError,
    GeocoderAuthError,
    HazardDataError,
    OfflineError,
    SitescreenError,
    SiteValidationError,
    is_transient,
)


@pytest.mark.parametrize("exc", [
    ChecksumError("sha mismatch"), OfflineError("offline"), DownloadError("HTTP 404"),
    GeocoderAuthError("INVALID_USER_KEY"), GeocodeError("gazetteer missing"),
    HazardDataError("bad raster"), CatalogError("no such hazard"),
    SiteValidationError("s.csv", ["row 2: bad"]), ImportError("no module named x"),
    ValueError("bad"),
])
def test_permanent_errors_are_not_transient(exc):
    assert not is_transient(exc)


@pytest.mark.parametrize("exc", [
    DownloadError("giving up after 4 attempts", transient=True), ConnectionError("reset"),
    TimeoutError("timed out"),
])
def test_network_failures_are_transient(exc):
    assert is_transient(exc)


def test_every_error_is_a_sitescreen_error_and_a_builtin():
    assert isinstance(DownloadError("x", transient=True), OSError)
    assert isinstance(ChecksumError("x"), SitescreenError)
    assert str(DownloadError("https://x: HTTP 503", transient=True)) == "https://x: HTTP 503"


@pytest.mark.prefect
def test_the_flow_retries_transient_errors_only(prefect_api):
    from prefect import flow, task

    from flows.screen import retry_transient

    calls: list[str] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
    def step(exc: Exception):
        calls.append(type(exc).__name__)
        raise exc

    @flow
    def run(exc: Exception):
        step(exc)

    assert run(ChecksumError("sha mismatch"), return_state=True).is_failed()
    assert calls == ["ChecksumError"]  # a wrong file stays wrong: no retry
    calls.clear()
    assert run(DownloadError("connection reset; giving up", transient=True),
               return_state=True).is_failed()
    assert calls == ["DownloadError"] * 3  # two retries
