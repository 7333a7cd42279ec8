"""Write a screening run: GeoJSON, tables and manifest, atomically.

A run is written into a hidden temporary folder beside its final place and renamed into
``<out>/<run-id>`` only when every file is complete; ``<out>/latest`` is then switched to it
with an atomic symlink replacement. A failure leaves earlier runs untouched and no partial
run folder behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import pandas as pd

from sitescreen.aggregate import marked_pathway
from sitescreen.errors import OutputError, UnsafePathError
from sitescreen.files import atomic_folder, atomic_write, write_content

__all__ = [
    "new_run_id",
    "site_features",
    "write_run",
    "SharedRendering",
    "json_bytes",
    "geojson_writer",
    "csv_writer",
    "neutralise_arrow",
    "write_feature_collection",
    "EncodedLines",
    "json_line",
    "neutralise_cell",
    "restore_cell",
    "user_columns",
    "typed_columns",
    "site_results_frame",
    "site_positions",
    "is_text_dtype",
    "check_run_id",
    "latest_run",
    "check_latest",
    "check_writable",
]

#: The files every run folder holds; old runs keep these names, so runs can be compared.
SITES_GEOJSON = "sites.geojson"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
SITE_RESULTS_CSV = "site_results.csv"
MANIFEST_JSON = "manifest.json"
CHANGES_JSON = "changes.json"
CHANGES_CSV = "changes.csv"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
#: Beside the run folders: a link to the newest complete run, and a text file naming it.
LATEST_LINK = "latest"
LATEST_MARKER = "LATEST"

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_run_id(now: datetime | None = None, *, salt: str = "") -> str:
    """A sortable run id: UTC timestamp plus a short hash of ``salt`` (e.g. the inputs)."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(f"{salt}{now.isoformat()}".encode()).hexdigest()[:6]
    return f"{stamp}-{digest}"


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN/inf become null, numpy types become Python types."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def json_bytes(obj: Any) -> bytes:
    """Deterministic, human-readable JSON (sorted keys left to the caller's order).

    A GeoJSON FeatureCollection is written with one feature per line (the members around
    the features indented as elsewhere): as readable and diffable, and encoded by the C
    encoder, which is about ten times faster than the indenting one (100,000 sites give
    about a gigabyte of GeoJSON).
    """
    if isinstance(obj, Mapping) and obj.get("type") == "FeatureCollection" \
            and isinstance(obj.get("features"), list):
        return _feature_collection_bytes(obj)
    return (json.dumps(_clean(obj), ensure_ascii=False, indent=2, allow_nan=False) + "\n").encode()


def _native(value: Any) -> Any:
    """``default`` hook of the line encoder: numpy scalars that are not float subclasses."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# Compact but spaced like the indented output; allow_nan=False makes a NaN raise, and such
# a feature is then cleaned first (NaN -> null), so the result equals json.dumps(_clean(...)).
_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": "),
                                 default=_native)


def json_line(value: Any) -> str:
    """``value`` as one line of JSON, spaced like the indented output (NaN/inf: null)."""
    try:
        return _LINE_ENCODER.encode(value)
    except (ValueError, TypeError):
        return _LINE_ENCODER.encode(_clean(value))


@dataclass(frozen=True, slots=True)
class EncodedLines:
    """``count`` lines of text already encoded, as one buffer: rows of a CSV file, or GeoJSON
    features as the line encoder writes them, each preceded by :attr:`SEPARATOR` (``,`` and
    the line break and indent of the features)."""

    text: bytes | memoryview
    count: int

    SEPARATOR: ClassVar[bytes] = b",\n    "

    @classmethod
    def of(cls, lines: Any) -> EncodedLines:
        """The text of an Arrow string array without nulls (each line with its own
        separator), without a copy."""
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1,
                                offset=4 * lines.offset)
        data = lines.buffers()[2]
        text = memoryview(data)[int(offsets[0]):int(offsets[-1])] if data is not None \
            else memoryview(b"")
        return cls(text, len(lines))


def _feature_collection_bytes(fc: Mapping) -> bytes:
    buf = io.BytesIO()
    write_feature_collection(buf, fc)
    return buf.getvalue()


def write_feature_collection(fh: BinaryIO, fc: Mapping) -> None:
    """Write ``fc`` piece by piece: its ``features`` may be any iterable (a generator keeps
    a gigabyte of GeoJSON from ever being held in memory at once) of features or of
    :class:`EncodedLines` blocks."""
    if not fc:
        fh.write(b"{}\n")
        return
    fh.write(b"{\n")
    for i, (key, value) in enumerate(fc.items()):
        if i:
            fh.write(b",\n")
        name = json.dumps(str(key), ensure_ascii=False)
        if key == "features":
            fh.write(f"  {name}: [".encode())
            count = 0
            for feature in value:
                if isinstance(feature, EncodedLines):
                    if feature.count:
                        # Its text starts with the separator; the first feature drops the comma.
                        fh.write(memoryview(feature.text)[0 if count else 1:])
                        count += feature.count
                    continue
                fh.write(b"\n    " if not count else EncodedLines.SEPARATOR)
                fh.write(json_line(feature).encode())
                count += 1
            fh.write(b"\n  ]" if count else b"]")
        else:
            text = json.dumps(_clean(value), ensure_ascii=False, indent=2, allow_nan=False)
            fh.write(f"  {name}: {text.replace(chr(10), chr(10) + '  ')}".encode())
    fh.write(b"\n}\n")


def geojson_writer(fc: Mapping) -> Callable[[Path], None]:
    """A :func:`write_run` writer for a FeatureCollection whose ``features`` may be lazy
    (see ``lazy`` in :func:`site_features`); same bytes as :func:`json_bytes`."""
    def write(path: Path) -> None:
        with open(path, "wb", buffering=1 << 20) as fh:
            write_feature_collection(fh, fc)
            fh.flush()
            os.fsync(fh.fileno())
    return write


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV
#: Injection"): ``=``, ``+``, ``-``, ``@``, tab and carriage return; line feed too, which
#: some importers treat like a carriage return.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
# A cell needing the guard: a trigger first, or one already guarded (so that
# restore_cell(neutralise_cell(x)) == x for every x).
_GUARD_RE = r"^'*[=+\-@\t\r\n]"
# Plain numbers written as text ("-12.5", "+3e4") stay as they are: a spreadsheet reads
# them as the number they are, which is no formula.
_PLAIN_NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def neutralise_cell(value: Any) -> Any:
    """``value`` made safe to open in a spreadsheet (OWASP CSV injection guidance).

    A text cell starting with ``=``, ``+``, ``-``, ``@``, tab, carriage return or line
    feed gets a leading single quote, which spreadsheets show as text and never evaluate;
    a cell that already starts with quotes before such a character gets one more, so
    :func:`restore_cell` gives the original back. Numbers, and text that is a plain
    number (``"-12.5"``), are unchanged.

    >>> neutralise_cell("=1+2"), neutralise_cell("@SUM(A1)")
    ("'=1+2", "'@SUM(A1)")
    >>> neutralise_cell("-12.5"), neutralise_cell(-3), neutralise_cell("Shanghai")
    ('-12.5', -3, 'Shanghai')
    >>> restore_cell(neutralise_cell("'=x"))
    "'=x"
    """
    if not isinstance(value, str) or not re.match(_GUARD_RE, value) \
            or re.match(_PLAIN_NUMBER_RE, value):
        return value
    return "'" + value


def restore_cell(value: Any) -> Any:
    """The cell :func:`neutralise_cell` was given (for programs reading our CSV files)."""
    if isinstance(value, str) and value.startswith("'") and re.match(_GUARD_RE, value[1:]) \
            and not re.match(_PLAIN_NUMBER_RE, value[1:]):
        return value[1:]
    return value


def neutralise_arrow(table: Any) -> Any:
    """:func:`neutralise_cell` on every text column of an Arrow table, vectorised."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, fld in enumerate(table.schema):
        col = table.column(i)
        if pa.types.is_dictionary(fld.type):
            col = col.cast(fld.type.value_type)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        guard = pc.and_(pc.match_substring_regex(col, _GUARD_RE),
                        pc.invert(pc.match_substring_regex(col, _PLAIN_NUMBER_RE)))
        if not pc.any(guard).as_py():
            continue
        quoted = pc.binary_join_element_wise(pa.scalar("'", col.type), col,
                                             pa.scalar("", col.type))
        table = table.set_column(i, fld.name, pc.if_else(guard, quoted, col))
    return table


def csv_writer(frame: pd.DataFrame) -> Callable[[Path], None]:
    """A :func:`write_run` writer for ``frame`` as UTF-8 CSV: a header row, then the data.

    Every CSV file of a run goes through here, so every one is safe to open in a
    spreadsheet: text cells that would be read as formulas are neutralised
    (:func:`neutralise_cell`); numbers are never altered. Written through Arrow, about 15
    times faster than :meth:`pandas.DataFrame.to_csv` on the long results table (millions
    of rows): strings are always quoted, booleans are ``true``/``false``, missing values
    are empty; pandas, QGIS and spreadsheets read it back unchanged. Frames Arrow cannot
    convert (mixed-type object columns) fall back to pandas.
    """
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            table = None
        with open(path, "wb") as fh:
            if table is None:
                safe = frame.copy()
                for col in safe.columns:
                    if safe[col].dtype == object or pd.api.types.is_string_dtype(safe[col]):
                        safe[col] = safe[col].map(neutralise_cell)
                # Every text cell quoted, as Arrow does: a lone carriage return stays inside
                # its cell.
                fh.write(safe.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode())
            else:
                pa_csv.write_csv(neutralise_arrow(table), fh)
            fh.flush()
            os.fsync(fh.fileno())
    return write


def user_columns(sites: pd.DataFrame) -> list[str]:
    """The user's own columns of a site table: neither the standard site columns, nor the
    location and geocoding ones, nor the geometry."""
    from sitescreen.geocode import GEOCODE_COLUMNS
    from sitescreen.sites import OUTPUT_COLUMNS

    fixed = {*OUTPUT_COLUMNS, *GEOCODE_COLUMNS, "geometry"}
    return [c for c in sites.columns if c not in fixed]


# A number as a text cell; a leading zero before another digit ("007", a code) stays text.
_NUMBER_TEXT = re.compile(r"^\s*[+-]?(0|[1-9]\d*)?(\.\d+)?([eE][+-]?\d+)?\s*$")


def _as_number(values: pd.Series) -> pd.Series | None:
    """``values`` as numbers when every given cell is one (empty cells -> missing), else
    None. Whole numbers become nullable integers (``Int64``), others floats."""
    if pd.api.types.is_bool_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        return values
    if is_text_dtype(values):
        text = values.fillna("").str.strip()
        given = text.ne("")
        if not given.any() or not (text[given].str.match(_NUMBER_TEXT.pattern)
                                   & text[given].str.contains(r"\d")).all():
            return None
        numbers = pd.to_numeric(text.where(given, None), errors="coerce").astype(float)
        return _integers_if_whole(numbers, given)
    cells = values.astype(object)
    given = cells.map(lambda v: v is not None and not (isinstance(v, float) and math.isnan(v))
                      and not (isinstance(v, str) and not v.strip()) and v is not pd.NA)
    if not given.any():
        return None
    kept = cells[given]
    ok = kept.map(lambda v: (isinstance(v, (int, float, np.integer, np.floating))
                             and not isinstance(v, (bool, np.bool_)))
                  or (isinstance(v, str) and bool(v.strip())
                      and _NUMBER_TEXT.match(v) is not None and any(ch.isdigit() for ch in v)))
    if not ok.all():
        return None
    numbers = pd.to_numeric(cells.where(given, np.nan), errors="coerce").astype(float)
    return _integers_if_whole(numbers, given)


def is_text_dtype(values: pd.Series) -> bool:
    """True for pandas string columns (``str``/``string`` dtypes, not ``object``)."""
    return str(values.dtype).startswith(("str", "string"))


def _integers_if_whole(numbers: pd.Series, given: pd.Series) -> pd.Series:
    finite = numbers[given]
    if (finite == np.round(finite)).all() and (finite.abs() < 2**53).all():
        return numbers.round().astype("Int64")
    return numbers


def typed_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with each of ``columns`` that holds only numbers (``"1200"``, ``3.5``,
    empty) converted to a numeric column, so GIS and JSON readers get numbers, not text.

    A CSV gives every cell as text and a GeoJSON may mix numbers and empty strings: an
    ``asset_value`` or ``headcount`` column is numeric once every given cell is a number;
    empty cells become missing (null), never 0. Codes with leading zeros (``"007"``) and
    columns with any non-number stay text.

    >>> t = typed_columns(pd.DataFrame({"v": ["1200", "", "35"], "z": ["007", "1", ""]}),
    ...                   ["v", "z"])
    >>> t["v"].tolist(), t["z"].tolist()
    ([1200, <NA>, 35], ['007', '1', ''])
    """
    out = frame
    for col in columns:
        if col not in frame:
            continue
        numbers = _as_number(frame[col])
        if numbers is not None and numbers is not frame[col]:
            if out is frame:
                out = frame.copy()
            out[col] = numbers.to_numpy() if numbers.dtype.kind == "f" else numbers.array
    return out


def site_positions(site_ids: pd.Series, table_ids: pd.Series) -> np.ndarray:
    """Position in ``site_ids`` of each row's site in ``table_ids`` (-1 when absent): the
    millions of rows are factorized first, so only the distinct ids are looked up."""
    codes, uniq = pd.factorize(table_ids)
    where = pd.Index(pd.Series(site_ids).astype(str).to_numpy()).get_indexer(
        pd.Index(uniq).astype(str))
    return np.where(codes >= 0, where[np.clip(codes, 0, None)], -1) if len(uniq) else \
        np.full(len(codes), -1, dtype=np.int64)


def site_results_frame(sites: pd.DataFrame, table: pd.DataFrame, *,
                       data_origin: str) -> pd.DataFrame:
    """The long results table as ``site_results.csv`` holds it: readable on its own, with
    the site's ``name`` and ``geocode_precision`` after ``site_id`` and ``data_origin``
    on every row."""
    pos = site_positions(sites["site_id"], table["site_id"])
    out = table.drop(columns=[c for c in ("name", "geocode_precision", "data_origin")
                              if c in table])
    at = 1 if "site_id" in out else 0
    for i, col in enumerate(("name", "geocode_precision")):
        values = (sites[col].astype(object).to_numpy() if col in sites
                  else np.full(len(sites), "", dtype=object))
        taken = np.where(pos >= 0, values[np.clip(pos, 0, None)] if len(values) else "", "")
        out.insert(at + i, col, pd.Series(taken, index=out.index, dtype=object).fillna(""))
    out["data_origin"] = data_origin
    return out
#: Fields every run writes beside the site's own (GeoJSON properties, GeoPackage fields).
_OUTPUT_FIELDS = frozenset({"lon", "lat", "geometry", "input_ref", "data_origin", "run_id"})
#: ``<hazard>_<scenario>_<year>_<field>``: the flat result fields of :func:`site_features`
#: and the ``<layer>_level`` fields of the GeoPackage footprints layer.
_RESULT_FIELD = re.compile(
    r"^[a-z0-9_]+_(?:optimistic|current_trend|pessimistic)_\d{4}_"
    r"(?:level|low|high|value|flags|pathway)$")


def is_reserved_output_name(name: str) -> bool:
    """True when an input property called ``name`` would collide with a field the outputs
    write themselves (result fields, ``data_origin``, geocoding provenance, coordinates).

    The sites reader renames such a property (with a warning), so the GeoJSON, the
    GeoPackage and the tables all carry the input's value under the same new name and the
    result under its own.

    Examples
    --------
    >>> is_reserved_output_name("water_stress_pessimistic_2030_level")
    True
    >>> is_reserved_output_name("asset_value")
    False
    """
    from sitescreen.geocode.frame import GEOCODE_COLUMNS

    key = str(name).strip().lower()
    return key in _OUTPUT_FIELDS or key in GEOCODE_COLUMNS or bool(_RESULT_FIELD.match(key))


#: Columns one GeoPackage layer may have: SQLite's default SQLITE_MAX_COLUMN.
GPKG_MAX_COLUMNS = 2000
#: The largest integer every output stores as a number (GeoPackage INTEGER, Arrow int64).
MAX_INT64 = 2 ** 63 - 1


#: Room kept in the ``sites`` layer for its ``<hazard>_<scenario>_<year>_level`` fields: the
#: packaged catalog has 7 hazards and composites x 3 scenarios x 3 years = 63.
LEVEL_FIELDS_RESERVE = 100


def max_site_properties(own_columns: int) -> int:
    """How many extra properties fit the GeoPackage ``sites`` layer besides ``own_columns``
    site columns, the geocoding provenance, the level fields (:data:`LEVEL_FIELDS_RESERVE`),
    ``data_origin``, ``run_id``, fid and geometry."""
    from sitescreen.geocode.frame import GEOCODE_COLUMNS

    return GPKG_MAX_COLUMNS - own_columns - len(GEOCODE_COLUMNS) - LEVEL_FIELDS_RESERVE - 4


def _marked_pathways(table: pd.DataFrame) -> pd.Series:
    """The long table's pathways as the per-site fields give them: :func:`marked_pathway`
    once per distinct (pathway, exact, composite), mapped back to the rows."""
    pathway = table["pathway"]
    if "pathway_exact" not in table:
        return pathway
    keys = pd.DataFrame({
        "p": pathway, "e": table["pathway_exact"].fillna(True).astype(bool),
        "c": table["is_composite"].fillna(False).astype(bool) if "is_composite" in table
        else False})
    codes, uniques = pd.MultiIndex.from_frame(keys).factorize()
    marked = np.array([p if not isinstance(p, str) else marked_pathway(p, e, c)
                       for p, e, c in uniques], dtype=object)
    out = pd.Series(marked[codes], index=table.index, dtype=object)
    return out.where(pathway.notna(), pathway.astype(object))  # a missing one stays as it was


def site_features(sites: pd.DataFrame, table: pd.DataFrame, *,
                  data_origin: str, site_columns: list[str], lazy: bool = False) -> dict:
    """RFC 7946 FeatureCollection: one Point feature per site (null geometry if unresolved).

    Properties are flat: the site's own fields, its geocoding provenance, ``data_origin``,
    and for every hazard x scenario x year the level, its low/high, the raw value, flags and
    the dataset pathway used. With ``lazy``, ``features`` is a one-pass iterator (for
    :func:`geojson_writer`) where the usual table allows it. The user's own columns that
    hold only numbers are written as numbers (:func:`typed_columns`).
    """
    sites = typed_columns(sites, [c for c in user_columns(sites) if c in site_columns])
    fast = _site_features_columnar(sites, table, data_origin=data_origin,
                                   site_columns=site_columns, lazy=lazy)
    if fast is not None:
        return fast
    per_site: dict[str, dict] = {sid: {} for sid in sites["site_id"]}
    cols = ["site_id", "hazard", "scenario", "year", "level", "level_low", "level_high",
            "value", "flags"]
    for row in table[cols].assign(pathway=_marked_pathways(table)).itertuples(index=False):
        props = per_site[row.site_id]
        base = f"{row.hazard}_{row.scenario}_{row.year}"
        props[f"{base}_level"] = int(row.level) if row.level > 0 else None
        props[f"{base}_low"] = int(row.level_low) if row.level_low > 0 else None
        props[f"{base}_high"] = int(row.level_high) if row.level_high > 0 else None
        props[f"{base}_value"] = row.value
        props[f"{base}_flags"] = row.flags or ""
        props[f"{base}_pathway"] = row.pathway
    features = []
    for rec in sites.to_dict("records"):
        lon, lat = rec.get("lon"), rec.get("lat")
        has_point = lon is not None and lat is not None and not (
            pd.isna(lon) or pd.isna(lat))
        geometry = ({"type": "Point", "coordinates": [round(float(lon), 6), round(float(lat), 6)]}
                    if has_point else None)
        props = {c: rec.get(c) for c in site_columns if c in rec}
        props["data_origin"] = data_origin
        props.update(per_site.get(rec["site_id"], {}))
        features.append({"type": "Feature", "id": rec["site_id"], "geometry": geometry,
                         "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _none_for_na(values: pd.Series) -> list:
    """Cells as Python values; missing ones (NaN, NA) and infinities as None, as
    :func:`_clean` writes them."""
    ok = values.notna()
    if values.dtype.kind == "f":
        ok = pd.Series(np.isfinite(values.to_numpy()), index=values.index)
    return values.astype(object).where(ok, None).tolist()


def _site_features_columnar(sites: pd.DataFrame, table: pd.DataFrame, *, data_origin: str,
                            site_columns: list[str], lazy: bool = False) -> dict | None:
    """:func:`site_features` built column by column, for the usual table where every site has
    the same hazard x scenario x year rows in the same order; None otherwise (the caller then
    builds it row by row). Values come out JSON-ready (None for missing), so the GeoJSON
    encoder needs no cleaning pass."""
    n = len(sites)
    site_ids = pd.Index(sites["site_id"])
    if n == 0 or not site_ids.is_unique or len(table) == 0:
        return None
    pos = site_ids.get_indexer(table["site_id"])
    if (pos < 0).any():
        return None
    counts = np.bincount(pos, minlength=n)
    k = int(counts[0])
    if k == 0 or (counts != k).any():
        return None
    base_codes = np.zeros(len(table), dtype=np.int64)
    names: list[list] = []
    for col in ("hazard", "scenario", "year"):
        codes, uniq = pd.factorize(table[col])
        if (codes < 0).any():
            return None
        base_codes = base_codes * len(uniq) + codes
        names.append(list(uniq))
    order = np.argsort(pos, kind="stable").reshape(n, k)  # each site's rows, in table order
    layout = base_codes[order]
    if not (layout == layout[0]).all() or len(np.unique(layout[0])) != k:
        return None

    def base_name(code: int) -> str:
        y = code % len(names[2])
        s = code // len(names[2]) % len(names[1])
        h = code // (len(names[2]) * len(names[1]))
        return f"{names[0][h]}_{names[1][s]}_{names[2][y]}"

    def level_list(values: np.ndarray) -> np.ndarray:
        ok = values > 0
        out = np.where(ok, values, 0).astype(np.int64).astype(object)
        out[~ok] = None
        return out

    level = pd.to_numeric(table["level"]).to_numpy()
    low = pd.to_numeric(table["level_low"]).to_numpy()
    high = pd.to_numeric(table["level_high"]).to_numpy()
    value = np.asarray(_none_for_na(table["value"]), dtype=object)
    if table["flags"].dtype == object:
        return None  # None and NA flags have their own rules in the row-by-row path
    flags = np.asarray(_none_for_na(table["flags"]), dtype=object)
    pathway = np.asarray(_none_for_na(_marked_pathways(table)), dtype=object)
    keys: list[str] = []
    columns: list[np.ndarray] = []
    for j, code in enumerate(layout[0]):
        rows = order[:, j]
        base = base_name(int(code))
        keys += [f"{base}_level", f"{base}_low", f"{base}_high", f"{base}_value",
                 f"{base}_flags", f"{base}_pathway"]
        columns += [level_list(level[rows]), level_list(low[rows]), level_list(high[rows]),
                    value[rows], flags[rows], pathway[rows]]
    layer_values = np.column_stack(columns).tolist() if columns else [[] for _ in range(n)]

    present = [c for c in site_columns if c in sites.columns]
    site_values = list(zip(*(_none_for_na(sites[c]) for c in present), strict=True)) \
        if present else [()] * n
    lon = pd.to_numeric(sites["lon"], errors="coerce").tolist() if "lon" in sites else [None] * n
    lat = pd.to_numeric(sites["lat"], errors="coerce").tolist() if "lat" in sites else [None] * n
    ids = sites["site_id"].tolist()

    def features() -> Iterator[dict]:
        for i, sid in enumerate(ids):
            x, y = lon[i], lat[i]
            geometry = ({"type": "Point",
                         "coordinates": [round(float(x), 6), round(float(y), 6)]}
                        if x is not None and y is not None and not (pd.isna(x) or pd.isna(y))
                        else None)
            props = dict(zip(present, site_values[i], strict=True))
            props["data_origin"] = data_origin
            props.update(zip(keys, layer_values[i], strict=True))
            yield {"type": "Feature", "id": sid, "geometry": geometry, "properties": props}

    return {"type": "FeatureCollection", "features": features() if lazy else list(features())}


def _safe_child(root: Path, name: str) -> Path:
    if not _RUN_ID.match(name) and not re.match(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", name):
        raise UnsafePathError(f"output name {name!r} is not a plain relative file name")
    target = (root / name).resolve()
    if root.resolve() not in target.parents:
        raise UnsafePathError(f"output name {name!r} would escape the run folder {root}")
    return target


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain folder name, else :class:`UnsafePathError`."""
    if not _RUN_ID.match(run_id):
        raise UnsafePathError(f"run id {run_id!r} must be a plain folder name "
                              "(letters, digits, '.', '_', '-')")
    return run_id


class SharedRendering:
    """Files of a run drawn together, once (``render()`` gives ``{name: bytes}`` for every
    one of ``names``), by the first :func:`write_run` writer that needs one of them: so the
    charts and the report are rendered in a writer thread while the per-site files are
    written. :meth:`writers` gives each file's writer; a failure of ``render`` fails every
    one of them."""

    def __init__(self, names: Sequence[str], render: Callable[[], Mapping[str, bytes]]):
        import threading

        self.names = list(names)
        self._render = render
        self._lock = threading.Lock()
        self._files: Mapping[str, bytes] | None = None
        self._error: BaseException | None = None

    def files(self) -> Mapping[str, bytes]:
        """Every file's bytes (rendered by the first caller; the others wait for it)."""
        with self._lock:
            if self._files is None and self._error is None:
                try:
                    files = dict(self._render())
                except BaseException as exc:
                    self._error = exc
                    raise
                if sorted(files) != sorted(self.names):
                    self._error = ValueError(
                        f"rendered {sorted(files)}, expected {sorted(self.names)}")
                    raise self._error
                self._files = files
            if self._error is not None:
                raise self._error
            return self._files

    def writers(self) -> dict[str, Callable[[Path], None]]:
        """name -> the ``write_run`` writer of that file."""
        return {name: partial(self._write, name) for name in self.names}

    def _write(self, name: str, path: Path) -> None:
        write_content(path, self.files()[name])


#: Writers of one run folder (:func:`write_run`) running at the same time.
WRITER_THREADS = 2

#: Temporary run folders older than this are leftovers of killed runs and are removed.
STALE_TMP_SECONDS = 6 * 3600


def _run_writers(writers: list[tuple[str, Path, Callable[[Path], None]]],
                 threads: int) -> Iterator[str]:
    """Run ``writers`` (name, target, writer) ``threads`` at a time; yields each name as its
    file is done and, after the name of a writer that failed, raises its error once the
    writers still running have stopped. The threads are daemons: an interrupt (Ctrl-C, SIGTERM) in the caller
    does not wait for a writer to finish a big file before the run folder is removed."""
    import queue
    import threading

    todo: queue.SimpleQueue = queue.SimpleQueue()
    done: queue.SimpleQueue = queue.SimpleQueue()
    for item in writers:
        todo.put(item)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                name, target, content = todo.get_nowait()
            except queue.Empty:
                return
            try:
                write_content(target, content)
                done.put((name, None))
            except BaseException as exc:  # handed to the caller
                done.put((name, exc))

    workers = [threading.Thread(target=work, name=f"sitescreen-writer-{k}", daemon=True)
               for k in range(min(threads, len(writers)))]
    for t in workers:
        t.start()
    try:
        for _ in writers:
            name, exc = done.get()
            yield name  # written, or failed: the caller names it in the error raised next
            if exc is not None:
                stop.set()  # no new writer starts; the running ones finish or fail
                for t in workers:
                    t.join()
                raise exc
    finally:
        stop.set()  # an interrupt or an abandoned generator: no further writer starts


def _remove_stale_tmp(out_root: Path) -> None:
    import time

    now = time.time()
    for tmp in out_root.glob(".tmp-*"):
        try:
            if tmp.is_dir() and now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue


def write_run(out_root: str | Path, run_id: str, files: Mapping[str, bytes | Callable[[Path], None]],
              *, update_latest: bool = True) -> Path:
    """Write all ``files`` (name -> bytes, or a writer called with the target path) as a run.

    Returns the final run folder. On any error nothing of this run remains and
    :class:`OutputError` says which file failed. Bytes are written first, then the writers,
    :data:`WRITER_THREADS` at a time.
    """
    check_run_id(run_id)
    out_root = Path(out_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_root}: {exc.strerror}") from exc
    if update_latest:
        check_latest(out_root)
    _remove_stale_tmp(out_root)
    final = out_root / run_id
    if final.exists():
        raise OutputError(f"run folder {final} already exists; choose another run id")
    current = ""
    try:
        with atomic_folder(final, prefix=".tmp-") as tmp:
            try:
                writers = []
                for name, content in files.items():
                    current = name
                    target = _safe_child(tmp, name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if callable(content):
                        writers.append((name, target, content))
                    else:
                        write_content(target, content)
                # The writers (per-site files, GeoPackage) spend most of their time in Arrow,
                # GDAL and the disk, outside the GIL: two at a time.
                for name in _run_writers(writers, WRITER_THREADS):
                    current = name
            except UnsafePathError:
                raise
            except Exception as exc:
                if isinstance(exc, OSError) and exc.strerror:
                    reason = exc.strerror
                else:  # a library's own words, which may hide a full disk: probe it now
                    reason = str(exc) + _storage_problem(tmp)
                raise OutputError(f"writing {current} of run {run_id} in {out_root} failed: "
                                  f"{reason}; nothing of this run was kept") from exc
    except (OutputError, UnsafePathError):
        raise
    except OSError as exc:  # the final rename
        raise OutputError(f"moving run {run_id} into place in {out_root} failed: "
                          f"{exc.strerror or exc}; nothing of this run was kept") from exc
    if update_latest:
        _point_latest(out_root, run_id)
    return final


def _probe_write(folder: Path) -> OSError | None:
    """Write and remove a 1 MiB file in ``folder``; the error when the folder refuses it.

    Not synced to disk (that cost 0.17 s a run): local file systems refuse a write beyond
    the free space or the quota when it is made, network ones when the file is closed."""
    probe = folder / f".space-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * (1 << 20))
    except OSError as exc:
        return exc
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return None


def _storage_problem(folder: Path) -> str:
    """A hint when ``folder`` refuses a 1 MiB write: libraries such as GDAL report a full disk
    in their own words ("no such table: gpkg_contents"), which would hide the cause."""
    exc = _probe_write(folder)
    if exc is None:
        return ""
    return (f" (the folder refuses writes: {exc.strerror or exc}; the disk or the quota "
            "may be full)")


def check_writable(folder: str | Path, what: str) -> None:
    """Create ``folder`` if needed and probe-write 1 MiB there, before any work.

    ``what`` names the folder's role in the message ("output folder (--out)", "cache folder").
    A read-only folder or a full disk is then an :class:`OutputError` up front, not a
    traceback after every hazard has been sampled.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the {what} {folder}: {exc.strerror or exc}; choose "
                          "another folder; nothing was computed") from exc
    exc = _probe_write(folder)
    if exc is not None:
        raise OutputError(
            f"the {what} {folder} refuses writes ({exc.strerror or exc}): free space there "
            "(the disk or the quota may be full) or fix its permissions, or choose another "
            "folder; nothing was computed") from exc


def check_latest(out_root: str | Path) -> None:
    """Refuse an ``<out>/latest`` that is not the link this project keeps to the newest run.

    A real folder or file there would be left stale while every new run is written beside
    it; refused before the work, so nothing is written.
    """
    link = Path(out_root) / LATEST_LINK
    if link.is_symlink() or not link.exists():
        return
    kind = "folder" if link.is_dir() else "file"
    raise OutputError(
        f"{link} is a real {kind}, not the link sitescreen keeps to the newest run; move it "
        f"away (for example 'mv {link} {link}.kept') and run again; nothing was written")


def _point_latest(out_root: Path, run_id: str) -> None:
    link = out_root / LATEST_LINK
    tmp_link = out_root / f".latest-{os.getpid()}"
    check_latest(out_root)  # outside the try: an OutputError is an OSError, not "no symlinks"
    try:
        tmp_link.unlink(missing_ok=True)
        os.symlink(run_id, tmp_link, target_is_directory=True)
        os.replace(tmp_link, link)
    except OSError:
        # File systems without symlinks: a text file naming the newest run.
        tmp_link.unlink(missing_ok=True)
        atomic_write(out_root / LATEST_MARKER, (run_id + "\n").encode())
        return
    atomic_write(out_root / LATEST_MARKER, (run_id + "\n").encode())


def latest_run(out_root: str | Path) -> Path | None:
    """The newest run folder under ``out_root``, or None."""
    out_root = Path(out_root)
    marker = out_root / LATEST_MARKER
    if marker.is_file():
        run = out_root / marker.read_text("utf-8").strip()
        if run.is_dir():
            return run
    return None
