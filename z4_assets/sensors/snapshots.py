"""z3_snapshot_sensor: every new, complete Z3 snapshot gets one model_factory run, and no content is trained twice.

The cursor holds a digest of the last listing (manifest fingerprints), so a tick with nothing
new reads no manifest and hashes nothing. The catalog of snapshots seen is the dynamic
partition set `z3_snapshots` (one key per <dataset_id>@<snapshot_id>); the run_key is the
snapshot's content key (data + contract hashes), so Dagster itself never launches the same
content twice for this sensor, across restarts, whatever the snapshot is called.
"""

import os

import dagster as dg

from z4_assets.core.snapshot._watch import Ready, Waiting, examine, listing_digest, read_cursor, write_cursor
from z4_assets.jobs import model_factory
from z4_assets.resources import Z3SnapshotStore

z3_snapshots = dg.DynamicPartitionsDefinition(name="z3_snapshots")
CONTENT_TAG = "z4/content_key"
INTERVAL = int(os.environ.get("Z4_SENSOR_INTERVAL_SECONDS", "30"))


def run_request(r: Ready) -> dg.RunRequest:
    m = r.manifest
    return dg.RunRequest(
        run_key=r.content_key,
        run_config={"ops": {"z3_snapshot": {"config": {"dataset_id": r.item.dataset_id,
                                                      "snapshot_id": r.item.snapshot_id}}}},
        tags={"z4/dataset_id": r.item.dataset_id, "z4/snapshot_id": r.item.snapshot_id,
              "z4/dataset_hash": m["hash"], "z4/contract_hash": m["contract_hash"],
              CONTENT_TAG: r.content_key},
    )


def _trained(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    """content key -> id of a run that already has it (any status: a failed run is not retried)."""
    if not keys:
        return {}
    runs = instance.get_runs(filters=dg.RunsFilter(tags={CONTENT_TAG: keys}))
    return {r.tags[CONTENT_TAG]: r.run_id for r in runs}


@dg.sensor(job=model_factory, minimum_interval_seconds=INTERVAL,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Requests one model_factory run per new, complete Z3 snapshot (by content).")
def z3_snapshot_sensor(context: dg.SensorEvaluationContext, z3: Z3SnapshotStore):
    source = z3.source()
    listing = source.listing()
    digest = listing_digest(listing)
    cursor = read_cursor(context.cursor)
    if cursor.get("listing") == digest and not cursor.get("waiting"):
        return dg.SkipReason(f"no new snapshot in {source.location} ({len(listing)} known)")

    catalog = set(context.instance.get_dynamic_partitions(z3_snapshots.name))
    ready: list[Ready] = []
    waiting: list[Waiting] = []
    for item in sorted((i for i in listing if i.key not in catalog), key=lambda i: i.key):
        verdict = examine(source, item)
        if isinstance(verdict, Ready) and "..." in item.key:
            verdict = Waiting(item, f"{item.key}: cannot be catalogued (a partition key may not contain '...')")
        (ready if isinstance(verdict, Ready) else waiting).append(verdict)
    ready.sort(key=lambda r: (str(r.manifest["snapshot_at"]), r.item.key))

    trained = _trained(context.instance, sorted({r.content_key for r in ready}))
    requests, duplicates = [], []
    for r in ready:
        if r.content_key in trained:
            duplicates.append(f"{r.item.key} has the same data and contract as {trained[r.content_key]}")
            continue
        trained[r.content_key] = f"{r.item.key} (requested in this tick)"
        requests.append(run_request(r))
    for w in waiting:
        context.log.warning(f"not picked up yet: {w.reason}")
    for d in duplicates:
        context.log.info(f"not trained again: {d}")

    skip = None
    if not requests:
        skip = "; ".join([f"waiting: {w.reason}" for w in waiting] + [f"not trained again: {d}" for d in duplicates]) \
            or f"no new snapshot in {source.location} ({len(listing)} known)"
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[z3_snapshots.build_add_request([r.item.key for r in ready])] if ready else [],
        cursor=write_cursor(digest, len(listing), waiting),
        skip_reason=skip,
    )
