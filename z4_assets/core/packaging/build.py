"""Build the signed package of a run: evidence, SBOM, statements, checksums, signature, tarball."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from z4_assets.core.files import atomic_write_json, sha256_file
from z4_assets.core.packaging import attest, layout, repro
from z4_assets.core.packaging.signing import sign_package
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


def build_package(run_dir: Path, out_dir: Path, run: dict, private_key: str | None,
                  keyless: bool = False, sbom_cache: Path | None = None) -> PackageRef:
    """Assemble in a hidden staging folder and rename into place: never half a package."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final, tarball = out_dir / "package", out_dir / "package.tar.gz"
    staging = Path(tempfile.mkdtemp(prefix=".package-staging-", dir=out_dir))
    try:
        layout.copy_evidence(run_dir, staging)
        run = {**run, "sbom_sha256": generate_sbom(staging / "sbom" / "sbom.json", sbom_cache)}
        gates = attest.gates_from_package(staging)
        decision = "PASS" if gates and all(g["verdict"] == "PASS" for g in gates) else "FAIL"
        atomic_write_json(staging / "metadata.json", {
            "dagster_run_id": run["dagster_run_id"], "mlflow_run_id": run["mlflow_run_id"],
            "dataset": run["snapshot"], "dataset_hash": run["dataset_hash"],
            "git_sha": run["git_sha"], "decision": decision,
            "state_dict_sha256": run.get("state_dict_sha256"),
            "failed_gates": [f"{g['stage']}/{g['gate']}" for g in gates if g["verdict"] != "PASS"],
        })
        if decision == "PASS":
            repro.write_bundle(staging, run)
        atomic_write_json(staging / attest.PROVENANCE_FILE, attest.provenance_statement(staging, run))
        atomic_write_json(staging / attest.SUMMARY_FILE, attest.gate_summary_statement(staging, gates, run))
        layout.write_checksums(staging)
        sign_package(staging, private_key, keyless)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    layout.make_tarball(final, tarball)
    return PackageRef(str(final), str(tarball), sha256_file(tarball), decision, len(gates),
                      run["sbom_sha256"])
