"""What an operator sees of a flow run: its name, its change summary, its failure message,
and the database password it may need (from a Prefect Secret block, never a parameter).

The screening flow (``flows/screen.py``) and the watcher (``flows/watch.py``) share these.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sitescreen.errors import SitescreenError
from sitescreen.site_sources import is_postgres, source_label

#: Prefect Secret block holding the PostGIS password when ``PGPASSWORD`` is not set.
POSTGRES_SECRET_BLOCK = "sitescreen-postgres-password"


def sites_password(source: str) -> str | None:
    """The database password of a PostGIS sites source from the Secret block, or None.

    None when the source is a file, when ``PGPASSWORD`` is set (libpq reads it) or when
    there is no such block (libpq then tries ``~/.pgpass``). The value is handed to the
    reader only; it is never logged, returned or written.
    """
    if not is_postgres(source) or os.environ.get("PGPASSWORD"):
        return None
    from prefect.blocks.system import Secret

    try:
        return Secret.load(POSTGRES_SECRET_BLOCK).get()
    except ValueError:  # no such block
        return None


def run_name(prefix: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<prefix>-<short name of the sites source>``.

    The source is shortened (:func:`~sitescreen.site_sources.source_label`), so a password
    in a database URL never reaches the name.
    """
    def name() -> str:
        from prefect.runtime import flow_run

        return f"{prefix}-{source_label(str(flow_run.parameters.get('sites', '')))}"

    return name


def one_line_failure(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Make a flow fail with the command line's message (``error: ...``), not a traceback.

    A :class:`~sitescreen.errors.SitescreenError` becomes a Failed state whose message is
    what ``sitescreen screen`` prints; the exception stays the state's data, so a caller of
    the flow (the command line) still gets it raised. Other exceptions are bugs and keep
    Prefect's own report.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SitescreenError as exc:
            from prefect.states import Failed

            return Failed(message=f"error: {exc}", data=exc)

    return wrapper


def publish_changes(run_dir: str, sampled: dict[str, int]) -> dict:
    """An artifact with the run's change summary and what was sampled; returns its data."""
    from prefect.artifacts import create_markdown_artifact

    path = Path(run_dir) / "changes.json"
    changes = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    counts = changes.get("counts", {})
    lines = ["## Changes since the previous run", ""]
    if changes.get("previous_run") is None:
        lines.append("No earlier run of these sites: everything is new.")
    else:
        lines.append(f"Compared with run `{changes['previous_run']}`.")
    lines.append("")
    for key, label in (("sites_added", "added"), ("sites_removed", "removed"),
                       ("sites_moved", "moved")):
        ids = [s["site_id"] for s in changes.get(key, [])]
        shown = ", ".join(f"`{i}`" for i in ids[:20]) + (" ..." if len(ids) > 20 else "")
        lines.append(f"- sites {label}: {counts.get(key, 0)}" + (f" ({shown})" if ids else ""))
    lines.append(f"- levels changed: {counts.get('level_changes', 0)} "
                 f"({counts.get('levels_up', 0)} up, {counts.get('levels_down', 0)} down)")
    lines += ["", "Sites sampled per layer (the rest came from the result store):", ""]
    lines += [f"- {layer}: {n}" for layer, n in sorted(sampled.items())] or ["- none"]
    summary = {"counts": counts, "sampled": sampled,
               "sites_added": [s["site_id"] for s in changes.get("sites_added", [])]}
    lines += ["", "```json", json.dumps(summary, sort_keys=True), "```"]
    create_markdown_artifact(key="site-changes", markdown="\n".join(lines) + "\n",
                             description="Sites added, removed and moved; levels changed")
    return summary
