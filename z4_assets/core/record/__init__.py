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


def _retried_runs(client, run_id: str, limit: int = 20) -> list[str]:
    """RUN_ID and the MLflow runs it retries (its retry_of chain, newest first): a retry is a new MLflow
    run, and the stages it did not re-run keep their records in the runs before it (core/tracking.py)."""
    from z4_assets.core.tracking import RETRY_OF_TAG

    chain = [run_id]
    while len(chain) < limit:
        before = client.get_run(chain[-1]).data.tags.get(RETRY_OF_TAG, "")
        if not before or before.startswith("none") or before in chain:
            break
        chain.append(before)
    return chain


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
    chain = _retried_runs(client, tracking.run_id)
    tags, params, metrics, artifacts = {}, {}, {}, set()
    for run_id in reversed(chain):  # the newest attempt's values win; earlier runs are only read
        r = mlrun if run_id == tracking.run_id else client.get_run(run_id)
        tags.update(r.data.tags)
        params.update(r.data.params)
        metrics.update(r.data.metrics)
        artifacts |= _all_artifacts(client, run_id)
    missing = missing_fields(tags, params, metrics, artifacts)
    digest = str(tags.get("container_digest", "")).strip()
    problem = digest and digest_problem(digest, Path(package.files["package"]), public_key)
    if problem:  # a digest no signed image statement in the package names is as good as missing
        missing.append(f"code_and_build/container_digest ({problem})")
    gate = RECORD.gate.run_record_complete.compare(len(missing), "==", 0, "missing run-record fields",
                                                   {"missing": missing, "required": REQUIRED})
    files = run.folder.stage(RECORD.folder)
    atomic_write_json(files.record, {
        "mlflow_run_id": tracking.run_id, "run_name": mlrun.info.run_name, "retried_runs": chain[1:],
        "tags": tags, "params": params, "metrics": metrics, "artifacts": sorted(artifacts), "missing": missing})
    atomic_write_json(files.gates, [gate.as_dict()])
    return StageOutcome(
        stage=RECORD.name, partition=run.partition, run_id=run.run_id, gates=(gate,),
        files={"record": str(files.record), "gates": str(files.gates)}, artifacts={"record": str(files.dir)},
        facts={"mlflow_run_id": tracking.run_id, "mlflow_run_name": mlrun.info.run_name,
               "package_sha256": package.sha256, "missing_fields": missing, "asset_keys": asset_keys},
        consumed=consumed)
