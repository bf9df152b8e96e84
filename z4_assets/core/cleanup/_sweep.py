"""Remove what a run created that must not outlive it: scratch, temp files, secrets, tokens, env vars.

Only the run's scratch and its run folder can be touched; a ledger record naming anything
else (`/`, `..`, another run, a symlink out) is refused and reported, never followed.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from z4_assets.core.cleanup._paths import contained, remove, tree_files
from z4_assets.core.run_folder import RunFolder
from z4_assets.core.cleanup._scratch import LEDGER, SECRETS, read_ledger
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.packaging import STAGING_PREFIX

Revoke = Callable[[dict], str]


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def clean_run(paths: RunFolder, revoke: Revoke, now: datetime | None = None,
              hash_max_bytes: int = 64 << 20) -> dict:
    """Do the cleanup of one run and return its report (also when some of it was refused)."""
    started = now or datetime.now(timezone.utc)
    report = {"run_id": paths.run_id, "started_at": _iso(started), "scratch": str(paths.scratch),
              "removed": [], "revoked": [], "env_unset": [], "refused": [], "errors": []}
    try:
        ledger = read_ledger(paths.scratch / LEDGER)
    except Z4Error as e:
        ledger = []
        report["errors"].append({"what": "ledger", "error": str(e)})

    for entry in ledger:
        kind = entry.get("kind")
        if kind == "lease":
            report["revoked"].append(_revoke(entry, revoke))
        elif kind == "env":
            name = str(entry.get("name", ""))
            was_set = os.environ.pop(name, None) is not None
            report["env_unset"].append({"name": name, "was_set_in_this_process": was_set})
        elif kind == "file":
            _remove_recorded(paths, str(entry.get("path", "")), report)

    for leftover in sorted(paths.run_dir.rglob(".*.tmp")) if paths.run_dir.is_dir() else []:
        _remove_one(leftover, paths.run_dir, "temp file left by an interrupted write", report, hash_max_bytes)
    for staging in sorted(paths.run_dir.glob(f"{STAGING_PREFIX}*")) if paths.run_dir.is_dir() else []:
        for f in tree_files(staging):  # a package build that was killed: never published
            _describe(f, paths.run_dir, "package staging left by an interrupted build", report, hash_max_bytes)
        remove(staging, paths.run_dir)

    if paths.scratch.is_symlink():
        report["refused"].append({"path": str(paths.scratch), "reason": "scratch is a symlink"})
    elif paths.scratch.is_dir():
        secrets = paths.scratch / SECRETS
        for f in tree_files(paths.scratch):
            what = ("secret file" if f.is_relative_to(secrets) else
                    "ledger" if f == paths.scratch / LEDGER else "scratch")
            _describe(f, paths.scratch, what, report, hash_max_bytes, secret=what == "secret file")
        remove(paths.scratch, paths.factory_root / "scratch")
    report["scratch_removed"] = not os.path.lexists(paths.scratch)
    report["finished_at"] = _iso(datetime.now(timezone.utc) if now is None else now)
    report["removed_bytes"] = sum(r["size"] for r in report["removed"])
    return report


def _revoke(entry: dict, revoke: Revoke) -> dict:
    out = {"lease_id": str(entry.get("lease_id", "")), "issuer": str(entry.get("issuer", ""))}
    try:
        out["status"] = str(revoke(entry))
    except Z4Error as e:  # the project's own one-line messages carry no secret
        out["status"] = f"failed: {e}"
    except Exception as e:  # another revoker's message may quote the request: keep the type only
        out["status"] = f"failed: {type(e).__name__}"
    return out


def _remove_recorded(paths: RunFolder, recorded: str, report: dict) -> None:
    targets = [(t, base) for base in (paths.scratch, paths.run_dir)
               if (t := contained(recorded, base)) is not None]
    if not targets:
        report["refused"].append({"path": recorded, "reason": "outside the run's scratch and run folder"})
        return
    for target, base in targets:
        if os.path.lexists(target):
            _remove_one(target, base, "file recorded by the run", report, 0)
            return


def _remove_one(target: Path, base: Path, what: str, report: dict, hash_max_bytes: int) -> None:
    _describe(target, base, what, report, hash_max_bytes)
    remove(target, base)


def _describe(f: Path, base: Path, what: str, report: dict, hash_max_bytes: int,
              secret: bool = False) -> None:
    st = f.lstat()
    item = {"path": str(f.relative_to(base)), "base": str(base), "what": what, "size": st.st_size,
            "sha256": None}
    if f.is_symlink():
        item["what"] = f"{what} (symlink; its target was not touched)"
    elif secret:
        item["what"] = "secret file (content not hashed)"
    elif f.is_file() and st.st_size <= hash_max_bytes:
        item["sha256"] = sha256_file(f)
    report["removed"].append(item)
