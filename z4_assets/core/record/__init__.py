"""The record stage: the MLflow run must hold every mandatory field (code, data, execution, training,
metrics, hygiene, security, artifacts, governance, correlation, access) before anything is promoted."""

from __future__ import annotations

from datetime import datetime, timezone

from z4_assets.core.files import atomic_write_json
from z4_assets.core.outcome import PackageOutcome, SnapshotOutcome, StageOutcome, accept
from z4_assets.core.record._fields import REQUIRED, missing_fields
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import RECORD

__all__ = ["REQUIRED", "missing_fields", "run_run_record"]


def _all_artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for a in client.list_artifacts(run_id, path):
        out |= _all_artifacts(client, run_id, a.path) if a.is_dir else {a.path}
    return out


def run_run_record(snapshot: SnapshotOutcome, package: PackageOutcome, run: StageRun, tracking,
                   asset_keys: list[str], public_key: str | None = None) -> StageOutcome:
    """TRACKING: the stage's MLflow record (core.tracking.StageRecord); ASSET_KEYS: what this run materialized;
    PUBLIC_KEY: the factory's, to verify the statement of the image a container_digest names."""
    from pathlib import Path

    from z4_assets.core.packaging import digest_problem

    consumed = accept(RECORD.name, run.partition, {"snapshot": snapshot, "packaging": package})
    tracking.log(tags={"ended_at": datetime.now(timezone.utc).isoformat(), "dagster_asset_keys": ",".join(asset_keys)})
    client = tracking.recorder.client
    mlrun = client.get_run(tracking.run_id)
    artifacts = _all_artifacts(client, tracking.run_id)
    missing = missing_fields(mlrun.data.tags, mlrun.data.params, mlrun.data.metrics, artifacts)
    digest = str(mlrun.data.tags.get("container_digest", "")).strip()
    problem = digest and digest_problem(digest, Path(package.files["package"]), public_key)
    if problem:  # a digest no signed image statement in the package names is as good as missing
        missing.append(f"code_and_build/container_digest ({problem})")
    gate = RECORD.gate.run_record_complete.compare(len(missing), "==", 0, "missing run-record fields",
                                                   {"missing": missing, "required": REQUIRED})
    files = run.folder.stage(RECORD.folder)
    atomic_write_json(files.record, {
        "mlflow_run_id": tracking.run_id, "run_name": mlrun.info.run_name, "tags": mlrun.data.tags,
        "params": mlrun.data.params, "metrics": mlrun.data.metrics, "artifacts": sorted(artifacts),
        "missing": missing})
    atomic_write_json(files.gates, [gate.as_dict()])
    return StageOutcome(
        stage=RECORD.name, partition=run.partition, run_id=run.run_id, gates=(gate,),
        files={"record": str(files.record), "gates": str(files.gates)}, artifacts={"record": str(files.dir)},
        facts={"mlflow_run_id": tracking.run_id, "mlflow_run_name": mlrun.info.run_name,
               "package_sha256": package.sha256, "missing_fields": missing, "asset_keys": asset_keys},
        consumed=consumed)
