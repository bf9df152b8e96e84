"""Named jobs: model_factory turns one Z3 snapshot (a partition) into a gated, signed, registered model;
cleanup cleans a model_factory run that failed."""

import dagster as dg
from pydantic import Field

from z4_assets.core.stages import STAGES
from z4_assets.k8s import factory_executor
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, TokenRevoker

# In-process: every step shares one interpreter, so torch and MLflow are imported once per run
# instead of once per step (the multiprocess executor costs ~1 s per step before imports).
# On Kubernetes (Z4_EXECUTOR=k8s, see deploy/) each step runs in its own pod instead.
model_factory = dg.define_asset_job(
    "model_factory",
    selection=dg.AssetSelection.assets(*(s.asset for s in STAGES)),
    executor_def=factory_executor(),
    description="One Z3 snapshot (the run's partition, <dataset_id>@<snapshot_id>) through every stage of the "
                "factory: snapshot verification, data hygiene, training, security and fairness evaluation, "
                "model card, signed package, run record, promotion to the registry, cleanup. Every gate blocks.",
)


class CleanupTarget(dg.Config):
    failed_run_id: str = Field(description="Dagster run id of the model_factory run to clean up")


@dg.op(description="Remove the failed run's scratch, secrets and leases; write and log its post-run records.")
def cleanup_failed_run(context: dg.OpExecutionContext, config: CleanupTarget, storage: FactoryStorage,
                       policy: PolicyStore, mlflow: MlflowTracking, revoker: TokenRevoker):
    from z4_assets.core.cleanup import run_cleanup
    from z4_assets.core.errors import Z4Error

    try:
        folder = storage.folder(config.failed_run_id)
    except Z4Error as e:
        raise dg.Failure(description=str(e)) from None
    run = context.instance.get_run_by_id(config.failed_run_id)
    partition = (run.tags.get("dagster/partition") if run else None) or ""
    dataset_id = partition.partition("@")[0]
    by = f"cleanup job run {context.run_id}"
    outcome = run_cleanup(folder, policy.for_dataset(dataset_id), revoker.revoke, by, partition)
    mlflow_run = mlflow.record_postrun(config.failed_run_id, folder.postrun, outcome.tags, outcome.metrics,
                                       cleanup_run_id=context.run_id, passed=outcome.passed)
    from z4_assets.audit_events import failed_run_cleaned

    failed_run_cleaned(context, storage, config.failed_run_id, partition, outcome)
    context.log.info(f"cleaned run {config.failed_run_id}: removed {outcome.facts['removed_files']} files "
                     f"({outcome.facts['removed_bytes']} bytes), revoked {outcome.facts['revoked']}; "
                     f"records in {folder.postrun} and MLflow run {mlflow_run}")
    _incident(context, folder, partition, outcome, storage)
    if not outcome.passed:
        raise dg.Failure(description=outcome.gates[0].summary,
                         metadata={"refused": dg.MetadataValue.json(outcome.facts["refused"])})


def _incident(context: dg.OpExecutionContext, folder, partition: str, outcome, storage) -> None:
    """The failed run's one incident record (core/incident.py): its failed gates, or the step that
    crashed or timed out; POSTed to Z4_INCIDENT_URL when set. A second cleanup of the run reuses it."""
    from z4_assets.core.incident import build_incident, open_incident
    from z4_assets.core.settings import Settings

    settings = Settings.from_env()
    errors = []
    for entry in context.instance.all_logs(folder.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error if entry.dagster_event else None
        errors.append({"step": entry.step_key, "error_class": error.cls_name if error else None,
                       "message": (error.message.strip()[:500] if error else "")})
    failed_revocations = outcome.gates[0].details.get("failed_revocations") or []
    links = {"dagster_run": f"{settings.dagster_url.rstrip('/')}/runs/{folder.run_id}",
             "cleanup_run": f"{settings.dagster_url.rstrip('/')}/runs/{context.run_id}",
             "run_folder": str(folder.run_dir)}
    record, new = open_incident(folder, build_incident(folder, partition, errors, links,
                                                       [str(r.get("lease", r)) for r in failed_revocations]),
                                settings.incident_url)
    if new:  # one incident per run, one event: a second cleanup reuses both
        from z4_assets.audit_events import incident_opened

        incident_opened(context, storage, folder.run_id, partition, record)
    state = "opened" if new else "already open"
    context.log.info(f"incident {state} for run {folder.run_id}: {record['title']} "
                     f"(runbook {record['runbook']}; delivery {record['delivery']['status']})")


@dg.job(name="cleanup", executor_def=dg.in_process_executor,
        description="Post-run cleanup of a failed model_factory run (run config: failed_run_id).")
def cleanup_job():
    cleanup_failed_run()
