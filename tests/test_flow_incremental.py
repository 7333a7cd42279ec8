"""Re-screening after analysts add sites: only the new sites are geocoded and sampled.

Runs the real flow three times on the session's Prefect test API and counts, through the
API, the hazard task runs that executed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.prefect

NEW_SITES = [
    {"type": "Feature", "geometry": None,
     "properties": {"site_id": "new-sz-futian", "name": "Futian office", "company": "SenseTime",
                    "kind": "office", "address": "Futian District, Shenzhen, Guangdong",
                    "city": "Shenzhen", "country": "CN"}},
    {"type": "Feature", "geometry": None,
     "properties": {"site_id": "new-hz-yuhang", "name": "Yuhang lab", "company": "SenseTime",
                    "kind": "lab", "address": "Yuhang District, Hangzhou, Zhejiang",
                    "city": "Hangzhou", "country": "CN"}},
]


def _assess_runs(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return [r.name for r in runs if r.name.startswith("assess-")
                    and r.state is not None and r.state.is_completed()]

    return asyncio.run(read())


def test_adding_two_sites_samples_only_those(prefect_api, demo_pack, example_sites, tmp_path):
    from flows.screen import screen_flow
    from sitescreen.catalog import load_catalog
    from sitescreen.geocode import GeocodeCache

    sites = tmp_path / "sites.geojson"
    doc = json.loads(example_sites.read_text("utf-8"))
    sites.write_text(json.dumps(doc), "utf-8")
    kwargs = dict(sites=str(sites), data=str(demo_pack), out=str(tmp_path / "results"),
                  scenarios=["pessimistic"], years=[2030], cache_dir=str(tmp_path / "cache"),
                  report=False)
    n = len(doc["features"])

    first = screen_flow(**kwargs, return_state=True)
    r1 = first.result()
    # Every default hazard of the catalog (water, floods, typhoon, heat).
    layers = {f"{name}/pessimistic/2030" for name, spec in load_catalog().hazards.items()
              if spec.default}
    assert {"typhoon/pessimistic/2030", "extreme_heat/pessimistic/2030"} <= layers
    assert r1["sampled"] == {k: n for k in layers}
    assert len(_assess_runs(first.state_details.flow_run_id)) == len(layers)
    geocoded_before = len(GeocodeCache(tmp_path / "cache" / "geocode.sqlite"))

    doc["features"] += NEW_SITES
    sites.write_text(json.dumps(doc), "utf-8")
    second = screen_flow(**kwargs, return_state=True)
    r2 = second.result()
    assert r2["sampled"] == {k: 2 for k in layers}
    assert len(_assess_runs(second.state_details.flow_run_id)) == len(layers)
    # Only the two new addresses reached a geocoder; the others came from the cache.
    assert len(GeocodeCache(tmp_path / "cache" / "geocode.sqlite")) == geocoded_before + 2

    run2 = Path(r2["run_dir"])
    changes = json.loads((run2 / "changes.json").read_text())
    added = {s["site_id"] if isinstance(s, dict) else s for s in changes["sites_added"]}
    assert added == {"new-sz-futian", "new-hz-yuhang"}
    geo = json.loads((run2 / "sites.geojson").read_text())
    futian = next(f for f in geo["features"] if f["id"] == "new-sz-futian")
    assert futian["properties"]["geocode_precision"] == "district"
    assert futian["properties"]["typhoon_pessimistic_2030_level"] is not None

    third = screen_flow(**kwargs, return_state=True)
    assert third.result()["sampled"] == {}
    assert _assess_runs(third.state_details.flow_run_id) == []
