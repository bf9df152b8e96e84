"""Build the signed package of a run: evidence, SBOM, statements, checksums, signature, tarball."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json, sha256_file
from z4_assets.core.packaging import _attest as attest, _evidence as evidence, _layout as layout, _repro as repro
from z4_assets.core.packaging._image import copy_image_evidence
from z4_assets.core.packaging._signing import sign_package
from z4_assets.core.run_folder import PACKAGE_DIR, PACKAGE_TARBALL
from z4_assets.core.sbom import generate_sbom


@dataclass(frozen=True)
class PackageRef:
    """A built package: its folder, its tarball and the tarball's digest."""

    path: str
    tarball: str
    sha256: str
    decision: str
    gates: int
    sbom_sha256: str


STAGING_PREFIX = ".package-staging-"  # cleanup (core/cleanup/_sweep.py) removes one a killed build left


def build_package(outcomes: dict, out_dir: Path, run: dict, private_key: str | None,
                  keyless: bool = False, sbom_cache: Path | None = None) -> PackageRef:
    """Assemble the folder and its tarball in a hidden staging folder, then rename them into place:
    a crash, a kill or a full disk never leaves half a package under its final names.

    OUTCOMES: stage name -> the outcome whose files it packages (see copy_evidence)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final, tarball = out_dir / PACKAGE_DIR, out_dir / PACKAGE_TARBALL
    for stale in out_dir.glob(f"{STAGING_PREFIX}*"):  # left by a build that was killed
        shutil.rmtree(stale, ignore_errors=True)
    try:
        return _build(outcomes, out_dir, final, tarball, run, private_key, keyless, sbom_cache)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise Z4Error(f"no space left on device (ENOSPC) while building the package: "
                      f"nothing was published under {final.name} or {tarball.name}", out_dir) from None


def _build(outcomes, out_dir: Path, final: Path, tarball: Path, run: dict, private_key: str | None,
           keyless: bool, sbom_cache: Path | None) -> PackageRef:
    work = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    staging = work / "package"
    staging.mkdir()
    try:
        layout.copy_evidence(outcomes, staging)
        run = {**run, "image_digest": copy_image_evidence(run.get("image_evidence", ""),
                                                          run.get("container_digest", ""), staging)}
        run = {**run, "sbom_sha256": generate_sbom(staging / "sbom" / "sbom.json", sbom_cache)}
        gates = attest.gates_from_package(staging)
        run = {**run, "lineage": bind_lineage(staging, outcomes, run["consumed"])}
        decision = "PASS" if gates and not any(g["blocks"] for g in gates) else "FAIL"
        atomic_write_json(staging / "metadata.json", {
            "dagster_run_id": run["dagster_run_id"], "mlflow_run_id": run["mlflow_run_id"],
            "dataset": run["snapshot"], "dataset_hash": run["dataset_hash"],
            "git_sha": run["git_sha"], "decision": decision,
            "state_dict_sha256": run.get("state_dict_sha256"),
            "signing_mode": run.get("signing_mode", "ec_key"),
            "model_family": run.get("model_family", "mlp"), "model_artifact": run.get("model_artifact"),
            "model_code_sha256": (run.get("model_code") or {}).get("code_sha256"),
            "failed_gates": [f"{g['stage']}/{g['gate']}" for g in gates if g["blocks"]],
        })
        if decision == "PASS":
            repro.write_bundle(staging, run)
        atomic_write_json(staging / attest.PROVENANCE_FILE, attest.provenance_statement(staging, run))
        atomic_write_json(staging / attest.SUMMARY_FILE, attest.gate_summary_statement(staging, gates, run))
        files = set(layout.write_checksums(staging)) | {layout.CHECKSUMS}
        if missing := evidence.missing_evidence(run["required_evidence"], gates, files):
            raise Z4Error(f"refusing to sign a package without its required evidence: {', '.join(missing)}")
        sign_package(staging, private_key, keyless)
        staged_tarball = layout.make_tarball(staging, work / tarball.name)
        digest = sha256_file(staged_tarball)
        # Publish: the tarball (the complete, signed deliverable) first, then its folder.
        os.replace(staged_tarball, tarball)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return PackageRef(str(final), str(tarball), digest, decision, len(gates), run["sbom_sha256"])


def bind_lineage(staging: Path, outcomes: dict, consumed) -> dict:
    """The split file goes in beside the weights; both are checked against the lineage first (the
    weights by their state_dict digest, which needs torch here, so a verifier needs only the file's)."""
    from z4_assets.core.training import load_model_dir

    split_src = outcomes["hygiene"].split_path
    if sha256_file(split_src) != consumed.split:
        raise Z4Error("the row split file differs from the split its lineage names", split_src)
    split = staging / evidence.SPLIT_FILE
    split.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(split_src, split)
    _, _, config = load_model_dir(staging / "model")
    artifact = evidence.artifact_file(staging)
    if config["state_dict_sha256"] != consumed.model:
        raise Z4Error("the packaged model is not the model its lineage names", staging / artifact)
    return evidence.lineage_statement(outcomes, consumed, sha256_file(staging / artifact))
