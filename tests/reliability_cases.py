"""The reliability table: every hostile input and fault the suite runs through the command line.

One row per case: what is given (an input file, a data folder, a served body) or what fails
(the disk, a signal), the message fragment the user must see, the exit code, and whether the
run may write a result (``writes``; nothing else is ever written). ``tests/test_reliability.py``
runs every row the same way; the README's "Reliability" section counts the rows by kind.

Kinds and what each guarantees:

- ``sites``: a bad sites file (the corpus in tests/corpus, big or wide files) stops the run
  before any hazard is sampled, with one ``error:`` naming the file, row and field; exit 2.
- ``data``: hazard data that is not what it claims (cut, corrupt, mislabelled, off-schema,
  a download that is an error page) is refused with a message naming the file and the way
  out; exit 2 (``data verify``: 1); nothing is kept.
- ``provenance``: synthetic data stays synthetic, a clashing name is renamed, a footprint
  across 180 degrees stays where it is: the run succeeds and says so.
- ``fault``: a full disk, an unwritable cache, a foreign ``latest``, Ctrl-C or SIGTERM fail
  before the work or leave no temporary folder; the previous run stays the latest.

The corpus rows come from tests/corpus/expected.toml (each rejected file, its first expected
fragment), so a corpus file added there is in this table too.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from small_pack import AREAS, site, sites_doc

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))
WP = "ibtracs.WP.list.v04r01.csv"


@dataclass(frozen=True)
class World:
    """Where a case builds its inputs: its own folder, the shared pack, an HTTP server."""

    tmp: Path
    pack: Path
    server: object  # pytest-httpserver

    @property
    def out(self) -> Path:
        return self.tmp / "results"

    def sites(self, *features: dict, name: str = "sites.geojson") -> Path:
        path = self.tmp / name
        path.write_text(json.dumps(sites_doc(*(features or (_shanghai(),)))), "utf-8")
        return path

    def pack_copy(self) -> Path:
        dst = self.tmp / "data"
        shutil.copytree(self.pack, dst)
        return dst


@dataclass(frozen=True)
class Case:
    id: str
    kind: str                          # sites | data | provenance | fault
    build: Callable[[World], list[str]]  # CLI arguments after "sitescreen"
    fragment: str                      # must appear in the output
    exit_code: int = 2
    writes: bool = False               # the run may write a result folder
    fault: str = ""                    # "process", "full-disk", "SIGTERM", "SIGINT": a subprocess
    max_lines: int | None = None       # at most this many output lines


def _shanghai(**props) -> dict:
    feature = site("sh-1", "Shanghai office", lon=AREAS[0].lon, lat=AREAS[0].lat)
    feature["properties"].update(props)
    return feature


def screen(w: World, sites: Path, data: Path | None = None, *hazards: str) -> list[str]:
    args = ["screen", str(sites), "--data", str(data or w.pack), "--no-prefect", "--out",
            str(w.out), "--scenario", "pessimistic", "--year", "2030", "--no-report"]
    for h in hazards or ("water_stress",):
        args += ["--hazard", h]
    return args


# --- sites -------------------------------------------------------------------------------------

def _corpus_case(name: str) -> Case:
    fragment = EXPECTED[name].get("contains", [name])[0]
    return Case(f"corpus:{name}", "sites",
                lambda w, _n=name: screen(w, CORPUS / _n, w.tmp / "empty"), fragment)


def _fifty_thousand_bad_rows(w: World) -> list[str]:
    path = w.tmp / "big.csv"
    rows = ["site_id,name,lon,lat"] + [f"s{i},Site {i},121.4,{'abc' if i % 2 else 131.2}"
                                       for i in range(50_000)]
    path.write_text("\n".join(rows) + "\n", "utf-8")
    return screen(w, path)


def _wide(w: World) -> list[str]:
    return screen(w, w.sites(_shanghai(**{f"p{i}": i for i in range(2100)})))


# --- data --------------------------------------------------------------------------------------

def _fetch_served(body: bytes) -> Callable[[World], list[str]]:
    def build(w: World) -> list[str]:
        from file_server import FileHandler, serve

        serve(w.server, f"/m/ibtracs/{WP}", FileHandler(body, content_type="text/csv"))
        return ["data", "fetch", "ibtracs_wp", "--mirror", w.server.url_for("/m"), "--cache",
                str(w.out)]
    return build


def _good_ibtracs() -> bytes:
    from file_server import ibtracs_body

    return ibtracs_body(20_000)


def _verify_cached_error_page(w: World) -> list[str]:
    folder = w.out / "ibtracs"
    folder.mkdir(parents=True)
    (folder / WP).write_bytes(b'{"error": "quota exceeded"}\n')
    return ["data", "verify", "ibtracs_wp", "--cache", str(w.out)]


def _aqueduct_na(w: World) -> list[str]:
    import pandas as pd

    data = w.pack_copy()
    path = next(data.rglob("Aqueduct40_future_annual_*.csv"))
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["pes30_ws_x_c"] = "n/a"
    table.to_csv(path, index=False)
    return screen(w, w.sites(), data)


def _replace_river_tiles(w: World, write: Callable[[Path], None]) -> Path:
    data = w.pack_copy()
    tiles = sorted(data.rglob("inunriver_*.tif"))
    write(tiles[0])
    for t in tiles[1:]:
        shutil.copyfile(tiles[0], t)
    return data


def _truncated_tiles(w: World) -> list[str]:
    def cut(path: Path) -> None:
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    return screen(w, w.sites(), _replace_river_tiles(w, cut), "river_flood")


def _projected_tiles(w: World) -> list[str]:
    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    def mislabelled(path: Path) -> None:
        with rasterio.open(path, "w", driver="GTiff", width=50, height=50, count=1,
                           dtype="float32", crs="EPSG:4326", nodata=-9999.0,
                           transform=Affine(1000.0, 0, 13_500_000.0, 0, -1000.0, 3_700_000.0)
                           ) as ds:
            ds.write(np.ones((1, 50, 50), dtype="float32"))
    return screen(w, w.sites(), _replace_river_tiles(w, mislabelled), "river_flood")


def _billions_of_tiles(w: World) -> list[str]:
    import numpy as np
    import rasterio
    from rasterio.transform import Affine
    from test_hostile import _patch_tiff_size

    def claims(path: Path) -> None:
        with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1,
                           dtype="uint8", crs="EPSG:4326", nodata=255, tiled=True,
                           transform=Affine(11.25, 0, -180, 0, -5.625, 90), blockxsize=16,
                           blockysize=16) as ds:
            ds.write(np.full((1, 32, 32), 7, dtype="uint8"))
        _patch_tiff_size(path, 1_000_000)
    return screen(w, w.sites(), _replace_river_tiles(w, claims), "river_flood")


def _catalog_base_url(base_url: str) -> Callable[[World], list[str]]:
    def build(w: World) -> list[str]:
        from test_hostile import _user_catalog

        catalog = _user_catalog(w.tmp / "catalog.toml", base_url)
        return [*screen(w, w.sites()), "--catalog", str(catalog)]
    return build


# --- provenance --------------------------------------------------------------------------------

def _pack_without_marker(w: World) -> list[str]:
    data = w.pack_copy()
    (data / "PACK.json").unlink()
    return screen(w, w.sites(), data)


def _fiji(w: World) -> list[str]:
    ring = [[179.8, -17.2], [-179.8, -17.2], [-179.8, -16.8], [179.8, -16.8], [179.8, -17.2]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
               "properties": {"site_id": "fj-1", "name": "Fiji estate", "country": "FJ"}}
    return ["validate", str(w.sites(feature))]


# --- faults ------------------------------------------------------------------------------------

def _latest_folder(w: World) -> list[str]:
    (w.out / "latest").mkdir(parents=True)
    (w.out / "latest" / "notes.txt").write_text("an analyst's copy")
    return screen(w, w.sites())


def _cache_blocked(w: World) -> list[str]:
    (w.tmp / "cache").write_text("a file where the cache folder goes")
    return screen(w, w.sites())


CASES: list[Case] = [
    # sites
    *(_corpus_case(n) for n in sorted(EXPECTED) if EXPECTED[n]["outcome"] == "reject"),
    Case("fifty-thousand-bad-rows", "sites", _fifty_thousand_bad_rows, "problems by kind",
         max_lines=60),
    Case("integer-beyond-64-bits", "sites",
         lambda w: screen(w, w.sites(_shanghai(asset_value=2 ** 70))), "64-bit integer"),
    Case("2100-extra-properties", "sites", _wide, "2100 extra properties"),
    # data
    Case("download-html-page-as-csv", "data", _fetch_served(
        b"<!-- edge -->\n<html><body>Service unavailable</body></html>\n"), "HTML/XML page"),
    Case("download-json-error-body", "data", _fetch_served(
        b'{"error": {"code": 503, "message": "rate limit"}}\n'), "JSON document"),
    Case("download-cut-in-half", "data", _fetch_served(_good_ibtracs()[:300_000]), "truncated"),
    Case("verify-cached-error-page", "data", _verify_cached_error_page, "invalid",
         exit_code=1),
    Case("aqueduct-category-n/a", "data", _aqueduct_na, "holds 'n/a', not a number"),
    Case("truncated-flood-tiles", "data", _truncated_tiles, "is truncated or corrupt"),
    Case("projected-grid-labelled-wgs84", "data", _projected_tiles, "spans longitude 1.35e+07"),
    Case("header-claiming-billions-of-tiles", "data", _billions_of_tiles,
         "cannot open raster"),
    *(Case(f"catalog-base-url:{scheme}", "data", _catalog_base_url(url), f"scheme {scheme!r}")
      for url, scheme in [("file:///etc/", "file"), ("s3://bucket/ibtracs/", "s3"),
                          ("ftp://u:pw@ftp.example.org/pub/", "ftp")]),
    # provenance
    Case("synthetic-pack-without-marker", "provenance", _pack_without_marker, "SYNTHETIC",
         exit_code=0, writes=True),
    Case("property-named-like-result-field", "provenance",
         lambda w: screen(w, w.sites(_shanghai(water_stress_pessimistic_2030_level=1))),
         "kept as 'src_water_stress_pessimistic_2030_level'", exit_code=0, writes=True,
         fault="process"),  # the warning is logged: a real process shows it on stderr
    Case("footprint-across-antimeridian", "provenance", _fiji, "crosses the antimeridian",
         exit_code=0),
    # faults
    Case("latest-is-a-real-folder", "fault", _latest_folder, "is a real folder, not the link"),
    Case("cache-folder-blocked", "fault", _cache_blocked, "cannot create the cache folder"),
    Case("disk-full-before-the-work", "fault", lambda w: screen(w, w.sites()),
         "refuses writes (File too large)", fault="full-disk"),
    Case("sigterm-while-writing", "fault", lambda w: screen(w, w.sites()), "",
         exit_code=143, fault="SIGTERM"),
    Case("ctrl-c-while-writing", "fault", lambda w: screen(w, w.sites()), "",
         exit_code=130, fault="SIGINT"),
]
