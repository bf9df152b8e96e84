"""in-toto statements: SLSA provenance of the model, and a summary of every gate's verdict."""

from __future__ import annotations

import json
from pathlib import Path

from z4_assets.core.files import sha256_file

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
VSA = "https://slsa.dev/verification_summary/v1"
BUILD_TYPE = "https://github.com/z4-model-factory/model_factory@v1"
BUILDER_ID = "https://github.com/z4-model-factory/dagster/model_factory"
PROVENANCE_FILE = "provenance/provenance.intoto.json"
SUMMARY_FILE = "provenance/verification_summary.intoto.json"


def model_subjects(pkg: Path) -> list[dict]:
    return [{"name": p.relative_to(pkg).as_posix(), "digest": {"sha256": sha256_file(p)}}
            for p in sorted((pkg / "model").rglob("*")) if p.is_file()]


def provenance_statement(pkg: Path, run: dict) -> dict:
    """run: dataset/snapshot, git, lock digest, seeds, hyperparameters, run ids, times."""
    deps = [
        {"uri": run["snapshot_uri"], "digest": {"sha256": run["dataset_hash"]},
         "annotations": {"contract_sha256": run["contract_hash"]}},
        {"uri": f"git+{run['repo_url']}", "digest": {"gitCommit": run["git_sha"]}},
        {"uri": run["environment_uri"], "digest": {"sha256": run["environment_digest"]}},
        {"uri": "sbom/sbom.json", "digest": {"sha256": run["sbom_sha256"]}},
        *_image(run),
    ]
    code = run.get("model_code") or {}
    if code.get("code_sha256"):  # the model family's own code (a plug-in's module), by digest
        deps.append({"uri": f"python:{code.get('factory')}", "digest": {"sha256": code["code_sha256"]},
                     "annotations": {"model_family": run.get("model_family"), "builtin": code.get("builtin")}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": model_subjects(pkg),
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"job": "model_factory", "snapshot": run["snapshot"]},
                "internalParameters": {"seeds": run["seeds"], "hyperparameters": run["hyperparameters"],
                                       "model_family": run.get("model_family", "mlp")},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {"invocationId": run["dagster_run_id"], "startedOn": run["started_at"],
                             "finishedOn": run["finished_at"]},
                "byproducts": [{"name": "mlflow_run", "uri": f"mlflow:runs/{run['mlflow_run_id']}"},
                               {"name": "dagster_run", "uri": f"dagster:runs/{run['dagster_run_id']}"},
                               *_access_log(run)],
            },
        },
    }


def _image(run: dict) -> list[dict]:
    """The training image the run ran in, by digest, with its signed statement (image/ in the package)."""
    digest = run.get("image_digest")
    if not digest:
        return []
    return [{"uri": "oci:localhost/z4-train", "digest": {"sha256": digest.removeprefix("sha256:")},
             "annotations": {"statement": "image/statement.sigstore.json", "sbom": "image/sbom.cdx.json"}}]


def _access_log(run: dict) -> list[dict]:
    """The broker's access log: where it lives and the digest of this run's lines in it."""
    log = run.get("access_log")
    if not log:
        return []
    return [{"name": "access_log", "uri": Path(log["path"]).as_uri(),
             "digest": {"sha256": log["run_lines_sha256"]},
             "annotations": {"run_lines": log["run_lines"], "purpose": run.get("purpose", ""),
                             "selection": "lines whose run_id is one of "
                                          + ", ".join(log.get("run_ids") or [run["dagster_run_id"]])}}]


def gate_summary_statement(pkg: Path, gates: list[dict], run: dict) -> dict:
    """One entry per gate with its verdict, threshold and the digest of its evidence file."""
    passed = not any(g["blocks"] for g in gates)
    return {
        "_type": STATEMENT_TYPE,
        "subject": model_subjects(pkg),
        "predicateType": VSA,
        "predicate": {
            "verifier": {"id": BUILDER_ID},
            "timeVerified": run["finished_at"],
            "resourceUri": run["snapshot_uri"],
            "policy": {"uri": run["policy_uri"], "digest": {"sha256": run["policy_digest"]}},
            "verificationResult": "PASSED" if passed else "FAILED",
            "verifiedLevels": [],
            "gates": gates,
            "requiredEvidence": run["required_evidence"],  # what a verifier must find (see _evidence)
            "lineage": run["lineage"],                     # the digests every piece of evidence is bound to
        },
    }


def gates_from_package(pkg: Path) -> list[dict]:
    """Every gate each packaged stage recorded (its package folder's gates.json), with the digest of
    that evidence file; a stage whose gates.json is absent contributes none (verify says so)."""
    from z4_assets.core.stages import packaged_stages

    out = []
    for stage in packaged_stages():
        gates_file = pkg / stage.package_dir / "gates.json"
        if not gates_file.is_file():
            continue
        rel = gates_file.relative_to(pkg).as_posix()
        for g in json.loads(gates_file.read_text()):
            verdict = g.get("verdict") or ("PASS" if g["passed"] else "FAIL")
            out.append({"stage": stage.name, "gate": g["name"], "verdict": verdict, "blocks": not g["passed"],
                        "measured": g["value"], "comparison": g["comparison"],
                        "threshold": g["threshold"], "evidence": rel,
                        "evidence_sha256": sha256_file(gates_file)})
    return out
