"""The reproducibility bundle: everything `z4 rebuild` needs to re-run training from the record."""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.files import atomic_write_json, atomic_write_text

MANIFEST = "repro/manifest.json"
RUN_SH = "repro/run.sh"

_RUN_SH = """#!/usr/bin/env bash
# Rebuild this model from its record and compare the model digest (artifact bytes or weights) bit for bit.
# Needs: the project checked out at git {git_sha}, installed (`python -m pip install -e .`),
# and the snapshot {snapshot} under $Z4_Z3_ROOT (default ./data/z3). Run from the project root.
set -euo pipefail
exec z4 rebuild "$(cd "$(dirname "$0")/.." && pwd)" "$@"
"""


def write_bundle(pkg: Path, run: dict) -> dict:
    manifest = {
        "schema_version": 1,
        "git_sha": run["git_sha"], "repo_url": run["repo_url"],
        "dataset": run["snapshot"], "dataset_hash": run["dataset_hash"],
        "contract_hash": run["contract_hash"],
        "hyperparameters": run["hyperparameters"], "seeds": run["seeds"],
        "model_family": run.get("model_family", "mlp"), "model_code": run.get("model_code", {}),
        "model_artifact": run.get("model_artifact"), "model_artifact_sha256": run.get("model_artifact_sha256"),
        "split_policy": run["split_policy"],
        "lock": {"uri": run["environment_uri"], "sha256": run["environment_digest"]},
        "sbom_ref": {"path": "sbom/sbom.json", "sha256": run["sbom_sha256"]},
        "state_dict_sha256": run["state_dict_sha256"],
        "mlflow_run_id": run["mlflow_run_id"], "dagster_run_id": run["dagster_run_id"],
        "metrics": run.get("metrics", {}),
        "hardware": run.get("hardware", {}),
        "purpose": run.get("purpose", ""),
    }
    atomic_write_json(pkg / MANIFEST, manifest)
    atomic_write_text(pkg / RUN_SH, _RUN_SH.format(git_sha=run["git_sha"], snapshot=run["snapshot"]), mode=0o755)
    return manifest
