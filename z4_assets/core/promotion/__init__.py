"""The promotion stage: a registry version under the `candidate` alias, only for a package that
verifies offline and whose every gate passed; and serving-side loading that verifies first."""

from __future__ import annotations

from z4_assets.core.files import atomic_write_json
from z4_assets.core.outcome import PackageOutcome, SnapshotOutcome, StageOutcome, accept
from z4_assets.core.promotion._consume import Loaded, load_verified, open_verified, parse_model_ref
from z4_assets.core.promotion._registry import ALIAS, load_model_by_alias, register_candidate, registry_copy_problem
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import PROMOTION

__all__ = ["ALIAS", "Loaded", "load_model_by_alias", "load_verified", "open_verified", "parse_model_ref",
           "run_promotion"]


def _policy_tags(package: PackageOutcome) -> dict[str, str]:
    """The policy trace as the signed package holds it (governance/policy_trace.json), as registry tags."""
    import json

    from z4_assets.core.errors import Z4Error
    from z4_assets.core.policy_trace import registry_tags
    from z4_assets.core.run_folder import FILES
    from z4_assets.core.stages import GOVERNANCE

    path = package.path / GOVERNANCE.package_dir / FILES[GOVERNANCE.folder]["policy_trace"]
    try:
        return registry_tags(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as e:
        raise Z4Error(f"the package holds no readable policy trace ({type(e).__name__})", path) from None


def _image_problem(report, package: PackageOutcome, public_key: str) -> str | None:
    """Why the package does not prove a run in the signed training image (None: it does)."""
    from pathlib import Path

    from z4_assets.core.packaging import digest_problem, packaged_image_digest

    if not report.ok:
        return "the package did not verify"
    pkg = Path(package.files["package"])
    digest = packaged_image_digest(pkg)
    if digest == "none":
        return "container_digest is none: the run did not run in the training image"
    return digest_problem(digest, pkg, public_key)


def version_description(decision: str, partition: str, package: PackageOutcome, links: dict[str, str]) -> str:
    """A registry version's description (Markdown, shown above its tags): what an auditor needs without scrolling."""
    lines = [f"**Decision: {decision}** for snapshot `{partition}`", "",
             f"package sha256: `{package.sha256}`", ""]
    names = {"dagster_run": "Dagster run", "mlflow_run": "MLflow run", "verdict": "Verdict page"}
    lines += [f"- {names[k]}: [{links[k]}]({links[k]})" for k in names if links.get(k)]
    return "\n".join(lines)


def run_promotion(snapshot: SnapshotOutcome, package: PackageOutcome, record: StageOutcome, run: StageRun,
                  public_key: str, client, limits=None, links: dict[str, str] | None = None) -> StageOutcome:
    """CLIENT: the MLflow client of the registry (Z5). LIMITS: the archive limits (ArchiveLimits).
    LINKS: dagster_run, mlflow_run, verdict, mlflow_ui (base URLs of the UIs) for the version's description."""
    from z4_assets.core.links import registry_version_url
    from z4_assets.core.packaging import EVIDENCE_CHECKS, verify_package
    from z4_assets.core.provenance import code_version

    consumed = accept(PROMOTION.name, run.partition, {"snapshot": snapshot, "packaging": package, "record": record})
    report = verify_package(package.tarball, public_key, limits=limits)
    integrity = [c for c in report.checks if c["check"] not in EVIDENCE_CHECKS]
    broken = next((c for c in integrity if not c["ok"]), None)
    if broken is None:
        broken = _copies_problem(package, client) or _signing_mode_problem(package, run.policy)
    g = PROMOTION.gate
    image = _image_problem(report, package, public_key) if run.policy.promotion.require_signed_image else None
    gates = (
        g.package_verified.compare(0 if broken is None else 1, "==", 0,
                                   f"integrity problems ({broken['check'] + ': ' + broken['detail'] if broken else 'none'})",
                                   {"checks": report.checks, "seconds": round(report.seconds, 3)}),
        g.release_gates_pass.compare(*_evidence_verdict(report, broken)),
        g.trained_in_signed_image.compare(0 if image is None else 1, "==", 0,
                                          f"signed training image required ({image or 'proven'})",
                                          {"require_signed_image": run.policy.promotion.require_signed_image}),
    )
    files = run.folder.stage(PROMOTION.folder)
    atomic_write_json(files.verify_report, report.as_dict())
    atomic_write_json(files.gates, [x.as_dict() for x in gates])
    decision = "PASS" if all(x.passed for x in gates) else "FAIL"
    reasons = next((x.summary for x in gates if not x.passed), "all gates PASS and the package verifies")
    version = None
    if decision == "PASS":
        model_name = f"z4-{run.snapshot.dataset_id}"
        version = register_candidate(client, model_name, package.mlflow_run_id, package.sha256, {
            "mlflow_run_id": package.mlflow_run_id, "dagster_run_id": package.run_id, "decision": decision,
            "dataset": run.partition, "dataset_hash": str(consumed.snapshot), "git_sha": code_version()["git_sha"],
            "state_dict_sha256": str(consumed.model), **_policy_tags(package)},
            description=version_description(decision, run.partition, package, links or {}), tarball=package.tarball)
        atomic_write_json(files.promotion, {"model": model_name, "version": version.version, "alias": ALIAS,
                                            "package_sha256": package.sha256})
    return StageOutcome(
        stage=PROMOTION.name, partition=run.partition, run_id=run.run_id, gates=gates,
        files={"verify_report": str(files.verify_report), "gates": str(files.gates),
               **({"promotion": str(files.promotion)} if version else {})},
        tags={"policy_decision": decision,
              "policy_reasons": reasons},
        artifacts={"reports/promotion": str(files.dir)},
        facts={"decision": decision, "model_version": str(version.version if version else "none"), "alias": ALIAS,
               "package_sha256": package.sha256, "verify_seconds": round(report.seconds, 3),
               **({"registry_version_url": registry_version_url(links["mlflow_ui"], model_name, version.version)}
                  if version and (links or {}).get("mlflow_ui") else {})},
        consumed=consumed)


def _signing_mode_problem(package: PackageOutcome, policy) -> dict | None:
    """The release policy's required signing modes, against the mode the signed metadata names."""
    import json

    required = policy.release.require_signing
    if not required:
        return None
    try:
        mode = json.loads((package.path / "metadata.json").read_text(encoding="utf-8")).get("signing_mode")
    except (OSError, ValueError) as e:
        return {"check": "signing mode", "detail": f"unreadable metadata.json ({type(e).__name__})"}
    if mode not in required:
        return {"check": "signing mode", "detail": f"signed in {mode or 'an unrecorded'} mode; the release policy "
                                                   f"requires {' or '.join(required)}"}
    return None


def _copies_problem(package: PackageOutcome, client) -> dict | None:
    """The tarball verified is the one the package outcome names, and the one a version would point at."""
    from z4_assets.core.files import sha256_file

    if sha256_file(package.tarball) != package.sha256:
        return {"check": "digest", "detail": f"{package.tarball.name} is not the package signed_package built "
                                             f"(sha256 differs from {package.sha256[:16]}...)"}
    problem = registry_copy_problem(client, package.mlflow_run_id, package.sha256)
    return {"check": "registry copy", "detail": problem} if problem else None


def _evidence_verdict(report, broken: dict | None) -> tuple:
    """release_gates_pass: the required evidence is all there and every gate in it passed."""
    from z4_assets.core.packaging import EVIDENCE_CHECKS


    ran = [c for c in report.checks if c["check"] in EVIDENCE_CHECKS]
    bad = next((c for c in ran if not c["ok"]), None)
    if bad is None and (broken or len(ran) < len(EVIDENCE_CHECKS)):
        bad = {"check": "not checked", "detail": "the package did not verify"}
    detail = f"{bad['check']}: {bad['detail']}" if bad else "every required stage and gate present and PASS"
    return (0 if bad is None else 1, "==", 0, f"required evidence missing or gates not PASS ({detail})", {})
