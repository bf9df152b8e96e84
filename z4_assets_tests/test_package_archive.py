"""The package archive has one canonical reading: every ambiguous or harmful archive is refused, with
one line, before anything is written to disk (issue 15, "Archive ambiguity")."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.packaging import verify_package

WEIGHTS = "package/model/model.safetensors"


@pytest.fixture(scope="module")
def sample_package(sample_factory_run, signing_key):
    """The shared sample run's package folder (read-only) and the public key."""
    assert sample_factory_run["result"].success
    return sample_factory_run["run_dir"] / "package", signing_key.with_name("signing.pub.pem")


def _members(pkg: Path):
    """(TarInfo, bytes) of the package as the builder lays it out: package/..., canonical modes."""
    out = [(_info("package", tarfile.DIRTYPE, 0o755), b"")]
    for p in sorted(pkg.rglob("*")):
        name = f"package/{p.relative_to(pkg).as_posix()}"
        if p.is_dir():
            out.append((_info(name, tarfile.DIRTYPE, 0o755), b""))
        else:
            out.append((_info(name, tarfile.REGTYPE, 0o755 if os.access(p, os.X_OK) else 0o644), p.read_bytes()))
    return out


def _info(name: str, kind=tarfile.REGTYPE, mode=0o644, size=0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    return info


def _write(path: Path, members, trailer: bytes = b"") -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(gzip.compress(buf.getvalue() + trailer, compresslevel=1))
    return path


def _tampered(data: bytes) -> bytes:
    b = bytearray(data)
    b[len(b) // 2] ^= 0x01
    return bytes(b)


def _weights(members) -> bytes:
    return next(d for i, d in members if i.name == WEIGHTS)


def _dup_tampered_first(m):
    return [(_info(WEIGHTS), _tampered(_weights(m))), *m]


def _second_spelling(m):
    return [(_info("package/./model/model.safetensors"), _tampered(_weights(m))), *m]


def _dotdot(m):
    return [*m, (_info("package/model/../../evil.txt"), b"x")]


def _outside_root(m):
    return [*m, (_info("elsewhere/run.sh", mode=0o755), b"#!/bin/sh\necho owned\n")]


def _absolute(m):
    return [*m, (_info("/tmp/z4-absolute-member"), b"x")]


def _symlink(m):
    link = _info("package/model/link.pt", tarfile.SYMTYPE, 0o777)
    link.linkname = "/etc/passwd"
    return [*m, (link, b"")]


def _hardlink(m):
    link = _info("package/model/hard.pt", tarfile.LNKTYPE)
    link.linkname = WEIGHTS
    return [*m, (link, b"")]


def _fifo(m):
    return [*m, (_info("package/model/pipe", tarfile.FIFOTYPE), b"")]


def _device(m):
    return [*m, (_info("package/model/dev", tarfile.CHRTYPE), b"")]


def _setuid(m):
    return [(_info(i.name, i.type, 0o4755), d) if i.name.endswith("run.sh") else (i, d) for i, d in m]


def _world_writable(m):
    return [(_info(i.name, i.type, 0o666), d) if i.name == WEIGHTS else (i, d) for i, d in m]


def _extra_signature(m):
    return [*m, (_info("package/signatures/second.sig"), b"an unsigned extra")]


def _case_twin(m):
    return [*m, (_info("package/model/Model.safetensors"), _tampered(_weights(m)))]


def _under_a_file(m):
    return [*m, (_info(f"{WEIGHTS}/inner"), b"x")]


def _xattr(m):
    info = _info("package/repro/cap.sh", mode=0o755)
    info.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
    return [*m, (info, b"#!/bin/sh\n")]


def _unicode_twin(m):
    return [*m, (_info("package/model/caf\u00e9.json"), b"{}"), (_info("package/model/cafe\u0301.json"), b"[]")]


def _unreadable_mode(m):
    return [(_info(i.name, i.type, 0o000), d) if i.name == WEIGHTS else (i, d) for i, d in m]


ATTACKS = {
    "duplicate member, tampered copy first": (_dup_tampered_first, "appears twice"),
    "second spelling package/./model/model.safetensors": (_second_spelling, "not a normalized name"),
    "'..' in a name": (_dotdot, "not a normalized name"),
    "entry outside package/": (_outside_root, "outside package/"),
    "absolute path": (_absolute, "absolute"),
    "symlink": (_symlink, "is a symlink"),
    "hard link": (_hardlink, "is a hard link"),
    "fifo": (_fifo, "special file"),
    "character device": (_device, "special file"),
    "setuid script": (_setuid, "has mode 4755"),
    "world-writable file": (_world_writable, "has mode 0666"),
    "extra file under signatures/": (_extra_signature, "not covered by the signature: signatures/second.sig"),
    "two names differing in case": (_case_twin, "twice in different case"),
    "a file under a file": (_under_a_file, "which is a file"),
    "extended attribute (file capability) in a pax header": (_xattr, "SCHILY.xattr.security.capability"),
    "two names differing only in Unicode form": (_unicode_twin, "Unicode form"),
    "mode 0000": (_unreadable_mode, "has mode 0000"),
}


def test_the_canonical_archive_verifies(sample_package, tmp_path):
    pkg, pub = sample_package
    report = verify_package(_write(tmp_path / "ok.tar.gz", _members(pkg)), pub)
    assert report.ok, report.first_problem


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_ambiguous_archive_is_refused_with_one_line(sample_package, tmp_path, attack):
    pkg, pub = sample_package
    make, expected = ATTACKS[attack]
    archive = _write(tmp_path / "attack.tar.gz", make(_members(pkg)))
    report = verify_package(archive, pub)
    assert not report.ok, attack
    assert expected in report.first_problem, report.first_problem
    assert "\n" not in report.first_problem and "Traceback" not in report.first_problem
    assert not Path("/tmp/z4-absolute-member").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_data_after_the_end_of_the_archive_is_refused(sample_package, tmp_path):
    """A second tar appended after the end marker (read by `tar -i`): two readings, so refused."""
    pkg, pub = sample_package
    m = _members(pkg)
    second = io.BytesIO()
    with tarfile.open(fileobj=second, mode="w") as tar:
        info = _info(WEIGHTS, size=len(_weights(m)))
        tar.addfile(info, io.BytesIO(_tampered(_weights(m))))
    report = verify_package(_write(tmp_path / "trail.tar.gz", m, trailer=second.getvalue()), pub)
    assert not report.ok and "data after its end" in report.first_problem, report.first_problem


def test_a_global_extended_header_is_refused(sample_package, tmp_path):
    pkg, pub = sample_package
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"path": "package/x"}) as tar:
        for info, data in _members(pkg):
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    archive = tmp_path / "global.tar.gz"
    archive.write_bytes(gzip.compress(buf.getvalue()))
    report = verify_package(archive, pub)
    assert not report.ok and "package: " in report.first_problem, report.first_problem


def test_member_count_and_size_limits(sample_package, tmp_path):
    from z4_assets.core.packaging import ArchiveLimits

    pkg, pub = sample_package
    archive = _write(tmp_path / "ok.tar.gz", _members(pkg))
    n = len(_members(pkg))
    assert verify_package(archive, pub, limits=ArchiveLimits(max_members=n)).ok
    few = verify_package(archive, pub, limits=ArchiveLimits(max_members=n - 1))
    assert not few.ok and f"more than {n - 1} members" in few.first_problem
    small = verify_package(archive, pub, limits=ArchiveLimits(max_bytes=100_000))
    assert not small.ok and "100000 bytes" in small.first_problem, small.first_problem
    folder = verify_package(pkg, pub, limits=ArchiveLimits(max_members=5))
    assert not folder.ok and "past the limits" in folder.first_problem


def _zeros_gz(size: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    """gzip of HEAD + SIZE zero bytes + TAIL, as concatenated gzip members (one reading to every gzip
    reader): a 64 MiB block of zeros compressed once and repeated, so the test builds it in a second."""
    block = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    assert size % (64 << 20) == 0
    return gzip.compress(head) + block * (size // (64 << 20)) + gzip.compress(tail)


def _bomb(path: Path, size: int) -> Path:
    """A tar.gz with one member of SIZE zero bytes."""
    head = (_info("package", tarfile.DIRTYPE, 0o755).tobuf() + _info("package/model", tarfile.DIRTYPE, 0o755).tobuf()
            + _info("package/model/model.safetensors", size=size).tobuf(tarfile.PAX_FORMAT))
    path.write_bytes(_zeros_gz(size, head, b"\0" * 1024))
    return path


def test_a_small_archive_expanding_to_4_gib_is_refused_before_writing(tmp_path):
    from z4_assets.core.packaging import extract_tarball

    bomb = _bomb(tmp_path / "bomb.tar.gz", 4 << 30)
    assert bomb.stat().st_size < 8 << 20  # a few MB on disk
    dest = tmp_path / "out"
    dest.mkdir()
    start = time.perf_counter()
    with pytest.raises(Z4Error, match="Z4_PACKAGE_MAX_BYTES") as e:
        extract_tarball(bomb, dest)
    seconds = time.perf_counter() - start
    assert list(dest.iterdir()) == [], "nothing but the private copy, now removed, may be written before every header passed"
    assert "\n" not in str(e.value)
    print(f"\nbomb of {bomb.stat().st_size} bytes refused after {seconds:.1f} s, nothing written")


@pytest.mark.parametrize("blob,expected", [(b"not gzip at all", "not a readable package archive"),
                                           (gzip.compress(b"\x01" * 700, mtime=0), "not a readable package archive")],
                         ids=["not-gzip", "gzip-of-no-tar"])
def test_unreadable_archives_get_one_line(tmp_path, sample_package, blob, expected):
    _, pub = sample_package
    p = tmp_path / "bad.tar.gz"
    p.write_bytes(blob)
    report = verify_package(p, pub)
    assert not report.ok and expected in report.first_problem and "\n" not in report.first_problem


def test_folder_packages_refuse_extra_signature_files_symlinks_and_setuid(sample_package, tmp_path):
    pkg, pub = sample_package
    cases = {"extra signature": ("signatures/model.sig.bak", "not covered by the signature"),
             "symlink": ("model/link.pt", "symlinks are not allowed"),
             "setuid": ("repro/run.sh", "setuid"),
             "hard link": ("model/hard.pt", "hard link")}
    for name, (rel, expected) in cases.items():
        copy = tmp_path / name.replace(" ", "_")
        shutil.copytree(pkg, copy)
        target = copy / rel
        if name == "extra signature":
            target.write_bytes(b"unsigned")
        elif name == "symlink":
            target.symlink_to(copy / "model" / "model.safetensors")
        elif name == "setuid":
            target.chmod(0o4755)
        else:
            os.link(copy / "model" / "model.safetensors", target)
        report = verify_package(copy, pub)
        assert not report.ok and expected in report.first_problem, (name, report.first_problem)
    link = tmp_path / "link_to_package"
    link.symlink_to(pkg)
    assert "symlink" in verify_package(link, pub).first_problem


def test_gigabytes_of_padding_after_the_end_are_refused_after_one_mib(tmp_path):
    """Headers all pass, then the stream goes on (4 GiB of zeros after the end marker): reading stops."""
    from z4_assets.core.packaging import extract_tarball

    path = tmp_path / "padded.tar.gz"
    path.write_bytes(_zeros_gz(4 << 30, _info("package", tarfile.DIRTYPE, 0o755).tobuf() + b"\0" * 1024))
    dest = tmp_path / "out"
    dest.mkdir()
    start = time.perf_counter()
    with pytest.raises(Z4Error, match="more than 1048576 bytes of padding after its end"):
        extract_tarball(path, dest)
    assert list(dest.iterdir()) == [] and time.perf_counter() - start < 10
