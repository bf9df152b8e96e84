"""One MLflow run per factory run, shared by every stage and never left RUNNING.

Each stage re-opens the run (found by its Dagster run id tag), logs its evidence, and
terminates it: FINISHED when its gates passed, FAILED with the gate's name when one blocked.
The last stage that runs therefore always leaves the final status, whichever stage it is.
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
# A re-execution (retry from failure) of a Dagster run continues the MLflow run of its root run:
# the attempts are listed here, and an error (not a gate) of an earlier attempt is cleared.
RETRY_TAG = "dagster.retry_run_ids"
ERROR_TAG = "z4.error"
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


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


class RunRecorder:
    def __init__(self, tracking_uri: str, experiment_name: str):
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        exp = self.client.get_experiment_by_name(experiment_name)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(experiment_name)

    def open(self, dagster_run_id: str, run_name: str, tags: dict[str, str],
             attempt_run_id: str | None = None) -> str:
        """The MLflow run tagged with DAGSTER_RUN_ID (the root run of a retry), RUNNING again.

        ATTEMPT_RUN_ID is the Dagster run id of a re-execution of it: recorded under RETRY_TAG,
        and an error left by an earlier attempt is cleared (gate blocks are kept)."""
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}'",
            max_results=1)
        if found:
            run_id = found[0].info.run_id
            if attempt_run_id and attempt_run_id != dagster_run_id:
                self._note_attempt(found[0], attempt_run_id)
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=run_name,
                                         tags={DAGSTER_RUN_TAG: dagster_run_id, **tags})
            run_id = run.info.run_id
        return run_id

    def _note_attempt(self, run, attempt_run_id: str) -> None:
        tags = run.data.tags
        attempts = [a for a in tags.get(RETRY_TAG, "").split(",") if a]
        if attempt_run_id not in attempts:
            self.client.set_tag(run.info.run_id, RETRY_TAG, ",".join([*attempts, attempt_run_id]))
        if ERROR_TAG in tags and not tags[ERROR_TAG].startswith(f"{attempt_run_id}:"):
            self.client.delete_tag(run.info.run_id, ERROR_TAG)

    def find(self, dagster_run_id: str) -> str | None:
        """The MLflow run of a Dagster run (by its dagster.run_id tag, or as a retry of one), or None."""
        for filter_string in (f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}'",
                              f"tags.`{RETRY_TAG}` LIKE '%{dagster_run_id}%'"):
            found = self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=1)
            if found:
                return found[0].info.run_id
        return None

    def fail(self, run_id: str, attempt_run_id: str, error: str, status: str = "FAILED",
             blocked_by: str | None = None) -> None:
        """An error (a crash, a lost connection, a killed process), not a gate: FAILED or KILLED, and
        a retry of the Dagster run may still finish the MLflow run. BLOCKED_BY: a stage that stopped
        the run on purpose (training diverged) names why."""
        self.client.set_tag(run_id, ERROR_TAG, f"{attempt_run_id}: {error}")
        if blocked_by:
            self.client.set_tag(run_id, "z4.blocked_by", blocked_by)
        self.client.set_tag(run_id, "policy_decision", "FAIL")
        self.client.set_tag(run_id, "policy_reasons", error)
        self.client.set_terminated(run_id, status=status)

    def find_or_create_failed(self, dagster_run_id: str, run_name: str) -> str:
        """The run's MLflow run; one is created (and marked FAILED) if it failed before any stage logged."""
        run_id = self.find(dagster_run_id)
        if run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags={
                DAGSTER_RUN_TAG: dagster_run_id, "z4.blocked_by": "failed before any stage was tracked"})
            run_id = run.info.run_id
            self.client.set_terminated(run_id, status="FAILED")
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


def run_tags(snapshot, dagster_run_id: str, job_name: str, dagster_url: str, egress_policy: str) -> dict[str, str]:
    """The tags every factory run's MLflow run carries: code, data, execution and correlation."""
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
        "dagster_run_url": f"{dagster_url.rstrip('/')}/runs/{dagster_run_id}",
        "dagster_partition": snapshot.label, "git_sha": code["git_sha"], "git_dirty": code["git_dirty"],
        "dataset_id": snapshot.dataset_id, "snapshot_id": snapshot.snapshot_id, "dataset_hash": m["hash"],
        "snapshot_at": m["snapshot_at"], "contract_hash": m["contract_hash"], "orchestrator": "dagster",
    }


@contextmanager
def open_stage(recorder: RunRecorder, snapshot, dagster_run_id: str, root_run_id: str, job_name: str,
               dagster_url: str, egress_policy: str, stage: str, on_unrecorded=None) -> Iterator[StageRecord]:
    """The factory run's MLflow run, RUNNING for one stage; FINISHED or FAILED when it ends.

    A stage that raises is recorded as an error (tag z4.error: the stage and the exception's type),
    never as a gate; ON_UNRECORDED(message) is told when even that cannot be written."""
    from z4_assets.core.provenance import code_version

    started = datetime.now(timezone.utc)
    run_name = f"z4-{snapshot.dataset_id}-{started:%Y%m%d-%H%M}-{code_version()['git_short']}"
    run_id = recorder.open(root_run_id, run_name, run_tags(snapshot, dagster_run_id, job_name, dagster_url,
                                                           egress_policy), attempt_run_id=dagster_run_id)
    record = StageRecord(recorder, run_id)
    record.log(tags={"run_id": run_id})
    try:
        yield record
    except BaseException as e:
        error = f"error in {stage}: {type(e).__name__}"
        try:
            if getattr(e, "tags", None):
                record.log(tags=e.tags)
            if getattr(e, "steps", None):  # evidence of why it stopped (a diverged run's epochs and log)
                record.log_steps(e.steps)
            for artifact_path, local in (getattr(e, "artifacts", None) or {}).items():
                record.artifact(local, artifact_path)
            recorder.fail(run_id, dagster_run_id, error, blocked_by=getattr(e, "blocked_by", None))
        except Exception as unrecorded:  # the tracking server may be what failed: raise the stage's error
            if on_unrecorded is not None:
                on_unrecorded(f"could not record '{error}' in MLflow: {type(unrecorded).__name__}")
        raise
    recorder.close(run_id, record.blocked_by)
