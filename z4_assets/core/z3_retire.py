"""Retiring a Z3 snapshot: it stays, bytes and manifest untouched, but "newest" skips it.

A retirement is a record, `<root>/<dataset_id>/.retired/<snapshot_id>.json` (who, when, why, and the
snapshot's data hash), created once and read-only: a snapshot cannot be retired twice or un-retired by
this tool, and the record is never deleted. `z4 run`, `z4 snapshot tags` and the snapshot sensor take
the newest snapshot that is not retired; a snapshot named explicitly (`--snapshot-id`, a rebuild)
still resolves, so what was trained on it stays provable. The folder starts with "." so listings of
snapshots never see it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json

RETIRED_DIR = ".retired"


def retirement_path(root: str | Path, dataset_id: str, snapshot_id: str) -> Path:
    return Path(root) / dataset_id / RETIRED_DIR / f"{snapshot_id}.json"


def retire_snapshot(root: str | Path, dataset_id: str, snapshot_id: str, reason: str, by: str,
                    now: datetime | None = None) -> dict:
    """Record that the named snapshot is retired; the record, or Z4Error (unknown, already retired, no reason)."""
    from z4_assets.core.z3 import resolve_snapshot

    if not dataset_id or not snapshot_id:
        raise Z4Error("name the snapshot to retire: --dataset-id and --snapshot-id")
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise Z4Error("a retirement needs a reason (--reason): it is what an auditor reads")
    ref = resolve_snapshot(root, dataset_id, snapshot_id)
    path = retirement_path(root, dataset_id, snapshot_id)
    if path.exists():
        raise Z4Error(f"{ref.label} is already retired: {read_record(path).get('reason', '?')}", path)
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    record = {"dataset_id": dataset_id, "snapshot_id": snapshot_id, "partition": ref.label,
              "retired_at": at.isoformat().replace("+00:00", "Z"), "retired_by": by, "reason": reason,
              "data_sha256": ref.manifest["hash"], "contract_sha256": ref.manifest["contract_hash"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = atomic_write_json(path.with_name(f".{path.name}.staging"), record, mode=0o444)
    try:
        os.link(staged, path)  # exclusive: two retirements at once cannot both win
    except FileExistsError:
        raise Z4Error(f"{ref.label} is already retired", path) from None
    finally:
        staged.unlink(missing_ok=True)
    return record


def newest_active(refs: list, retired: dict, where: object):
    """The newest of REFS (SnapshotRefs, oldest first) that is not retired; one clear line when every one is."""
    active = [r for r in refs if r.label not in retired]
    if not active:
        raise Z4Error(f"every snapshot ({len(refs)}) is retired: register a new one with `z4 snapshot add`, "
                      "or name one with --snapshot-id", where)
    return active[-1]


def read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {"reason": "unreadable retirement record", "file": str(path)}
    return record if isinstance(record, dict) else {"reason": "malformed retirement record", "file": str(path)}


def retired_snapshots(root: str | Path, dataset_id: str | None = None) -> dict[str, dict]:
    """Partition key -> retirement record, for every retired snapshot under root (of one dataset)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    datasets = [dataset_id] if dataset_id else [d.name for d in root.iterdir()
                                                if d.is_dir() and not d.name.startswith(".")]
    out = {}
    for ds in datasets:
        folder = root / ds / RETIRED_DIR
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.json")):
            if not f.name.startswith("."):
                out[f"{ds}@{f.stem}"] = read_record(f)
    return out
