"""The data group: the verified snapshot of a partition, and the evidence that it is clean enough to train on."""

import dataclasses

import dagster as dg
from pydantic import Field

from z4_assets.assets._stage import factory_asset, stage_run
from z4_assets.checks import materialize
from z4_assets.core.outcome import SnapshotOutcome
from z4_assets.core.stages import HYGIENE, SNAPSHOT
from z4_assets.core.z3 import parse_snapshot_key
from z4_assets.observability import observed
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker, Z3SnapshotStore


class SnapshotConfig(dg.Config):
    purpose: str = Field("", description="Purpose this run reads the data for; empty = the policy's access.purpose")


@factory_asset(SNAPSHOT, kinds={"parquet"})
@observed("snapshot")
def z3_snapshot(context: dg.AssetExecutionContext, config: SnapshotConfig, z3: Z3SnapshotStore,
                policy: PolicyStore, storage: FactoryStorage, mlflow: MlflowTracking,
                broker: SnapshotBroker):
    from z4_assets.core.snapshot import run_z3_snapshot

    dataset_id, snapshot_id = parse_snapshot_key(context.partition_key)
    # a remote store copies the snapshot into the run's scratch, removed when the run ends
    ref = z3.resolve(dataset_id, snapshot_id, cache_dir=storage.scratch(context.run_id).root / "z3")
    rules = policy.for_dataset(ref.dataset_id)
    source = "run config" if config.purpose else f"policy access.purpose ({rules.source})"
    run = stage_run(context, dataclasses.replace(ref, purpose=config.purpose or rules.access.purpose),
                    storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_z3_snapshot(run, broker.intake_reader(context), source, z3.public_key)
        rec.record(outcome)
    return materialize(outcome, rec)


@factory_asset(HYGIENE, kinds={"pandas", "matplotlib"})
@observed("snapshot")
def hygiene_report(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome, policy: PolicyStore,
                   storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    from z4_assets.core.hygiene import run_hygiene_report

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_hygiene_report(z3_snapshot, run)
        rec.record(outcome)
    return materialize(outcome, rec)
