"""z3_snapshot: the verified snapshot the factory trains on; nothing runs on bytes that changed."""

import dataclasses

import dagster as dg
from pydantic import Field

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.broker import ACCESS_LOG
from z4_assets.core.contract import load_contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.snapshot._checks import verify_snapshot
from z4_assets.core.files import atomic_write_json
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker, Z3SnapshotStore

CHECKS = {
    "snapshot_hash": "Recomputed sha256 of the data and contract equal the manifest's.",
    "contract": "The data satisfies its contract (pandera schema built from the contract file).",
    "legal_basis": "Every sensitive attribute declares an allowed legal basis.",
    "purpose": "The run's declared purpose is one the snapshot's contract allows (none declared: denied).",
}


class SnapshotSelection(dg.Config):
    dataset_id: str = Field("", description="Dataset to train; empty = the newest snapshot of any dataset")
    snapshot_id: str = Field("", description="Snapshot to train; empty = the dataset's newest")
    purpose: str = Field("", description="Purpose this run reads the data for; empty = the policy's access.purpose")


@dg.asset(group_name="snapshot", kinds={"parquet"}, code_version="1",
          check_specs=blocking_specs("z3_snapshot", CHECKS))
@observed("snapshot")
def z3_snapshot(context: dg.AssetExecutionContext, config: SnapshotSelection, z3: Z3SnapshotStore,
                policy: PolicyStore, storage: FactoryStorage,
                mlflow: MlflowTracking, broker: SnapshotBroker):
    """The Z3 snapshot chosen for this run, re-hashed and checked against its contract."""
    try:
        # a remote store copies the snapshot into the run's scratch, removed when the run ends
        ref = z3.resolve(config.dataset_id, config.snapshot_id,
                         cache_dir=storage.scratch(context.run_id).root / "z3")
        contract, _ = load_contract(ref.contract_path)
        rules = policy.for_dataset(ref.dataset_id)
    except Z4Error as e:
        raise dg.Failure(description=str(e)) from None
    source = "run config" if config.purpose else f"policy access.purpose ({rules['source']})"
    ref = dataclasses.replace(ref, purpose=config.purpose or rules["access"]["purpose"])
    gates = verify_snapshot(ref, contract, rules, lambda: broker.read_for_intake(context, ref, contract),
                            source)
    out = storage.run_dir(context.run_id, "snapshot")
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])
    atomic_write_json(out / "dataset_manifest.json", ref.manifest)
    with mlflow.stage(context, ref) as rec:
        rec.log(params={"policy_source": rules["source"]}, tags={"data_purpose": ref.purpose},
                metrics={f"gate.{g.name}.passed": float(g.passed) for g in gates})
        rec.artifacts(out, "reports/snapshot")
        broker.export_run_log(context.run_id, storage.run_dir(context.run_id, "access") / ACCESS_LOG)
        rec.artifacts(storage.run_dir(context.run_id, "access"), "access")  # completed by signed_package
        rec.blocked_by = first_failure(gates)
    m = ref.manifest
    return dg.MaterializeResult(
        value=ref,
        metadata={
            "dataset_id": ref.dataset_id, "snapshot_id": ref.snapshot_id,
            "hash": m["hash"], "rows": dg.MetadataValue.int(m["row_count"]),
            "snapshot_at": m["snapshot_at"], "path": dg.MetadataValue.path(ref.path),
            "feature_groups": dg.MetadataValue.json(m["feature_groups"]),
            "mlflow_run_id": rec.run_id, "purpose": ref.purpose,
        },
        check_results=check_results(gates),
    )
