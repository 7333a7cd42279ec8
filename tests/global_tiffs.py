"""Full-size global 43200 x 21600 float32 GeoTIFFs at 30 arc-seconds, sparse on disk.

The Aqueduct Floods tiles are global grids of this size; these files have it too, so a
windowed fetch against them reads real headers (block offset tables of 21,600 strips or
thousands of tiles) and real blocks over HTTP. Only patches around the given points hold
values (GDAL ``SPARSE_OK=TRUE`` leaves every other block unwritten), so a file is a few
hundred kB on disk. Layouts: ``tiled`` (square tiles, default 512) and ``striped`` (one row per
strip), with ``DEFLATE`` or ``LZW``. Used by tests/test_data_windows.py and
benchmarks/bench_fetch.py; the values are synthetic test data, not hazard data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

__all__ = ["WIDTH", "HEIGHT", "RES", "write_global", "patch_value"]

WIDTH, HEIGHT = 43200, 21600
RES = 1.0 / 120.0
NODATA = -9999.0


def patch_value(seed: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Deterministic depth (m) per pixel: varies pixel to pixel, so a shifted read shows."""
    return (((rows * 131 + cols * 71 + seed * 977) % 3001) / 1000.0).astype("float32")


def write_global(path: str | Path, points: Sequence[tuple[float, float]], *, seed: int = 0,
                 layout: str = "tiled", compress: str = "DEFLATE", block: int = 512,
                 half: int = 40, sea_east: bool = False, nodata: float | None = NODATA,
                 filler_mb: float = 4.0) -> Path:
    """Write a sparse global GeoTIFF with a (2*half)^2 patch of values around each point.

    ``sea_east`` makes the eastern half of each patch no data (a coast: sites there take
    the nearest land pixel). ``filler_mb`` of incompressible values fill rows far south
    (Antarctica), so the file is large enough that reading it whole would show.
    """
    path = Path(path)
    profile = dict(driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="float32",
                   crs="EPSG:4326", transform=from_origin(-180.0, 90.0, RES, RES),
                   compress=compress, sparse_ok=True)
    if nodata is not None:
        profile["nodata"] = nodata
    if layout == "tiled":
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    elif layout == "striped":
        profile.update(tiled=False, blockysize=1)
    else:
        raise ValueError(f"layout must be 'tiled' or 'striped', not {layout!r}")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK="NO"), rasterio.open(path, "w", **profile) as ds:
        for lon, lat in points:
            col = int((lon + 180.0) / RES)
            row = int((90.0 - lat) / RES)
            r0, c0 = max(0, row - half), max(0, col - half)
            r1, c1 = min(HEIGHT, row + half), min(WIDTH, col + half)
            rr, cc = np.mgrid[r0:r1, c0:c1]
            vals = patch_value(seed, rr, cc)
            if sea_east:
                vals[cc > col + 1] = NODATA if nodata is not None else np.nan
            ds.write(vals, 1, window=Window(c0, r0, c1 - c0, r1 - r0))
        n = int(filler_mb * 2**20 / 4)
        if n:
            rows = max(1, n // 4096)
            noise = np.random.default_rng(seed).random((rows, 4096), dtype="float32")
            ds.write(noise, 1, window=Window(0, HEIGHT - rows, 4096, rows))
    return path
