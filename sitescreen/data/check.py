"""``sitescreen data check``: what the readers assume of each cached file, and what it is.

This project was built against files it could not download here (see the README); the
first user with real data should learn at once where upstream differs. Per cached file:

- GeoTIFFs (Aqueduct Floods tiles, full or window files): CRS (WGS 84), data type
  (floating point depth), nodata value (declared, else the fallback rule of
  :mod:`sitescreen.raster` applies), size and grid (catalog ``params.grid``), block layout
  and compression (reported; any layout works);
- the Aqueduct 4.0 File Geodatabase (layers ``future_annual`` and ``baseline_annual`` with
  ``pfaf_id``) and CSVs (the columns the water-stress reader takes);
- IBTrACS CSV (header with the reader's required columns, a units row second).

A mismatch names the file, the expectation and what was found.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from sitescreen.catalog import CatalogEntry
from sitescreen.data.datasets import expand_files
from sitescreen.data.windows import grid_info, read_record
from sitescreen.errors import HazardDataError

__all__ = ["FileCheck", "check_dataset"]


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One cached file: facts found and the expectations it fails (empty: it matches)."""

    dataset: str
    file: str
    present: bool
    facts: dict = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.present and not self.problems


def _check_tiff(entry: CatalogEntry, path: Path) -> tuple[dict, list[str]]:
    import rasterio

    from sitescreen.raster import FALLBACK_NODATA_RULE, raster_info

    facts: dict = {}
    problems: list[str] = []
    try:
        info = raster_info(str(path))
    except HazardDataError as exc:
        return facts, [str(exc)]
    with rasterio.open(path) as ds:
        facts.update(crs=ds.crs.to_string() if ds.crs else "", dtype=info.dtype,
                     nodata=info.nodata, size=f"{info.width} x {info.height}",
                     blocks=f"{info.block_shape[0]} x {info.block_shape[1]}",
                     compression=ds.compression.value if ds.compression else "none")
    rec = read_record(path)
    if rec:
        up = rec.get("layout", {})
        facts["window_file"] = (f"{len(rec.get('cells', []))} windows from {rec.get('origin')}; "
                                f"upstream blocks {up.get('block_shape')}, compression "
                                f"{up.get('compression')}, nodata {up.get('nodata')}")
        if up.get("nodata") is None:
            facts["nodata_rule"] = f"upstream declares none; {FALLBACK_NODATA_RULE}"
    elif not info.nodata_declared:
        facts["nodata_rule"] = FALLBACK_NODATA_RULE
    if not info.dtype.startswith("float"):
        problems.append(f"data type {info.dtype}: readers assume floating-point depth in "
                        "metres")
    if "grid" in entry.params:
        grid = grid_info(entry)
        if (info.width, info.height) != (grid.width, grid.height):
            problems.append(f"size {info.width} x {info.height}; the catalog grid (params.grid) "
                            f"is {grid.width} x {grid.height}")
        elif any(abs(a - b) > 1e-9 for a, b in zip(info.transform, grid.transform,
                                                     strict=True)):
            problems.append(f"geotransform {info.transform} differs from the catalog grid "
                            f"{grid.transform}")
    return facts, problems


def _water_columns() -> tuple[list[str], list[str]]:
    from sitescreen.hazards.water_stress import _PERIOD_CODES, _SCENARIO_CODES, INDICATORS

    future = ["pfaf_id"] + [f"{s}{p}_{code}_x_{k}" for code in ("ws", "wd")
                            for s in _SCENARIO_CODES for p in _PERIOD_CODES for k in "rcl"]
    baseline = ["pfaf_id"] + [f"{INDICATORS[c].baseline}_{k}" for c in ("ws", "wd")
                              for k in ("raw", "score", "cat", "label")]
    return future, baseline


def _csv_header(path: Path, rows: int = 2) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        return [next(reader, []) for _ in range(rows)]


def _check_csv(path: Path, wanted: list[str]) -> tuple[dict, list[str]]:
    header = _csv_header(path, 1)[0]
    missing = [c for c in wanted if c not in header]
    facts = {"columns": len(header)}
    if missing:
        return facts, [f"{len(missing)} column(s) the reader takes are missing, e.g. "
                       f"{', '.join(missing[:5])}"]
    return facts, []


def _check_gdb(path: Path) -> tuple[dict, list[str]]:
    import pyogrio

    problems: list[str] = []
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises its own DataSourceError
        return {}, [f"cannot open as a File Geodatabase: {exc}"]
    facts: dict = {"layers": ", ".join(layers)}
    for layer in ("future_annual", "baseline_annual"):
        if layer not in layers:
            problems.append(f"layer {layer!r} is missing; the water-stress reader joins on it")
            continue
        info = pyogrio.read_info(path, layer=layer)
        facts[layer] = f"{info['features']} features, {info['crs']}"
        if "pfaf_id" not in list(info["fields"]):
            problems.append(f"layer {layer!r} has no column 'pfaf_id'")
        if info["crs"] not in ("EPSG:4326", "OGC:CRS84"):
            problems.append(f"layer {layer!r} is in {info['crs']}; readers assume EPSG:4326")
    return facts, problems


def _check_ibtracs(path: Path) -> tuple[dict, list[str]]:
    from sitescreen.hazards._ibtracs import REQUIRED_COLUMNS

    header, units = _csv_header(path, 2)
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        problems.append(f"header lacks {', '.join(missing)} (first row must be the header)")
    if "LAT" in header and units:
        lat = units[header.index("LAT")] if header.index("LAT") < len(units) else ""
        try:
            float(lat)
            problems.append("the second row holds numbers, not units: readers skip it as the "
                            "units row and would lose a record")
        except ValueError:
            pass
    return {"columns": len(header), "units_row": ",".join(units[:6])}, problems


def check_dataset(entry: CatalogEntry, cache_root: str | Path) -> list[FileCheck]:
    """Check every cached file of ``entry`` against what the readers assume."""
    folder = Path(cache_root) / entry.local_dir
    out = []
    for rel in expand_files(entry):
        path = folder / rel
        if not path.exists():
            out.append(FileCheck(entry.id, rel, False))
            continue
        if rel.endswith((".tif", ".tiff")):
            facts, problems = _check_tiff(entry, path)
        elif rel.endswith(".gdb"):
            facts, problems = _check_gdb(path)
        elif "ibtracs" in rel.lower():
            facts, problems = _check_ibtracs(path)
        elif rel.endswith(".csv"):
            future, baseline = _water_columns()
            facts, problems = _check_csv(path, future if "future" in rel else baseline)
        else:
            facts, problems = {"size": path.stat().st_size}, []
        out.append(FileCheck(entry.id, rel, True, facts, tuple(problems)))
    return out
