"""MLflow tracking as a small ConfigurableResource over the MLflow client (see README: why not dagster-mlflow)."""


import os
from contextlib import contextmanager
from typing import Iterator, Optional

import dagster as dg
from pydantic import Field

from z4_assets.core.tracking import DEFAULT_EGRESS_POLICY, StageRecord
from z4_assets.core.z3 import SnapshotRef
from z4_assets.resources.vault import VaultSecrets

SECRETS_TAG = "secrets"  # the run record says where the run's secrets came from  # pragma: allowlist secret


def _job_name(context: dg.AssetExecutionContext) -> str:
    try:
        return context.run.job_name
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return "direct-invocation"


def _parent_run_id(context: dg.AssetExecutionContext) -> str | None:
    """The Dagster run a retry re-executes: its MLflow run is linked (retry_of), never reopened."""
    try:
        return context.run.parent_run_id
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return None


class MlflowTracking(dg.ConfigurableResource):
    """One MLflow run per Dagster run, tagged with the data, code and seed behind it."""

    tracking_uri: str = Field("", description="empty: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db")
    experiment_name: str = Field("z4-model-factory", description="MLflow experiment for factory runs")
    egress_policy: str = Field(DEFAULT_EGRESS_POLICY,
                               description="the network egress policy the run executes under, recorded as is")
    dagster_url: str = Field("http://127.0.0.1:3000", description="Dagster UI base URL, for links from MLflow")
    mlflow_url: str = Field("", description="MLflow UI base URL, for links from Dagster (empty: the tracking URI "
                                            "when http(s), else http://127.0.0.1:5000)")
    # MLflow's own defaults (7 retries, backoff factor 2, 120 s timeout) make a step wait minutes on a
    # tracking server that is down; these fail the step within seconds instead. An env var set by the
    # operator (MLFLOW_HTTP_REQUEST_*) wins over them.
    http_max_retries: int = Field(3, description="MLFLOW_HTTP_REQUEST_MAX_RETRIES unless set in the environment")
    http_backoff_factor: int = Field(1, description="MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR unless set (seconds)")
    http_timeout_seconds: int = Field(30, description="MLFLOW_HTTP_REQUEST_TIMEOUT unless set in the environment")
    vault: Optional[VaultSecrets] = Field(None, description="with a vault (Z4_VAULT_ADDR): the run's MLflow "
                                                            "credentials are read from it, held in memory only")

    def recorder(self):
        """The factory's RunRecorder (for links and lookups)."""
        return self._recorder()

    def _recorder(self):
        """A RunRecorder; MLflow's HTTP client reads its retry settings from the environment."""
        from z4_assets.core.tracking import RunRecorder

        for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", self.http_max_retries),
                            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", self.http_backoff_factor),
                            ("MLFLOW_HTTP_REQUEST_TIMEOUT", self.http_timeout_seconds)):
            os.environ.setdefault(name, str(value))
        return RunRecorder(self.tracking_uri, self.experiment_name, self.mlflow_url)

    @contextmanager
    def stage(self, context: dg.AssetExecutionContext, snapshot: SnapshotRef) -> Iterator[StageRecord]:
        """The run's MLflow run for one stage (core/tracking.open_stage): FINISHED or FAILED when it ends."""
        from z4_assets.core.tracking import open_stage

        if self.vault is not None:
            self.vault.export_mlflow_credentials(context.run_id)
        with open_stage(self._recorder(), snapshot, context.run_id, _parent_run_id(context), _job_name(context),
                        self.dagster_url, self.egress_policy, context.asset_key.to_user_string(),
                        on_unrecorded=context.log.warning) as record:
            record.log(tags={SECRETS_TAG: self.vault.describe() if self.vault is not None else "local files"})
            yield record

    def log_to_run(self, dagster_run_id: str, metrics: dict | None = None, tags: dict | None = None) -> str | None:
        """Add to a Dagster run's MLflow run without changing its status; None when it has none yet."""
        recorder = self._recorder()
        run_id = recorder.find(dagster_run_id)
        if run_id is not None:
            recorder.log(run_id, metrics=metrics, tags=tags)
        return run_id

    def record_postrun(self, dagster_run_id: str, postrun_dir, tags: dict, metrics: dict,
                       cleanup_run_id: str = "", passed: bool = True, run_name: str = "",
                       context_tags: dict | None = None, description: str = "") -> str:
        """The post-run records of a failed run, in a new MLflow run (the cleanup job's, CLEANUP_RUN_ID)
        tagged cleanup_of the failed run's MLflow run, which is left exactly as it was."""
        return self._recorder().record_cleanup(dagster_run_id, cleanup_run_id or f"cleanup-of-{dagster_run_id}",
                                               postrun_dir, tags, metrics, passed, run_name, context_tags,
                                               description)

    def mark_interrupted(self, dagster_run_id: str, reason: str) -> str | None:
        """A run whose process died, in a stage or between two: its MLflow run becomes KILLED (never
        FINISHED or promoted). A run a gate blocked stays FAILED; a retry is a new MLflow run."""
        recorder = self._recorder()
        run_id = recorder.find(dagster_run_id)
        if run_id is not None:
            recorder.close_interrupted(run_id, dagster_run_id, reason)
        return run_id
