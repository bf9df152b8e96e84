"""The image's root filesystem: Debian's own packages (mmdebstrap) plus the hashed lock, nothing else.

No base image is pulled (no registry is reachable from a bank's build host): mmdebstrap builds a
minimal Debian tree from apt, the lock's wheels are downloaded with every hash checked on the host,
then installed inside the tree with `--require-hashes --no-deps --no-index`. SOURCE_DATE_EPOCH is
the commit's time, so mmdebstrap's tarball is reproducible for the same mirror content.
"""

from __future__ import annotations

import os
import subprocess  # nosec B404 # fixed argv, never a shell on our side
import sys
from pathlib import Path

from z4_assets.core.errors import Z4Error

SUITE = "bookworm"
# The image's apt sources: the suite, its point-release updates and Debian's security archive, so the
# image carries the fixes the CVE scan would otherwise report (mmdebstrap installs the newest version
# any of them offers, and leaves this list in the image's /etc/apt/sources.list).
SOURCES = (f"deb http://deb.debian.org/debian {SUITE} main",
           f"deb http://deb.debian.org/debian {SUITE}-updates main",
           f"deb http://deb.debian.org/debian-security {SUITE}-security main")
# Debian packages of the image (plus what they depend on, plus Debian's essential set).
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libgomp1")
UID = 10001
VENV = "/opt/z4"
LOCK_IN_IMAGE = f"{VENV}/requirements.lock"
TORCH_WHEELS = "/opt/wheels"  # the local CPU torch wheel (the lock pins torch==2.13.0+cpu by hash)
_BUILD = "/tmp/z4build"  # nosec B108 # a folder inside the image tree, removed before it is packed


def _run(cmd: list[str], what: str, env: dict | None = None, cwd: Path | None = None,
         timeout: float = 1800) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,  # nosec B603 # fixed argv, no shell
                             timeout=timeout, check=False)
    except FileNotFoundError:
        raise Z4Error(f"{what}: {cmd[0]} is not installed (see .ci/system-deps)") from None
    if out.returncode != 0:
        tail = [ln for ln in (out.stderr or out.stdout).splitlines() if ln.strip()][-3:]
        raise Z4Error(f"{what} failed (exit {out.returncode}): {' | '.join(tail)[-300:]}")
    return out.stdout


def missing_wheels(lock: Path, dest: Path) -> list[str]:
    """Pins of LOCK with no file in DEST whose sha256 is one of the pin's hashes."""
    from z4_assets.buildlane.lockcheck import parse_lock
    from z4_assets.core.files import sha256_file

    pins, problems = parse_lock(lock)
    if problems:
        raise Z4Error(f"the lock is not fully pinned and hashed: {problems[0]}", lock)
    have = {sha256_file(p) for p in dest.glob("*.whl")} if dest.is_dir() else set()
    return sorted(n for n, pin in pins.items() if not pin.hashes & have)


def download_wheels(lock: Path, dest: Path, torch_wheels: str = TORCH_WHEELS) -> Path:
    """Every wheel of the lock, each checked against its hash; pip is not asked when all are there
    (the image's pip install checks every hash again)."""
    dest.mkdir(parents=True, exist_ok=True)
    if not missing_wheels(lock, dest):
        return dest
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
          "--only-binary=:all:", "--find-links", torch_wheels, "--dest", str(dest), "-r", str(lock)],
         "downloading the lock's wheels")
    return dest


def _clean_env(epoch: int) -> dict:
    """No host pip configuration, proxies or locale leak into the build."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "SOURCE_DATE_EPOCH": str(epoch), "HOME": "/root", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_CONFIG_FILE": os.devnull, "PYTHONDONTWRITEBYTECODE": "1"}


def mmdebstrap_argv(out_tar: Path, wheels: Path, lock: Path) -> list[str]:
    """The root filesystem in one mmdebstrap call: Debian's packages, then the lock installed by its hooks.
    The project's own code is a second, small layer (project_layer): a code change does not rebuild this."""
    py = f'chroot "$1" {VENV}/bin/python -m pip'
    hooks = [
        f'mkdir -p "$1{_BUILD}"',
        f"copy-in {wheels} {lock} {_BUILD}",
        f'chroot "$1" python3 -m venv {VENV}',
        f"{py} install --no-index --no-compile --require-hashes --no-deps "
        f"--find-links {_BUILD}/{wheels.name} -r {_BUILD}/{lock.name}",
        f"{py} uninstall --yes pip",
        f'cp "$1{_BUILD}/{lock.name}" "$1{LOCK_IN_IMAGE}"',
        # unchecked-hash .pyc: no mtime inside, so the same sources give the same bytes; -f rewrites any
        # .pyc an import left (PYTHONDONTWRITEBYTECODE stops those: two builds differed by 14). Some wheels
        # ship files that are not Python 3 (templates, test data): compileall skips them, and fails.
        f'chroot "$1" {VENV}/bin/python -m compileall -q -f -j 2 --invalidation-mode unchecked-hash {VENV}/lib'
        " >/dev/null 2>&1 || true",
        f'echo "z4:x:{UID}:{UID}:z4 factory:/home/z4:/usr/sbin/nologin" >> "$1/etc/passwd"',
        f'echo "z4:x:{UID}:" >> "$1/etc/group"',
        f'mkdir -p "$1/home/z4" && chown {UID}:{UID} "$1/home/z4"',
        f'rm -rf "$1{_BUILD}" "$1/root/.cache" "$1/var/cache/ldconfig/aux-cache"',
    ]
    argv = ["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase", "--format=tar",
            "--include=" + ",".join(DEBIAN_PACKAGES)]
    argv += [f"--customize-hook={h}" for h in hooks]
    return [*argv, SUITE, str(out_tar), *SOURCES]


def build_rootfs(out_tar: Path, wheels: Path, lock: Path, epoch: int) -> Path:
    """mmdebstrap the tree into OUT_TAR (atomic: a failed build leaves no tarball)."""
    tmp = out_tar.with_name(out_tar.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        _run(mmdebstrap_argv(tmp, wheels, lock), "mmdebstrap", env=_clean_env(epoch))
        os.replace(tmp, out_tar)
    finally:
        tmp.unlink(missing_ok=True)
    return out_tar
