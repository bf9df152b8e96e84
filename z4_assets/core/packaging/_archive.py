"""One canonical reading of a package archive: every header is checked before a byte is written.

A package tarball is refused, with one line naming the member, when it could mean two things to two
readers or could harm the one extracting it: a member twice (or two spellings, or two names that
differ only in case), a name that is absolute, not normalized or outside `package/`, a link or a
special file, permission bits beyond 0644/0755, data after the end of the archive, or more members
or bytes than the limits. The gzip stream is decompressed through a counter that stops at the size
limit, so a small archive that expands to gigabytes is refused after reading, never after writing.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from z4_assets.core.errors import Z4Error

ROOT = "package"
FILE_MODES = (0o644, 0o755)     # what the builder writes; a reader accepts these bits or fewer
DIR_MODES = (0o755,)
HEADROOM = 1 << 20              # tar headers and padding on top of the members' bytes
DEFAULT_MAX_BYTES = 1 << 30     # 1 GiB of members: the sample package is ~1.2 MB, a large model fits
DEFAULT_MAX_MEMBERS = 10_000    # the sample package has ~60


@dataclass(frozen=True)
class ArchiveLimits:
    """How much a package may expand to (Z4_PACKAGE_MAX_BYTES, Z4_PACKAGE_MAX_MEMBERS)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS


class _Capped:
    """A read-only stream that raises once more than LIMIT bytes have been read from it."""

    def __init__(self, raw, limit: int):
        self.raw, self.limit, self.read_bytes = raw, limit, 0

    def read(self, n: int = -1) -> bytes:
        want = self.limit + 1 - self.read_bytes if n is None or n < 0 else min(n, self.limit + 1 - self.read_bytes)
        data = self.raw.read(max(want, 0))
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise Z4Error(f"archive expands past the limit of {self.limit - HEADROOM} bytes "
                          "(Z4_PACKAGE_MAX_BYTES): refused before extracting anything")
        return data


PAX_KEYS = {"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"}  # no xattrs, no sparse


def _mode_ok(info: tarfile.TarInfo) -> bool:
    """No bit beyond 0644 / 0755; the owner can read a file and enter a folder."""
    allowed, needed = (DIR_MODES, 0o700) if info.isdir() else (FILE_MODES, 0o400)
    return any(info.mode & ~m == 0 for m in allowed) and info.mode & needed == needed


def _check_name(name: str) -> PurePosixPath:
    if not name or name.startswith("/") or "\\" in name or any(not c.isprintable() for c in name):
        raise Z4Error(f"package member {name!r} has an absolute or unprintable name")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise Z4Error(f"package member {name!r} is not a normalized name (empty, '.' or '..' part)")
    if parts[0] != ROOT:
        raise Z4Error(f"package member {name!r} is outside {ROOT}/")
    return PurePosixPath(name)


def _check_member(info: tarfile.TarInfo, seen: dict[str, bool], folded: set[str]) -> None:
    name = info.name.rstrip("/") if info.isdir() else info.name
    path = _check_name(name)
    if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE) or info.sparse is not None:
        kind = ("symlink" if info.issym() else "hard link" if info.islnk() else "sparse file" if info.sparse
                else "special file")
        raise Z4Error(f"package member {name!r} is a {kind}: only regular files and folders are allowed")
    if extra := sorted(set(info.pax_headers) - PAX_KEYS):
        raise Z4Error(f"package member {name!r} carries the extended header {extra[0]!r} "
                      "(extended attributes and the like are not part of a package)")
    if not _mode_ok(info):
        raise Z4Error(f"package member {name!r} has mode {info.mode:04o}: only "
                      f"{'/'.join(f'{m:04o}' for m in FILE_MODES)} (files) and 0755 (folders) or less")
    twin = unicodedata.normalize("NFC", name).casefold()
    if name in seen or twin in folded:
        raise Z4Error(f"package member {name!r} appears twice (or twice in different case or "
                      "Unicode form)")
    for parent in path.parents:
        if seen.get(str(parent)):  # True: a regular file
            raise Z4Error(f"package member {name!r} lies under {str(parent)!r}, which is a file")
    seen[name] = not info.isdir()
    folded.add(twin)


def read_headers(archive: Path, limits: ArchiveLimits = ArchiveLimits(), shown: Path | None = None) -> list[tarfile.TarInfo]:
    """Every member header, after checking them all and reading the whole stream within the limits.
    SHOWN: the path error messages name (default ARCHIVE)."""
    shown = shown or archive
    members: list[tarfile.TarInfo] = []
    seen: dict[str, bool] = {}
    folded: set[str] = set()
    total = 0
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            capped = _Capped(gz, limits.max_bytes + HEADROOM)
            with tarfile.open(fileobj=capped, mode="r|") as tar:
                for info in tar:
                    _check_member(info, seen, folded)
                    members.append(info)
                    total += info.size
                    if len(members) > limits.max_members:
                        raise Z4Error(f"archive has more than {limits.max_members} members "
                                      "(Z4_PACKAGE_MAX_MEMBERS)")
                    if total > limits.max_bytes:
                        raise Z4Error(f"archive members add up to more than {limits.max_bytes} bytes "
                                      "(Z4_PACKAGE_MAX_BYTES)")
                if tar.pax_headers:
                    raise Z4Error("archive has a global extended header: it would change how other "
                                  "readers name its members")
            trailing = 0
            while chunk := capped.read(1 << 20):  # after the end marker: zero padding only, and not much
                trailing += len(chunk)
                if chunk.strip(b"\0"):
                    raise Z4Error("archive has data after its end: a second reading could differ")
                if trailing > HEADROOM:
                    raise Z4Error(f"archive goes on for more than {HEADROOM} bytes of padding after its end")
    except Z4Error as e:
        raise Z4Error(str(e), shown) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise Z4Error(f"not a readable package archive: {type(e).__name__}: {e}", shown) from None
    if not members:
        raise Z4Error("archive is empty", shown)
    return members


def extract_tarball(archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> Path:
    """DEST/package, extracted only after every header passed (see read_headers). Both readings are of
    one private copy, so the archive cannot change between the check and the extraction."""
    archive = Path(archive)
    try:
        size = archive.stat().st_size
    except OSError as e:
        raise Z4Error(f"cannot read the package archive: {e.strerror}", archive) from None
    if size > limits.max_bytes + HEADROOM:
        raise Z4Error(f"archive is {size} bytes, past the limit of {limits.max_bytes} (Z4_PACKAGE_MAX_BYTES)", archive)
    dest.mkdir(parents=True, exist_ok=True)
    private = dest / ".package.tar.gz"
    shutil.copyfile(archive, private)
    try:
        read_headers(private, limits, shown=archive)
        with tarfile.open(private, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # Debian bookworm's Python 3.11.2 (the training image) predates extraction filters
                tar.extractall(dest)  # nosec B202 # every header checked above (read_headers): no links, no '..', not absolute
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise Z4Error(f"not a readable package archive: {e}", archive) from None
    finally:
        private.unlink(missing_ok=True)
    root = dest / ROOT
    if not root.is_dir():
        raise Z4Error(f"archive has no {ROOT}/ folder", archive)
    return root


def check_folder(root: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """The same promises for a package folder: regular files and folders only, no set-id bits, limits."""
    count = total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                raise Z4Error(f"symlinks are not allowed in a package: {rel}", root)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise Z4Error(f"package entry {rel!r} is a special file: only regular files and folders", root)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise Z4Error(f"package entry {rel!r} is a hard link (another name shares its bytes)", root)
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
                raise Z4Error(f"package entry {rel!r} has a setuid, setgid or sticky bit", root)
            count += 1
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    if count > limits.max_members or total > limits.max_bytes:
        raise Z4Error(f"package folder has {count} entries and {total} bytes: past the limits "
                      f"({limits.max_members} entries, {limits.max_bytes} bytes)", root)
