"""Podman, the one container engine on these hosts: build, inspect and run the training image.

crun fails on this kind of host (hybrid cgroups), so every call runs with the project's
containers.conf (runc, cgroupfs) unless CONTAINERS_CONF already names one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess  # nosec B404 # fixed argv, never a shell
from pathlib import Path

from z4_assets.core.errors import Z4Error

REPO = "localhost/z4-train"
CONTAINERS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "podman" / "containers.conf"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def env() -> dict:
    e = dict(os.environ)
    if not e.get("CONTAINERS_CONF") and CONTAINERS_CONF.is_file():
        e["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return e


def podman(*args: str, what: str, timeout: float = 1800, check: bool = True,
           storage_root: str | None = None) -> subprocess.CompletedProcess:
    argv = ["podman", *(["--root", storage_root] if storage_root else []), *args]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=timeout,  # nosec B603 # fixed argv, no shell
                             check=False)
    except FileNotFoundError:
        raise Z4Error(f"{what}: podman is not installed (see .ci/system-deps)") from None
    if check and out.returncode != 0:
        tail = [ln for ln in out.stderr.splitlines() if ln.strip()][-2:]
        raise Z4Error(f"{what} failed (podman exit {out.returncode}): {' | '.join(tail)[-300:]}")
    return out


def build(context: Path, containerfile: Path, tag: str, epoch: int, storage_root: str | None = None) -> None:
    podman("build", "--quiet", "--pull=never", "--network=none", f"--timestamp={epoch}",
           "-f", str(containerfile), "-t", tag, str(context), what="podman build", storage_root=storage_root)


def exists(ref: str, storage_root: str | None = None) -> bool:
    return podman("image", "exists", ref, what="podman image exists", check=False,
                  storage_root=storage_root).returncode == 0


def inspect(ref: str, storage_root: str | None = None) -> dict:
    """The local image REF resolves to: its manifest digest, id, size, user and tags."""
    out = podman("image", "inspect", ref, what=f"inspecting image {ref}", check=False, storage_root=storage_root)
    if out.returncode != 0:
        raise Z4Error(f"no local image {ref!r} (build it with `z4 image build`)")
    info = json.loads(out.stdout)[0]
    digest = info.get("Digest", "")
    if not DIGEST_RE.match(digest):
        raise Z4Error(f"image {ref!r} has no manifest digest (got {digest[:80]!r})")
    return {"digest": digest, "id": info["Id"], "size": int(info.get("Size", 0)),
            "user": (info.get("Config") or {}).get("User", ""), "tags": info.get("RepoTags") or []}


def remove(ref: str, storage_root: str | None = None) -> None:
    podman("rmi", "--force", ref, what="podman rmi", check=False, storage_root=storage_root)
