"""MLflow tracking as a small ConfigurableResource over the MLflow client (see README: why not dagster-mlflow)."""


import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import dagster as dg
from pydantic import Field

from z4_assets.core.provenance import code_version, repo_url
from z4_assets.core.record._fields import build_facts
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


def _root_run_id(context: dg.AssetExecutionContext) -> str:
    """The first run of a re-execution group: a retry from failure continues its MLflow run."""
    try:
        return context.run.root_run_id or context.run_id
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return context.run_id


class MlflowTracking(dg.ConfigurableResource):
    """One MLflow run per Dagster run, tagged with the data, code and seed behind it."""

    tracking_uri: str = Field("", description="empty: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
    experiment_name: str = Field("z4-model-factory", description="MLflow experiment for factory runs")
    egress_policy: str = Field("deny-all: no network egress at run time (local Z3, MLflow and registry only)",
                               description="the network egress policy the run executes under, recorded as is")
    dagster_url: str = Field("http://127.0.0.1:3000", description="Dagster UI base URL, for links from MLflow")
    # MLflow's own defaults (7 retries, backoff factor 2, 120 s timeout) make a step wait minutes on a
    # tracking server that is down; these fail the step within seconds instead. An env var set by the
    # operator (MLFLOW_HTTP_REQUEST_*) wins over them.
    http_max_retries: int = Field(3, description="MLFLOW_HTTP_REQUEST_MAX_RETRIES unless set in the environment")
    http_backoff_factor: int = Field(1, description="MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR unless set (seconds)")
    http_timeout_seconds: int = Field(30, description="MLFLOW_HTTP_REQUEST_TIMEOUT unless set in the environment")

    def _recorder(self):
        """A RunRecorder; MLflow's HTTP client reads its retry settings from the environment."""
        from z4_assets.core.tracking import RunRecorder

        for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", self.http_max_retries),
                            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", self.http_backoff_factor),
                            ("MLFLOW_HTTP_REQUEST_TIMEOUT", self.http_timeout_seconds)):
            os.environ.setdefault(name, str(value))
        return RunRecorder(self.tracking_uri, self.experiment_name)

    @contextmanager
    def stage(self, context: dg.AssetExecutionContext, snapshot: SnapshotRef) -> Iterator[StageRecord]:
        recorder = self._recorder()
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
        run_id = recorder.open(_root_run_id(context), run_name, tags, attempt_run_id=context.run_id)
        record = StageRecord(recorder, run_id)
        record.log(tags={"run_id": run_id})
        try:
            yield record
        except BaseException as e:
            error = f"error in {context.asset_key.to_user_string()}: {type(e).__name__}"
            try:
                recorder.fail(run_id, context.run_id, error)
            except Exception as unrecorded:  # the tracking server may be what failed: raise the stage's error
                context.log.warning(f"could not record '{error}' in MLflow: {type(unrecorded).__name__}")
            raise
        recorder.close(run_id, record.blocked_by)

    def log_to_run(self, dagster_run_id: str, metrics: dict | None = None, tags: dict | None = None) -> str | None:
        """Add to a Dagster run's MLflow run without changing its status; None when it has none yet."""
        recorder = self._recorder()
        run_id = recorder.find(dagster_run_id)
        if run_id is not None:
            recorder.log(run_id, metrics=metrics, tags=tags)
        return run_id

    def record_postrun(self, dagster_run_id: str, postrun_dir, tags: dict, metrics: dict) -> str:
        """Log a run's post-run records into its MLflow run without changing that run's status."""
        recorder = self._recorder()
        run_id = recorder.find_or_create_failed(dagster_run_id, f"z4-postrun-{dagster_run_id[:8]}")
        recorder.log(run_id, metrics=metrics, tags=tags)
        recorder.log_artifacts(run_id, postrun_dir, "postrun")
        return run_id

    def mark_interrupted(self, dagster_run_id: str, reason: str) -> str | None:
        """A run whose process died mid-stage: its MLflow run becomes KILLED, never FINISHED or promoted.
        A retry of the Dagster run continues it (and clears this error)."""
        recorder = self._recorder()
        run_id = recorder.find(dagster_run_id)
        if run_id is not None:
            recorder.fail(run_id, dagster_run_id, reason, status="KILLED")
        return run_id
