"""run_record: the MLflow run must hold every mandatory field before anything is promoted."""

from datetime import datetime, timezone

import dagster as dg

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.files import atomic_write_json
from z4_assets.core.gates import compare
from z4_assets.core.record._fields import REQUIRED, missing_fields
from z4_assets.core.z3 import SnapshotRef
from z4_assets.resources import FactoryStorage, MlflowTracking

CHECKS = {"run_record_complete": "Every mandatory run-record field (code, data, execution, training, "
                                 "metrics, hygiene, security, artifacts, governance, correlation) is present."}


def _all_artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for a in client.list_artifacts(run_id, path):
        out |= _all_artifacts(client, run_id, a.path) if a.is_dir else {a.path}
    return out


@dg.asset(group_name="record", kinds={"mlflow"}, code_version="1", check_specs=blocking_specs("run_record", CHECKS))
@observed()
def run_record(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef, signed_package,
               storage: FactoryStorage, mlflow: MlflowTracking):
    """The audited record of this run: what was trained, on which data, with which code, and where it went."""
    ref = z3_snapshot
    events = context.instance.get_records_for_run(
        run_id=context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    keys = sorted({r.event_log_entry.dagster_event.asset_key.to_user_string() for r in events} | {"run_record"})
    with mlflow.stage(context, ref) as rec:
        rec.log(tags={"ended_at": datetime.now(timezone.utc).isoformat(), "dagster_asset_keys": ",".join(keys)})
        run = rec.recorder.client.get_run(rec.run_id)
        artifacts = _all_artifacts(rec.recorder.client, rec.run_id)
        missing = missing_fields(run.data.tags, run.data.params, run.data.metrics, artifacts)
        gate = compare("run_record_complete", len(missing), "==", 0, "missing run-record fields",
                       {"missing": missing, "required": REQUIRED})
        out = storage.run_dir(context.run_id, "record")
        atomic_write_json(out / "run_record.json", {
            "mlflow_run_id": rec.run_id, "run_name": run.info.run_name, "tags": run.data.tags,
            "params": run.data.params, "metrics": run.data.metrics, "artifacts": sorted(artifacts),
            "missing": missing})
        atomic_write_json(out / "gates.json", [gate.as_dict()])
        rec.artifacts(out, "record")
        rec.blocked_by = first_failure([gate])
    return dg.MaterializeResult(
        value={"mlflow_run_id": rec.run_id, "missing": missing},
        metadata={"mlflow_run_id": rec.run_id, "mlflow_run_name": run.info.run_name,
                  "package_sha256": signed_package.sha256, "missing_fields": dg.MetadataValue.json(missing),
                  "asset_keys": dg.MetadataValue.json(keys)},
        check_results=check_results([gate]),
    )
