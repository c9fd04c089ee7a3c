"""Archives from strangers: no member may land outside the destination, and a refusal leaves nothing."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ecosys_core.archives import unpack_archive
from ecosys_core.errors import EcosysError, UnsafePath
from ecosys_core.safe_paths import check_relative_path, join_inside, portable_name


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member", [
    tar_member("../evil.txt"),
    tar_member("/etc/evil.txt"),
    tar_member("ok/../../evil.txt"),
    tar_member("C:/evil.txt"),
    tar_member("link", tarfile.SYMTYPE, "../../outside"),
    tar_member("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
    tar_member("hard", tarfile.LNKTYPE, "../outside"),
    tar_member("dev", tarfile.CHRTYPE),
    tar_member("fifo", tarfile.FIFOTYPE),
], ids=lambda m: m.name)
def test_hostile_tar_member_aborts_and_leaves_nothing(tmp_path: Path, member: tarfile.TarInfo):
    archive = make_tar(tmp_path / "evil.tar.gz", [tar_member("good.txt"), member])
    dest = tmp_path / "root" / "app"
    with pytest.raises(UnsafePath, match="refused"):
        unpack_archive(archive, dest, "tar")
    assert not dest.exists()
    assert list((tmp_path / "root").iterdir()) == []  # no staging left behind
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs.txt", "a/../../evil.txt", "C:/evil.txt", "a\\..\\evil.txt"])
def test_zip_slip_aborts_and_leaves_nothing(tmp_path: Path, name: str):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.txt", "ok")
        zf.writestr(name, "evil")
    dest = tmp_path / "root" / "app"
    with pytest.raises(UnsafePath):
        unpack_archive(archive, dest, "zip")
    assert not dest.exists() and list((tmp_path / "root").iterdir()) == []


def test_zip_symlink_member_is_refused(tmp_path: Path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafePath, match="symbolic links"):
        unpack_archive(archive, tmp_path / "app", "zip")


def test_corrupt_archive_is_a_clear_error(tmp_path: Path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(EcosysError, match="not a valid zip archive"):
        unpack_archive(archive, tmp_path / "app", "zip")
    assert not (tmp_path / "app").exists()


def test_inner_relative_symlink_is_fine(tmp_path: Path):
    archive = make_tar(tmp_path / "ok.tar.gz", [tar_member("bin/real"), tar_member("bin/alias", tarfile.SYMTYPE, "real")])
    created = unpack_archive(archive, tmp_path / "app", "tar")
    assert created == ["bin/alias", "bin/real"]
    assert (tmp_path / "app" / "bin" / "alias").resolve() == (tmp_path / "app" / "bin" / "real").resolve()


@pytest.mark.parametrize("path", ["", "/a", "a/../b", "a//b", "a\\b", "C:x", "a\x00b", "./a"])
def test_unsafe_relative_paths(path: str):
    with pytest.raises(UnsafePath):
        check_relative_path(path)


def test_join_inside_refuses_symlink_escaping_the_root(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="symbolic link"):
        join_inside(root, "out/file.txt")
    assert join_inside(root, "in/file.txt") == root / "in" / "file.txt"


def test_portable_name():
    assert portable_name('a<b>:c"d|e?f*g.txt') == "a_b__c_d_e_f_g.txt"
    assert portable_name("CON.txt") == "_CON.txt"
    assert portable_name("..") == "_"
