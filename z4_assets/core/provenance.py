"""Where the code came from: git commit and working-tree state, for every run record."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

_PKG = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_PKG), *args], capture_output=True, text=True,
                             timeout=10, check=True)
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
