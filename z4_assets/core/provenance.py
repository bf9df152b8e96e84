"""Where the code came from: git commit and working-tree state, for every run record."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

from z4_assets.core.settings import child_env

_PKG = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_PKG), *args], capture_output=True, text=True,
                             timeout=10, check=True, env=child_env())
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@lru_cache(maxsize=1)
def code_version() -> dict:
    """git sha (or an explicit reason it is unknown) and whether the tree had local changes."""
    sha = os.environ.get("Z4_GIT_SHA") or _git("rev-parse", "HEAD")
    if not sha:
        return {"git_sha": "unknown (not a git checkout)", "git_short": "nogit", "git_dirty": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if status is None else str(bool(status)).lower()
    return {"git_sha": sha, "git_short": sha[:8], "git_dirty": dirty}


@lru_cache(maxsize=1)
def repo_url() -> str:
    """Z4_REPO_URL, else the git remote, else an explicit reason."""
    url = os.environ.get("Z4_REPO_URL") or _git("remote", "get-url", "origin")
    if not url:
        return "none: local checkout without a remote (set Z4_REPO_URL)"
    import re

    return re.sub(r"(://)[^/@\s]+@", r"\1***@", url)  # never record credentials


# Additive: the run's environment, next to its code version.
CONTAINER_DIGEST_ENV = "Z4_CONTAINER_DIGEST"
_DIGEST_RE = r"^(?:[^@\s]+@)?(sha256:[0-9a-f]{64})$"


def container_digest() -> str:
    """The digest of the image this process runs in, or why there is none.

    An image cannot contain its own digest (the digest covers the image), so the deployer sets it:
    the dagster-k8s run launcher / job spec starts the pod from `<image>@sha256:...` and passes the
    same reference in Z4_CONTAINER_DIGEST (`docker run -e Z4_CONTAINER_DIGEST=... <image>@sha256:...`
    locally). A malformed value is an error, not a silent "unknown".
    """
    import re

    from z4_assets.core.errors import Z4Error

    raw = os.environ.get(CONTAINER_DIGEST_ENV, "").strip()
    if not raw:
        return NO_CONTAINER
    m = re.match(_DIGEST_RE, raw)
    if not m:
        raise Z4Error(f"{CONTAINER_DIGEST_ENV}={raw[:80]!r} is not '[image@]sha256:<64 hex>'")
    return m.group(1)


def environment_lock() -> dict:
    """The lockfile that defines the installed environment and its sha256 (what provenance records
    as the environment). In the image Z4_ENV_LOCK points at the copy installed from; in a checkout
    it is requirements.lock beside pyproject.toml."""
    from z4_assets.core.files import sha256_file

    path = Path(os.environ.get("Z4_ENV_LOCK") or _PKG.parent / "requirements.lock")
    if not path.is_file():
        return {"env_lock": "unknown (no lockfile found)", "env_lock_sha256": "unknown"}
    return {"env_lock": str(path), "env_lock_sha256": sha256_file(path)}


def container_fact() -> str:
    """The digest of the training image this process runs in (set by the container runner, which
    verified it against the image's signed statement), else "none": never a guessed value."""
    if os.environ.get(CONTAINER_DIGEST_ENV, "").strip():
        return container_digest()  # validated: a malformed value is an error
    return NO_CONTAINER


NO_CONTAINER = "none: not running in the z4 training image (Z4_CONTAINER_DIGEST unset)"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(threads: int | None = None) -> dict[str, str]:
    cpu = cpu_model()
    ram = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"hardware_cpu": f"{cpu} ({os.cpu_count()} logical cores, {platform.machine()})",
            "hardware_threads": str(threads if threads is not None else "unknown"),
            "hardware_ram": ram, "mkl_cbwr": os.environ.get("MKL_CBWR", "unset")}


def build_facts(egress_policy: str) -> dict[str, str]:
    from z4_assets.core.egress import observed

    return {"container_digest": container_fact(), "train_image_version": f"z4-model-factory {_version()}",
            "egress_policy": observed(egress_policy) if egress_policy else ""}


def _version() -> str:
    from z4_assets import __version__

    return __version__
