"""Atomic writes: complete or absent, with the permissions the umask asks for."""

from __future__ import annotations

import os
import stat

import pytest

from sitescreen.files import atomic_folder, atomic_write, umask_mode


@pytest.fixture()
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755),
                                                     (0o027, 0o640, 0o750)])
def test_files_and_folders_respect_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    assert umask_mode() == file_mode and umask_mode(directory=True) == dir_mode
    path = atomic_write(tmp_path / "a.bin", b"data")
    assert stat.S_IMODE(path.stat().st_mode) == file_mode
    written = atomic_write(tmp_path / "b.txt", lambda p: p.write_text("by a writer"))
    assert stat.S_IMODE(written.stat().st_mode) == file_mode
    with atomic_folder(tmp_path / "run") as tmp:
        (tmp / "x").write_bytes(b"1")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == dir_mode


def test_a_failed_write_leaves_the_old_content_and_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "a.txt", b"old")

    def broken(target):
        target.write_bytes(b"half")
        raise RuntimeError("disk said no")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_folder_keeps_the_old_folder(tmp_path):
    with atomic_folder(tmp_path / "pack") as tmp:
        (tmp / "v1").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(tmp_path / "pack") as tmp:
            (tmp / "v2").write_text("2")
            raise KeyboardInterrupt
    assert [p.name for p in (tmp_path / "pack").iterdir()] == ["v1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pack"]
