"""The `cleanup` job: the same post-run cleanup for a model_factory run that failed (launched by cleanup_on_failure)."""


import dagster as dg
from pydantic import Field

from z4_assets.cleanup.records import postrun_metrics, postrun_tags
from z4_assets.core.cleanup._postrun import finish_run
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import read_json
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, TokenRevoker


class CleanupTarget(dg.Config):
    failed_run_id: str = Field(description="Dagster run id of the model_factory run to clean up")


def _dataset_of(manifest_path) -> str:
    try:
        return str(read_json(manifest_path).get("dataset_id", ""))
    except (OSError, ValueError, AttributeError):
        return ""  # failed before the snapshot was resolved: the default policy applies


@dg.op(description="Remove the failed run's scratch, secrets and leases; write and log its post-run records.")
def cleanup_failed_run(context: dg.OpExecutionContext, config: CleanupTarget, storage: FactoryStorage,
                       policy: PolicyStore, mlflow: MlflowTracking, revoker: TokenRevoker):
    try:
        paths = storage.paths(config.failed_run_id)
    except Z4Error as e:
        raise dg.Failure(description=str(e)) from None
    by = f"cleanup job run {context.run_id}"
    rules = policy.for_dataset(_dataset_of(paths.run_dir / "snapshot" / "dataset_manifest.json"))
    post = finish_run(paths, rules, revoker.revoke, cleaned_by=by)
    mlflow_run = mlflow.record_postrun(config.failed_run_id, paths.postrun,
                                       postrun_tags(config.failed_run_id, by, post), postrun_metrics(post))
    context.log.info(f"cleaned run {config.failed_run_id}: removed {len(post.report['removed'])} files "
                     f"({post.report['removed_bytes']} bytes), revoked {len(post.report['revoked'])}; "
                     f"records in {paths.postrun} and MLflow run {mlflow_run}")
    if not post.gate.passed:
        raise dg.Failure(description=post.gate.summary,
                         metadata={"refused": dg.MetadataValue.json(post.report["refused"])})


@dg.job(name="cleanup", executor_def=dg.in_process_executor,
        description="Post-run cleanup of a failed model_factory run (run config: failed_run_id).")
def cleanup_job():
    cleanup_failed_run()
