"""Tests of sitescreen.data.archive: safe extraction and the Aqueduct 4.0 preparation.

Archives are built in code with zipfile; the Aqueduct-shaped one holds real CSVs in the
upstream column layout and a real File Geodatabase written with GDAL's OpenFileGDB driver.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from sitescreen.catalog import load_catalog
from sitescreen.data.archive import extract_zip, prepare_aqueduct
from sitescreen.data.datasets import VerifyStatus, fetch_dataset, verify_dataset
from sitescreen.data.sources import DataOrigin, DataSource
from sitescreen.errors import HazardDataError, UnsafePathError


def _zip(path: Path, members: dict[str, bytes], *,
         compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_extract_all_members(tmp_path):
    z = _zip(tmp_path / "a.zip", {"top/a.csv": b"a,b\n", "top/sub/b.txt": b"x" * 1000,
                                  "c.txt": b"c"})

    paths = extract_zip(z, tmp_path / "out")

    out = tmp_path / "out"
    assert paths == [out / "top" / "a.csv", out / "top" / "sub" / "b.txt", out / "c.txt"]
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"x" * 1000
    assert _tree(out) == ["c.txt", "top", "top/a.csv", "top/sub", "top/sub/b.txt"]


def test_extract_selected_members_and_folders(tmp_path):
    z = _zip(tmp_path / "a.zip", {"r/CVS/f.csv": b"1", "r/CVS/m.csv": b"2",
                                  "r/GDB/x.gdb/a1.gdbtable": b"3", "r/GDB/x.gdb/gdb": b"4"})

    paths = extract_zip(z, tmp_path / "out", members=["r/CVS/f.csv", "r/GDB/x.gdb"])

    assert sorted(p.name for p in paths) == ["a1.gdbtable", "f.csv", "gdb"]
    assert not (tmp_path / "out" / "r" / "CVS" / "m.csv").exists()


def test_re_extracting_replaces_the_old_copy(tmp_path):
    out = tmp_path / "out"
    extract_zip(_zip(tmp_path / "1.zip", {"d.gdb/old": b"o", "d.gdb/keep": b"1"}), out)
    extract_zip(_zip(tmp_path / "2.zip", {"d.gdb/keep": b"2"}), out)

    assert _tree(out) == ["d.gdb", "d.gdb/keep"]
    assert (out / "d.gdb" / "keep").read_bytes() == b"2"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/etc/evil", "C:/evil"])
def test_a_member_escaping_the_target_is_refused(tmp_path, name):
    z = _zip(tmp_path / "a.zip", {"fine.txt": b"f", name: b"evil"})

    with pytest.raises(UnsafePathError, match="would be written outside") as err:
        extract_zip(z, tmp_path / "out")

    assert repr(name) in str(err.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out").exists()  # refused before anything was created


def test_a_symlink_member_is_refused(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("data.csv", b"a\n")
        link = zipfile.ZipInfo("link.csv")
        link.create_system = 3  # unix, so the mode bits below are meaningful
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")

    with pytest.raises(UnsafePathError, match="'link.csv' is a symlink"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out" / "data.csv").exists()


def test_an_oversized_member_is_refused_by_its_declared_size(tmp_path):
    z = _zip(tmp_path / "a.zip", {"small.txt": b"s", "big.txt": bytes(5000)})

    with pytest.raises(HazardDataError, match="'big.txt' declares 5000 bytes"):
        extract_zip(z, tmp_path / "out", max_member_bytes=4096)
    with pytest.raises(HazardDataError, match="declare 5001 bytes in total"):
        extract_zip(z, tmp_path / "out", max_total_bytes=5000)
    assert _tree(tmp_path / "out") == []


def test_a_member_expanding_beyond_its_declared_size_is_refused(tmp_path):
    """A zip bomb whose headers lie: 1 MB of zeros declared as 100 bytes."""
    z = _zip(tmp_path / "bomb.zip", {"bomb.bin": bytes(1_000_000)})
    raw = bytearray(z.read_bytes())
    true_size = struct.pack("<I", 1_000_000)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central header
        at = raw.index(sig)
        assert raw[at + offset:at + offset + 4] == true_size
        raw[at + offset:at + offset + 4] = struct.pack("<I", 100)
    z.write_bytes(bytes(raw))

    with pytest.raises(HazardDataError, match="bomb.bin"):
        extract_zip(z, tmp_path / "out")
    assert _tree(tmp_path / "out") == []


def test_a_missing_member_and_a_broken_archive_are_reported(tmp_path):
    z = _zip(tmp_path / "a.zip", {"a.csv": b"1"})
    with pytest.raises(HazardDataError, match=r"no member named \['b.csv'\]"):
        extract_zip(z, tmp_path / "out", members=["b.csv"])
    (tmp_path / "bad.zip").write_bytes(b"<html>not a zip</html>")
    with pytest.raises(HazardDataError, match="not a readable zip"):
        extract_zip(tmp_path / "bad.zip", tmp_path / "out")


# ----------------------------------------------------------------------------- Aqueduct 4.0

ROOT = "Aqueduct40_waterrisk_download_Y2023M07D05"
FUTURE_CSV = (
    "fid,pfaf_id,bau30_ws_x_r,bau30_ws_x_s,bau30_ws_x_c,bau30_ws_x_l\n"
    "1,111011,0.35,3.2,2,Medium-high (20-40%)\n"
    "2,111012,-9999,-9999,-9999,No Data\n"
)
BASELINE_CSV = (
    "aq30_id,pfaf_id,gid_1,bws_raw,bws_score,bws_cat,bws_label\n"
    "0,111011,CHN.1_1,0.05,0.7,0,Low (<10%)\n"
)


def _aqueduct_zip(tmp_path: Path) -> Path:
    gdb = tmp_path / "build" / "Aq40_Y2023D07M05.gdb"
    gdb.parent.mkdir()
    basins = gpd.GeoDataFrame(
        {"pfaf_id": np.array([111011, 111012], dtype="int32")},
        geometry=[shapely.box(113.0, 22.0, 114.0, 23.0), shapely.box(114.0, 22.0, 115.0, 23.0)],
        crs="EPSG:4326")
    pyogrio.write_dataframe(basins, gdb, layer="future_annual", driver="OpenFileGDB")
    members = {
        f"{ROOT}/CVS/Aqueduct40_future_annual_y2023m07d05.csv": FUTURE_CSV.encode(),
        f"{ROOT}/CVS/Aqueduct40_baseline_annual_y2023m07d05.csv": BASELINE_CSV.encode(),
        f"{ROOT}/CVS/Aqueduct40_baseline_monthly_y2023m07d05.csv": b"not needed\n",
    }
    for f in sorted(gdb.iterdir()):
        members[f"{ROOT}/GDB/Aq40_Y2023D07M05.gdb/{f.name}"] = f.read_bytes()
    mirror = tmp_path / "mirror" / "aqueduct40"
    mirror.mkdir(parents=True)
    return _zip(mirror / "aqueduct-4-0-water-risk-data.zip", members)


def test_fetch_and_prepare_aqueduct_from_a_mirror(tmp_path):
    z = _aqueduct_zip(tmp_path)
    real = load_catalog().dataset("aqueduct40")
    # the catalog's checksum is that of the real 261 MB release; this zip is a small stand-in
    entry = replace(real, sha256=hashlib.sha256(z.read_bytes()).hexdigest(), size=z.stat().st_size)
    cache = tmp_path / "cache"

    results = fetch_dataset(entry, cache, mirror=tmp_path / "mirror")

    assert [r.path.name for r in results] == ["aqueduct-4-0-water-risk-data.zip"]
    folder = cache / "aqueduct40"
    future = folder / entry.files[0]
    assert future.read_text() == FUTURE_CSV
    assert not (folder / ROOT / "CVS" / "Aqueduct40_baseline_monthly_y2023m07d05.csv").exists()
    layer = pyogrio.read_dataframe(folder / entry.files[2], layer="future_annual")
    assert sorted(layer["pfaf_id"]) == [111011, 111012]

    src = DataSource.for_cache(cache)
    expected = cache.resolve() / "aqueduct40" / entry.files[1]
    assert src.require(entry, entry.files[1]) == str(expected)
    assert src.origin_of(entry, entry.files[0]) is DataOrigin.MIRROR
    statuses = {v.file: v.status for v in verify_dataset(entry, cache)}
    assert set(statuses.values()) == {VerifyStatus.OK} and len(statuses) == 4  # zip + 3 items

    # a second preparation finds everything in place and leaves the files alone
    stamp = os.stat(future).st_mtime_ns
    assert prepare_aqueduct(entry, cache) == [folder / f for f in entry.files]
    assert os.stat(future).st_mtime_ns == stamp

    future.write_text("truncated")
    assert {v.file: v.status for v in verify_dataset(entry, cache)}[entry.files[0]] \
        is VerifyStatus.MISMATCH
    prepare_aqueduct(entry, cache)  # the size check notices and extracts again
    assert future.read_text() == FUTURE_CSV


def test_prepare_aqueduct_without_the_zip_says_what_to_do(tmp_path):
    entry = load_catalog().dataset("aqueduct40")
    with pytest.raises(HazardDataError, match="sitescreen data fetch aqueduct40"):
        prepare_aqueduct(entry, tmp_path)
