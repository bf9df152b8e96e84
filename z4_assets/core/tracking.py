"""One MLflow run per Dagster run, shared by its stages; a finished record is never reopened by another run.

Within one Dagster run, each stage re-opens the run's MLflow run (found by its `dagster.run_id`
tag), logs its evidence and terminates it: FINISHED when its gates passed, FAILED with the gate's
name when one blocked, or FAILED with the error when it crashed. The last stage of the Dagster run
leaves the final status.

A different Dagster run never touches it (seed 002: records are immutable, corrections are new
runs). A retry (re-execution) gets its own MLflow run tagged `retry_of` = the MLflow run of the
Dagster run it re-executes; the cleanup job records in a new MLflow run tagged `cleanup_of`. Only
a run whose worker died is closed (KILLED) from outside: it was never finished, whether it died in a
stage (RUNNING) or between two (the last stage left FINISHED). A run a gate blocked stays FAILED.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

DAGSTER_RUN_TAG = "dagster.run_id"
# A re-execution of a Dagster run: a new MLflow run, linked to the MLflow run of the run it re-executes.
RETRY_OF_TAG = "retry_of"                      # the MLflow run id it corrects
RETRY_OF_DAGSTER_TAG = "retry_of_dagster_run"  # the Dagster run it re-executes
# The cleanup job's records of a failed run: a new MLflow run, linked the same way.
CLEANUP_OF_TAG = "cleanup_of"
CLEANUP_OF_DAGSTER_TAG = "cleanup_of_dagster_run"
ERROR_TAG = "z4.error"
FAILED_RUN_ERROR_TAG = "z4.failed_run_error"  # on a cleanup run: the error that ended the run it cleans
CRASH_TAG = "z4.crashed_stage"  # a stage that raised (not a gate): its name
DESCRIPTION_TAG = "mlflow.note.content"  # the run's (or experiment's) description, Markdown in the MLflow UI
# MLflow 3 opens an experiment without this tag in its GenAI view (traces); a model-training one on its runs.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# What the run record states as the egress policy (issue: observed, not asserted, in the image lane).
DEFAULT_EGRESS_POLICY = "deny-all: no network egress at run time (local Z3, MLflow and registry only)"
_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def redact_uri(uri: str) -> str:
    """Drop user:password@ from a URI before it is shown anywhere."""
    return _CREDENTIALS.sub(r"\1***@", uri)


def artifact_download_url(tracking_uri: str, run_id: str, artifact_path: str) -> str | None:
    """The MLflow server's /get-artifact link for a run's file (credentials dropped); None unless http(s)."""
    from urllib.parse import urlencode, urlsplit

    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https"):
        return None
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else (parts.hostname or "")
    host += f":{parts.port}" if parts.port else ""
    base = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    return f"{base}/get-artifact?{urlencode({'path': artifact_path, 'run_uuid': run_id})}"


EXPERIMENT_NOTE = (
    "One run per Dagster run of the z4 model factory. In the runs table, add the columns "
    "`policy_decision`, `z4.blocked_by` and `dagster_partition` (Columns, Tags); each run's description "
    "links its Dagster run, and a model version's description its decision, package digest and runs.")


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


class RunRecorder:
    def __init__(self, tracking_uri: str, experiment_name: str, ui_url: str = ""):
        """UI_URL: the MLflow UI's base URL for links (default: core/links.mlflow_ui_base)."""
        from mlflow.tracking import MlflowClient

        from z4_assets.core.links import mlflow_ui_base

        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.ui_url = mlflow_ui_base(ui_url, self.tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        exp = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
            experiment_name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, DESCRIPTION_TAG: EXPERIMENT_NOTE})
        if exp is not None and EXPERIMENT_KIND_TAG not in exp.tags:  # made before the factory set its kind
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)

    def run_url(self, run_id: str) -> str:
        """The run's page in the MLflow UI."""
        from z4_assets.core.links import mlflow_run_url

        return mlflow_run_url(self.ui_url, self.experiment_id, run_id)

    def open(self, dagster_run_id: str, run_name: str, tags: dict[str, str],
             parent_run_id: str | None = None) -> str:
        """The MLflow run of this Dagster run, RUNNING again for one more of its stages; created on its
        first stage. PARENT_RUN_ID: the Dagster run this one re-executes (a retry): the new MLflow run
        is tagged retry_of its MLflow run, which is left exactly as it was."""
        run_id = self.find(dagster_run_id)
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        links = {}
        if parent_run_id and parent_run_id != dagster_run_id:
            links[RETRY_OF_DAGSTER_TAG] = parent_run_id
            links[RETRY_OF_TAG] = self.find(parent_run_id) or "none: it recorded nothing in MLflow"
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={**tags, **links, DAGSTER_RUN_TAG: dagster_run_id})
        return run.info.run_id

    def find(self, dagster_run_id: str) -> str | None:
        """The MLflow run of a Dagster run (by its dagster.run_id tag), or None."""
        found = self.client.search_runs([self.experiment_id],
                                        filter_string=f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}'",
                                        max_results=1)
        return found[0].info.run_id if found else None

    def fail(self, run_id: str, attempt_run_id: str, error: str, status: str = "FAILED",
             blocked_by: str | None = None, stage: str | None = None) -> None:
        """An error (a crash, a lost connection, a killed process), not a gate: FAILED or KILLED; a retry
        is a new MLflow run. BLOCKED_BY: a stage that stopped the run on purpose (training diverged)
        names why; otherwise STAGE is recorded as crashed, never as blocked by a gate."""
        self.client.set_tag(run_id, ERROR_TAG, f"{attempt_run_id}: {error}")
        if stage and not blocked_by:
            self.client.set_tag(run_id, CRASH_TAG, stage)
        if blocked_by:
            self.client.set_tag(run_id, "z4.blocked_by", blocked_by)
        self.client.set_tag(run_id, "policy_decision", "FAIL")
        self.client.set_tag(run_id, "policy_reasons", error)
        self.client.set_terminated(run_id, status=status)

    def close_interrupted(self, run_id: str, attempt_run_id: str, error: str) -> bool:
        """Close the run of a Dagster run whose worker died as KILLED: RUNNING (it died in a stage) or
        FINISHED (it died between stages: the stage before left FINISHED, the factory run never ended).
        A run already FAILED (a gate blocked it, or a stage crashed) or KILLED is left as it is."""
        if self.client.get_run(run_id).info.status not in ("RUNNING", "FINISHED"):
            return False
        self.fail(run_id, attempt_run_id, error, status="KILLED")
        return True

    def record_cleanup(self, failed_dagster_run_id: str, cleanup_dagster_run_id: str, postrun_dir,
                       tags: dict, metrics: dict, passed: bool, run_name: str = "", context_tags: dict | None = None,
                       description: str = "") -> str:
        """The cleanup job's records of a failed run, in a NEW MLflow run tagged cleanup_of its MLflow run.
        RUN_NAME, CONTEXT_TAGS (the snapshot's dataset tags, the failed run's error), DESCRIPTION (Markdown
        with the links both ways): what an auditor filters and reads it by, like every other run."""
        failed = self.find(failed_dagster_run_id)
        run = self.client.create_run(
            self.experiment_id, run_name=run_name or f"z4-cleanup-{failed_dagster_run_id[:8]}",
            tags={**(context_tags or {}), DAGSTER_RUN_TAG: cleanup_dagster_run_id,
                  CLEANUP_OF_DAGSTER_TAG: failed_dagster_run_id,
                  CLEANUP_OF_TAG: failed or "none: the failed run recorded nothing in MLflow",
                  **({DESCRIPTION_TAG: description} if description else {})})
        run_id = run.info.run_id
        self.log(run_id, metrics=metrics, tags=tags)
        self.log_artifacts(run_id, postrun_dir, "postrun")
        self.client.set_terminated(run_id, status="FINISHED" if passed else "FAILED")
        return run_id

    def log(self, run_id: str, params: dict | None = None, metrics: dict | None = None,
            tags: dict | None = None) -> None:
        import time

        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()],
        )

    def log_steps(self, run_id: str, steps: list[tuple[str, float, int]]) -> None:
        """Step metrics (name, value, step), e.g. one point per training epoch."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(step)) for k, v, step in steps]
        for i in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def log_artifact(self, run_id: str, local_file: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_file), artifact_path)

    def close(self, run_id: str, blocked_by: str | None) -> None:
        """FINISHED, unless this stage or any earlier one of the run was blocked: a sibling stage
        that passes after another was blocked must not turn the run back to FINISHED."""
        prior_tags = self.client.get_run(run_id).data.tags
        prior = prior_tags.get("z4.blocked_by", "")
        names = [n for n in prior.split(",") if n]
        names += [n for n in (blocked_by or "").split(",") if n and n not in names]
        if names:
            joined = ",".join(names)
            self.client.set_tag(run_id, "z4.blocked_by", joined)
            self.client.set_tag(run_id, "policy_decision", "FAIL")
            self.client.set_tag(run_id, "policy_reasons", f"blocked by {joined}")
        failed = names or ERROR_TAG in prior_tags  # an error of this attempt in a sibling stage
        self.client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


class StageRecord:
    """What one stage logs to the factory run's MLflow run."""

    def __init__(self, recorder: RunRecorder, run_id: str):
        self.recorder, self.run_id = recorder, run_id
        self.blocked_by: str | None = None

    def log(self, params: dict | None = None, metrics: dict | None = None, tags: dict | None = None):
        self.recorder.log(self.run_id, params, metrics, tags)

    def log_steps(self, steps) -> None:
        self.recorder.log_steps(self.run_id, list(steps))

    def artifacts(self, local_dir, artifact_path: str | None) -> None:
        self.recorder.log_artifacts(self.run_id, local_dir, artifact_path)

    def artifact(self, local_file, artifact_path: str | None = None) -> None:
        """One file; artifact_path None puts it at the top level of the run."""
        self.recorder.log_artifact(self.run_id, local_file, artifact_path)

    def artifact_url(self, artifact_path: str) -> str | None:
        """A link that opens one logged file through the MLflow server; None for a local store."""
        return artifact_download_url(self.recorder.tracking_uri, self.run_id, artifact_path)

    @property
    def url(self) -> str:
        """The run's page in the MLflow UI."""
        return self.recorder.run_url(self.run_id)

    @property
    def artifact_uri(self) -> str:
        return self.recorder.client.get_run(self.run_id).info.artifact_uri.rstrip("/")

    def record(self, outcome) -> None:
        """A stage outcome: its params, metrics, tags, step metrics and evidence; its gates decide the status."""
        self.log(params=outcome.params, metrics=outcome.metrics, tags=outcome.tags)
        if outcome.steps:
            self.log_steps(outcome.steps)
        for artifact_path, local in outcome.artifacts.items():
            where = None if artifact_path == "." else artifact_path
            (self.artifacts if Path(local).is_dir() else self.artifact)(local, where)
        self.blocked_by = outcome.blocked_by


def run_name(dataset_id: str, started: datetime | None = None) -> str:
    """`z4-<dataset>-YYYYMMDD-HHMM-<git short>`: every MLflow run of the factory, cleanup runs too."""
    from z4_assets.core.provenance import code_version

    started = started or datetime.now(timezone.utc)
    return f"z4-{dataset_id}-{started:%Y%m%d-%H%M}-{code_version()['git_short']}"


def run_tags(snapshot, dagster_run_id: str, job_name: str, dagster_url: str, egress_policy: str) -> dict[str, str]:
    """The tags every factory run's MLflow run carries: code, data, execution and correlation."""
    from z4_assets.core.links import dagster_run_url, run_description
    from z4_assets.core.provenance import build_facts, code_version, repo_url

    code = code_version()
    m = snapshot.manifest
    tr = m.get("time_range")
    return {
        **build_facts(egress_policy), "repo_url": repo_url(),
        "dataset_snapshot_at": m["snapshot_at"], "feature_groups": json.dumps(m["feature_groups"]),
        "data_time_range": json.dumps(tr) if tr else "none: the contract declares no time column",
        "pipeline_id": job_name, "job_id": dagster_run_id, "dagster.job": job_name,
        "started_at": datetime.now(timezone.utc).isoformat(),
        "dagster_run_url": dagster_run_url(dagster_url, dagster_run_id),
        DESCRIPTION_TAG: run_description(snapshot.label, dagster_url, dagster_run_id, job_name),
        "dagster_partition": snapshot.label, "git_sha": code["git_sha"], "git_dirty": code["git_dirty"],
        "dataset_id": snapshot.dataset_id, "snapshot_id": snapshot.snapshot_id, "dataset_hash": m["hash"],
        "snapshot_at": m["snapshot_at"], "contract_hash": m["contract_hash"], "orchestrator": "dagster",
    }


@contextmanager
def open_stage(recorder: RunRecorder, snapshot, dagster_run_id: str, parent_run_id: str | None, job_name: str,
               dagster_url: str, egress_policy: str, stage: str, on_unrecorded=None) -> Iterator[StageRecord]:
    """The Dagster run's MLflow run, RUNNING for one stage; FINISHED or FAILED when it ends. PARENT_RUN_ID:
    the Dagster run a retry re-executes (its MLflow run is linked, never touched).

    A stage that raises is recorded as a crash (tags z4.error: the stage, the exception's type and
    first line; z4.crashed_stage), never as a gate; ON_UNRECORDED(message) is told when even that
    cannot be written."""
    run_id = recorder.open(dagster_run_id, run_name(snapshot.dataset_id), run_tags(snapshot, dagster_run_id, job_name, dagster_url,
                                                              egress_policy), parent_run_id=parent_run_id)
    record = StageRecord(recorder, run_id)
    record.log(tags={"run_id": run_id})
    try:
        yield record
    except BaseException as e:
        first = (str(e).strip().splitlines() or [""])[0]
        error = f"error in {stage}: {type(e).__name__}" + (f": {redact_uri(first)[:300]}" if first else "")
        try:
            if getattr(e, "tags", None):
                record.log(tags=e.tags)
            if getattr(e, "steps", None):  # evidence of why it stopped (a diverged run's epochs and log)
                record.log_steps(e.steps)
            for artifact_path, local in (getattr(e, "artifacts", None) or {}).items():
                record.artifact(local, artifact_path)
            recorder.fail(run_id, dagster_run_id, error, blocked_by=getattr(e, "blocked_by", None), stage=stage)
        except Exception as unrecorded:  # the tracking server may be what failed: raise the stage's error
            if on_unrecorded is not None:
                on_unrecorded(f"could not record '{error}' in MLflow: {type(unrecorded).__name__}")
        raise
    recorder.close(run_id, record.blocked_by)
