"""After a crash: mark factory runs whose process died as FAILED, and retry a failed run from failure.

A run executed by `dagster job execute` (or `z4 run`) with the embedded instance is recorded by the
process that executes it. If that process is killed (SIGKILL, OOM killer, a reboot) the run stays
STARTED for ever: Dagster's run monitoring only detects dead workers for run launchers that can
check their health (Kubernetes, Docker, ECS; see deploy/), not for the default launcher. So
`z4 runs reconcile` does it here: a STARTED run whose recorded process (pid in its event log) no
longer exists on this machine is reported FAILED (which also fires the cleanup_on_failure sensor),
and its MLflow run is marked KILLED. `z4 runs retry RUN_ID` then re-executes it from failure: the
steps that succeeded are not run again (the retry, of the same partition, reads their outcomes from
the outcome store), and the retry continues the same MLflow run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from z4_assets.core.errors import Z4Error

FACTORY_JOB = "model_factory"


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    pid: int
    reason: str


def _process_start(pid: int) -> float | None:
    """When process PID started (epoch seconds), from /proc; None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0  # alive, start unknown (no /proc)
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, after the (comm) field
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that orchestrates the run: the one that logged its RUN_START (step
    workers of a multi-process executor come and go; this one lives as long as the run)."""
    for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records:
        event = r.event_log_entry.dagster_event
        if event is not None and event.pid is not None:
            return event.pid
    return None


def find_dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """STARTED factory runs whose process is gone (or was replaced by a newer process with its pid)."""
    if instance.run_launcher.supports_check_run_worker_health:
        return []  # the daemon's run monitoring watches these workers (run_monitoring in dagster.yaml)
    dead = []
    for record in instance.get_run_records(dg.RunsFilter(job_name=FACTORY_JOB,
                                                         statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = _worker_pid(instance, run.run_id)
        if pid is None:
            continue
        started = _process_start(pid)
        run_start = record.start_time or record.create_timestamp.timestamp()
        if started is None:
            dead.append(DeadRun(run.run_id, pid, f"its process (pid {pid}) no longer exists"))
        elif started > run_start + 1:
            dead.append(DeadRun(run.run_id, pid, f"its process (pid {pid}) ended; the pid now belongs "
                                                 "to a newer process"))
    return dead


def reconcile(instance: dg.DagsterInstance, tracking=None) -> list[DeadRun]:
    """Report every dead STARTED run FAILED; mark its MLflow run (if TRACKING is given) KILLED."""
    dead = find_dead_runs(instance)
    for d in dead:
        run = instance.get_run_by_id(d.run_id)
        instance.report_run_failed(run, message=f"run worker died: {d.reason} (found by z4 runs reconcile)")
        if tracking is not None:
            tracking.mark_interrupted(d.run_id, f"run worker died: {d.reason}")
    return dead


def factory_job() -> dg.JobDefinition:
    """model_factory from the definitions, for dg.reconstructable (re-execution needs a rebuildable job)."""
    from z4_assets.definitions import defs

    return defs.get_job_def(FACTORY_JOB)


def retry_tags(parent: dg.DagsterRun) -> dict[str, str]:
    """The tags a retry of PARENT carries: its partition and snapshot tags (the sensor's, or `z4 run`'s),
    as Dagster's own re-execution keeps them; not Dagster's bookkeeping of the parent (failure
    reason, retry markers) nor the `z4 run` invocation that launched the parent."""
    from z4_assets.partitions import INVOCATION_TAG

    kept = {k: v for k, v in parent.tags.items()
            if (not k.startswith(("dagster/", ".dagster/")) or k.startswith("dagster/partition"))
            and k != INVOCATION_TAG}
    return {**kept, "dagster/is_resume_retry": "true"}


def retry_from_failure(instance: dg.DagsterInstance, run_id: str) -> dg.JobExecutionResult:
    """Re-execute a FAILED factory run from failure, with its run config and partition, in this process."""
    parent = instance.get_run_by_id(run_id)
    if parent is None or parent.job_name != FACTORY_JOB:
        raise Z4Error(f"no {FACTORY_JOB} run {run_id} in this instance")
    if parent.status != dg.DagsterRunStatus.FAILURE:
        raise Z4Error(
            f"run {run_id} is {parent.status.value}, not FAILURE: only a failed run is retried "
            "(a run whose process was killed: `z4 runs reconcile` first)")
    return dg.execute_job(dg.reconstructable(factory_job), instance=instance, run_config=parent.run_config,
                          tags=retry_tags(parent),
                          reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance))
