"""`z4 retention apply`: delete what has outlived its retention class, keep the rest, say which and why.

A run folder is only ever touched through its own postrun/retention_manifest.json; a run
without one is left alone. EVIDENCE of a signed or promoted model is never deleted: a run is
protected when its folder holds `package/` (the signed package) or `promotion.json`.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from z4_assets.core.cleanup._paths import contained, prune_empty_dirs, remove, tree_files
from z4_assets.core.run_folder import RUN_ID_RE
from z4_assets.core.cleanup._retention import MANIFEST_NAME, parse_time
from z4_assets.core.files import atomic_write_json

PROTECTED_MARKERS = ("package", "package.tar.gz", "promotion.json", "promotion/promotion.json")


def protection(run_dir: Path) -> str | None:
    """Why a run's evidence must never be deleted, or None."""
    found = [m for m in PROTECTED_MARKERS if os.path.lexists(run_dir / m)]
    return f"signed or promoted model ({', '.join(found)} present)" if found else None


def apply_retention(factory_root: str | Path, now: datetime, dry_run: bool = False,
                    scratch_grace_hours: float = 24) -> dict:
    """Delete expired artifacts of every run (unless DRY_RUN); returns the full report."""
    root = Path(factory_root)
    report = {"as_of": now.astimezone(timezone.utc).isoformat(), "dry_run": dry_run,
              "factory_root": str(root), "deleted": [], "kept": [], "refused": [],
              "unclassified_runs": [], "orphaned_scratch": []}
    runs = root / "runs"
    for run_dir in sorted(runs.iterdir()) if runs.is_dir() else []:
        if run_dir.is_symlink() or not run_dir.is_dir() or not RUN_ID_RE.match(run_dir.name):
            continue
        _apply_run(run_dir, now, dry_run, report)
    _orphaned_scratch(root / "scratch", runs, now, dry_run, scratch_grace_hours, report)
    report["deleted_bytes"] = sum(d["size"] for d in report["deleted"])
    return report


def _apply_run(run_dir: Path, now: datetime, dry_run: bool, report: dict) -> None:
    run_id = run_dir.name
    manifest_path = run_dir / "postrun" / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = manifest["entries"]
    except FileNotFoundError:
        report["unclassified_runs"].append({"run_id": run_id, "reason": "no retention manifest: kept whole"})
        return
    except (ValueError, KeyError, TypeError) as e:
        report["unclassified_runs"].append({"run_id": run_id, "reason": f"unreadable retention manifest "
                                            f"({type(e).__name__}): kept whole"})
        return
    protected = protection(run_dir)
    for e in entries:
        if not isinstance(e, dict) or "deleted_at" in e:
            continue  # TRANSIENT: deleted by cleanup when the run ended
        rel, kind = str(e.get("path", "")), e.get("kind")
        item = {"run_id": run_id, "path": rel, "class": e.get("class"), "kind": kind, "size": e.get("size") or 0}
        target = contained(rel, run_dir)
        if target is None:
            report["refused"].append({**item, "reason": "path points outside the run folder"})
            continue
        if not os.path.lexists(target):
            continue  # already gone (an earlier apply, or removed by hand)
        try:
            expires = parse_time(str(e["expires_at"]))
        except (KeyError, ValueError):
            report["kept"].append({**item, "reason": "no valid expiry recorded"})
            continue
        if kind == "EVIDENCE" and protected:
            report["kept"].append({**item, "reason": f"protected: {protected}"})
        elif expires > now or kind not in ("EVIDENCE", "INTERMEDIATE", "TRANSIENT"):
            report["kept"].append({**item, "reason": f"kept until {e['expires_at']}"})
        else:
            item["size"] = target.lstat().st_size
            if not dry_run:
                remove(target, run_dir)
            report["deleted"].append({**item, "expired_at": e["expires_at"]})
    if not dry_run:
        prune_empty_dirs(run_dir)


def _orphaned_scratch(scratch_root: Path, runs: Path, now: datetime, dry_run: bool,
                      grace_hours: float, report: dict) -> None:
    """Scratch of a run whose cleanup never ran (killed, or run without the daemon), past a grace period."""
    if not scratch_root.is_dir() or scratch_root.is_symlink():
        return
    cutoff = now - timedelta(hours=grace_hours)
    for d in sorted(scratch_root.iterdir()):
        target = contained(d.name, scratch_root)
        if target is None or not RUN_ID_RE.match(d.name):
            continue
        age = datetime.fromtimestamp(d.lstat().st_mtime, timezone.utc)
        if age > cutoff:
            report["kept"].append({"run_id": d.name, "path": f"scratch/{d.name}", "kind": "TRANSIENT",
                                   "reason": f"scratch younger than {grace_hours:g} h (run may still be going)"})
            continue
        size = sum(f.lstat().st_size for f in tree_files(target))
        if not dry_run:
            remove(target, scratch_root)
        report["orphaned_scratch"].append({"run_id": d.name, "path": str(target), "size": size,
                                           "last_modified": age.isoformat()})


def write_report(factory_root: str | Path, report: dict) -> Path:
    stamp = report["as_of"][:19].replace(":", "").replace("-", "")
    suffix = "-dry-run" if report["dry_run"] else ""
    return atomic_write_json(Path(factory_root) / "retention" / f"apply-{stamp}{suffix}.json", report)


def render(report: dict, path: Path | None) -> str:
    """What was deleted (each file) and what was kept (per run and reason), for the terminal."""
    verb = "would delete" if report["dry_run"] else "deleted"
    lines = [f"retention as of {report['as_of']}{' (dry run: nothing deleted)' if report['dry_run'] else ''}"]
    for d in report["deleted"]:
        lines.append(f"{verb}: runs/{d['run_id']}/{d['path']} ({d['class']}, {d['kind']}, "
                     f"{d['size']} bytes, expired {d['expired_at']})")
    for o in report["orphaned_scratch"]:
        lines.append(f"{verb} orphaned scratch: {o['path']} ({o['size']} bytes)")
    groups: dict[tuple, int] = {}
    for k in report["kept"]:
        reason = k["reason"] if not k["reason"].startswith("kept until") else "not expired yet"
        groups[(k["run_id"], reason)] = groups.get((k["run_id"], reason), 0) + 1
    for (run_id, reason), n in sorted(groups.items()):
        lines.append(f"kept: runs/{run_id}: {n} file(s), {reason}")
    for u in report["unclassified_runs"]:
        lines.append(f"kept: runs/{u['run_id']}: {u['reason']}")
    for r in report["refused"]:
        lines.append(f"REFUSED: runs/{r['run_id']}: {r['path']!r}: {r['reason']}")
    done = "to delete (dry run)" if report["dry_run"] else "deleted"
    lines.append(f"{len(report['deleted'])} file(s) {done}, {report['deleted_bytes']} bytes; "
                 f"{len(report['kept'])} kept" + (f"; report: {path}" if path else ""))
    return "\n".join(lines)
