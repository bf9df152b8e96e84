"""The packaging stage: a lineage's evidence as one signed, checksummed package with in-toto
provenance, assembled only from outcomes that agree on their snapshot, split and model; and the
offline verification anyone can run on it (`z4 verify`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from z4_assets.core.files import read_json, sha256_file
from z4_assets.core.outcome import Lineage, PackageOutcome, StageOutcome, accept
from z4_assets.core.packaging._archive import ArchiveLimits, extract_tarball
from z4_assets.core.packaging._build import STAGING_PREFIX
from z4_assets.core.packaging._image import (IMAGE_EVIDENCE, PACKAGE_IMAGE_DIR, copy_image_evidence, digest_problem,
                                             packaged_image_digest,
                                             image_statement, named_digests, sign_image_statement,
                                             verify_image_statement)
from z4_assets.core.packaging._evidence import required_evidence
from z4_assets.core.packaging._repro import MANIFEST as REPRO_MANIFEST
from z4_assets.core.packaging._keys import MODES as SIGNING_MODES
from z4_assets.core.packaging._keys import CertificateRoots, SigningKey, public_key_fingerprint, signing_trace
from z4_assets.core.packaging._layout import SIGNATURE_FILE
from z4_assets.core.packaging._pkcs11 import (TokenSigner, private_key_attributes, token_keygen, token_public_key,
                                              write_public_key)
from z4_assets.core.packaging._signing import keygen
from z4_assets.core.packaging._verify import EVIDENCE_CHECKS, VerifyReport, verify_package
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import PACKAGING

__all__ = ["ArchiveLimits", "CertificateRoots", "EVIDENCE_CHECKS", "IMAGE_EVIDENCE", "PACKAGE_IMAGE_DIR",
           "PackageIds", "REPRO_MANIFEST", "SIGNING_MODES", "STAGING_PREFIX", "SigningKey", "TokenSigner",
           "VerifyReport", "copy_image_evidence", "digest_problem", "extract_tarball", "image_statement",
           "keygen", "named_digests", "packaged_image_digest", "private_key_attributes",
           "public_key_fingerprint", "required_evidence", "run_signed_package", "sign_image_statement",
           "signing_trace", "token_keygen", "token_public_key", "verify_image_statement", "verify_package",
           "write_public_key"]


@dataclass(frozen=True)
class PackageIds:
    """Who is packaging: the Dagster and MLflow runs, when the run started, and the signer."""

    dagster_run_id: str
    mlflow_run_id: str
    mlflow_artifact_uri: str
    started_at: str
    private_key: str | SigningKey | None   # an EC key's path, or the SigningKey of any mode
    keyless: bool = False
    signer: str = "ec_key"
    image_evidence: str = "build/image"  # the evidence of the image the run runs in (Z4_IMAGE_EVIDENCE)


def _environment() -> tuple[str, str]:
    """The lockfile the environment was installed from, else a fingerprint of the installed distributions."""
    from z4_assets.core.provenance import environment_lock
    from z4_assets.core.sbom import environment_fingerprint

    lock = environment_lock()
    if lock["env_lock_sha256"] != "unknown":
        return f"pip:{Path(lock['env_lock']).name}", lock["env_lock_sha256"]
    return "python:installed-distributions", environment_fingerprint()


def _run_info(run: StageRun, model: StageOutcome, ids: PackageIds) -> dict:
    from z4_assets.core.provenance import code_version, container_fact, hardware, repo_url

    ref, policy = run.snapshot, run.policy
    config = read_json(model.files["config"])
    env_uri, env_digest = _environment()
    hp = config["hyperparameters"]
    return {
        "snapshot": ref.label, "snapshot_uri": f"z3://{ref.dataset_id}/{ref.snapshot_id}/data.parquet",
        "dataset_hash": ref.manifest["hash"], "contract_hash": ref.manifest["contract_hash"],
        "git_sha": code_version()["git_sha"], "repo_url": repo_url(),
        "environment_uri": env_uri, "environment_digest": env_digest,
        "seeds": {"train": hp.get("seed"), "split": policy.split.seed}, "hyperparameters": hp,
        "model_family": config.get("family", "mlp"), "model_code": config.get("code", {}),
        "model_artifact": config.get("artifact"), "model_artifact_sha256": config.get("artifact_sha256"),
        "dagster_run_id": ids.dagster_run_id, "mlflow_run_id": ids.mlflow_run_id,
        "started_at": ids.started_at, "finished_at": datetime.now(timezone.utc).isoformat(),
        "policy_uri": policy.source, "policy_digest": sha256_file(policy.source),
        "state_dict_sha256": config["state_dict_sha256"], "split_policy": policy.split.model_dump(),
        "metrics": read_json(model.files["metrics"]), "hardware": hardware(int(hp.get("threads", 1))),
        "purpose": ref.purpose, "container_digest": container_fact(), "image_evidence": ids.image_evidence,
    }


def _trace_tags(trace: dict) -> dict:
    """The signer's fingerprint (and certificate chain) as run-record tags."""
    import json

    tags = {"signing_public_key_sha256": trace["public_key_sha256"]} if "public_key_sha256" in trace else {}
    if "certificate_chain" in trace:
        tags["signing_certificate_chain"] = json.dumps(trace["certificate_chain"], sort_keys=True)
    return tags


def run_signed_package(inputs: dict[str, StageOutcome], run: StageRun, ids: PackageIds,
                       access_log: str) -> PackageOutcome:
    """INPUTS: stage name -> outcome of every stage the package carries (snapshot ... governance).
    The access log's lines of every run that produced one of them go in with it."""
    from z4_assets.core.broker import export_run_log
    from z4_assets.core.errors import Z4Error
    from z4_assets.core.packaging._build import build_package

    missing = [s for s in PACKAGING.inputs if s not in inputs]
    if missing:
        raise Z4Error(f"signed_package of {run.partition} needs the outcomes of {', '.join(missing)}")
    consumed = accept(PACKAGING.name, run.partition, inputs)
    info = _run_info(run, inputs["training"], ids)
    info["consumed"] = consumed
    artifact = f"model/{read_json(inputs['training'].files['config']).get('artifact', 'model.safetensors')}"
    info["required_evidence"] = required_evidence([*run.policy.evidence.files, artifact])
    readers = sorted({o.run_id for o in inputs.values()} | {run.run_id})
    access = run.folder.stage("access")
    info["access_log"] = export_run_log(access_log, readers, access.access_log)
    info["signing_mode"] = ids.signer  # inside the signed provenance: which kind of key signs it
    pkg = build_package(inputs, run.folder.run_dir, info, ids.private_key, ids.keyless, run.factory.cache)
    trace = signing_trace(Path(pkg.path) / SIGNATURE_FILE)
    return PackageOutcome(
        stage=PACKAGING.name, partition=run.partition, run_id=run.run_id,
        files={"package": pkg.path, "tarball": pkg.tarball, "access_log": str(access.access_log)},
        tags={"package_sha256": pkg.sha256, "package_decision": pkg.decision,
              "model_artifact_uri": f"{ids.mlflow_artifact_uri}/model",
              "sbom_ref": f"{ids.mlflow_artifact_uri}/sbom/sbom.json sha256:{pkg.sbom_sha256}",
              "access_log": info["access_log"]["path"],
              "access_log_run_sha256": info["access_log"]["run_lines_sha256"],
              "signing_mode": ids.signer, **_trace_tags(trace)},
        artifacts={".": pkg.path, "package": pkg.tarball, "access": str(access.dir)},
        facts={"decision": pkg.decision, "gates_attested": pkg.gates, "signer": ids.signer, "signing": trace,
               "mlflow_run_id": ids.mlflow_run_id,
               "sbom_sha256": pkg.sbom_sha256},
        consumed=consumed, produced=Lineage(package=pkg.sha256))
