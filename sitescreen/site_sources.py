"""Where sites come from besides a file: a GeoPackage layer or a PostGIS table or query.

A *sites source* is one string, so that it travels unchanged through the command line, flow
parameters, events and manifests:

``sites.geojson`` / ``sites.csv``
    a file, read by :mod:`sitescreen.sites`;
``sites.gpkg`` or ``sites.gpkg:layer``
    a GeoPackage layer (the layer may be left out when the file has only one);
``postgresql://user@host:5432/db?table=schema.sites``
    a PostGIS table (SQLAlchemy URL; ``postgresql+psycopg://`` and ``postgresql+psycopg2://``
    are accepted too), or ``...?query=SELECT ...`` for a query (percent-encoded; the
    command line's ``--sites-query`` does the encoding, see :func:`with_query`). ``geometry=``
    names the geometry column when the table has several; other parameters (``sslmode`` ...)
    go to libpq unchanged.

The password never belongs in the source: it comes from ``PGPASSWORD`` (or ``~/.pgpass``,
read by libpq), or is handed to :func:`read_table` by the caller (the flows take it from the
Prefect Secret block ``sitescreen-postgres-password``). A URL that does carry one is
accepted, but every message and output shows it through :func:`redact`.

A table is turned into GeoJSON-like features (properties and a geometry mapping) so that the
checks and the every-problem report of :mod:`sitescreen.site_checks` apply unchanged. Its
digest (:attr:`TableRows.digest`) is a SHA-256 of the rows' ids, geometries and properties,
independent of the row order, so re-saving or vacuuming does not look like a change.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sitescreen.errors import ConfigError

__all__ = [
    "POSTGRES_SCHEMES",
    "TableRows",
    "is_postgres",
    "is_table_source",
    "redact",
    "source_label",
    "split_password",
    "with_query",
    "read_table",
    "SourceProblem",
]

#: URL schemes read as PostGIS sources.
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgres")
_GPKG_RE = re.compile(r"^(?P<path>.+?\.gpkg)(?::(?P<layer>[^:/\\]+))?$", re.IGNORECASE)
_PASSWORD_IN_NETLOC = re.compile(r"^(?P<head>[a-z0-9+.\-]+://[^:/@?#]*):(?P<pw>[^@/?#]*)@",
                                 re.IGNORECASE)
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&#]*)", re.IGNORECASE)
_SOURCE_KEYS = ("table", "query", "geometry")
#: Tables above this many rows are refused, as files above ``DEFAULT_MAX_BYTES`` are.
DEFAULT_MAX_ROWS = 1_000_000


class SourceProblem(Exception):
    """A problem with the source as a whole; :mod:`sitescreen.sites` reports it as a
    file-level problem (it never leaves that module)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(slots=True)
class TableRows:
    """The rows of a table source as GeoJSON-like features, ready for the site checks."""

    features: list[dict]
    refs: list[str]
    digest: str
    meta: dict = field(default_factory=dict)
    format: str = "gpkg"


def is_postgres(source: str) -> bool:
    """True for a PostgreSQL URL (``postgresql://...``)."""
    scheme = str(source).split("://", 1)[0].lower() if "://" in str(source) else ""
    return scheme in POSTGRES_SCHEMES


def is_table_source(source: str) -> bool:
    """True for a GeoPackage layer or a PostGIS URL; False for GeoJSON/CSV files."""
    return is_postgres(source) or _GPKG_RE.match(str(source)) is not None


def redact(source: str) -> str:
    """The source with any password replaced by ``***`` (for messages, logs and outputs).

    Examples
    --------
    >>> redact("postgresql://ana:s3cret@db.example/gis?table=sites")
    'postgresql://ana:***@db.example/gis?table=sites'
    >>> redact("postgresql://ana@db/gis?password=x&table=t")
    'postgresql://ana@db/gis?password=***&table=t'
    >>> redact("sites.geojson")
    'sites.geojson'
    """
    text = str(source)
    if "://" not in text:
        return text
    text = _PASSWORD_IN_NETLOC.sub(lambda m: f"{m['head']}:***@", text, count=1)
    return _PASSWORD_IN_QUERY.sub(lambda m: f"{m['head']}***", text)


def split_password(source: str) -> tuple[str, str | None]:
    """``(source without its password, the password or None)``.

    The command line moves a password given in the URL into ``PGPASSWORD`` of its own
    process, so that the URL handed to Prefect and written to outputs carries none.

    >>> split_password("postgresql://ana:s%40cret@db/gis?table=sites")
    ('postgresql://ana@db/gis?table=sites', 's@cret')
    """
    if not is_postgres(source):
        return source, None
    url = _parse_url(source)
    if url.password is None:
        return source, None
    clean = _PASSWORD_IN_NETLOC.sub(lambda m: f"{m['head']}@", source, count=1)
    clean = re.sub(r"([?&])password=[^&#]*&?", r"\1", clean).rstrip("?&")
    return clean, str(url.password)


def with_query(url: str, query: str) -> str:
    """A PostGIS source URL reading the rows of ``query`` (percent-encoded into the URL).

    >>> with_query("postgresql://ana@db/gis", "SELECT * FROM sites WHERE active")
    'postgresql://ana@db/gis?query=SELECT%20%2A%20FROM%20sites%20WHERE%20active'
    """
    if not is_postgres(url):
        raise ConfigError(f"--sites-query needs a PostgreSQL URL as the sites source, "
                          f"not {redact(url)!r}; give postgresql://user@host/db as the "
                          "sites source")
    parsed = _parse_url(url)
    if "table" in parsed.query or "query" in parsed.query:
        raise ConfigError(f"{redact(url)} already names a table or query; "
                          "give either ?table= or --sites-query, not both")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{urlencode({'query': query}, quote_via=quote)}"


def read_table(source: str, *, password: str | None = None,
               max_rows: int = DEFAULT_MAX_ROWS) -> TableRows:
    """Read a GeoPackage layer or a PostGIS table/query as features.

    Raises
    ------
    SourceProblem
        When the source cannot be read at all (no such file or layer, no connection, no
        table, an unknown SRID, too many rows); the message never holds the password.
    """
    if is_postgres(source):
        return _read_postgis(source, password=password, max_rows=max_rows)
    return _read_gpkg(source, max_rows=max_rows)


# ----------------------------------------------------------------------------- digest

def _json_value(value: Any) -> Any:
    """A JSON-able property value: None for missing, numbers as numbers, the rest str()."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    try:
        import pandas as pd

        if value is pd.NaT or value is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _digest(features: list[dict]) -> str:
    """SHA-256 of the rows' canonical JSON, sorted, so the row order does not matter."""
    rows = sorted(hashlib.sha256(json.dumps(f, sort_keys=True, ensure_ascii=False,
                                            default=str).encode("utf-8")).hexdigest()
                  for f in features)
    return hashlib.sha256("\n".join(rows).encode("ascii")).hexdigest()


def _point_from_columns(props: dict) -> dict | None:
    """A GeoJSON Point from lon/lat columns of a table without a geometry column."""
    from sitescreen.sites import _resolve_columns  # the one alias list

    cols = _resolve_columns(list(props))
    if "lon" not in cols or "lat" not in cols:
        return None
    lon, lat = props.pop(cols["lon"]), props.pop(cols["lat"])
    if lon in (None, "") and lat in (None, ""):
        return None
    return {"type": "Point", "coordinates": [_as_number(lon), _as_number(lat)]}


def _as_number(value: Any) -> Any:
    try:
        return float(value) if isinstance(value, str) and value.strip() else value
    except ValueError:
        return value  # the site checks report it as not a number


# ----------------------------------------------------------------------------- GeoPackage

def _read_gpkg(source: str, *, max_rows: int) -> TableRows:
    import pyogrio

    m = _GPKG_RE.match(source)
    assert m is not None
    path, layer = Path(m["path"]), m["layer"]
    if not path.is_file():
        raise SourceProblem(f"GeoPackage {path} does not exist",
                               "check the path (a layer is given as sites.gpkg:layer)")
    try:
        layers = [str(n) for n, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        raise SourceProblem(f"cannot open {path} as a GeoPackage: {exc}") from exc
    if layer is None:
        if len(layers) != 1:
            raise SourceProblem(
                f"{path} has {len(layers)} layers ({', '.join(layers) or 'none'}); name one",
                f"give the layer as {path}:{layers[0] if layers else 'LAYER'}")
        layer = layers[0]
    elif layer not in layers:
        raise SourceProblem(f"{path} has no layer {layer!r}; layers: {', '.join(layers)}",
                               "give one of the listed layers after the colon")
    info = pyogrio.read_info(path, layer=layer)
    if info["features"] > max_rows:
        raise SourceProblem(f"layer {layer!r} has {info['features']:,} features, more than "
                               f"the limit of {max_rows:,}")
    frame = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    meta = {"layer": layer, "crs": str(frame.crs) if frame.crs is not None else None}
    if frame.geometry is not None and len(frame) and frame.geometry.notna().any():
        if frame.crs is None:
            raise SourceProblem(f"layer {layer!r} of {path} has no coordinate reference "
                                   "system", "assign one, e.g. `ogr2ogr -a_srs EPSG:4326 ...`")
        if frame.crs.to_epsg() != 4326:
            meta["reprojected_from"] = frame.crs.to_string()
            frame = frame.to_crs(4326)
    geoms = _geojson_mappings(frame.geometry.to_numpy())
    props = frame.drop(columns=frame.geometry.name)
    features = []
    for i, record in enumerate(props.to_dict("records")):
        record = {str(k): _json_value(v) for k, v in record.items()}
        geom = geoms[i] if geoms[i] is not None else _point_from_columns(record)
        features.append({"type": "Feature", "properties": record, "geometry": geom})
    refs = [f"feature {fid}" for fid in frame.index]
    return TableRows(features, refs, _digest(features), meta, format="gpkg")


def _geojson_mappings(geoms) -> list[dict | None]:
    import shapely

    texts = shapely.to_geojson(geoms)
    return [None if t is None else json.loads(t) for t in texts]


# ----------------------------------------------------------------------------- PostGIS

def _parse_url(source: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(source)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"{redact(source)} is not a database URL: {exc}; write "
                          "postgresql://user@host:5432/dbname?table=sites") from exc


def connect_kwargs(source: str, *, password: str | None = None) -> tuple[dict, dict]:
    """``(libpq connection keywords, sitescreen keys table/query/geometry)`` of a URL."""
    url = _parse_url(source)
    query = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in url.query.items()}
    options = {k: query.pop(k) for k in _SOURCE_KEYS if k in query}
    query.pop("password", None)
    kwargs: dict[str, Any] = {"dbname": url.database, "user": url.username, "host": url.host,
                              "port": url.port, **query}
    secret = password or (url.password and str(url.password)) or \
        _query_password(source)
    if secret:
        kwargs["password"] = secret
    return {k: v for k, v in kwargs.items() if v not in (None, "")}, options


def _query_password(source: str) -> str | None:
    from urllib.parse import parse_qs, urlsplit

    values = parse_qs(urlsplit(source).query).get("password")
    return values[-1] if values else None


def _read_postgis(source: str, *, password: str | None, max_rows: int) -> TableRows:
    import psycopg
    from psycopg import sql

    shown = redact(source)
    kwargs, options = connect_kwargs(source, password=password)
    if ("table" in options) == ("query" in options):
        raise SourceProblem(
            f"the URL names {'both a table and a query' if options else 'no table'}",
            "add ?table=schema.sites to the URL, or give a query with --sites-query")
    try:
        conn = psycopg.connect(**kwargs, connect_timeout=10)
    except psycopg.Error as exc:
        raise SourceProblem(f"cannot connect: {_pg_message(exc)}",
                               "check host, port, user and database; the password comes "
                               "from PGPASSWORD, ~/.pgpass or the Prefect Secret block "
                               "'sitescreen-postgres-password'") from exc
    with conn:
        conn.read_only = True
        try:
            return _select_rows(conn, shown, options, max_rows=max_rows, sql=sql)
        except psycopg.Error as exc:
            raise SourceProblem(_pg_message(exc),
                                   "check the table name or the query") from exc


def _pg_message(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _select_rows(conn, shown: str, options: dict, *, max_rows: int, sql) -> TableRows:
    order: list[str] = []
    if "table" in options:
        parts = options["table"].split(".")
        if len(parts) > 2 or not all(parts):
            raise SourceProblem(f"table {options['table']!r} is not "
                                   "[schema.]name")
        relation = sql.Identifier(*parts)
        base = sql.SQL("SELECT * FROM {}").format(relation)
        order = _primary_key(conn, options["table"])
    else:
        base = sql.SQL(options["query"].strip().rstrip(";"))  # the user's own query
    inner = sql.SQL("({}) AS _sites").format(base)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(inner))
        columns = [(d.name, d.type_code) for d in cur.description]
        cur.execute("SELECT oid, typname FROM pg_type WHERE oid = ANY(%s)",
                    ([c[1] for c in columns],))
        typnames = dict(cur.fetchall())
    spatial = [name for name, oid in columns if typnames.get(oid) in ("geometry", "geography")]
    geom_col = options.get("geometry")
    if geom_col is not None and geom_col not in spatial:
        raise SourceProblem(f"no geometry column {geom_col!r}; geometry columns: "
                               f"{', '.join(spatial) or 'none'}")
    if geom_col is None and len(spatial) > 1:
        raise SourceProblem(f"the source has several geometry columns ({', '.join(spatial)})",
                               "choose one with &geometry=NAME in the URL")
    geom_col = geom_col or (spatial[0] if spatial else None)
    props = [name for name, _ in columns if name not in spatial]
    select = [sql.Identifier(c) for c in props]
    if geom_col is not None:
        g = sql.Identifier(geom_col)
        if typnames.get(dict(columns)[geom_col]) == "geography":
            select += [sql.SQL("4326"), sql.SQL("ST_AsGeoJSON({}, 9)").format(g)]
        else:
            select += [sql.SQL("ST_SRID({})").format(g), sql.SQL(
                "ST_AsGeoJSON(CASE WHEN ST_SRID({g}) IN (0, 4326) THEN {g} "
                "ELSE ST_Transform({g}, 4326) END, 9)").format(g=g)]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select), inner)
    if order:
        query += sql.SQL(" ORDER BY {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in order))
    query += sql.SQL(" LIMIT {}").format(sql.Literal(max_rows + 1))
    with conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    if len(rows) > max_rows:
        raise SourceProblem(f"the source has more than {max_rows:,} rows, the limit")
    features, refs, no_srid, srids = [], [], [], set()
    key = order[0] if len(order) == 1 else None
    for n, row in enumerate(rows, 1):
        record = {c: _json_value(v) for c, v in zip(props, row, strict=False)}
        geom = None
        if geom_col is not None:
            srid, text = row[len(props)], row[len(props) + 1]
            if text is not None:
                geom = json.loads(text)
                srids.add(int(srid))
                if srid == 0:
                    no_srid.append(n)
        else:
            geom = _point_from_columns(record)
        features.append({"type": "Feature", "properties": record, "geometry": geom})
        refs.append(f"{key} {record[key]}" if key else f"row {n}")
    if no_srid:
        raise SourceProblem(
            f"{len(no_srid)} row(s) have a geometry without SRID (first: row "
            f"{no_srid[0]}), so their coordinates cannot be read as WGS 84 safely",
            f"set it, e.g. SELECT UpdateGeometrySRID('{options.get('table', 'sites')}', "
            f"'{geom_col}', 4326)")
    meta = {"geometry_column": geom_col, "srid": sorted(srids)}
    return TableRows(features, refs, _digest(features), meta, format="postgis")


def _primary_key(conn, table: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table,))
        if cur.fetchone()[0] is None:
            raise SourceProblem(f"there is no table {table!r} in the database",
                                   "check the name (schema.table) and the search_path")
        cur.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) "
            "AND i.indisprimary ORDER BY a.attnum", (table,))
        return [r[0] for r in cur.fetchall()]


def source_label(source: str) -> str:
    """A short name of the source for flow run names: a file's name, ``db.table``.

    >>> source_label("/srv/portfolio/sites.geojson")
    'sites.geojson'
    >>> source_label("postgresql://ana:pw@db/gis?table=public.sites")
    'gis.public.sites'
    """
    if is_postgres(source):
        url = _parse_url(source)
        what = url.query.get("table") or "query"
        return f"{url.database}.{what if isinstance(what, str) else what[-1]}"
    m = _GPKG_RE.match(str(source))
    if m is not None:
        return Path(m["path"]).name + (f":{m['layer']}" if m["layer"] else "")
    return Path(str(source)).name
