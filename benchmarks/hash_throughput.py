"""SHA-256 throughput of the project's sha256_file against bare hashlib and coreutils sha256sum.

The file is random bytes, read once before timing so that the page cache, not the disk, feeds
every method; the three methods are interleaved and the order rotates each repeat.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from measure import Background, median, spread, wait_for_idle

_CHUNK = 64 << 20


def make_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(_CHUNK, left)
            f.write(os.urandom(n))
            left -= n


def warm_page_cache(path: Path) -> None:
    buf = bytearray(_CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def project_sha256(path: Path) -> str:
    from z4_assets.core.files import sha256_file

    return sha256_file(path)


def hashlib_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def coreutils_sha256(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


METHODS = {"project": project_sha256, "hashlib": hashlib_sha256, "sha256sum": coreutils_sha256}


def sha256sum_version() -> str:
    try:
        out = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"


def run(size: int, repeats: int, log=print) -> dict:
    methods = dict(METHODS)
    if shutil.which("sha256sum") is None:
        del methods["sha256sum"]
    tmp = Path(tempfile.mkdtemp(prefix="z4bench-hash-"))
    try:
        path = tmp / "random.bin"
        log(f"  writing {size / (1 << 30):.2f} GiB of random bytes")
        make_random_file(path, size)
        warm_page_cache(path)
        project_sha256(path)  # first call also pays the z4_assets import: keep it out of the timings
        names = list(methods)
        seconds: dict[str, list[float]] = {n: [] for n in names}
        digests: dict[str, set] = {n: set() for n in names}
        wait_for_idle()
        with Background() as background:
            for i in range(repeats):
                order = names[i % len(names):] + names[:i % len(names)]
                for name in order:
                    start = time.perf_counter()
                    digests[name].add(methods[name](path))
                    seconds[name].append(time.perf_counter() - start)
                log(f"  repeat {i + 1}/{repeats} "
                    + "  ".join(f"{n} {size / 1e9 / seconds[n][-1]:.2f} GB/s" for n in names))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    agree = len(set().union(*digests.values())) == 1
    gbps = {n: size / 1e9 / median(s) for n, s in seconds.items()}
    result = {
        "bytes": size, "repeats": repeats, "digests_agree": agree,
        "background_cores": background.cores,
        "gb_per_s": gbps, "seconds": {n: spread(s) for n, s in seconds.items()},
        "ratio_project_over_hashlib": gbps["project"] / gbps["hashlib"],
        "sha256sum_version": sha256sum_version() if "sha256sum" in methods else None,
    }
    if "sha256sum" in gbps:
        result["ratio_project_over_sha256sum"] = gbps["project"] / gbps["sha256sum"]
    return result
