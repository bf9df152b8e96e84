"""MLflow tracking as a small ConfigurableResource over the MLflow client (see README: why not dagster-mlflow)."""


import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import dagster as dg
from pydantic import Field

from z4_assets.core.provenance import code_version, repo_url
from z4_assets.core.run_record import build_facts
from z4_assets.core.z3 import SnapshotRef


class StageRecord:
    """What one stage logs to the factory run's MLflow run."""

    def __init__(self, recorder, run_id: str):
        self.recorder, self.run_id = recorder, run_id
        self.blocked_by: str | None = None

    def log(self, params: dict | None = None, metrics: dict | None = None, tags: dict | None = None):
        self.recorder.log(self.run_id, params, metrics, tags)

    def log_steps(self, steps: list[tuple[str, float, int]]) -> None:
        self.recorder.log_steps(self.run_id, steps)

    def artifacts(self, local_dir, artifact_path: str | None) -> None:
        self.recorder.log_artifacts(self.run_id, local_dir, artifact_path)

    def artifact(self, local_file, artifact_path: str | None = None) -> None:
        """One file; artifact_path None puts it at the top level of the run."""
        self.recorder.log_artifact(self.run_id, local_file, artifact_path)

    def artifact_url(self, artifact_path: str) -> str | None:
        """A link that opens one logged file through the MLflow server; None for a local store."""
        from z4_assets.core.tracking import artifact_download_url

        return artifact_download_url(self.recorder.tracking_uri, self.run_id, artifact_path)


def _job_name(context: dg.AssetExecutionContext) -> str:
    try:
        return context.run.job_name
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return "direct-invocation"


class MlflowTracking(dg.ConfigurableResource):
    """One MLflow run per Dagster run, tagged with the data, code and seed behind it."""

    tracking_uri: str = Field("", description="empty: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
    experiment_name: str = Field("z4-model-factory", description="MLflow experiment for factory runs")
    egress_policy: str = Field("deny-all: no network egress at run time (local Z3, MLflow and registry only)",
                               description="the network egress policy the run executes under, recorded as is")
    dagster_url: str = Field("http://127.0.0.1:3000", description="Dagster UI base URL, for links from MLflow")

    @contextmanager
    def stage(self, context: dg.AssetExecutionContext, snapshot: SnapshotRef) -> Iterator[StageRecord]:
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(self.tracking_uri, self.experiment_name)
        code = code_version()
        started = datetime.now(timezone.utc)
        run_name = f"z4-{snapshot.dataset_id}-{started:%Y%m%d-%H%M}-{code['git_short']}"
        m = snapshot.manifest
        tr = m.get("time_range")
        tags = {
            **build_facts(self.egress_policy), "repo_url": repo_url(),
            "dataset_snapshot_at": m["snapshot_at"], "feature_groups": json.dumps(m["feature_groups"]),
            "data_time_range": json.dumps(tr) if tr else "none: the contract declares no time column",
            "pipeline_id": _job_name(context), "job_id": context.run_id,
            "started_at": started.isoformat(), "dagster_run_url": f"{self.dagster_url}/runs/{context.run_id}",
            "dagster_partition": "none: model_factory is unpartitioned; the snapshot is chosen by run config",
            "git_sha": code["git_sha"], "git_dirty": code["git_dirty"],
            "dataset_id": snapshot.dataset_id, "snapshot_id": snapshot.snapshot_id,
            "dataset_hash": m["hash"], "snapshot_at": m["snapshot_at"],
            "contract_hash": m["contract_hash"], "orchestrator": "dagster",
            "dagster.job": _job_name(context),
        }
        run_id = recorder.open(context.run_id, run_name, tags)
        record = StageRecord(recorder, run_id)
        record.log(tags={"run_id": run_id})
        try:
            yield record
        except BaseException as e:
            recorder.close(run_id, f"error in {context.asset_key.to_user_string()}: {type(e).__name__}")
            raise
        recorder.close(run_id, record.blocked_by)

    def log_to_run(self, dagster_run_id: str, metrics: dict | None = None, tags: dict | None = None) -> str | None:
        """Add to a Dagster run's MLflow run without changing its status; None when it has none yet."""
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(self.tracking_uri, self.experiment_name)
        run_id = recorder.find(dagster_run_id)
        if run_id is not None:
            recorder.log(run_id, metrics=metrics, tags=tags)
        return run_id

    def record_postrun(self, dagster_run_id: str, postrun_dir, tags: dict, metrics: dict) -> str:
        """Log a run's post-run records into its MLflow run without changing that run's status."""
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(self.tracking_uri, self.experiment_name)
        run_id = recorder.find_or_create_failed(dagster_run_id, f"z4-postrun-{dagster_run_id[:8]}")
        recorder.log(run_id, metrics=metrics, tags=tags)
        recorder.log_artifacts(run_id, postrun_dir, "postrun")
        return run_id
