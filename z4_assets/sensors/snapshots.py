"""z3_snapshot_sensor: every new, complete Z3 snapshot becomes a partition and gets one model_factory run;
no snapshot and no content is trained twice, whatever launched the first run (sensor, `z4 run`, CI).

The cursor holds a digest of the last listing (manifest fingerprints), so a tick with nothing new
reads no manifest and hashes nothing. A snapshot already in the partition set `z3_snapshots` has
been seen; one with a run of its partition, or of its content key (data + contract hashes, tag
`z4/content_key`), is not trained again.
"""

import dagster as dg

from z4_assets.core.settings import Settings
from z4_assets.core.snapshot import (CONTENT_TAG, Ready, Waiting, examine, listing_digest, read_cursor,
                                     snapshot_run_tags, write_cursor)
from z4_assets.jobs import model_factory
from z4_assets.partitions import PARTITION_TAG, snapshots
from z4_assets.resources import Z3SnapshotStore

INTERVAL = Settings.from_env().sensor_interval_seconds


def run_request(r: Ready) -> dg.RunRequest:
    return dg.RunRequest(run_key=r.content_key, partition_key=r.item.key,
                         tags=snapshot_run_tags(r.item.dataset_id, r.item.snapshot_id, r.manifest))


def trained_by(instance: dg.DagsterInstance, ready: list[Ready]) -> dict[str, str]:
    """snapshot key -> the run that already has it (its partition, or the same content under another key)."""
    if not ready:
        return {}
    keys = sorted({r.item.key for r in ready})
    contents = sorted({r.content_key for r in ready})
    by_partition = {r.tags[PARTITION_TAG]: r.run_id
                    for r in instance.get_runs(filters=dg.RunsFilter(job_name=model_factory.name,
                                                                     tags={PARTITION_TAG: keys}))}
    by_content = {r.tags[CONTENT_TAG]: r.run_id
                  for r in instance.get_runs(filters=dg.RunsFilter(tags={CONTENT_TAG: contents}))}
    out = {}
    for r in ready:
        run = by_partition.get(r.item.key) or by_content.get(r.content_key)
        if run:
            out[r.item.key] = run
    return out


@dg.sensor(job=model_factory, minimum_interval_seconds=INTERVAL,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Adds every new, complete Z3 snapshot as a partition and requests its model_factory run.")
def z3_snapshot_sensor(context: dg.SensorEvaluationContext, z3: Z3SnapshotStore):
    source = z3.source()
    listing = source.listing()
    digest = listing_digest(listing)
    cursor = read_cursor(context.cursor)
    if cursor.get("listing") == digest and not cursor.get("waiting"):
        return dg.SkipReason(f"no new snapshot in {source.location} ({len(listing)} known)")

    catalog = set(context.instance.get_dynamic_partitions(snapshots.name))
    ready: list[Ready] = []
    waiting: list[Waiting] = []
    retired = source.retired()
    for key in sorted(k for k in retired if k not in catalog and any(i.key == k for i in listing)):
        context.log.info(f"not picked up: {key} is retired ({retired[key].get('reason')})")
    for item in sorted((i for i in listing if i.key not in catalog and i.key not in retired), key=lambda i: i.key):
        verdict = examine(source, item)
        if isinstance(verdict, Ready) and "..." in item.key:
            verdict = Waiting(item, f"{item.key}: cannot be catalogued (a partition key may not contain '...')")
        (ready if isinstance(verdict, Ready) else waiting).append(verdict)
    ready.sort(key=lambda r: (str(r.manifest["snapshot_at"]), r.item.key))

    trained = trained_by(context.instance, ready)
    requests, duplicates, requested = [], [], {}
    for r in ready:
        first = trained.get(r.item.key) or requested.get(r.content_key)
        if first:
            duplicates.append(f"{r.item.key} has a run already, or the same data and contract as {first}")
            continue
        requested[r.content_key] = f"{r.item.key} (requested in this tick)"
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
        dynamic_partitions_requests=[snapshots.build_add_request([r.item.key for r in ready])] if ready else [],
        cursor=write_cursor(digest, len(listing), waiting),
        skip_reason=skip,
    )
