"""Helpers for sensor tests: one tick against a real instance, a recorded factory run, and copies of snapshots."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from z4_assets.jobs import model_factory
from z4_assets.partitions import snapshots
from z4_assets.sensors.snapshots import PARTITION_TAG, z3_snapshot_sensor


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
    """The same data and contract under another snapshot id (a manifest naming its new folder).

    The id keeps NEW_SNAPSHOT_ID's time stamp and ends, as every snapshot id must, with the data
    hash's first 12 hex digits (core/z3_place.py)."""
    src = Path(snapshot_dir)
    manifest = json.loads((src / "manifest.json").read_text())
    new_snapshot_id = f"{new_snapshot_id.split('-')[0]}-{manifest['hash'][:12]}"
    dst = src.parent / new_snapshot_id
    shutil.copytree(src, dst)
    for f in dst.iterdir():
        os.chmod(f, 0o644)
    manifest["snapshot_id"] = new_snapshot_id
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@dg.asset(partitions_def=snapshots)
def _stand_in() -> None:
    """Stands in for the factory's assets: the run record is real, nothing is trained."""


_STAND_IN_DEFS = dg.Definitions(assets=[_stand_in], jobs=[dg.define_asset_job(
    model_factory.name, selection=[_stand_in], partitions_def=snapshots)])


def record_factory_run(instance: dg.DagsterInstance, partition_key: str, tags: dict | None = None) -> str:
    """A model_factory run of PARTITION_KEY with TAGS in INSTANCE, as the daemon (the sensor's request),
    `z4 run` or CI (`z4 snapshot tags`) or the Launchpad (the partition only) leave one; its run id.
    The partition is added first, as each of them does."""
    if not instance.has_dynamic_partition(snapshots.name, partition_key):
        instance.add_dynamic_partitions(snapshots.name, [partition_key])
    tags = {k: v for k, v in (tags or {}).items() if k != PARTITION_TAG}  # the partition key sets it
    result = _STAND_IN_DEFS.resolve_job_def(model_factory.name).execute_in_process(
        instance=instance, partition_key=partition_key, tags=tags)
    run = instance.get_run_by_id(result.run_id)
    assert run.job_name == model_factory.name and run.tags[PARTITION_TAG] == partition_key
    return result.run_id
