"""Which per-site files a run writes, and the streamed writers of the long ones.

Counts-based outputs (summary, manifest, report, charts) are written at any size. Per-site
files grow with the portfolio: the long ``site_results.csv`` (one row per site x layer,
about 9 GB at a million sites) and ``sites.geojson`` (about 5 GB) are streamed chunk by chunk
of sites, and ``--per-site-outputs`` chooses them:

=============  ======================================================================
``auto``       ``all`` up to ``--per-site-limit`` sites (default 100,000), ``parquet``
               above it (the default)
``all``        ``site_results.csv``, ``sites.geojson``, ``sites.parquet``, ``sites.gpkg``
``compressed`` the same with ``site_results.csv.gz`` and ``sites.geojson.gz`` (gzip)
``parquet``    ``sites.parquet`` only (GeoParquet: one row per site, every layer)
``none``       no per-site file
=============  ======================================================================
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sitescreen.aggregate import DEFAULT_CHUNK_SITES, LayerInfo, SiteResults, marked_pathway
from sitescreen.errors import ConfigError
from sitescreen.outputs.run_folder import (
    SITE_RESULTS_CSV,
    SITES_GEOJSON,
    EncodedLines,
    is_text_dtype,
    json_line,
    neutralise_arrow,
    neutralise_cell,
    typed_columns,
    user_columns,
    write_feature_collection,
)

__all__ = ["PerSiteOutputs", "PerSitePlan", "plan_per_site", "DEFAULT_PER_SITE_LIMIT",
           "long_csv_writer", "long_csv_tables", "site_geojson_writer",
           "geojson_feature_texts"]

#: Sites up to which ``auto`` writes every per-site file (100,000 sites x 36 layers make a
#: 0.9 GB CSV and a 0.5 GB GeoJSON); above it only the GeoParquet file.
DEFAULT_PER_SITE_LIMIT = 100_000


class PerSiteOutputs(StrEnum):
    AUTO = "auto"
    ALL = "all"
    COMPRESSED = "compressed"
    PARQUET = "parquet"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class PerSitePlan:
    """The per-site files of one run."""

    mode: PerSiteOutputs          # as resolved (never AUTO)
    requested: PerSiteOutputs
    long_files: str | None        # "plain", "gzip" or None: site_results.csv and sites.geojson
    parquet: bool
    geopackage: bool
    limit: int

    @property
    def csv_name(self) -> str | None:
        return None if self.long_files is None else \
            SITE_RESULTS_CSV + (".gz" if self.long_files == "gzip" else "")

    @property
    def geojson_name(self) -> str | None:
        return None if self.long_files is None else \
            SITES_GEOJSON + (".gz" if self.long_files == "gzip" else "")

    def files(self) -> list[str]:
        from sitescreen.outputs.geopackage import GPKG_FILE
        from sitescreen.outputs.geoparquet import GEOPARQUET_FILE

        names = [self.csv_name, self.geojson_name,
                 GEOPARQUET_FILE if self.parquet else None,
                 GPKG_FILE if self.geopackage else None]
        return [n for n in names if n]

    def to_dict(self) -> dict:
        return {"requested": self.requested.value, "mode": self.mode.value,
                "limit_sites": self.limit, "files": self.files()}


def plan_per_site(mode: str | PerSiteOutputs, n_sites: int, *,
                  limit: int = DEFAULT_PER_SITE_LIMIT) -> PerSitePlan:
    """The per-site files for ``n_sites`` sites under ``mode`` (see the module docstring).

    >>> plan_per_site("auto", 1_000_000).files()
    ['sites.parquet']
    >>> plan_per_site("compressed", 10).files()
    ['site_results.csv.gz', 'sites.geojson.gz', 'sites.parquet', 'sites.gpkg']
    """
    try:
        requested = PerSiteOutputs(str(mode))
    except ValueError:
        raise ConfigError(f"--per-site-outputs {mode!r} is not one of "
                          f"{', '.join(m.value for m in PerSiteOutputs)}") from None
    if int(limit) < 0:
        raise ConfigError(f"--per-site-limit must be 0 or more sites, not {limit}")
    resolved = requested
    if requested == PerSiteOutputs.AUTO:
        resolved = PerSiteOutputs.ALL if n_sites <= limit else PerSiteOutputs.PARQUET
    long_files = {PerSiteOutputs.ALL: "plain", PerSiteOutputs.COMPRESSED: "gzip"}.get(resolved)
    return PerSitePlan(mode=resolved, requested=requested, long_files=long_files,
                       parquet=resolved != PerSiteOutputs.NONE,
                       geopackage=resolved in (PerSiteOutputs.ALL, PerSiteOutputs.COMPRESSED),
                       limit=int(limit))


def _open(path: Path, compressed: bool):
    # Level 3: within a few percent of the size of level 6 at a third of its time.
    return gzip.open(path, "wb", compresslevel=3) if compressed else \
        open(path, "wb", buffering=1 << 20)


def _sync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _result_column(info: LayerInfo, key: str) -> str:
    """The long-table column of an extra ``key`` of a layer (see ``SiteResults.long_table``)."""
    return key[1:] if key.startswith("=") else f"extra_{info.hazard}_{key}"


def _extra_types(results: SiteResults) -> dict[str, Any]:
    """Long-table extra column -> its Arrow type, in order of first appearance; a column
    some layers lack is filled with nulls there, which makes integers floats (as a pandas
    concat of the layers would)."""
    import pyarrow as pa

    types: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for info, extra in zip(results.layers, results.extra, strict=True):
        for key, arr in extra.items():
            name = _result_column(info, key)
            counts[name] = counts.get(name, 0) + 1
            if name not in types:
                types[name] = pa.array(np.asarray(arr[:1]), from_pandas=True).type
    for name, t in types.items():
        if counts[name] < len(results.layers) and pa.types.is_integer(t):
            types[name] = pa.float64()
    return types


def _constant(value: Any, zeros: Any) -> Any:
    """``value`` repeated ``len(zeros)`` times, stored once (an Arrow dictionary array over
    the shared all-zero indices ``zeros``)."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(zeros, pa.array([value]))


def _dictionary(values: pd.Categorical, *, neutralise: bool = False) -> Any:
    """A categorical as an Arrow dictionary array (missing values null); with
    ``neutralise``, its categories made safe for a spreadsheet."""
    import pyarrow as pa

    codes = np.asarray(values.codes, dtype=np.int32)
    cats = [str(c) for c in values.categories]
    if neutralise:
        cats = [neutralise_cell(c) for c in cats]
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                          pa.array(cats, type=pa.string()))


def _site_text(sites: pd.DataFrame, column: str) -> Any:
    """A site column as ``site_results.csv`` repeats it on every row ("" when missing)."""
    import pyarrow as pa

    values = (sites[column].astype(object) if column in sites
              else pd.Series("", index=sites.index, dtype=object))
    return pa.Array.from_pandas(values.fillna("").reset_index(drop=True))


#: The site columns of ``site_results.csv``, the same on every layer's rows.
_SITE_TEXT_COLUMNS = ("site_id", "name", "geocode_precision")


def long_csv_tables(sites: pd.DataFrame, part: SiteResults, *, data_origin: str,
                    extra_types: Mapping[str, Any]) -> Iterator[Any]:
    """``site_results.csv`` of a chunk of sites as one Arrow table per layer (rows of
    :func:`outputs.run_folder.site_results_frame`, text neutralised as ``csv_writer`` does):
    built from the columns, the layer's constants stored once per table. The site columns
    (:data:`_SITE_TEXT_COLUMNS`) are the same arrays in every table of the chunk."""
    import pyarrow as pa

    n = len(part)
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    nulls = {kind: pa.nulls(n, type=kind) for kind in set(extra_types.values())}
    flags = {v: pa.array(np.full(n, v)) for v in (False, True)}
    site_id, *texts = _SITE_TEXT_COLUMNS
    site_table = neutralise_arrow(pa.table({
        site_id: pa.Array.from_pandas(pd.Series(part.site_ids, dtype=object)),
        **{c: _site_text(sites, c) for c in texts}}))
    origin = _constant(neutralise_cell(data_origin), zeros)
    for i, info in enumerate(part.layers):
        const = {k: _constant(neutralise_cell(getattr(info, k)), zeros)
                 for k in ("hazard", "hazard_label", "scenario", "pathway", "pathway_label",
                           "period", "pathway_note", "units", "threshold_set", "datasets")}
        cols: dict[str, Any] = {
            "site_id": site_table.column(0), "name": site_table.column(1),
            "geocode_precision": site_table.column(2),
            "hazard": const["hazard"], "hazard_label": const["hazard_label"],
            "is_composite": flags[bool(info.is_composite)],
            "scenario": const["scenario"],
            "year": pa.array(np.full(n, info.year, dtype=np.int64)),
            "pathway": const["pathway"], "pathway_label": const["pathway_label"],
            "period": const["period"],
            "pathway_exact": flags[bool(info.pathway_exact)],
            "pathway_note": const["pathway_note"],
            "value": pa.array(np.asarray(part.value[i], dtype="float64"), from_pandas=True),
            "units": const["units"],
            "level": pa.array(part.level[i].astype(np.int64)),
            "level_low": pa.array(part.level_low[i].astype(np.int64)),
            "level_high": pa.array(part.level_high[i].astype(np.int64)),
            "flags": _dictionary(part.flags[i], neutralise=True),
            "driver": _dictionary(part.driver[i], neutralise=True),
            "threshold_set": const["threshold_set"], "datasets": const["datasets"],
        }
        own = {_result_column(info, k): v for k, v in part.extra[i].items()}
        for name, kind in extra_types.items():
            if name not in own:
                cols[name] = nulls[kind]  # another hazard's column
                continue
            arr = pa.array(np.asarray(own[name]), from_pandas=True)
            if arr.type != kind:
                arr = arr.cast(kind)
            if pa.types.is_string(kind):
                arr = neutralise_arrow(pa.table({"x": arr})).column(0)
            cols[name] = arr
        cols["data_origin"] = origin
        yield pa.table(cols)


class _Pieces:
    """One line of text per row, as fixed text and per-row cells in turn (Arrow string
    arrays, or coded columns: a code per row and a text per code), joined by one Arrow
    kernel (:meth:`join`) once neighbouring coded columns are made one (:func:`_joined`)."""

    def __init__(self, text: str = "") -> None:
        self._items: list[Any] = [text] if text else []

    def text(self, text: str) -> None:
        if self._items and isinstance(self._items[-1], str):
            self._items[-1] += text
        else:
            self._items.append(text)

    def add(self, cells: Any) -> None:
        self._items.append(cells)

    def join(self, n: int) -> Any:
        """The ``n`` lines (one per row of the cells added)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        items = _joined(self._items)
        if all(isinstance(item, str) for item in items):  # nothing varies from row to row
            return pa.array(np.full(n, "".join(items), dtype=object), type=pa.string())
        if len(items) == 1:
            return items[0]
        out = pc.binary_join_element_wise(
            *(pa.scalar(item) if isinstance(item, str) else item for item in items), "")
        return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _csv_quoted(values: Any) -> Any:
    """Arrow string cells as ``pyarrow.csv`` writes them: quoted, ``"`` doubled, null empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    escaped = pc.replace_substring(values, '"', '""')
    return pc.binary_join_element_wise(pa.scalar('"'), escaped, pa.scalar('"'), "")


def _csv_cell(value: Any) -> str:
    """The CSV text of one Arrow scalar (a column's single value)."""
    import pyarrow as pa

    if not value.is_valid:
        return ""
    if pa.types.is_string(value.type) or pa.types.is_large_string(value.type):
        return _csv_quoted(pa.array([value.as_py()], type=pa.string()))[0].as_py()
    return value.cast(pa.string()).as_py()


def _csv_constant(column: Any) -> str | None:
    """The CSV text of a column whose rows are all alike (all missing, a dictionary of one
    value, one number or flag), else None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(column)
    if column.null_count == n:
        return ""
    if column.null_count:
        return None
    if pa.types.is_dictionary(column.type):
        return _csv_cell(column.dictionary[0]) if len(column.dictionary) == 1 else None
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        lo_hi = pc.min_max(column)
        if lo_hi["min"] == lo_hi["max"]:
            return _csv_cell(column[0])
    return None


def number_texts(values: Any) -> Any:
    """Arrow's own text of each number of an Arrow array (its cast to string; null for
    null), cast once per distinct value: a per-site column takes a few hundred distinct
    values among 100,000 sites, and the cast of a float is the costly part of the text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(values)
    if 2 * len(encoded.dictionary) > len(values):  # mostly distinct: cast them all
        return pc.cast(values, pa.string())
    return pc.cast(encoded.dictionary, pa.string()).take(encoded.indices)


def _csv_texts(column: Any) -> Any:
    """The CSV text of each cell of an Arrow column, as ``pyarrow.csv.write_csv`` writes it
    (strings quoted, numbers and flags cast to text by Arrow's own cast, nulls empty)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        return pc.fill_null(_csv_texts(column.dictionary).take(column.indices), "")
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.fill_null(_csv_quoted(column.cast(pa.string())), "")
    return pc.fill_null(pc.cast(column, pa.string()), "")


#: Distinct values up to which a column's cells are coded (a code per row into the texts of
#: its values), and combinations up to which neighbouring coded columns are coded as one.
_CODED_VALUES = 1024
_JOINT_TEXTS = 4096


def _csv_cells(column: Any) -> Any:
    """The CSV texts of a column's cells, each distinct value formatted once: for a column
    of few distinct values (code per row, text per code: its values', then the empty text
    of a missing cell), else the text of each cell (an Arrow string array)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    is_dictionary = pa.types.is_dictionary(column.type)
    encoded = column if is_dictionary else pc.dictionary_encode(column)
    values = encoded.dictionary
    few = len(values) < _CODED_VALUES
    if not (few or is_dictionary or 2 * len(values) <= len(column)):
        return _csv_texts(column)  # mostly distinct values
    texts = pa.concat_arrays([_csv_texts(values), pa.array([""], type=pa.string())])
    codes = pc.fill_null(encoded.indices, len(values)).to_numpy().astype(np.int64)
    return (codes, texts) if few else texts.take(pa.array(codes))


def _joint_cells(group: list) -> Any:
    """The text of a run of coded columns and the fixed text between them (``group``:
    (codes, texts) and str items, beginning and ending with coded ones), by one code per
    row into the texts of every combination."""
    import pyarrow as pa
    import pyarrow.compute as pc

    coded = [item for item in group if not isinstance(item, str)]
    if len(coded) == 1:
        codes, texts = coded[0]
        return texts.take(pa.array(codes))
    joint = np.zeros(len(coded[0][0]), dtype=np.int64)
    for codes, texts in coded:
        joint = joint * len(texts) + codes
    combos = np.arange(int(np.prod([len(texts) for _, texts in coded])), dtype=np.int64)
    digits = []
    for _, texts in reversed(coded):
        combos, digit = np.divmod(combos, len(texts))
        digits.append(digit)
    digits.reverse()
    pieces, k = [], 0
    for item in group:
        if isinstance(item, str):
            pieces.append(pa.scalar(item))
        else:
            pieces.append(item[1].take(pa.array(digits[k])))
            k += 1
    return pc.binary_join_element_wise(*pieces, "").take(pa.array(joint))


def _joined(items: list) -> list:
    """``items`` (fixed text, text arrays, coded columns) with each run of neighbouring
    coded columns made one text array while their combinations stay few
    (:data:`_JOINT_TEXTS`)."""
    out: list = []
    group: list = []
    size = 1

    def flush() -> None:
        tail = []
        while group and isinstance(group[-1], str):
            tail.insert(0, group.pop())
        if group:
            out.append(_joint_cells(group))
        out.extend(tail)
        group.clear()

    for item in items:
        if isinstance(item, str):
            (group if group else out).append(item)
        elif isinstance(item, tuple):
            if group and size * len(item[1]) <= _JOINT_TEXTS:
                group.append(item)
                size *= len(item[1])
            else:
                flush()
                group.append(item)
                size = len(item[1])
        else:
            flush()
            out.append(item)
    flush()
    return out


def csv_lines(table: Any, *, shared: dict[str, Any] | None = None) -> Any:
    """The data lines of ``table`` as ``pyarrow.csv.write_csv`` writes them (default
    options, no header), one Arrow string per row ending in a newline, by one string join:
    a column whose rows are all alike (a run's constant, another hazard's empty column) is
    one piece of fixed text; a column of few distinct values is formatted once per value,
    and neighbouring such columns are one piece, taken from the texts of their
    combinations.

    ``shared`` keeps the cells of the columns it names: name -> cells, or None until known.
    The caller gives it only with tables that all hold the very same rows in those columns
    (the site columns of one chunk's layer tables, :func:`long_csv_tables`)."""
    line = _Pieces()
    for i in range(table.num_columns):
        column = table.column(i)
        if i:
            line.text(",")
        name = table.column_names[i]
        known = shared.get(name) if shared is not None else None
        if known is not None:
            line.add(known)
            continue
        whole = column.combine_chunks() if hasattr(column, "combine_chunks") else column
        constant = _csv_constant(whole)
        if constant is not None:
            line.text(constant)
            continue
        cells = _csv_cells(whole)
        if shared is not None and name in shared:
            shared[name] = cells
        line.add(cells)
    line.text("\n")
    return line.join(table.num_rows)


def long_csv_writer(sites: pd.DataFrame, results: SiteResults, *, data_origin: str,
                    compressed: bool = False,
                    chunk_sites: int = DEFAULT_CHUNK_SITES) -> Callable[[Path], None]:
    """A ``write_run`` writer of ``site_results.csv`` (one row per site x layer, as
    ``outputs.run_folder.site_results_frame`` lays it out), written one chunk of sites and
    one layer at a time straight from the columns (:func:`long_csv_tables`, as text by
    :func:`csv_lines`).

    The same bytes as ``outputs.run_folder.csv_writer`` of the long table (through Arrow,
    formula-like text cells neutralised, strings quoted, missing values empty); rows come
    chunk by chunk, layer by layer. ``sites`` and ``results`` are aligned (same sites, same
    order).
    """
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        types = _extra_types(results)
        with _open(path, compressed) as fh:
            header = True
            for a, part in results.chunks(chunk_sites):
                # The site columns' texts, once a chunk: every layer's table of the chunk
                # holds the same site columns (long_csv_tables).
                shared: dict[str, Any] = dict.fromkeys(_SITE_TEXT_COLUMNS)
                for table in long_csv_tables(sites.iloc[a:a + len(part)], part,
                                             data_origin=data_origin, extra_types=types):
                    if header:
                        pa_csv.write_csv(table.slice(0, 0), fh)
                        header = False
                    fh.write(EncodedLines.of(csv_lines(table, shared=shared)).text)
            if header:  # no layer: the header of the long table alone
                from sitescreen.outputs.run_folder import site_results_frame

                frame = site_results_frame(sites.iloc[:0], results.long_table(),
                                           data_origin=data_origin)
                pa_csv.write_csv(neutralise_arrow(pa.Table.from_pandas(
                    frame, preserve_index=False)), fh)
        _sync(path)
    return write


# ----------------------------------------------------------------------------- GeoJSON text

#: Sites per block of GeoJSON text built at once (a site's feature is about 16 KB with 54
#: layers, so a block is about 160 MB).
_GEOJSON_BLOCK = 10_000
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


def _json_texts(values: Any) -> Any:
    """JSON strings of an Arrow string array (``ensure_ascii=False``, as the encoder writes
    them), null for nulls; only the cells that need escaping go through :mod:`json`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    quoted = pc.binary_join_element_wise(pa.scalar('"'), values, pa.scalar('"'), "")
    needs = pc.fill_null(pc.match_substring_regex(values, _NEEDS_ESCAPE), False)
    if pc.any(needs).as_py():
        idx = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
        out = quoted.to_numpy(zero_copy_only=False).astype(object)
        out[idx] = [json.dumps(s, ensure_ascii=False) for s in values.take(idx).to_pylist()]
        quoted = pa.array(out, type=pa.string())
    return pc.fill_null(quoted, "null")


#: Arrow's shortest text of a float: sign, integer digits, fraction digits, exponent.
_ARROW_FLOAT_RE = r"^(?P<sign>-?)(?P<int>\d+)(?:\.(?P<frac>\d+))?(?:e(?P<exp>[+-]\d+))?$"


def _python_float_texts(texts: Any) -> Any:
    """``repr`` of finite floats from Arrow's shortest round-trip text of them (the same
    digits, another layout), by Arrow kernels: Python writes ``d.ddde±XX`` (at least two
    exponent digits) when the decimal point falls more than 16 digits right of the first
    digit or 4 left of it (``decpt <= -4 or decpt > 16`` in CPython's ``float_repr``),
    else the digits with a point and ``.0`` when integral."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def join(*items: Any) -> Any:
        return pc.binary_join_element_wise(
            *(pa.scalar(i) if isinstance(i, str) else i for i in items), "")

    def length(strings: Any) -> np.ndarray:
        return pc.utf8_length(strings).to_numpy(zero_copy_only=False).astype(np.int64)

    parts = pc.extract_regex(texts, _ARROW_FLOAT_RE)
    sign, whole, frac, exp = (parts.field(k) for k in ("sign", "int", "frac", "exp"))
    exponent = pc.cast(pc.utf8_ltrim(pc.if_else(pc.equal(exp, ""), "0", exp), "+"),
                       pa.int64()).to_numpy(zero_copy_only=False)
    below_one = pc.equal(whole, "0").to_numpy(zero_copy_only=False)
    # The significant digits, and decpt: the value is 0.<digits> x 10**decpt.
    digits = pc.utf8_rtrim(pc.if_else(pa.array(below_one), pc.utf8_ltrim(frac, "0"),
                                      join(whole, frac)), "0")
    n = length(digits)
    leading_zeros = length(frac) - length(pc.utf8_ltrim(frac, "0"))
    decpt = exponent + np.where(below_one, -leading_zeros, length(whole))
    x = decpt - 1
    scientific = join(sign, pc.utf8_slice_codeunits(digits, 0, 1),
                      pc.if_else(pa.array(n > 1),
                                 join(".", pc.utf8_slice_codeunits(digits, 1)), ""),
                      pc.if_else(pa.array(x < 0), "e-", "e+"),
                      pc.utf8_lpad(pc.cast(pa.array(np.abs(x)), pa.string()), 2, "0"))
    zeros = pa.scalar("0")
    fixed = pc.if_else(  # digits then zeros up to the point, or "0." then zeros then digits
        pa.array(decpt >= n),
        join(sign, digits, pc.binary_repeat(zeros, pa.array(np.maximum(decpt - n, 0))), ".0"),
        join(sign, "0.", pc.binary_repeat(zeros, pa.array(np.maximum(-decpt, 0))), digits))
    for point in np.unique(decpt[(decpt > 0) & (decpt < n)]):  # the point among the digits
        at = pa.array((decpt == point) & (n > point))
        fixed = pc.if_else(at, join(sign, pc.utf8_slice_codeunits(digits, 0, int(point)), ".",
                                    pc.utf8_slice_codeunits(digits, int(point))), fixed)
    return pc.if_else(pa.array((decpt <= -4) | (decpt > 16)), scientific, fixed)


def _float_reprs(v: np.ndarray) -> Any:
    """``repr`` of each finite float64 of ``v``: Arrow's shortest round-trip text, with
    Python's ``.0`` and its layout of large and small numbers where Arrow's differs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(pa.array(v), pa.string())
    # Arrow writes an exponent from 1e10 and below 1e-5; Python from 1e16 and below 1e-4.
    odd = (v != 0) & ((np.abs(v) < 1e-4) | (np.abs(v) >= 1e10))
    plain = text.filter(pa.array(odd)) if odd.any() else None
    text = pc.if_else(pa.array(v == np.floor(v)),
                      pc.binary_join_element_wise(text, pa.scalar(".0"), ""), text)
    if plain is not None:
        text = pc.replace_with_mask(text, pa.array(odd), _python_float_texts(plain))
    return text


def _json_floats(values: np.ndarray) -> Any:
    """JSON numbers of float64 values as Python's encoder writes them (``repr``), null for
    missing and infinite ones; each distinct value formatted once (:func:`_float_reprs`)
    when they are fewer than half the values (a per-site column takes a few hundred
    distinct values among 100,000 sites)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    v = np.asarray(values, dtype="float64")
    finite = np.isfinite(v)
    w = np.where(finite, v, 0.0)
    encoded = pc.dictionary_encode(pa.array(w))
    if 2 * len(encoded.dictionary) > len(v):  # mostly distinct: format them all
        text = _float_reprs(w)
    else:
        distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
        text = _float_reprs(distinct).take(encoded.indices)
    return pc.if_else(pa.array(finite), text, pa.scalar("null"))


def _json_column(values: pd.Series) -> Any:
    """JSON text of each cell of a site column, as the GeoJSON encoder writes the cell's
    Python value (missing and non-finite: null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.dtype.kind
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return pa.array(np.where(values.to_numpy(dtype=bool), "true", "false"))
    if kind == "f":
        return _json_floats(values.to_numpy(dtype="float64", na_value=np.nan))
    if pd.api.types.is_integer_dtype(values):
        ok = values.notna().to_numpy()
        text = pc.cast(pa.array(values.to_numpy(dtype="int64", na_value=0)), pa.string())
        return pc.if_else(pa.array(ok), text, pa.scalar("null"))
    if is_text_dtype(values):
        text = pa.Array.from_pandas(values)
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        return _json_texts(text.cast(pa.string()))
    cells = values.astype(object)
    given = cells.notna().to_numpy()
    if all(isinstance(v, str) for v in cells[given]):
        return _json_texts(pa.array(cells.where(given, None).tolist(), type=pa.string()))
    return pa.array([json_line(v) for v in cells.tolist()], type=pa.string())


def _json_geometry(lon: np.ndarray, lat: np.ndarray) -> Any:
    """The Point geometry of each site (coordinates rounded to 6 decimals), null without."""
    import pyarrow as pa

    ok = ~(np.isnan(lon) | np.isnan(lat))
    out = np.full(len(lon), "null", dtype=object)
    out[ok] = [f'{{"type": "Point", "coordinates": [{round(x, 6)!r}, {round(y, 6)!r}]}}'
               for x, y in zip(lon[ok].tolist(), lat[ok].tolist(), strict=True)]
    return pa.array(out, type=pa.string())


def _level_texts(values: np.ndarray) -> Any:
    import pyarrow as pa

    lookup = pa.array(["null", "1", "2", "3", "4", "5"])
    return np.clip(np.asarray(values, dtype=np.int64), 0, 5), lookup  # coded (_Pieces)


def _category_texts(values: pd.Categorical) -> Any:
    import pyarrow as pa

    lookup = pa.array([json.dumps(str(c), ensure_ascii=False) for c in values.categories]
                      + ["null"], type=pa.string())
    codes = np.asarray(values.codes, dtype=np.int64)
    return np.where(codes < 0, len(values.categories), codes), lookup  # coded (_Pieces)


def geojson_feature_texts(sites: pd.DataFrame, part: SiteResults, *, data_origin: str,
                          site_columns: Sequence[str]) -> Iterator[EncodedLines]:
    """The features of :func:`outputs.run_folder.site_features` for a chunk of sites as
    JSON text, byte for byte what the encoder writes for them, built column by column
    (Arrow string kernels) in blocks of sites: no Python object per feature or value.
    ``sites`` come with their numeric user columns typed (``typed_columns``)."""
    present = [c for c in site_columns if c in sites.columns]
    lon = pd.to_numeric(sites["lon"], errors="coerce").to_numpy(dtype="float64") \
        if "lon" in sites else np.full(len(sites), np.nan)
    lat = pd.to_numeric(sites["lat"], errors="coerce").to_numpy(dtype="float64") \
        if "lat" in sites else np.full(len(sites), np.nan)
    for a in range(0, len(part), _GEOJSON_BLOCK):
        b = min(len(part), a + _GEOJSON_BLOCK)
        block = sites.iloc[a:b]
        line = _Pieces(',\n    {"type": "Feature", "id": ')
        line.add(_json_column(block["site_id"]))
        line.text(', "geometry": ')
        line.add(_json_geometry(lon[a:b], lat[a:b]))
        line.text(', "properties": {')
        sep = ""
        for col in present:
            line.text(f"{sep}{json.dumps(str(col), ensure_ascii=False)}: ")
            line.add(_json_column(block[col]))
            sep = ", "
        line.text(f'{sep}"data_origin": {json.dumps(data_origin, ensure_ascii=False)}')
        for i, info in enumerate(part.layers):
            key = info.key
            for suffix, values in (("level", part.level[i]), ("low", part.level_low[i]),
                                   ("high", part.level_high[i])):
                line.text(f', "{key}_{suffix}": ')
                line.add(_level_texts(values[a:b]))
            line.text(f', "{key}_value": ')
            line.add(_json_floats(part.value[i][a:b]))
            line.text(f', "{key}_flags": ')
            line.add(_category_texts(part.flags[i][a:b]))
            pathway = json.dumps(marked_pathway(info.pathway, info.pathway_exact,
                                                info.is_composite), ensure_ascii=False)
            line.text(f', "{key}_pathway": {pathway}')
        line.text("}}")
        yield EncodedLines.of(line.join(b - a))


def site_geojson_writer(sites: pd.DataFrame, results: SiteResults, *, data_origin: str,
                        site_columns: Sequence[str], members: Mapping, compressed: bool = False,
                        chunk_sites: int = DEFAULT_CHUNK_SITES) -> Callable[[Path], None]:
    """A ``write_run`` writer of the per-site GeoJSON (``outputs.run_folder.site_features``,
    one feature per site), written as text one chunk of sites at a time
    (:func:`geojson_feature_texts`); ``members`` are the FeatureCollection's members after
    ``features`` (name, provenance)."""
    def features() -> Iterator[EncodedLines]:
        # Typed once for the whole portfolio, so every chunk gives a column the same type.
        typed = typed_columns(sites, [c for c in user_columns(sites) if c in site_columns])
        for a, part in results.chunks(chunk_sites):
            yield from geojson_feature_texts(typed.iloc[a:a + len(part)], part,
                                             data_origin=data_origin,
                                             site_columns=list(site_columns))

    def write(path: Path) -> None:
        fc = {"type": "FeatureCollection", "features": features(), **members}
        with _open(path, compressed) as fh:
            write_feature_collection(fh, fc)
        _sync(path)
    return write
