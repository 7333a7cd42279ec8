"""What changed since the previous run of the same sites file, and why.

A screening is rerun as sites change and datasets are updated; a disclosure then has to
explain every change from last year's numbers. :func:`compare_runs` compares the current run
with an earlier run folder (its ``sites.geojson``, ``site_results.csv``, ``manifest.json``)
and attributes each change to a cause:

site-caused
    ``site added`` / ``site removed``; ``site moved`` (the input changed: coordinates or
    address edited); ``geocode changed`` (same input, a different geocoding result).
data- or method-caused (from the two manifests)
    ``dataset version changed`` (version or checksum of a dataset the layer reads),
    ``data origin changed`` (e.g. synthetic demo to mirror), ``threshold set changed``
    (another set, or the same name with other edges), ``pathway changed`` (another dataset
    pathway or period for the narrative), ``method changed`` (the layer's method text or
    details), ``composite definition changed``, ``sitescreen version changed``.
unexplained
    A level changed although nothing recorded changed. This should not happen; it is
    reported, never hidden.

A composite's level change takes the causes of its components' changes at the same site,
scenario and year. A site moved by any distance (over 0.5 m, to ignore rounding) counts as a
cause; only moves over ``move_threshold_m`` (100 m by default) are listed as moves.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.errors import OutputError
from sitescreen.geodesy import haversine_km
from sitescreen.outputs.run_folder import (
    MANIFEST_JSON,
    SITE_RESULTS_CSV,
    SITES_GEOJSON,
    SUMMARY_JSON,
    restore_cell,
)
from sitescreen.scenarios import scenario_rank

__all__ = ["compare_runs", "compare_sites", "changes_table", "find_previous_run",
           "CHANGES_COLUMNS"]

log = logging.getLogger(__name__)

_SHIFT_M = 0.5  # below this, a coordinate difference is rounding (GeoJSON keeps 6 decimals)
_INPUT_FIELDS = ("address", "city", "country")
_SITE_CAUSES = ("site moved", "geocode changed")

#: Columns of ``changes.csv`` (:func:`changes_table`).
CHANGES_COLUMNS = ["change", "site_id", "name", "hazard", "hazard_label", "scenario", "year",
                   "previous_level", "level", "level_delta", "distance_m", "cause",
                   "cause_group", "detail"]


# ----------------------------------------------------------------------------- finding runs

def _norm_path(p: str) -> str:
    if "://" in str(p):  # a database URL names the same source wherever it is run from
        return str(p)
    return os.path.normcase(os.path.normpath(os.path.abspath(os.path.expanduser(str(p)))))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}; is this a sitescreen run folder?") from exc
    if not isinstance(data, dict):
        raise OutputError(f"{path}: expected a JSON object")
    return data


def find_previous_run(out_root: str | Path, sites: str | Path, *,
                      before_run_id: str | None = None) -> Path | None:
    """The newest run under ``out_root`` made from the same sites file, or None.

    Parameters
    ----------
    out_root : the results folder holding run folders.
    sites : the sites file path as given to the run (matched against the manifests'
        ``request.sites``, both made absolute), or its SHA-256 (64 hex digits, matched
        against ``inputs.sites.sha256``). Matching by path finds the previous version of an
        edited file, which is the point of comparing; matching by checksum finds only runs
        of identical content.
    before_run_id : ignore runs whose id sorts at or after this one (the current run, when
        it is already written).

    Runs are ordered by the manifest's ``created_at``, then by run id. Folders that are not
    complete runs (no readable ``manifest.json``, hidden temporary folders, the ``latest``
    link) are skipped.
    """
    root = Path(out_root)
    if not root.is_dir():
        return None
    key = str(sites)
    by_sha = re.fullmatch(r"[0-9a-fA-F]{64}", key) is not None
    target = key.lower() if by_sha else _norm_path(key)
    candidates = []
    for run in root.iterdir():
        if run.name.startswith(".") or run.is_symlink() or not run.is_dir():
            continue
        if before_run_id is not None and run.name >= before_run_id:
            continue
        manifest_path = run / MANIFEST_JSON
        if not manifest_path.is_file():
            continue
        try:
            manifest = _read_json(manifest_path)
        except OutputError as exc:
            log.warning("skipping %s: %s", run, exc)
            continue
        if by_sha:
            value = str(manifest.get("inputs", {}).get("sites", {}).get("sha256") or "").lower()
        else:
            raw = manifest.get("request", {}).get("sites") or \
                manifest.get("inputs", {}).get("sites", {}).get("path")
            value = _norm_path(raw) if raw else ""
        if value == target:
            candidates.append((str(manifest.get("created_at", "")), run.name, run))
    if not candidates:
        return None
    return max(candidates)[2]


# ----------------------------------------------------------------------------- reading a run

def _read_previous(previous: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """(sites, site results, manifest, summary) of a run folder."""
    manifest = _read_json(previous / MANIFEST_JSON)
    fc = _read_json(previous / SITES_GEOJSON)
    rows = []
    for feat in fc.get("features", []):
        props = dict(feat.get("properties") or {})
        geom = feat.get("geometry") or {}
        lon = lat = math.nan
        if geom.get("type") == "Point":
            lon, lat = (float(v) for v in geom["coordinates"][:2])
        props["site_id"] = str(props.get("site_id", feat.get("id", "")))
        props["lon"], props["lat"] = lon, lat
        rows.append(props)
    sites = pd.DataFrame(rows)
    results_path = previous / SITE_RESULTS_CSV
    try:
        with open(results_path, encoding="utf-8") as fh:
            # Earlier runs wrote one '# sitescreen ...' provenance line above the header.
            skip = 1 if fh.readline().startswith("#") else 0
        table = pd.read_csv(results_path, skiprows=skip, dtype={"site_id": str},
                            keep_default_na=False, na_values={"value": ["", "NaN", "nan"]})
        for col in ("site_id", "name"):  # the user's text, neutralised against formulas
            if col in table:
                quoted = table[col].astype(str).str.startswith("'").to_numpy()
                if quoted.any():
                    table.loc[quoted, col] = table.loc[quoted, col].map(restore_cell)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {results_path}: {exc}") from exc
    summary_path = previous / SUMMARY_JSON
    summary = _read_json(summary_path) if summary_path.is_file() else {}
    return sites, table, manifest, summary


# ----------------------------------------------------------------------------- helpers

def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return " ".join(str(value).split()).casefold()


def _num(series: pd.Series | None, index: pd.Index) -> pd.Series:
    if series is None:
        return pd.Series(np.nan, index=index)
    return pd.to_numeric(series, errors="coerce")


def _site_frame(sites: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({"site_id": sites["site_id"].astype(str).to_numpy()})
    frame["lon"] = _num(sites.get("lon"), sites.index).to_numpy()
    frame["lat"] = _num(sites.get("lat"), sites.index).to_numpy()
    for col in ("name", "city", "location_source", "geocoder", "geocode_precision",
                *_INPUT_FIELDS):
        frame[col] = sites[col].map(lambda v: "" if _text(v) == "" else str(v)).to_numpy() \
            if col in sites else ""
    return frame.set_index("site_id")


def _by_id(items: Sequence[Mapping], key: str) -> dict[str, Mapping]:
    return {str(i.get(key)): i for i in items if i.get(key) is not None}


def _composite_components(manifest: Mapping, hazard: str, threshold_set: str) -> list[str]:
    """Components of a composite hazard (from the manifest, else from its threshold set name
    ``composite:max(a,b)``); [] for a single hazard."""
    for comp in manifest.get("composites", []):
        if comp.get("name") == hazard:
            return list(comp.get("components", []))
    m = re.match(r"composite:max\((.*)\)$", threshold_set or "")
    return [c for c in m.group(1).split(",") if c] if m else []


# ----------------------------------------------------------------------------- comparison

def _site_changes(prev: pd.DataFrame, cur: pd.DataFrame, move_threshold_m: float
                  ) -> tuple[list[dict], list[dict], list[dict], dict[str, str]]:
    """Sites added, removed and moved, and the site-caused cause of each common site."""
    added = [{"site_id": sid, "name": cur.at[sid, "name"], "city": cur.at[sid, "city"]}
             for sid in cur.index if sid not in prev.index]
    removed = [{"site_id": sid, "name": prev.at[sid, "name"], "city": prev.at[sid, "city"]}
               for sid in prev.index if sid not in cur.index]
    common = cur.index.intersection(prev.index)
    a, b = prev.loc[common], cur.loc[common]
    dist = 1000.0 * haversine_km(a["lon"].to_numpy(float), a["lat"].to_numpy(float),
                        b["lon"].to_numpy(float), b["lat"].to_numpy(float))
    had, has = a["lon"].notna().to_numpy() & a["lat"].notna().to_numpy(), \
        b["lon"].notna().to_numpy() & b["lat"].notna().to_numpy()
    # The input changed when the user edited the address or gave other coordinates; the same
    # input with another position means the geocoder (or its cache, or an override) changed.
    input_changed = np.zeros(len(common), dtype=bool)
    for col in _INPUT_FIELDS:
        input_changed |= a[col].map(_text).to_numpy() != b[col].map(_text).to_numpy()
    given_a = a["location_source"].eq("given").to_numpy()
    given_b = b["location_source"].eq("given").to_numpy()
    input_changed |= given_a != given_b
    shifted = np.where(had & has, np.nan_to_num(dist, nan=0.0) > _SHIFT_M, had != has)
    input_changed |= given_a & given_b & shifted
    moved, cause_of = [], {}
    for i, sid in enumerate(common):
        if not shifted[i]:
            continue
        cause = "site moved" if input_changed[i] else "geocode changed"
        cause_of[sid] = cause
        if had[i] and has[i]:
            if dist[i] <= move_threshold_m:
                continue
            distance: float | None = round(float(dist[i]), 1)
        else:
            distance = None
        detail = _move_detail(a.loc[sid], b.loc[sid])
        if not (had[i] and has[i]):
            detail = ("now unresolved; " if had[i] else "now located; ") + detail
        moved.append({
            "site_id": sid, "name": b.at[sid, "name"], "distance_m": distance, "cause": cause,
            "previous_lon": _f(a.at[sid, "lon"]), "previous_lat": _f(a.at[sid, "lat"]),
            "lon": _f(b.at[sid, "lon"]), "lat": _f(b.at[sid, "lat"]), "detail": detail,
        })
    return added, removed, moved, cause_of


def _same(a: Any, b: Any) -> bool | None:
    """Equal checksums: True/False; None when either run did not record one."""
    return None if not a or not b else a == b


def _move_detail(before: pd.Series, after: pd.Series) -> str:
    """What changed about a site's location, in words, for the changes table."""
    edited = [f"{col} {before[col]!r} -> {after[col]!r}" for col in _INPUT_FIELDS
              if _text(before[col]) != _text(after[col])]
    if edited:
        return "; ".join(edited)
    if before["location_source"] != after["location_source"]:
        return f"location source {before['location_source'] or '-'} -> " \
            f"{after['location_source'] or '-'}"
    if before["location_source"] == "given":
        return "coordinates changed in the sites file"
    return (f"geocoder {before['geocoder'] or '-'} ({before['geocode_precision'] or '-'}) -> "
            f"{after['geocoder'] or '-'} ({after['geocode_precision'] or '-'})")


def _f(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _input_changes(prev: Mapping, cur: Mapping) -> tuple[list[dict], dict[str, Any]]:
    """Run-level data and method changes between two manifests, and lookups for rows."""
    changes: list[dict] = []
    pds, cds = _by_id(prev.get("datasets", []), "id"), _by_id(cur.get("datasets", []), "id")
    changed_datasets = {}
    for ds in sorted(set(pds) | set(cds)):
        p, c = pds.get(ds, {}), cds.get(ds, {})
        pv = f"{p.get('version', '')}{' sha256 ' + p['sha256'][:12] if p.get('sha256') else ''}"
        cv = f"{c.get('version', '')}{' sha256 ' + c['sha256'][:12] if c.get('sha256') else ''}"
        if p and c and pv != cv:
            changed_datasets[ds] = (pv, cv)
            changes.append({"kind": "dataset version changed", "what": ds, "previous": pv,
                            "current": cv})
    origin_changed = prev.get("data_origin") != cur.get("data_origin")
    if origin_changed:
        changes.append({"kind": "data origin changed", "what": "data_origin",
                        "previous": prev.get("data_origin"), "current": cur.get("data_origin")})
    pts, cts = _by_id(prev.get("threshold_sets", []), "name"), \
        _by_id(cur.get("threshold_sets", []), "name")
    redefined = {n for n in set(pts) & set(cts) if dict(pts[n]) != dict(cts[n])}
    for n in sorted(redefined):
        changes.append({"kind": "threshold set changed", "what": n,
                        "previous": json.dumps(pts[n], sort_keys=True),
                        "current": json.dumps(cts[n], sort_keys=True)})
    def sets_used(m: Mapping) -> dict[str, set[str]]:
        used: dict[str, set[str]] = {}
        for layer in m.get("layers", []):
            used.setdefault(str(layer.get("hazard")), set()).add(str(layer.get("threshold_set")))
        return used

    pu, cu = sets_used(prev), sets_used(cur)
    for hazard in sorted(set(pu) & set(cu)):
        if pu[hazard] != cu[hazard]:
            changes.append({"kind": "threshold set changed", "what": hazard,
                            "previous": ", ".join(sorted(pu[hazard])),
                            "current": ", ".join(sorted(cu[hazard]))})

    def crosswalk(m: Mapping) -> dict[tuple, tuple]:
        return {(p.get("family"), p.get("narrative"), p.get("year")):
                (p.get("code"), p.get("period"), p.get("exact"))
                for p in m.get("scenario_crosswalk", [])}

    pw, cw = crosswalk(prev), crosswalk(cur)
    for key in sorted(set(pw) & set(cw), key=str):
        if pw[key] != cw[key]:
            changes.append({"kind": "pathway changed", "what": "/".join(map(str, key)),
                            "previous": " ".join(map(str, pw[key])),
                            "current": " ".join(map(str, cw[key]))})
    pcomp, ccomp = _by_id(prev.get("composites", []), "name"), \
        _by_id(cur.get("composites", []), "name")
    comp_changed = {n for n in set(pcomp) & set(ccomp)
                    if list(pcomp[n].get("components", [])) != list(ccomp[n].get("components", []))}
    for n in sorted(comp_changed):
        changes.append({"kind": "composite definition changed", "what": n,
                        "previous": ",".join(pcomp[n].get("components", [])),
                        "current": ",".join(ccomp[n].get("components", []))})
    version_changed = prev.get("sitescreen_version") != cur.get("sitescreen_version")
    if version_changed:
        changes.append({"kind": "sitescreen version changed", "what": "sitescreen",
                        "previous": prev.get("sitescreen_version"),
                        "current": cur.get("sitescreen_version")})

    def layers(m: Mapping) -> dict[tuple[str, str, int], Mapping]:
        return {(str(x.get("hazard")), str(x.get("scenario")), int(x.get("year", 0))): x
                for x in m.get("layers", [])}

    pl, cl = layers(prev), layers(cur)
    method_changed = {k for k in set(pl) & set(cl)
                      if (pl[k].get("method"), json.dumps(pl[k].get("details"), sort_keys=True,
                                                          default=str))
                      != (cl[k].get("method"), json.dumps(cl[k].get("details"), sort_keys=True,
                                                          default=str))}
    for k in sorted(method_changed):
        changes.append({"kind": "method changed", "what": "/".join(map(str, k)),
                        "previous": pl[k].get("method"), "current": cl[k].get("method")})
    lookups = {"datasets": changed_datasets, "origin": origin_changed, "redefined": redefined,
               "composites": comp_changed, "version": version_changed,
               "method": method_changed, "data_origin": (prev.get("data_origin"),
                                                         cur.get("data_origin"))}
    return changes, lookups


def _row_causes(prev_row: Mapping, cur_row: Mapping, lk: Mapping) -> list[str]:
    """Data- and method-caused reasons a single hazard row may have changed."""
    causes = []
    datasets = {d for d in f"{prev_row.get('datasets', '')},{cur_row.get('datasets', '')}"
                .split(",") if d}
    for d in sorted(datasets & set(lk["datasets"])):
        pv, cv = lk["datasets"][d]
        causes.append(f"dataset version changed ({d}: {pv} -> {cv})")
    if lk["origin"]:
        causes.append(f"data origin changed ({lk['data_origin'][0]} -> {lk['data_origin'][1]})")
    pts, cts = str(prev_row.get("threshold_set", "")), str(cur_row.get("threshold_set", ""))
    if pts != cts:
        causes.append(f"threshold set changed ({pts} -> {cts})")
    elif cts in lk["redefined"]:
        causes.append(f"threshold set changed ({cts} redefined)")
    if (str(prev_row.get("pathway", "")), str(prev_row.get("period", ""))) != \
            (str(cur_row.get("pathway", "")), str(cur_row.get("period", ""))):
        causes.append(f"pathway changed ({prev_row.get('pathway')} {prev_row.get('period')} -> "
                      f"{cur_row.get('pathway')} {cur_row.get('period')})")
    key = (str(cur_row.get("hazard")), str(cur_row.get("scenario")), int(cur_row.get("year", 0)))
    if key in lk["method"]:
        causes.append("method changed")
    return causes


def _group(causes: Sequence[str]) -> str:
    if not causes:
        return "unexplained"
    site = any(c.startswith(_SITE_CAUSES) for c in causes)
    data = any(not c.startswith(_SITE_CAUSES) for c in causes)
    return "site+data/method" if site and data else "site" if site else "data/method"


def compare_runs(previous: str | Path | None, *, sites: pd.DataFrame,
                 table: pd.DataFrame | None, manifest: Mapping, move_threshold_m: float = 100.0,
                 shares: pd.DataFrame | None = None, per_site: bool = True) -> dict:
    """Compare the current run with an earlier run folder and explain each change.

    Parameters
    ----------
    previous : the earlier run folder (see :func:`find_previous_run`), or None.
    sites, table, manifest : the current run's located sites, long results table and
        manifest.
    move_threshold_m : moves farther than this (metres) are listed in ``sites_moved``.
    shares : the current run's shares table (computed from ``table`` when not given).
    per_site : False compares the counts only (data and method changes, shares): for a
        portfolio too large to compare site by site; only the previous run's manifest and
        summary are read, ``table`` is not needed, and ``note`` says so.

    Returns
    -------
    A JSON-able dict: ``previous_run``, ``previous_created_at``, ``current_run``,
    ``data_origin`` and ``previous_data_origin`` (of this run and of the previous one, as
    ``changes.csv`` has on every row), ``same_sites_content`` (checksums equal), ``move_threshold_m``, ``counts`` (sites
    added/removed/moved, level changes, levels up/down, and per cause group),
    ``cause_counts`` (per cause kind), ``input_changes`` (dataset versions, data origin,
    threshold sets, composites, method, software version), ``sites_added``,
    ``sites_removed``, ``sites_moved`` (with ``distance_m`` and cause), ``level_changes``
    (one record per site x hazard x scenario x year whose level differs, with
    ``previous_level``, ``level``, ``cause`` and ``cause_group``) and ``share_changes``
    (medium-and-above shares that moved by at least one percentage point). With no
    previous run, the lists are empty and ``note`` says so.
    """
    result: dict[str, Any] = {
        "previous_run": None, "previous_dir": None, "previous_created_at": None,
        "current_run": manifest.get("run_id"), "data_origin": manifest.get("data_origin"),
        "previous_data_origin": None, "same_sites_content": None,
        "move_threshold_m": float(move_threshold_m), "counts": {}, "cause_counts": {},
        "input_changes": [], "sites_added": [], "sites_removed": [], "sites_moved": [],
        "level_changes": [], "share_changes": [],
    }
    if previous is None:
        result["note"] = "No earlier run of this sites file was found: nothing to compare."
        result["counts"] = _counts(result)
        return result
    previous = Path(previous)
    if not per_site:
        return _compare_counts(result, previous, sites=sites, manifest=manifest, shares=shares)
    psites, ptable, pman, psummary = _read_previous(previous)
    result.update(_previous_fields(pman, previous, manifest))
    prev_sites, cur_sites = _site_frame(psites), _site_frame(sites)
    added, removed, moved, site_cause = _site_changes(prev_sites, cur_sites, move_threshold_m)
    inputs, lk = _input_changes(pman, manifest)
    result.update(sites_added=added, sites_removed=removed, sites_moved=moved,
                  input_changes=inputs)
    result["level_changes"] = _level_changes(ptable, table, lk, site_cause, cur_sites,
                                             manifest)
    result["share_changes"] = _share_changes(psummary, sites, table, shares)
    result["counts"] = _counts(result)
    kinds: dict[str, int] = {}
    for change in result["level_changes"]:
        for cause in change["cause"].split("; "):
            kind = cause.split(" (")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    result["cause_counts"] = dict(sorted(kinds.items()))
    return result


def _previous_fields(pman: Mapping, previous: Path, manifest: Mapping) -> dict:
    """What ``changes.json`` says of the previous run: its id, folder, time, data origin and
    whether its sites file had the same content."""
    return {
        "previous_run": pman.get("run_id", previous.name), "previous_dir": str(previous),
        "previous_created_at": pman.get("created_at"),
        "previous_data_origin": pman.get("data_origin"),
        "same_sites_content": _same(pman.get("inputs", {}).get("sites", {}).get("sha256"),
                                    manifest.get("inputs", {}).get("sites", {}).get("sha256")),
    }


def compare_sites(previous: str | Path | None, sites: pd.DataFrame, *,
                  move_threshold_m: float = 100.0) -> dict[str, list[dict]]:
    """Sites added, removed and moved since an earlier run folder, before any geocoding.

    ``sites`` is a sites table as read (:func:`sitescreen.sites.read_sites`): sites without
    coordinates are compared by their address fields, and one whose address was edited
    counts as moved (its position is known only after geocoding). This is how the watcher
    (``flows/watch.py``) says what an edit changed without screening it.
    """
    if previous is None:
        cur = _site_frame(sites)
        return {"sites_added": [{"site_id": sid, "name": cur.at[sid, "name"],
                                 "city": cur.at[sid, "city"]} for sid in cur.index],
                "sites_removed": [], "sites_moved": []}
    prev = _site_frame(_read_previous(Path(previous))[0])
    cur = _site_frame(sites)
    common = cur.index.intersection(prev.index)
    unlocated = common[cur.loc[common, "lon"].isna() | cur.loc[common, "lat"].isna()]
    edited = np.zeros(len(unlocated), dtype=bool)
    for col in _INPUT_FIELDS:
        edited |= (prev.loc[unlocated, col].map(_text).to_numpy()
                   != cur.loc[unlocated, col].map(_text).to_numpy())
    # Not yet geocoded: the previous position stands for an unedited address.
    cur.loc[unlocated, ["lon", "lat"]] = prev.loc[unlocated, ["lon", "lat"]].to_numpy()
    cur.loc[unlocated, "location_source"] = prev.loc[unlocated, "location_source"].to_numpy()
    added, removed, moved, _ = _site_changes(prev, cur, move_threshold_m)
    moved += [{"site_id": sid, "name": cur.at[sid, "name"], "distance_m": None,
               "cause": "site moved", "detail": "address edited; not geocoded yet"}
              for sid in unlocated[edited]]
    return {"sites_added": added, "sites_removed": removed, "sites_moved": moved}


def _level_changes(ptable: pd.DataFrame, table: pd.DataFrame, lk: Mapping,
                   site_cause: Mapping[str, str], cur_sites: pd.DataFrame,
                   cman: Mapping) -> list[dict]:
    keys = ["site_id", "hazard", "scenario", "year"]
    cols = keys + ["hazard_label", "level", "threshold_set", "pathway", "period", "datasets"]

    def prep(t: pd.DataFrame) -> pd.DataFrame:
        t = t[[c for c in cols if c in t]].copy()
        t["site_id"] = t["site_id"].astype(str)
        t["year"] = pd.to_numeric(t["year"], errors="coerce").fillna(0).astype(int)
        t["level"] = pd.to_numeric(t["level"], errors="coerce").fillna(0).astype(int)
        for c in cols:
            if c not in t:
                t[c] = ""
        return t.set_index(keys)

    p, c = prep(ptable), prep(table)
    both = c.merge(p, left_index=True, right_index=True, how="inner", suffixes=("", "_prev"))
    diff = both[both["level"] != both["level_prev"]]
    if diff.empty:
        return []
    # Row causes of every single-hazard row (needed for composites too), computed once.
    cache: dict[tuple, list[str]] = {}

    def causes_of(idx: tuple) -> list[str]:
        if idx in cache:
            return cache[idx]
        if idx not in both.index:
            cache[idx] = []
            return []
        row = both.loc[idx]
        cur = {k: row[k] for k in ("threshold_set", "pathway", "period", "datasets")}
        prev = {k: row[f"{k}_prev"] for k in ("threshold_set", "pathway", "period", "datasets")}
        cur.update(hazard=idx[1], scenario=idx[2], year=idx[3])
        comps = _composite_components(cman, idx[1], str(cur["threshold_set"]))
        if comps:
            # A composite has no data of its own: its causes are its components' causes.
            found = ["composite definition changed"] if idx[1] in lk["composites"] else []
            for comp in comps:
                found += causes_of((idx[0], comp, idx[2], idx[3]))
        else:
            found = _row_causes(prev, cur, lk)
        cache[idx] = list(dict.fromkeys(found))
        return cache[idx]

    out = []
    for idx, row in diff.iterrows():
        causes = []
        sid = idx[0]
        if sid in site_cause:
            causes.append(site_cause[sid])
        causes += causes_of(idx)
        if not causes and lk["version"]:
            causes.append("sitescreen version changed")
        causes = list(dict.fromkeys(causes))
        out.append({
            "site_id": sid, "name": cur_sites.at[sid, "name"] if sid in cur_sites.index else "",
            "hazard": idx[1], "hazard_label": str(row["hazard_label"]), "scenario": idx[2],
            "year": int(idx[3]), "previous_level": int(row["level_prev"]),
            "level": int(row["level"]), "level_delta": int(row["level"] - row["level_prev"]),
            "cause": "; ".join(causes) if causes else "unexplained",
            "cause_group": _group(causes),
        })
    return out


def _compare_counts(result: dict, previous: Path, *, sites: pd.DataFrame, manifest: Mapping,
                    shares: pd.DataFrame | None) -> dict:
    """:func:`compare_runs` by counts only (``per_site=False``)."""
    pman = _read_json(previous / MANIFEST_JSON)
    summary_path = previous / SUMMARY_JSON
    psummary = _read_json(summary_path) if summary_path.is_file() else {}
    inputs, _ = _input_changes(pman, manifest)
    result.update(_previous_fields(pman, previous, manifest))
    result.update({
        "input_changes": inputs, "per_site": False,
        "note": (f"Compared by counts only: {len(sites):,} sites are more than the per-site "
                 "limit, so sites added, removed or moved and level changes per site are not "
                 "listed; compare the two runs' sites.parquet files for them."),
    })
    result["share_changes"] = _share_changes(psummary, sites, None, shares)
    result["counts"] = _counts(result)
    return result


def _share_changes(psummary: Mapping, sites: pd.DataFrame, table: pd.DataFrame | None,
                   shares: pd.DataFrame | None = None) -> list[dict]:
    prev = pd.DataFrame(psummary.get("shares", []))
    if shares is None:
        from sitescreen.aggregate import shares as compute_shares

        shares = compute_shares(table, sites) if table is not None and len(table) else None
    if prev.empty or shares is None or shares.empty:
        return []
    cur = shares.copy()
    keys = ["hazard", "scenario", "year"]
    prev["year"] = pd.to_numeric(prev["year"], errors="coerce").astype("Int64")
    cur["year"] = cur["year"].astype("Int64")
    m = cur.merge(prev[keys + ["medium_plus_pct", "sites_screened"]], on=keys,
                  suffixes=("", "_prev"))
    order = {h: i for i, h in enumerate(dict.fromkeys(cur["hazard"]))}
    m = m.assign(_h=m["hazard"].map(order), _s=m["scenario"].map(scenario_rank)).sort_values(
        ["_h", "year", "_s"], kind="stable")
    out = []
    for r in m.itertuples(index=False):
        a, b = _f(r.medium_plus_pct_prev), _f(r.medium_plus_pct)
        if a is None and b is None:
            continue
        if a is not None and b is not None and abs(b - a) < 1.0:
            continue
        out.append({"hazard": r.hazard, "hazard_label": r.hazard_label, "scenario": r.scenario,
                    "year": int(r.year), "previous_medium_plus_pct": a, "medium_plus_pct": b,
                    "delta_pct_points": None if a is None or b is None else round(b - a, 2),
                    "previous_sites_screened": int(r.sites_screened_prev),
                    "sites_screened": int(r.sites_screened)})
    return out


def _counts(result: Mapping) -> dict[str, int]:
    levels = result.get("level_changes", [])
    groups = [c["cause_group"] for c in levels]
    return {
        "sites_added": len(result.get("sites_added", [])),
        "sites_removed": len(result.get("sites_removed", [])),
        "sites_moved": len(result.get("sites_moved", [])),
        "level_changes": len(levels),
        "levels_up": sum(1 for c in levels if c["level_delta"] > 0),
        "levels_down": sum(1 for c in levels if c["level_delta"] < 0),
        "site_caused": sum(1 for g in groups if g == "site"),
        "data_or_method_caused": sum(1 for g in groups if g == "data/method"),
        "site_and_data_caused": sum(1 for g in groups if g == "site+data/method"),
        "unexplained": sum(1 for g in groups if g == "unexplained"),
    }


def changes_table(changes: Mapping) -> pd.DataFrame:
    """One row per change (``CHANGES_COLUMNS``), for ``changes.csv``.

    Sites added, removed and moved come first, then level changes; a level change of a
    site that was added or removed cannot exist (it has no level on one side).
    """
    rows = []
    for s in changes.get("sites_added", []):
        rows.append({"change": "site added", "site_id": s["site_id"], "name": s.get("name"),
                     "cause": "site added", "cause_group": "site"})
    for s in changes.get("sites_removed", []):
        rows.append({"change": "site removed", "site_id": s["site_id"], "name": s.get("name"),
                     "cause": "site removed", "cause_group": "site"})
    for s in changes.get("sites_moved", []):
        rows.append({"change": "site moved", "site_id": s["site_id"], "name": s.get("name"),
                     "distance_m": s.get("distance_m"), "cause": s.get("cause"),
                     "cause_group": "site", "detail": s.get("detail")})
    for c in changes.get("level_changes", []):
        rows.append({"change": "level changed", **{k: c.get(k) for k in CHANGES_COLUMNS
                                                    if k in c}})
    frame = pd.DataFrame(rows, columns=CHANGES_COLUMNS)
    for col in ("year", "previous_level", "level", "level_delta"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    frame["distance_m"] = pd.to_numeric(frame["distance_m"], errors="coerce")
    return frame
