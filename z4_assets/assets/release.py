"""The release group: model card, signed package, run record, promotion to the registry, and cleanup."""

from datetime import datetime, timezone

import dagster as dg

from z4_assets.assets._stage import factory_asset, stage_run
from z4_assets.checks import materialize
from z4_assets.core.settings import Settings
from z4_assets.core.outcome import HygieneOutcome, ModelOutcome, PackageOutcome, SnapshotOutcome, StageOutcome
from z4_assets.core.stages import CLEANUP, GOVERNANCE, PACKAGING, PROMOTION, RECORD, SNAPSHOT, STAGES
from z4_assets.observability import observed
from z4_assets.resources import (FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker, TokenRevoker)
from z4_assets.resources.signer import PackageSigner


@factory_asset(GOVERNANCE, kinds={"markdown"})
@observed()
def model_card(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome, hygiene_report: HygieneOutcome,
               trained_model: ModelOutcome, adversarial_eval: StageOutcome, fairness_report: StageOutcome,
               policy: PolicyStore, storage: FactoryStorage, mlflow: MlflowTracking,
               broker: SnapshotBroker):
    from z4_assets.core.governance import run_model_card

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_model_card(z3_snapshot, hygiene_report, trained_model, adversarial_eval, fairness_report,
                                 run, rec.run_id)
        rec.record(outcome)
    return materialize(outcome, rec)


def signer_kinds() -> set[str]:
    """What signs the package in this deployment (Z4_SIGNING_MODE), and the CycloneDX SBOM it holds."""
    from z4_assets.core.settings import Settings

    kind = {"sigstore": "sigstore", "pkcs11": "pkcs11", "certificate": "x509"}.get(Settings.from_env().signing_mode,
                                                                                 "ecdsa")
    return {kind, "cyclonedx"}


def _started_at(context) -> str:
    record = context.instance.get_run_record_by_id(context.run_id)
    return datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), timezone.utc).isoformat()


@factory_asset(PACKAGING, kinds=signer_kinds())
@observed()
def signed_package(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome, hygiene_report: HygieneOutcome,
                   trained_model: ModelOutcome, adversarial_eval: StageOutcome, fairness_report: StageOutcome,
                   model_card: StageOutcome, signer: PackageSigner, policy: PolicyStore, storage: FactoryStorage,
                   mlflow: MlflowTracking, broker: SnapshotBroker):
    from z4_assets.core.packaging import PackageIds, run_signed_package

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    inputs = {"snapshot": z3_snapshot, "hygiene": hygiene_report, "training": trained_model,
              "security": adversarial_eval, "fairness": fairness_report, "governance": model_card}
    with mlflow.stage(context, run.snapshot) as rec:
        ids = PackageIds(context.run_id, rec.run_id, rec.artifact_uri, _started_at(context),
                         None if signer.keyless else signer.signing_key(), signer.keyless, signer.mode,
                         Settings.from_env().image_evidence)
        outcome = run_signed_package(inputs, run, ids, broker.log_path)
        rec.record(outcome)
    return materialize(outcome, rec)


@factory_asset(RECORD, kinds={"mlflow"})
@observed()
def run_record(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome, signed_package: PackageOutcome,
               policy: PolicyStore, storage: FactoryStorage, mlflow: MlflowTracking,
               broker: SnapshotBroker, signer: PackageSigner):
    from z4_assets.core.record import run_run_record

    events = context.instance.get_records_for_run(
        run_id=context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    keys = sorted({r.event_log_entry.dagster_event.asset_key.to_user_string() for r in events} | {RECORD.asset})
    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_run_record(z3_snapshot, signed_package, run, rec, keys, signer.public_key())
        rec.record(outcome)
    return materialize(outcome, rec)


@factory_asset(PROMOTION, kinds={"mlflow"})
@observed()
def promotion(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome, signed_package: PackageOutcome,
              run_record: StageOutcome, signer: PackageSigner, policy: PolicyStore, storage: FactoryStorage,
              mlflow: MlflowTracking, broker: SnapshotBroker):
    from z4_assets.core.links import dagster_asset_url, dagster_run_url
    from z4_assets.core.promotion import run_promotion
    from z4_assets.verdict_page import VERDICT_ASSET

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        links = {"dagster_run": dagster_run_url(mlflow.dagster_url, context.run_id), "mlflow_run": rec.url,
                 "verdict": dagster_asset_url(mlflow.dagster_url, VERDICT_ASSET, run.partition),
                 "mlflow_ui": rec.recorder.ui_url}
        outcome = run_promotion(z3_snapshot, signed_package, run_record, run, signer.public_key(),
                                rec.recorder.client, signer.limits(), links)
        rec.record(outcome)
    return materialize(outcome, rec)


@factory_asset(CLEANUP, kinds={"markdown"}, deps=[s.asset for s in STAGES if s not in (SNAPSHOT, CLEANUP)])
@observed()
def cleanup_report(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome, storage: FactoryStorage,
                   policy: PolicyStore, mlflow: MlflowTracking, revoker: TokenRevoker):
    """The last step of a passing run; a failed run gets the same cleanup from the `cleanup` job."""
    from z4_assets.core.cleanup import run_cleanup

    ref = z3_snapshot.snapshot
    by = f"cleanup_report asset of run {context.run_id}"
    try:
        with mlflow.stage(context, ref) as rec:
            folder = storage.folder(context.run_id)
            outcome = run_cleanup(folder, policy.for_dataset(ref.dataset_id), revoker.revoke, by, ref.label)
            rec.record(outcome)
            verdict = _verdict_page(context, folder, ref.label, mlflow, rec)
    finally:  # the run's vault secrets leave this process's memory with it
        revoker.forget(context.run_id)
    result = materialize(outcome, rec)
    return result._replace(metadata={**verdict, **result.metadata})


def _verdict_page(context, folder, partition: str, mlflow: MlflowTracking, rec) -> dict:
    """A passing run's verdict page: postrun/verdict.md, this asset's metadata, the MLflow run's description."""
    from z4_assets.core.links import run_description
    from z4_assets.core.tracking import DESCRIPTION_TAG
    from z4_assets.core.verdict import write_verdict
    from z4_assets.verdict_page import links, record_verdict, step_ends, verdict_metadata

    urls = links(mlflow.dagster_url, rec.recorder, context.run_id)
    promo = context.instance.get_latest_materialization_event(dg.AssetKey(PROMOTION.asset))
    version_url = None
    if promo is not None and promo.run_id == context.run_id:
        entry = promo.asset_materialization.metadata.get("registry_version_url")
        version_url = entry.value if entry is not None else None
    if version_url:
        urls["registry_version"] = version_url
    path, text, verdict, stopper = write_verdict(folder, partition, step_ends(context.instance, context.run_id), urls)
    rec.log(tags={DESCRIPTION_TAG: run_description(partition, mlflow.dagster_url, context.run_id,
                                                   context.run.job_name) + f"\n\n{text}"})
    meta = verdict_metadata(path, text, verdict, stopper, urls)
    record_verdict(context, partition, meta)
    return meta
