"""Shared fixtures: the data mirror, and one Prefect test API for the whole session.

The Prefect fixture is requested only by tests that run real flows, so the unit tests of the
library never start a Prefect server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Set before anything imports prefect: a private home, no telemetry, a generous startup time.
_PREFECT_HOME = tempfile.mkdtemp(prefix="sitescreen-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Caches of runs the tests start (geocodes, result store, data) go to a private home, never
# into the checkout's cache/ or the user's folder (sitescreen.home).
os.environ["SITESCREEN_HOME"] = tempfile.mkdtemp(prefix="sitescreen-home-")
os.environ.pop("SITESCREEN_DATA", None)
# GDAL decides once per process whether to count network bytes (windowed-fetch reports).
os.environ.setdefault("CPL_VSIL_NETWORK_STATS_ENABLED", "YES")


def _mirror_dir() -> Path | None:
    candidates = [os.environ.get("SITESCREEN_TEST_MIRROR"), REPO.parent / "shared" / "mirror"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The shared data mirror (real upstream files); tests skip with a reason when absent."""
    path = _mirror_dir()
    if path is None:
        pytest.skip("data mirror not found: set SITESCREEN_TEST_MIRROR to a folder laid out "
                    "as upstream (e.g. ibtracs/ibtracs.WP.list.v04r01.csv)")
    return path


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect test API for the session; heartbeats off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture(scope="session")
def prefect_api_url(prefect_api) -> str:
    """URL of the session's Prefect test API, for subprocesses and Dask workers."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.fixture(scope="session", autouse=True)
def _packs_in_background(request, tmp_path_factory):
    """Start writing the synthetic packs that the collected tests use (tests/small_pack.py:
    a child process on the otherwise idle second core, ready when a test first needs it)."""
    import small_pack

    items = request.session.items
    base = tmp_path_factory.getbasetemp()
    packs = []
    if any(getattr(getattr(item, "module", None), "small_pack", None) is small_pack.small_pack
           for item in items):
        packs.append((base / small_pack.SMALL, True))
    if any("demo_pack" in item.fixturenames for item in items):
        packs.append((base / small_pack.DEMO, False))
    small_pack.start_building(packs)
    yield
    small_pack.stop_building()


@pytest.fixture(scope="session")
def demo_pack(tmp_path_factory) -> Path:
    """The synthetic demo pack, built once per session with the same code as `demo-data`."""
    from small_pack import DEMO, ready_pack

    return ready_pack(tmp_path_factory.getbasetemp() / DEMO, small=False)


@pytest.fixture()
def example_sites() -> Path:
    return REPO / "sites.geojson"


@pytest.fixture(scope="session")
def postgis():
    """A PostgreSQL + PostGIS cluster of this session (tests/postgis.py), with the login
    role's password in PGPASSWORD; skipped only when the server binaries are not installed."""
    from postgis import PASSWORD, find_bindir, postgis_available, start_cluster

    bindir = find_bindir()
    if bindir is None or not postgis_available(bindir):
        pytest.skip("PostgreSQL/PostGIS server binaries not found (apt-get install postgresql "
                    "postgis; .ci/run installs them)")
    cluster = start_cluster(bindir)
    old = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = PASSWORD
    try:
        yield cluster
    finally:
        if old is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = old
        cluster.stop()
