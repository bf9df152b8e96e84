"""The model_factory job's work without Dagster: same domain calls, files and MLflow records.

Run by factory_overhead.py in a fresh interpreter, with the same environment variables the
job's resources read (Z4_Z3_ROOT, Z4_FACTORY_ROOT, MLFLOW_TRACKING_URI). Each function in
bare_stages.py mirrors one asset, minus the Dagster calls (MaterializeResult, check results),
so the difference in wall time is the orchestration.
Prints one JSON line with its own timings.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse
import json
import os
import sys
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import bare_stages

from z4_assets.core.cost import measure

EGRESS_POLICY = "deny-all: no network egress at run time (local Z3, MLflow and registry only)"  # as MlflowTracking


class Factory:
    """The resources of definitions.resources_from_env, as plain values, for one run."""

    def __init__(self, run_key: str):
        self.run_key, self.started = run_key, datetime.now(timezone.utc)
        self.z3_root = os.environ.get("Z4_Z3_ROOT", "data/z3")
        self.root = Path(os.environ.get("Z4_FACTORY_ROOT", "data/factory"))
        self.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        self.experiment = os.environ.get("Z4_MLFLOW_EXPERIMENT", "z4-model-factory")

    def run_dir(self, stage: str) -> Path:
        d = self.root / "runs" / self.run_key / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def intermediate_dir(self) -> Path:
        from z4_assets.core.cleanup._paths import RunPaths

        d = RunPaths(self.root, self.run_key).intermediate
        d.mkdir(parents=True, exist_ok=True)
        return d

    def baseline_path(self, dataset_id: str) -> Path:
        return self.root / "baselines" / f"{dataset_id}.json"

    def log_cost(self, asset: str, cost) -> None:
        """MlflowTracking.log_to_run of @observed: the step's cost into the run's MLflow run."""
        from z4_assets.core.cost import cost_metrics
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(self.tracking_uri, self.experiment)
        run_id = recorder.find(self.run_key)
        if run_id is not None:
            recorder.log(run_id, metrics=cost_metrics(asset, cost))

    @contextmanager
    def stage(self, ref, stage_name: str):
        """MlflowTracking.stage: a new recorder per stage, open by run key, close with a verdict."""
        from z4_assets.core.provenance import code_version, repo_url
        from z4_assets.core.provenance import build_facts
        from z4_assets.core.tracking import RunRecorder

        recorder = RunRecorder(self.tracking_uri, self.experiment)
        code = code_version()
        started = datetime.now(timezone.utc)
        run_name = f"z4-{ref.dataset_id}-{started:%Y%m%d-%H%M}-{code['git_short']}"
        m = ref.manifest
        tr = m.get("time_range")
        tags = {
            **build_facts(EGRESS_POLICY), "repo_url": repo_url(),
            "dataset_snapshot_at": m["snapshot_at"], "feature_groups": json.dumps(m["feature_groups"]),
            "data_time_range": json.dumps(tr) if tr else "none: the contract declares no time column",
            "pipeline_id": "model_factory", "job_id": self.run_key,
            "started_at": started.isoformat(), "dagster_run_url": "none (benchmark)",
            "dagster_partition": "none: model_factory is unpartitioned; the snapshot is chosen by run config",
            "git_sha": code["git_sha"], "git_dirty": code["git_dirty"],
            "dataset_id": ref.dataset_id, "snapshot_id": ref.snapshot_id,
            "dataset_hash": m["hash"], "snapshot_at": m["snapshot_at"],
            "contract_hash": m["contract_hash"], "orchestrator": "none (benchmark)",
            "dagster.job": "model_factory",
        }
        run_id = recorder.open(self.run_key, run_name, tags)
        record = Record(recorder, run_id)
        record.log(tags={"run_id": run_id})
        try:
            yield record
        except BaseException as e:
            recorder.close(run_id, f"error in {stage_name}: {type(e).__name__}")
            raise
        recorder.close(run_id, record.blocked_by)


class Record:
    """StageRecord without Dagster."""

    def __init__(self, recorder, run_id: str):
        self.recorder, self.run_id, self.blocked_by = recorder, run_id, None

    def log(self, params=None, metrics=None, tags=None):
        self.recorder.log(self.run_id, params, metrics, tags)

    def artifacts(self, local_dir, artifact_path: str | None) -> None:
        self.recorder.log_artifacts(self.run_id, local_dir, artifact_path)

    def log_steps(self, steps) -> None:
        self.recorder.log_steps(self.run_id, steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hp", required=True, help="TrainConfig values as JSON")
    args = parser.parse_args()
    t_work = time.perf_counter()
    f = Factory(str(uuid.uuid4()))
    steps, blocked, values = {}, None, {}
    for name, stage in bare_stages.STAGES:
        if blocked:  # a blocking check stops the job: downstream never runs
            break
        start = time.perf_counter()
        with measure() as cost:  # as @observed does around each asset: the cost is logged to MLflow
            values[name], blocked = stage(f, values, json.loads(args.hp))
        f.log_cost(name, cost)
        steps[name] = time.perf_counter() - start
    done = time.perf_counter()
    print(json.dumps({"run_key": f.run_key, "blocked_by": blocked, "startup_s": t_work - T0,
                      "work_s": done - t_work, "steps_s": steps}))
    return 1 if blocked else 0


if __name__ == "__main__":
    if os.environ.get("Z4_BENCH_PROFILE"):  # diagnosis: python -m pstats on the file it names
        import cProfile

        cProfile.run("code = main()", os.environ["Z4_BENCH_PROFILE"])
        sys.exit(code)  # noqa: F821 (set by cProfile.run)
    sys.exit(main())
