"""The training image's first build, started in the background as soon as the suite is collected.

A fresh machine builds the image's root filesystem (Debian + the lock) once: about 15 minutes of mostly
I/O. test_image_container.py still runs `z4 image build` itself and asserts on it; it only waits here
first, so that its build finds the inputs' cache filled (`reused`). Its module runs last, so the build
overlaps the rest of the suite instead of adding to it. Nothing is skipped: if this build fails, the
test's own build runs from scratch and reports why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK_DIR = ROOT / "build" / "image-work"
CONTAINER_TESTS = "test_image_container.py"

_proc: subprocess.Popen | None = None
_log: Path | None = None
# Under pytest-xdist every worker collects the suite: only the first worker builds; the others find
# its build through files named by the run's id (build/image-prebuild/<run id>/: log, exit code).
_WORKER, _RUN = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_TESTRUNUID")
_SHARED = ROOT / "build" / "image-prebuild" / _RUN if _RUN else None
_RC_WRAPPER = ("import os, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
               "open(sys.argv[1] + '.tmp', 'w').write(str(rc)); os.replace(sys.argv[1] + '.tmp', sys.argv[1])")
_installed: list = []  # how the running environment had the project installed before any build


def installed_project() -> str | None:
    """The project's install in the running environment (its direct_url), None when it has none."""
    import importlib
    import importlib.metadata as md

    importlib.invalidate_caches()
    try:
        return md.distribution("z4-model-factory").read_text("direct_url.json") or ""
    except md.PackageNotFoundError:
        return None


def installed_before_any_build() -> str | None:
    return _installed[0] if _installed else installed_project()


def start() -> None:
    """`z4 image build` into the shared work folder, with a throwaway key and evidence folder."""
    global _proc, _log
    if _proc is not None or (_WORKER not in (None, "gw0")):
        return
    from z4_assets.core.packaging._signing import keygen

    tmp = Path(tempfile.mkdtemp(prefix="z4-image-prebuild-"))
    key, _ = keygen(tmp / "prebuild.pem")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(ROOT), Z4_SIGNING_KEY=str(key), Z4_IMAGE_EVIDENCE=str(tmp / "evidence"))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    _log = tmp / "build.log"
    build = [sys.executable, "-m", "z4_assets.cli", "image", "build", "--work-dir", str(WORK_DIR)]
    if _SHARED is not None:  # the other workers wait for this exit code file
        _SHARED.mkdir(parents=True, exist_ok=True)
        (_SHARED / "log").write_text(str(_log))
        build = [sys.executable, "-c", _RC_WRAPPER, str(_SHARED / "rc"), *build]
    with open(_log, "wb") as out:
        _proc = subprocess.Popen(build, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    _proc.started = time.monotonic()  # type: ignore[attr-defined]


def wait(timeout: float = 3600) -> str:
    """Wait for the background build (if one was started); a line saying how it went."""
    if _proc is None and _SHARED is not None and _WORKER != "gw0":
        return _wait_for_first_worker(timeout)
    if _proc is None:
        return "no background build was started"
    try:
        code = _proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _proc.kill()
        return f"background build killed after {timeout:.0f} s"
    took = time.monotonic() - _proc.started  # type: ignore[attr-defined]
    return f"background build exited {code} after {took:.0f} s (log {_log})"


def _wait_for_first_worker(timeout: float) -> str:
    """Another worker's build: its exit code file (a minute's grace for the log file: it is written at
    that worker's collection, which ran beside this one's)."""
    started = time.monotonic()
    while not (_SHARED / "log").exists():
        if time.monotonic() - started > 60:
            return "no background build was started by worker gw0"
        time.sleep(1)
    rc = _SHARED / "rc"
    while not rc.exists():
        if time.monotonic() - started > timeout:
            return f"worker gw0's background build still running after {timeout:.0f} s"
        time.sleep(5)
    return (f"worker gw0's background build exited {rc.read_text()} (waited {time.monotonic() - started:.0f} s; "
            f"log {(_SHARED / 'log').read_text()})")


def order_last_and_prebuild(items: list) -> None:
    """Move the container tests to the end of the run and start their image's build now."""
    image = [i for i in items if i.path.name == CONTAINER_TESTS]
    if not image:
        return
    _installed[:] = [installed_project()]
    rest = [i for i in items if i.path.name != CONTAINER_TESTS]
    items[:] = rest + image
    if rest:  # run alone, the module builds in the foreground as before
        start()
