"""Basin polygons and the point-in-basin join: which Aqueduct basin holds each site.

The polygons of a File Geodatabase layer are read once per process (and cached once per cache
folder as GeoParquet), indexed in an STRtree, and joined to sites on unique coordinates in
bounded chunks; a site within ``boundary_km`` of its basin's edge is marked, because its
basin is uncertain at the resolution of the data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from sitescreen.catalog import CatalogEntry
from sitescreen.data.parsed import ParsedCopy, file_signature
from sitescreen.data.sources import file_says_synthetic
from sitescreen.errors import HazardDataError
from sitescreen.geodesy import KM_PER_DEGREE

__all__ = ["NO_BASIN", "BasinIndex", "SiteJoin", "basin_index", "join_sites", "local_path",
           "forget_indexes"]

log = logging.getLogger(__name__)

#: ``pfaf_id`` of Aqueduct units that have no basin (their values are no data).
NO_BASIN = -9999
_DISK_VERTICES = 32
_CHUNK = 50_000                # unique sites per join chunk: bounds memory for 1e6 sites
_INDEX_FORMAT = "1"            # bump when the cached GeoParquet layout changes


def local_path(path: str) -> str:
    """A path pandas can open: GDAL's /vsicurl/ prefix stripped from mirror URLs."""
    return path.removeprefix("/vsicurl/")


@dataclass(frozen=True, slots=True, eq=False)
class BasinIndex:
    key: str
    pfaf_id: np.ndarray  # int64 per polygon; -9999: a unit without a basin
    geoms: np.ndarray    # prepared shapely polygons, EPSG:4326
    edges: np.ndarray    # their prepared boundaries, for the distance pre-filter
    tree: shapely.STRtree
    synthetic: bool = False  # the geodatabase declares itself synthetic (a field)


_INDEXES: dict[str, BasinIndex] = {}
_INDEXES_LOCK = threading.Lock()


def forget_indexes() -> None:
    """Drop the basin indexes held in this process (the on-disk GeoParquet cache stays)."""
    with _INDEXES_LOCK:
        _INDEXES.clear()


def basin_index(path: str, relpath: str, layer: str, entry: CatalogEntry,
                 cache_dir: str | None) -> BasinIndex:
    """Basin polygons of ``layer``, once per process (and once per cache folder on disk)."""
    signature = file_signature(path)
    ident = "|".join((_INDEX_FORMAT, entry.id, entry.version, os.path.abspath(path)
                      if not path.startswith("/vsi") else path, layer, signature))
    key = hashlib.sha1(ident.encode()).hexdigest()[:16]
    with _INDEXES_LOCK:  # held while building: parallel tasks wait instead of re-reading
        index = _INDEXES.get(key)
        if index is None:
            pfaf, geoms = _load_polygons(path, relpath, layer, entry, cache_dir, signature)
            edges = shapely.boundary(geoms)
            shapely.prepare(geoms)
            shapely.prepare(edges)
            index = BasinIndex(key, pfaf, geoms, edges, shapely.STRtree(geoms),
                               file_says_synthetic(path))
            _INDEXES[key] = index
            while len(_INDEXES) > 4:
                _INDEXES.pop(next(iter(_INDEXES)))
        return index


def _load_polygons(path: str, relpath: str, layer: str, entry: CatalogEntry,
                   cache_dir: str | None, signature: str) -> tuple[np.ndarray, np.ndarray]:
    import geopandas as gpd

    copy = ParsedCopy.of(cache_dir, entry, path, kind=layer, code=_INDEX_FORMAT,
                         signature=signature)
    kept = copy.read(gpd.read_parquet, "basin index cache") if copy else None
    if kept is not None:
        return kept["pfaf_id"].to_numpy("int64"), kept.geometry.to_numpy()
    pfaf, geoms = _read_gdb(path, relpath, layer, entry)
    if copy is not None:
        frame = gpd.GeoDataFrame({"pfaf_id": pfaf}, geometry=geoms, crs="EPSG:4326")
        copy.keep(frame.to_parquet, "basin index cache")
    return pfaf, geoms


def _read_gdb(path: str, relpath: str, layer: str,
              entry: CatalogEntry) -> tuple[np.ndarray, np.ndarray]:
    """pfaf_id and polygons of one geodatabase layer, repaired, one polygon per basin."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    where = f"dataset {entry.id!r} (version {entry.version}): {relpath}"
    try:
        layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
        if layer not in layers:
            raise HazardDataError(f"{where} has no layer {layer!r}; layers: {layers}")
        info = pyogrio.read_info(path, layer=layer)
        if "pfaf_id" not in list(info["fields"]):
            raise HazardDataError(f"{where} layer {layer!r} has no column 'pfaf_id'; fields "
                                  f"start with {list(info['fields'][:5])}")
        gdf = pyogrio.read_dataframe(path, layer=layer, columns=["pfaf_id"])
    except (DataSourceError, DataLayerError) as exc:
        raise HazardDataError(f"{where}: cannot read the geodatabase: {exc}") from exc
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    geoms = gdf.geometry.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    pfaf = pd.to_numeric(gdf["pfaf_id"], errors="coerce").fillna(NO_BASIN).to_numpy("int64")
    pfaf, geoms = pfaf[ok], geoms[ok]
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        # HydroBASINS-derived polygons can self-intersect; GEOS predicates need valid ones.
        geoms[bad] = [_polygonal(g) for g in shapely.make_valid(geoms[bad])]
    dup = pd.Index(pfaf).duplicated(keep=False) & (pfaf != NO_BASIN)
    if dup.any():
        # One basin split over several features (e.g. across the antimeridian): merge them so
        # the boundary test measures the basin's real boundary.
        groups = pd.Series(np.flatnonzero(dup)).groupby(pfaf[dup]).agg(list)
        merged = [shapely.union_all(geoms[g]) for g in groups]
        keep = ~dup
        pfaf = np.concatenate([pfaf[keep], groups.index.to_numpy("int64")])
        geoms = np.concatenate([geoms[keep], np.array(merged, dtype=object)])
    log.info("%s layer %s: %d basin polygons", where, layer, len(pfaf))
    return pfaf, geoms


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygonal part of a repaired geometry (make_valid may add stray lines)."""
    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in (3, 6)]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    return shapely.multipolygons(polys) if polys else shapely.Polygon()


# --- sites in basins -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, eq=False)
class SiteJoin:
    basin: np.ndarray     # int64 polygon index per site; -1 none
    located: np.ndarray   # bool: finite coordinates
    boundary: np.ndarray  # bool: within boundary_km of the basin's boundary


def join_sites(index: BasinIndex, lon: np.ndarray, lat: np.ndarray,
                boundary_km: float) -> SiteJoin:
    """Basin of every site (on unique coordinates, in chunks) and the boundary test."""
    n = len(lon)
    located = np.isfinite(lon) & np.isfinite(lat)
    basin = np.full(n, -1, dtype=np.int64)
    boundary = np.zeros(n, dtype=bool)
    if located.any():
        # Portfolios repeat coordinates (city centroids); hash lon + i*lat to join each once.
        inverse, uniq = pd.factorize(lon[located] + 1j * lat[located])
        uniq = np.asarray(uniq)
        ub = np.full(len(uniq), -1, dtype=np.int64)
        ubd = np.zeros(len(uniq), dtype=bool)
        for start in range(0, len(uniq), _CHUNK):
            sl = slice(start, start + _CHUNK)
            ub[sl], ubd[sl] = _join_chunk(index, uniq[sl].real, uniq[sl].imag, boundary_km)
        basin[located] = ub[inverse]
        boundary[located] = ubd[inverse]
    return SiteJoin(basin, located, boundary)


def _join_chunk(index: BasinIndex, x: np.ndarray, y: np.ndarray,
                boundary_km: float) -> tuple[np.ndarray, np.ndarray]:
    m = len(x)
    basin = np.full(m, -1, dtype=np.int64)
    # "intersects" rather than "within": a site exactly on a shared edge still gets a basin.
    points = shapely.points(x, y)
    left, right = index.tree.query(points, predicate="intersects")
    hits = np.bincount(left, minlength=m)
    if len(left):
        # Prefer a real basin over a unit without one, then the lowest polygon index.
        nobasin = index.pfaf_id[right] == NO_BASIN
        order = np.lexsort((right, nobasin, left))
        left, right = left[order], right[order]
        first = np.ones(len(left), dtype=bool)
        first[1:] = left[1:] != left[:-1]
        basin[left[first]] = right[first]
    boundary = hits > 1  # on an edge shared by two polygons
    todo = np.flatnonzero((basin >= 0) & ~boundary)
    if boundary_km > 0 and len(todo):
        # Cheap pre-filter: a site farther (in plain degrees) from its basin's edge than the
        # disk's longest semi-axis cannot be within boundary_km of it.
        near = shapely.dwithin(index.edges[basin[todo]], points[todo],
                               _radii(y[todo], boundary_km)[0])
        todo = todo[near]
        disks = _disks(x[todo], y[todo], boundary_km)
        boundary[todo] = ~shapely.contains_properly(index.geoms[basin[todo]], disks)
    return basin, boundary


def _radii(y: np.ndarray, km: float) -> tuple[np.ndarray, float]:
    """Semi-axes in degrees (longitude, latitude) of a polygon around a ``km`` circle."""
    ry = km / KM_PER_DEGREE / np.cos(np.pi / _DISK_VERTICES)  # circumscribed polygon
    return ry / np.maximum(np.cos(np.radians(y)), 0.01), ry


def _disks(x: np.ndarray, y: np.ndarray, km: float) -> np.ndarray:
    """Polygons containing the circle of radius ``km`` around each point (equirectangular)."""
    rx, ry = _radii(y, km)
    t = np.linspace(0.0, 2 * np.pi, _DISK_VERTICES, endpoint=False)
    cx = x[:, None] + rx[:, None] * np.cos(t)
    cy = y[:, None] + ry * np.sin(t)
    ring = np.stack([cx, cy], axis=-1)
    return shapely.polygons(np.concatenate([ring, ring[:, :1]], axis=1))
