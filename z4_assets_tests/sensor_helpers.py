"""Helpers for sensor tests: one tick against a real instance, and copies of snapshots."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from z4_assets.sensors.snapshots import z3_snapshot_sensor


@dataclass
class Tick:
    requests: list[dg.RunRequest]
    skip: str | None
    cursor: str | None


def tick(instance: dg.DagsterInstance, z3, cursor: str | None = None) -> Tick:
    """Evaluate z3_snapshot_sensor once, then do what the daemon does with partition requests."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"z3": z3})
    result = z3_snapshot_sensor(context)
    if isinstance(result, dg.SkipReason):
        return Tick([], result.skip_message, cursor)
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return Tick(list(result.run_requests or []), skip, result.cursor)


def republish(snapshot_dir: str | Path, new_snapshot_id: str) -> Path:
    """The same data and contract under another snapshot id (a manifest naming its new folder)."""
    src = Path(snapshot_dir)
    dst = src.parent / new_snapshot_id
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        os.chmod(f, 0o644)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["snapshot_id"] = new_snapshot_id
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst
