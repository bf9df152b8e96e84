"""`Z4_EXECUTION=container`: the factory's command runs inside the verified training image.

podman runs the image by digest (the digest just verified against the signed statement, so what
runs is what was checked), with no network, a read-only root and /tmp in memory. Mounted at the
same absolute paths as on the host: the snapshot store and keys read-only; writable only the
factory root (run evidence, outcomes), the tracking store (MLflow sqlite folder and artifact root)
and the Dagster instance (its run and event log). Values of passed variables never appear on the
command line (`-e NAME` takes the value from the environment).
"""

from __future__ import annotations

import os
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.image._rootfs import UID

EXECUTION_ENV = "Z4_EXECUTION"
MODES = ("host", "container")
EVIDENCE_ENV = "Z4_IMAGE_EVIDENCE"   # the image's evidence folder (read-only in the container)
IMAGE_ENV = "Z4_IMAGE"               # the image to run (default localhost/z4-train:latest)
# Passed by name only; their values stay out of argv and out of logs.
_PASSED = ("Z4_", "MLFLOW_", "DAGSTER_HOME", "AWS_", "PYTHONHASHSEED", "MKL_CBWR", "OMP_NUM_THREADS")
_NOT_PASSED = {EXECUTION_ENV, "Z4_CONTAINER_DIGEST", "Z4_ENV_LOCK"}


def execution_mode(env=os.environ) -> str:
    mode = env.get(EXECUTION_ENV, "host") or "host"
    if mode not in MODES:
        raise Z4Error(f"{EXECUTION_ENV}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _sqlite_dir(uri: str) -> Path:
    if not uri.startswith("sqlite:///"):
        raise Z4Error(f"container execution needs a file-based tracking store (sqlite:///...); the "
                      f"container has no network, so {uri.split('://')[0]}:// cannot be reached")
    return Path(uri.removeprefix("sqlite:///")).resolve().parent


def _instance_dirs(home: Path) -> list[Path]:
    """The Dagster instance's writable storage: a dedicated DAGSTER_HOME whole; a project root that is
    its own DAGSTER_HOME (dagster.yaml beside the code) only its storage folders, never the code."""
    if not (home / "dagster.yaml").is_file():
        return [home]
    return [home / d for d in (".dagster_home", "storage", "history", "logs", "schedules")
            if d == ".dagster_home" or (home / d).is_dir()]


def mounts(settings, dagster_home: str, evidence_dir: Path, cwd: Path) -> list[tuple[Path, str]]:
    """(host path, 'ro'|'rw') for everything the run reads or writes; writable: evidence, tracking."""
    from z4_assets.core.tracking import default_tracking_uri

    def p(x: str) -> Path:
        return (cwd / x).resolve()

    tracking = _sqlite_dir(settings.mlflow_tracking_uri or default_tracking_uri())
    if tracking == cwd.resolve():
        raise Z4Error("container execution writes only the tracking store, not the project folder: put the MLflow "
                      "store in a folder of its own (MLFLOW_TRACKING_URI=sqlite:///<folder>/mlflow.db)")
    rw = [p(settings.factory_root), tracking,
          cwd / "mlruns", *_instance_dirs(Path(dagster_home).resolve())]
    if settings.access_log:
        rw.append(p(settings.access_log).parent)
    # the private keys are not here: secret_copies mounts readable copies of them
    ro = [Path(dagster_home).resolve() / "dagster.yaml", p(settings.z3_root), evidence_dir.resolve(),
          p(settings.signing_pubkey_path)]
    if settings.policy:
        ro.append(p(settings.policy))
    out, seen = [], set()
    for path, mode in [*((x, "rw") for x in rw), *((x, "ro") for x in ro)]:
        if path in seen or (mode == "ro" and not path.exists()):
            continue
        seen.add(path)
        out.append((path, mode))
    return out


def secret_copies(settings, folder: Path, cwd: Path) -> list[tuple[Path, Path, str]]:
    """The private keys (0600, root's) copied 0400 for the image's user into FOLDER (the caller's
    temp folder, removed after the run), each mounted read-only at its own path: (src, dst, 'ro')."""
    import shutil

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(folder, UID, UID)
    out = []
    for i, key in enumerate((settings.signing_key, settings.pseudonym_key_file)):
        src = (cwd / key).resolve()
        if not src.is_file():
            continue
        copy = folder / f"secret-{i}"
        shutil.copyfile(src, copy)
        os.chown(copy, UID, UID)
        os.chmod(copy, 0o400)
        out.append((copy, src, "ro"))
    return out


def prepare_writable(paths: list[tuple[Path, str]]) -> None:
    """The image runs as uid 10001: its writable folders must be its own (created if absent)."""
    for bind in paths:
        path, mode = bind[0], bind[-1]
        if mode != "rw":
            continue
        path.mkdir(parents=True, exist_ok=True)
        for d, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(d, name), UID, UID)
        os.chown(path, UID, UID)


def container_argv(digest_ref: str, digest: str, command: list[str], binds: list[tuple],
                   cwd: Path, git_sha: str, env=os.environ) -> list[str]:
    argv = ["run", "--rm", "--network=none", "--read-only", "--read-only-tmpfs=false",
            "--tmpfs", "/tmp:rw,size=4g,mode=1777",  # nosec B108 # the container's own /tmp, in memory
            "--user", f"{UID}:{UID}", "--pull=never",
            "--security-opt", "no-new-privileges", "--cap-drop=all", "--workdir", str(cwd)]
    for bind in binds:
        src, dst, mode = bind if len(bind) == 3 else (bind[0], bind[0], bind[1])
        argv += ["-v", f"{src}:{dst}:{mode}"]
    names = sorted(k for k in env if k.startswith(_PASSED) and k not in _NOT_PASSED)
    for k in names:
        argv += ["-e", k]
    argv += ["-e", f"Z4_CONTAINER_DIGEST={digest}", "-e", f"Z4_GIT_SHA={git_sha}",
             "-e", "MPLCONFIGDIR=/tmp/mpl", "-e", "HOME=/tmp"]
    return [*argv, digest_ref, *command]
