"""The watcher: notice that the sites changed and ask for a screening, without anyone asking.

A small flow, deployed on a short interval (``flows/deploy.py``, ``prefect.yaml``). Each run
reads the sites source (a file, a GeoPackage layer or a PostGIS table: the same reader as
the screening), takes its content digest and compares it with the digest of the last
*screened* version: the ``inputs.sites.sha256`` that the newest run folder of that source
in ``out`` recorded (a folder is written only when a screening completes). When they
differ it emits the Prefect event :data:`EVENT` with the digest and the sites added,
removed and moved since that run (:func:`sitescreen.outputs.changes.compare_sites`); the
screening deployment's trigger turns the event into a flow run with the source and results
folder from the payload.

The watcher remembers what it emitted (``cache/watch/<source key>.json`` under the project
home, :func:`state_dir`), so that a screening still in progress is not asked for again at
every tick; after ``reemit_after_minutes`` without a screened run of that digest (a run
that failed or was cancelled) it asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger

from flows.operations import one_line_failure, run_name, sites_password
from sitescreen.errors import OutputError
from sitescreen.outputs.changes import compare_sites, find_previous_run
from sitescreen.site_sources import redact, source_label

#: The event the watcher emits and the screening deployment's trigger expects.
EVENT = "sitescreen.sites.changed"
#: Resource ids of sites sources start with this (the rest is the redacted source).
RESOURCE_PREFIX = "sitescreen.sites."
#: Ask again for a screening of the same digest after this long without one.
DEFAULT_REEMIT_MINUTES = 30.0


def project_home() -> Path:
    """The folder relative paths of a deployment refer to: ``$SITESCREEN_HOME``, else the
    working directory."""
    return Path(os.environ.get("SITESCREEN_HOME") or Path.cwd())


def state_dir() -> Path:
    """Where the watcher remembers what it emitted: ``cache/watch`` in the project home."""
    return project_home() / "cache" / "watch"


def _state_path(source: str) -> Path:
    key = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return state_dir() / f"{key}.json"


def _read_state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict) -> None:
    """Atomically (a reader never sees half a file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), "utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write the watcher state {path}: {exc.strerror or exc}; "
                          "check that the project home's cache/ folder is writable") from exc


def last_screened(out: str, source: str) -> tuple[Path | None, str | None]:
    """The newest complete run folder of ``source`` under ``out`` and its sites digest."""
    previous = find_previous_run(out, source)
    if previous is None:
        return None, None
    manifest = json.loads((previous / "manifest.json").read_text("utf-8"))
    return previous, manifest.get("inputs", {}).get("sites", {}).get("sha256")


@flow(name="watch-sites", flow_run_name=run_name("watch"), log_prints=True)
@one_line_failure
def watch_flow(sites: str = "sites.geojson", out: str = "results",
               reemit_after_minutes: float = DEFAULT_REEMIT_MINUTES) -> dict:
    """Emit :data:`EVENT` when the sites differ from the last screened version."""
    from prefect.events import emit_event

    from sitescreen.sites import read_sites

    logger = get_run_logger()
    source = redact(sites)
    current = read_sites(sites, password=sites_password(sites))
    digest = current.attrs["source_sha256"]
    previous, screened = last_screened(out, source)
    result = {"sites": source, "digest": digest, "screened_digest": screened,
              "emitted": False}
    if digest == screened:
        logger.info("%s unchanged since run %s", source, previous.name)
        return result
    state_path = _state_path(source)
    state = _read_state(state_path)
    now = datetime.now(UTC)
    if state.get("digest") == digest:
        emitted_at = datetime.fromisoformat(state["emitted_at"])
        if now - emitted_at < timedelta(minutes=reemit_after_minutes):
            logger.info("%s: screening of digest %s already asked for at %s", source,
                        digest[:12], state["emitted_at"])
            return result
    changes = compare_sites(previous, current)
    counts = {k: len(v) for k, v in changes.items()}
    payload = {"sites": source, "out": out, "digest": digest, "previous_digest": screened,
               "previous_run": previous.name if previous else None, **counts,
               "added": [s["site_id"] for s in changes["sites_added"][:100]]}
    event = emit_event(EVENT, resource={"prefect.resource.id": RESOURCE_PREFIX + source,
                                        "prefect.resource.name": source_label(source)},
                       payload=payload)
    _write_state(state_path, {"sites": source, "digest": digest,
                              "emitted_at": now.isoformat(), "counts": counts,
                              "event_id": str(event.id) if event else None})
    logger.info("%s changed (%d added, %d removed, %d moved): emitted %s", source,
                counts["sites_added"], counts["sites_removed"], counts["sites_moved"], EVENT)
    return {**result, "emitted": True, **counts}


if __name__ == "__main__":
    print(watch_flow(*sys.argv[1:2]))
