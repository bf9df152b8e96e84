"""Bounded runs: a hung step is stopped at its policy time-out and recorded as a time-out (cleanup and
incident follow); a transient MLflow outage is retried inside the step and the run completes; a gate
failure is never retried."""

from __future__ import annotations

import errno
import json
import socket
import threading
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from z4_assets.assets import hygiene_report, z3_snapshot
from z4_assets.core.bounds import StepTimedOut, deadline, is_transient, with_retries
from z4_assets.jobs import cleanup_job
from z4_assets.resources import MlflowTracking, PolicyStore, S3Z3Store
from z4_assets.sensors.failures import cleanup_on_failure
from z4_assets_tests.conftest import check_verdicts, run_factory
from z4_assets_tests.servers import free_port, start_mlflow_server, stop_group, wait_http

LIMIT = 4  # seconds: the hung step's time-out in the test policy
MARGIN = 1.5  # seconds: from the deadline to the moment the step is interrupted
BOOKKEEPING = 30  # seconds: the step's failure report (a first MLflow sqlite store is created) on a loaded box


def test_deadline_stops_a_blocked_body_and_retries_are_for_transient_failures_only():
    t = time.monotonic()
    with pytest.raises(StepTimedOut, match="timed out after 1 s"):
        with deadline("x", 1):
            time.sleep(30)
    assert time.monotonic() - t < 1 + 1
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        return "ok"
    assert with_retries(flaky, 3, 0.01, 0.05) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(ConnectionRefusedError):
        with_retries(flaky, 2, 0.01, 0.05)
    assert len(calls) == 2, "the cap holds"
    bug = []
    with pytest.raises(ValueError):
        with_retries(lambda: bug.append(1) or (_ for _ in ()).throw(ValueError("a bug")), 5, 0.01, 0.05)
    assert len(bug) == 1, "a non-transient failure is never retried"
    assert is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_transient(KeyError("x"))


def _hanging_listener() -> tuple[socket.socket, int]:
    """A TCP server that accepts every connection and never answers: a hung object store."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    return srv, srv.getsockname()[1]


def _steps(instance, run_id, step, kind):
    return [e for e in instance.all_logs(run_id, of_type=kind) if e.step_key == step]


def test_a_hung_step_times_out_within_its_limit_is_cleaned_up_and_opens_a_time_out_incident(
        register, sample_df, factory_resources, instance, tmp_path, monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("Z4_INCIDENT_URL", raising=False)
    ref = register(sample_df.iloc[:2000])
    srv, port = _hanging_listener()
    policy = tmp_path / "bounded.yaml"
    policy.write_text(f"defaults:\n  runs:\n    step_timeout_seconds: {{z3_snapshot: {LIMIT}}}\n")
    resources = {**factory_resources, "policy": PolicyStore(path=str(policy)),
                 "z3": S3Z3Store(bucket="z3", prefix="snapshots", endpoint_url=f"http://127.0.0.1:{port}",
                                 region_name="us-east-1")}
    # the step makes its scratch folder before it hangs: the cleanup must remove it
    try:
        failed = run_factory(resources, partition=ref.label, instance=instance)
    finally:
        srv.close()
    assert not failed.success
    (start,) = _steps(instance, failed.run_id, "z3_snapshot", dg.DagsterEventType.STEP_START)
    (failure,) = _steps(instance, failed.run_id, "z3_snapshot", dg.DagsterEventType.STEP_FAILURE)
    error = failure.dagster_event.step_failure_data.user_failure_data
    stopped = error.metadata["stopped_after_seconds"].value
    assert LIMIT <= stopped <= LIMIT + MARGIN, stopped
    assert failure.timestamp - start.timestamp <= LIMIT + BOOKKEEPING
    assert f"z3_snapshot timed out after {LIMIT} s" in error.description
    assert not _steps(instance, failed.run_id, "hygiene_report", dg.DagsterEventType.STEP_START)

    folder = factory_resources["storage"].folder(failed.run_id)
    (entry,) = instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    ctx = dg.build_run_status_sensor_context(sensor_name=cleanup_on_failure.name, dagster_event=entry.dagster_event,
                                             dagster_instance=instance, dagster_run=instance.get_run_by_id(failed.run_id))
    request = cleanup_on_failure(ctx)
    cleanup = cleanup_job.execute_in_process(run_config=request.run_config, resources=factory_resources,
                                             instance=instance, tags=request.tags)
    assert cleanup.success and not folder.scratch.exists()
    record = json.loads((folder.run_dir / "incident" / "incident.json").read_text())
    assert record["kind"] == "time-out" and record["gate"] is None
    assert record["runbook"] == "docs/runbooks/failures.md#time-out"
    assert record["step_errors"][0]["step"] == "z3_snapshot"


class _FlakyRelay:
    """127.0.0.1:PORT drops its first DROP connections unanswered (MLflow is down: the client sees the
    connection closed), then relays every connection to TARGET (MLflow is back)."""

    def __init__(self, target: int, drop: int):
        self.target, self.drop, self.dropped = target, drop, 0
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client = self.srv.accept()[0]
            except OSError:
                return
            if self.dropped < self.drop:
                self.dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.srv.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    store = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = start_mlflow_server(store, port, store / "server.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, store / "server.log", "mlflow server")
        yield port
    finally:
        stop_group(proc)


def test_a_transient_mlflow_outage_is_retried_and_the_run_completes(
        register, sample_df, factory_resources, instance, mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries off: ours are measured
    ref = register(sample_df.iloc[:3000])
    relay = _FlakyRelay(mlflow_server, drop=1)
    policy = tmp_path / "bounded.yaml"
    policy.write_text("defaults:\n  runs:\n    transient_attempts: 4\n    transient_backoff_seconds: 1\n")
    resources = {**factory_resources, "policy": PolicyStore(path=str(policy)),
                 "mlflow": MlflowTracking(tracking_uri=f"http://127.0.0.1:{relay.port}", experiment_name="z4-tests")}
    try:
        result = run_factory(resources, partition=ref.label, instance=instance, assets=[z3_snapshot, hygiene_report])
    finally:
        time.sleep(0.1)
        relay.close()
    assert relay.dropped == 1, "MLflow was down when the run first reached it"
    assert result.success
    assert len(_steps(instance, result.run_id, "z3_snapshot", dg.DagsterEventType.STEP_START)) == 1
    retried = [e.user_message for e in instance.all_logs(result.run_id)
               if "transient failure" in (e.user_message or "")]
    assert retried and all(e_step in retried[0] for e_step in ("z3_snapshot", "try 2 of 4")), retried


def test_a_gate_failure_is_never_retried(register, sample_df, factory_resources, instance):
    df = sample_df.iloc[:3000]
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(len(df) + 1, len(df) + 1 + len(dup))
    ref = register(pd.concat([df, dup], ignore_index=True))
    result = run_factory(factory_resources, partition=ref.label, instance=instance,
                         assets=[z3_snapshot, hygiene_report])
    assert not result.success and check_verdicts(result)["duplicate_rows"] is False
    assert len(_steps(instance, result.run_id, "hygiene_report", dg.DagsterEventType.STEP_START)) == 1
    assert not [e for e in instance.all_logs(result.run_id) if "transient failure" in (e.user_message or "")]
