"""The promotion stage: a registry version under the `candidate` alias, only for a package that
verifies offline and whose every gate passed; and serving-side loading that verifies first."""

from __future__ import annotations

from z4_assets.core.files import atomic_write_json
from z4_assets.core.outcome import PackageOutcome, SnapshotOutcome, StageOutcome, accept
from z4_assets.core.promotion._consume import Loaded, load_verified, parse_model_ref
from z4_assets.core.promotion._registry import ALIAS, load_model_by_alias, register_candidate
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import PROMOTION

__all__ = ["ALIAS", "Loaded", "load_model_by_alias", "load_verified", "parse_model_ref", "run_promotion"]


def run_promotion(snapshot: SnapshotOutcome, package: PackageOutcome, record: StageOutcome, run: StageRun,
                  public_key: str, client) -> StageOutcome:
    """CLIENT: the MLflow client of the registry (Z5)."""
    from z4_assets.core.packaging import verify_package
    from z4_assets.core.provenance import code_version

    consumed = accept(PROMOTION.name, run.partition, {"snapshot": snapshot, "packaging": package, "record": record})
    report = verify_package(package.tarball, public_key)
    integrity = [c for c in report.checks if c["check"] != "gates"]
    broken = next((c for c in integrity if not c["ok"]), None)
    gate_check = next((c for c in report.checks if c["check"] == "gates"),
                      {"ok": False, "detail": "not checked: the package did not verify"})
    g = PROMOTION.gate
    gates = (
        g.package_verified.compare(0 if broken is None else 1, "==", 0,
                                   f"integrity problems ({broken['check'] + ': ' + broken['detail'] if broken else 'none'})",
                                   {"checks": report.checks, "seconds": round(report.seconds, 3)}),
        g.release_gates_pass.compare(0 if gate_check["ok"] else 1, "==", 0,
                                     f"gates not PASS in the package ({gate_check['detail']})", {}),
    )
    files = run.folder.stage(PROMOTION.folder)
    atomic_write_json(files.verify_report, report.as_dict())
    atomic_write_json(files.gates, [x.as_dict() for x in gates])
    decision = "PASS" if all(x.passed for x in gates) else "FAIL"
    version = None
    if decision == "PASS":
        model_name = f"z4-{run.snapshot.dataset_id}"
        version = register_candidate(client, model_name, package.mlflow_run_id, package.sha256, {
            "mlflow_run_id": package.mlflow_run_id, "dagster_run_id": package.run_id, "decision": decision,
            "dataset": run.partition, "dataset_hash": str(consumed.snapshot), "git_sha": code_version()["git_sha"],
            "state_dict_sha256": str(consumed.model)})
        atomic_write_json(files.promotion, {"model": model_name, "version": version.version, "alias": ALIAS,
                                            "package_sha256": package.sha256})
    return StageOutcome(
        stage=PROMOTION.name, partition=run.partition, run_id=run.run_id, gates=gates,
        files={"verify_report": str(files.verify_report), "gates": str(files.gates),
               **({"promotion": str(files.promotion)} if version else {})},
        tags={"policy_decision": decision,
              "policy_reasons": report.first_problem or "all gates PASS and the package verifies"},
        artifacts={"reports/promotion": str(files.dir)},
        facts={"decision": decision, "model_version": str(version.version if version else "none"), "alias": ALIAS,
               "package_sha256": package.sha256, "verify_seconds": round(report.seconds, 3)},
        consumed=consumed)
