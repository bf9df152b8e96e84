"""Named jobs: model_factory turns one Z3 snapshot (a partition) into a gated, signed, registered model;
cleanup cleans a model_factory run that failed."""

import dagster as dg
from pydantic import Field

from z4_assets.core.stages import STAGES
from z4_assets.incidents import incident_on_failure, open_run_incident
from z4_assets.k8s import factory_executor
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, TokenRevoker

# In-process: every step shares one interpreter, so torch and MLflow are imported once per run
# instead of once per step (the multiprocess executor costs ~1 s per step before imports).
# On Kubernetes (Z4_EXECUTOR=k8s, see deploy/) each step runs in its own pod instead.
model_factory = dg.define_asset_job(
    "model_factory",
    selection=dg.AssetSelection.assets(*(s.asset for s in STAGES)),
    executor_def=factory_executor(),
    hooks={incident_on_failure},
    description="One Z3 snapshot (the run's partition, <dataset_id>@<snapshot_id>) through every stage of the "
                "factory. Data: the snapshot's signature, hash, contract, legal basis and purpose; hygiene "
                "(duplicates, conflicting labels, impossible values, leakage, drift against the baseline). Model: "
                "reproducible training, AUC/KS and the operating point. Evaluation: evasion and poisoning attacks, "
                "membership inference, output integrity; fairness per protected group with bootstrap intervals. "
                "Release: model card and policy trace, a signed package with its SBOM, the run record, promotion "
                "to the MLflow registry (alias candidate) only for a package that verifies, cleanup. Every gate "
                "blocks; the `verdict` asset holds each snapshot's verdict page (a failed run's is written by the "
                "cleanup job).",
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
    meta = _verdict(context, config.failed_run_id, folder, partition, mlflow, outcome)
    from z4_assets.audit_events import failed_run_cleaned

    failed_run_cleaned(context, storage, config.failed_run_id, partition, outcome)
    context.log.info(f"cleaned run {config.failed_run_id}: removed {outcome.facts['removed_files']} files "
                     f"({outcome.facts['removed_bytes']} bytes), revoked {outcome.facts['revoked']}; "
                     f"records in {folder.postrun}; verdict: {meta['decision_summary'].value}")
    _incident(context, folder, partition, outcome, storage)
    if not outcome.passed:
        raise dg.Failure(description=outcome.gates[0].summary,
                         metadata={"refused": dg.MetadataValue.json(outcome.facts["refused"])})


def _incident(context: dg.OpExecutionContext, folder, partition: str, outcome, storage) -> None:
    """The failed run's one incident record (core/incident.py): its failed gates, or the step that
    crashed or timed out; POSTed to Z4_INCIDENT_URL when set. A second cleanup of the run, or the
    record its failed step already opened (incident_on_failure), is reused."""
    failed_revocations = outcome.gates[0].details.get("failed_revocations") or []
    open_run_incident(context, folder, partition, storage, [str(r.get("lease", r)) for r in failed_revocations],
                      cleanup_run_id=context.run_id)


def _verdict(context, failed_run_id: str, folder, partition: str, mlflow: MlflowTracking, outcome) -> dict:
    """The failed run's verdict page and the links both ways: Dagster tags on the failed and the cleanup
    run, the cleanup's MLflow run named and tagged like every run (snapshot tags, the real error)."""
    from z4_assets.core.links import dagster_run_url, run_description
    from z4_assets.core.tracking import ERROR_TAG, FAILED_RUN_ERROR_TAG, run_name
    from z4_assets.core.verdict import write_verdict
    from z4_assets.verdict_page import (CLEANUP_OF_TAG, CLEANUP_RUN_TAG, links, record_verdict, run_error,
                                        step_ends, verdict_metadata)

    instance = context.instance
    if instance.get_run_by_id(failed_run_id) is not None:
        instance.add_run_tags(failed_run_id, {CLEANUP_RUN_TAG: context.run_id})
    instance.add_run_tags(context.run_id, {CLEANUP_OF_TAG: failed_run_id})
    recorder = mlflow.recorder()
    urls = links(mlflow.dagster_url, recorder, failed_run_id, context.run_id)
    path, text, verdict, stopper = write_verdict(folder, partition, step_ends(instance, failed_run_id), urls)
    dataset_id, _, snapshot_id = partition.partition("@")
    error = f"{failed_run_id}: {run_error(instance, failed_run_id)}"
    tags = {"dataset_id": dataset_id, "snapshot_id": snapshot_id, "dagster_partition": partition,
            "dagster_run_url": dagster_run_url(mlflow.dagster_url, context.run_id), FAILED_RUN_ERROR_TAG: error}
    if "mlflow_run" not in urls:  # it crashed before any stage was tracked: this run is its only MLflow record
        tags.update({"policy_decision": "FAIL", ERROR_TAG: error,
                     **({"z4.blocked_by": stopper} if verdict == "BLOCKED" and stopper else {})})
    description = (run_description(partition, mlflow.dagster_url, context.run_id, context.job_name)
                   + f"  \nCleans the failed run [{failed_run_id}]({dagster_run_url(mlflow.dagster_url, failed_run_id)})"
                   + f"\n\n{text}")
    mlflow_run = mlflow.record_postrun(failed_run_id, folder.postrun, outcome.tags, outcome.metrics,
                                       cleanup_run_id=context.run_id, passed=outcome.passed,
                                       run_name=run_name(dataset_id or "unknown"), context_tags=tags,
                                       description=description)
    meta = verdict_metadata(path, text, verdict, stopper, {**urls, "failed_run": urls["dagster_run"]})
    meta["cleanup_mlflow_run_url"] = dg.MetadataValue.url(recorder.run_url(mlflow_run))
    record_verdict(context, partition, meta)
    return meta


@dg.job(name="cleanup", executor_def=dg.in_process_executor,
        description="Post-run cleanup of a failed model_factory run (run config: failed_run_id).")
def cleanup_job():
    cleanup_failed_run()
