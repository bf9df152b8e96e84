"""signed_package and promotion: only signed evidence with proven provenance reaches the registry."""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.files import atomic_write_json, read_json, sha256_file
from z4_assets.core.gates import compare
from z4_assets.core.provenance import code_version, repo_url
from z4_assets.core.record._fields import hardware
from z4_assets.core.refs import StageEvidence
from z4_assets.core.z3 import SnapshotRef
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker
from z4_assets.resources.signer import PackageSigner

PROMOTION_CHECKS = {
    "package_verified": "`z4 verify` passes on the package: signature, checksums, statements, SBOM.",
    "release_gates_pass": "Every gate recorded in the package's verification summary is PASS.",
}


def _environment() -> tuple[str, str]:
    """The lockfile the environment was installed from (provenance.environment_lock), else a
    fingerprint of the installed distributions."""
    from z4_assets.core.provenance import environment_lock
    from z4_assets.core.sbom import environment_fingerprint

    lock = environment_lock()
    if lock["env_lock_sha256"] != "unknown":
        return f"pip:{Path(lock['env_lock']).name}", lock["env_lock_sha256"]
    return "python:installed-distributions", environment_fingerprint()


def _run_info(context, ref: SnapshotRef, model_dir: Path, mlflow_run_id: str, policy: dict) -> dict:
    config = read_json(model_dir / "model_config.json")
    code = code_version()
    record = context.instance.get_run_record_by_id(context.run_id)
    started = datetime.fromtimestamp(record.start_time or record.create_timestamp.timestamp(), timezone.utc)
    env_uri, env_digest = _environment()
    hp = config["hyperparameters"]
    return {
        "snapshot": ref.label, "snapshot_uri": f"z3://{ref.dataset_id}/{ref.snapshot_id}/data.parquet",
        "dataset_hash": ref.manifest["hash"], "contract_hash": ref.manifest["contract_hash"],
        "git_sha": code["git_sha"], "repo_url": repo_url(),
        "environment_uri": env_uri, "environment_digest": env_digest,
        "seeds": {"train": hp["seed"], "split": policy["split"]["seed"]}, "hyperparameters": hp,
        "dagster_run_id": context.run_id, "mlflow_run_id": mlflow_run_id,
        "started_at": started.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
        "policy_uri": policy["source"], "policy_digest": sha256_file(policy["source"]),
        "state_dict_sha256": config["state_dict_sha256"], "split_policy": policy["split"],
        "metrics": read_json(model_dir / "metrics.json"), "hardware": hardware(hp["threads"]),
    }


@dg.asset(group_name="packaging", kinds={"sigstore"}, code_version="1",
          deps=["adversarial_eval", "fairness_report", "model_card"])  # the package carries their evidence
@observed()
def signed_package(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef,
                   trained_model: StageEvidence, signer: PackageSigner, policy: PolicyStore,
                   storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    """The run's evidence as one signed, checksummed package with in-toto provenance."""
    from z4_assets.core.errors import Z4Error
    from z4_assets.core.packaging._build import build_package

    ref = z3_snapshot
    run_dir = storage.paths(context.run_id).run_dir  # not run_dir(.., "model"): no empty model/ of its own
    with mlflow.stage(context, ref) as rec:
        info = _run_info(context, ref, Path(trained_model.path), rec.run_id, policy.for_dataset(ref.dataset_id))
        access_dir = storage.run_dir(context.run_id, "access")  # every read of this run is done by now
        lineage = [d.name for d in storage.lineage_run_dirs(context)]  # a retry: the reads of its parents too
        info["access_log"] = broker.export_run_log(lineage, access_dir / "access_log.jsonl")
        info["purpose"] = ref.purpose
        rec.artifacts(access_dir, "access")
        try:
            # storage.lineage_run_dirs: a retry from failure packages its parent's evidence too
            pkg = build_package(storage.lineage_run_dirs(context), run_dir, info, signer.private_key_path, signer.keyless,
                                storage.cache_dir())
        except Z4Error as e:
            raise dg.Failure(description=str(e)) from None
        rec.artifacts(pkg.path, None)  # the MLflow artifact layout mirrors the package layout
        rec.artifact(pkg.tarball, "package")
        artifact_uri = rec.recorder.client.get_run(rec.run_id).info.artifact_uri.rstrip("/")
        rec.log(tags={"package_sha256": pkg.sha256, "package_decision": pkg.decision,
                      "model_artifact_uri": f"{artifact_uri}/model",
                      "sbom_ref": f"{artifact_uri}/sbom/sbom.json sha256:{pkg.sbom_sha256}",
                      "access_log": info["access_log"]["path"],
                      "access_log_run_sha256": info["access_log"]["run_lines_sha256"]})
    return dg.MaterializeResult(
        value=pkg,
        metadata={"package_sha256": pkg.sha256, "tarball": dg.MetadataValue.path(pkg.tarball),
                  "package": dg.MetadataValue.path(pkg.path), "decision": pkg.decision,
                  "gates_attested": dg.MetadataValue.int(pkg.gates), "mlflow_run_id": rec.run_id,
                  "signer": signer.mode},
    )


@dg.asset(group_name="promotion", kinds={"mlflow"}, code_version="1",
          check_specs=blocking_specs("promotion", PROMOTION_CHECKS))
@observed()
def promotion(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef, signed_package,
              run_record: dict, signer: PackageSigner, storage: FactoryStorage, mlflow: MlflowTracking):
    """The registry entry: a model version under the `candidate` alias, only for a verified PASS."""
    from z4_assets.core.packaging._verify import verify_package
    from z4_assets.core.promotion._registry import ALIAS, register_candidate

    ref, pkg = z3_snapshot, signed_package
    report = verify_package(pkg.tarball, signer.public_key())
    by_name = {c["check"]: c for c in report.checks}
    integrity = [c for c in report.checks if c["check"] != "gates"]
    broken = next((c for c in integrity if not c["ok"]), None)
    gate_check = by_name.get("gates", {"ok": False, "detail": "not checked: the package did not verify"})
    gates = [
        compare("package_verified", 0 if broken is None else 1, "==", 0,
                f"integrity problems ({broken['check'] + ': ' + broken['detail'] if broken else 'none'})",
                {"checks": report.checks, "seconds": round(report.seconds, 3)}),
        compare("release_gates_pass", 0 if gate_check["ok"] else 1, "==", 0,
                f"gates not PASS in the package ({gate_check['detail']})", {}),
    ]
    problem = report.first_problem or ""
    out = storage.run_dir(context.run_id, "promotion")
    atomic_write_json(out / "verify_report.json", report.as_dict())
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])
    version = None
    with mlflow.stage(context, ref) as rec:
        decision = "PASS" if all(g.passed for g in gates) else "FAIL"
        if decision == "PASS":
            model_name = f"z4-{ref.dataset_id}"
            version = register_candidate(rec.recorder.client, model_name, rec.run_id, pkg.sha256, {
                "mlflow_run_id": rec.run_id, "dagster_run_id": context.run_id, "decision": decision,
                "dataset": ref.label, "dataset_hash": ref.manifest["hash"],
                "git_sha": code_version()["git_sha"]})
            atomic_write_json(out / "promotion.json", {"model": model_name, "version": version.version,
                                                       "alias": ALIAS, "package_sha256": pkg.sha256})
        rec.log(tags={"policy_decision": decision,
                      "policy_reasons": problem or "all gates PASS and the package verifies"})
        rec.artifacts(out, "reports/promotion")
        rec.blocked_by = first_failure(gates)
    return dg.MaterializeResult(
        value=json.loads(json.dumps({"version": version.version if version else None})),
        metadata={"decision": decision, "model_version": str(version.version if version else "none"),
                  "alias": ALIAS, "package_sha256": pkg.sha256, "mlflow_run_id": rec.run_id,
                  "verify_seconds": dg.MetadataValue.float(round(report.seconds, 3))},
        check_results=check_results(gates),
    )
