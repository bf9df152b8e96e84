"""cleanup_report: the last step of a passing run; nothing it created outlives it, and the record says what is kept."""


import dagster as dg

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.cleanup.records import postrun_metrics, postrun_tags
from z4_assets.core.cleanup._postrun import finish_run
from z4_assets.core.z3 import SnapshotRef
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, TokenRevoker

# Every factory asset other than z3_snapshot (an input): cleanup runs only after all of them
# succeeded. A new factory stage adds its asset key here. Failed runs are cleaned by the
# `cleanup` job, launched by the cleanup_on_failure sensor.
AFTER = ["hygiene_report", "trained_model", "signed_package", "promotion"]

CHECKS = {
    "cleanup_complete": "Scratch, temp files and secrets are gone, issued leases revoked, and no "
                        "record pointed outside the run's own folders.",
}


@dg.asset(group_name="cleanup", kinds={"python"}, code_version="1", deps=AFTER,
          check_specs=blocking_specs("cleanup_report", CHECKS))
@observed()
def cleanup_report(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef, storage: FactoryStorage,
                   policy: PolicyStore, mlflow: MlflowTracking, revoker: TokenRevoker):
    """What this run removed, revoked and kept (and until when): postrun/cleanup_report.json and retention_manifest.json."""
    ref = z3_snapshot
    paths = storage.paths(context.run_id)
    by = f"cleanup_report asset of run {context.run_id}"
    post = finish_run(paths, policy.for_dataset(ref.dataset_id), revoker.revoke, cleaned_by=by)
    with mlflow.stage(context, ref) as rec:
        rec.log(metrics=postrun_metrics(post), tags=postrun_tags(context.run_id, by, post))
        rec.artifacts(paths.postrun, "postrun")
        rec.blocked_by = first_failure([post.gate])
    totals = {name: f"{t['files']} files ({t['kind']})" for name, t in post.manifest["totals"].items()}
    return dg.MaterializeResult(
        metadata={
            "cleanup_report": dg.MetadataValue.path(str(paths.postrun / "cleanup_report.json")),
            "retention_manifest": dg.MetadataValue.path(str(paths.postrun / "retention_manifest.json")),
            "removed_files": dg.MetadataValue.int(len(post.report["removed"])),
            "removed_bytes": dg.MetadataValue.int(post.report["removed_bytes"]),
            "revoked": dg.MetadataValue.int(len(post.report["revoked"])),
            "retention": dg.MetadataValue.json(totals), "mlflow_run_id": rec.run_id,
        },
        check_results=check_results([post.gate]),
    )
