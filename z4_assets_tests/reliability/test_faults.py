"""Fault injection: kills, a full disk and a lost tracking server lose nothing and publish nothing half-made.

Each case runs the real `dagster job execute` in its own process group against a temp project,
injects the fault for real (SIGKILL, a tmpfs too small for the package, killing `mlflow server`),
then checks what the product left (Dagster run status, MLflow run, package folder, registry) and
that `z4 runs retry` re-executes from failure to a verified, promoted package without re-running
what had already succeeded.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from z4_assets.core.packaging._attest import PROVENANCE_FILE
from z4_assets.core.stages import all_gate_names
from z4_assets.core.z3 import add_snapshot
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_CSV, SAMPLE_DATASET_CONFIG
from z4_assets_tests.reliability.faults import (instance, kill_group, mlflow_client, mlflow_run, new_project,
                                                 registry_entries, run_folder_with, runs, staging_dirs,
                                                 start_factory, steps, visible_packages, wait_for_server,
                                                 wait_until, z4)
from z4_assets_tests.servers import free_port, start_mlflow_server

ET = dg.DagsterEventType
CHECKS = len(all_gate_names())  # every blocking check of model_factory


@pytest.fixture(scope="module")
def fault_z3(tmp_path_factory) -> Path:
    """One registered snapshot of the bundled sample, shared read-only by every case."""
    root = tmp_path_factory.mktemp("fault_z3")
    add_snapshot(root, DATASET, SAMPLE_CONTRACT, SAMPLE_CSV, dataset_config=SAMPLE_DATASET_CONFIG)
    return root


def check_verdicts(p, run_ids) -> dict[str, bool]:
    """Every asset check evaluated across a run and its retries (a later verdict wins)."""
    verdicts = {}
    with instance(p) as inst:
        for run_id in run_ids:
            for r in inst.get_records_for_run(run_id, of_type=ET.ASSET_CHECK_EVALUATION).records:
                data = r.event_log_entry.dagster_event.event_specific_data
                verdicts[data.check_name] = data.passed
    return verdicts


def step_failure(p, run_id: str, step: str) -> str:
    with instance(p) as inst:
        for r in inst.get_records_for_run(run_id, of_type=ET.STEP_FAILURE).records:
            event = r.event_log_entry.dagster_event
            if event.step_key == step:
                return event.step_failure_data.error.message
    raise AssertionError(f"{step} did not fail")


def assert_nothing_published(p, run_id: str) -> None:
    assert registry_entries(p) == [], "a registry entry exists for a run that never finished"
    published = [f for f in visible_packages(p.factory_root) if not f.split("/")[-1].startswith(".")]
    assert published == [], f"partial package left visible: {published}"
    with instance(p) as inst:
        assert inst.get_latest_materialization_event(dg.AssetKey("signed_package")) is None
        assert inst.get_latest_materialization_event(dg.AssetKey("promotion")) is None


def kill_and_reconcile(p, proc, run_id: str) -> None:
    """SIGKILL the run's process group; the run stays STARTED until `z4 runs reconcile` marks it."""
    alive = z4(p, "runs", "reconcile")  # stopped, not dead: a live run is never marked
    assert alive.returncode == 0 and "0 dead run(s) found" in alive.stdout, alive.stdout + alive.stderr
    kill_group(proc)
    assert runs(p)[-1].status == dg.DagsterRunStatus.STARTED  # nothing in Dagster noticed the kill
    out = z4(p, "runs", "reconcile")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run {run_id} marked FAILED" in out.stdout and "no longer exists" in out.stdout
    assert runs(p)[-1].status == dg.DagsterRunStatus.FAILURE
    again = z4(p, "runs", "reconcile")  # idempotent: a FAILED run is not reported twice
    assert "0 dead run(s) found" in again.stdout
    ml = mlflow_run(p, run_id)
    assert ml.info.status == "KILLED" and "run worker died" in ml.data.tags["z4.error"]


def retry_and_verify(p, failed_run_id: str, expect_rerun: set[str], expect_kept: set[str]) -> dg.DagsterRun:
    """`z4 runs retry` completes: 29 checks pass, the package verifies, the alias is set, the MLflow
    run of the original run is continued and FINISHED, and the steps that succeeded are not re-run."""
    out = z4(p, "runs", "retry", failed_run_id)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    retry = runs(p)[-1]
    assert retry.parent_run_id == failed_run_id and retry.status == dg.DagsterRunStatus.SUCCESS
    parent = next(r for r in runs(p) if r.run_id == failed_run_id)
    partition = parent.tags["dagster/partition"]
    # the retry trains the failed run's partition, with its snapshot tags (the sensor reads them)
    assert {k: v for k, v in retry.tags.items() if k.startswith(("z4/", "dagster/partition"))} == \
        {k: v for k, v in parent.tags.items() if k.startswith(("z4/", "dagster/partition"))}
    started = steps(p, retry.run_id, ET.STEP_START)
    assert expect_rerun <= started, f"not re-executed: {expect_rerun - started}"
    assert not (started & expect_kept), f"recomputed although it had succeeded: {started & expect_kept}"
    assert expect_kept <= steps(p, failed_run_id, ET.STEP_SUCCESS)
    verdicts = check_verdicts(p, [failed_run_id, retry.run_id])
    assert len(verdicts) == CHECKS and all(verdicts.values()), {k: v for k, v in verdicts.items() if not v}
    tarball = p.factory_root / "runs" / retry.run_id / "package.tar.gz"
    ver = z4(p, "verify", str(tarball), "--key", str(p.public_key))
    assert ver.returncode == 0 and "VERIFIED" in ver.stdout, ver.stdout + ver.stderr
    # the evidence of the stages kept from the failed run is in the package, not lost
    pkg = p.factory_root / "runs" / retry.run_id / "package"
    for stage in ("reports/snapshot", "reports/hygiene", "model", "reports/security", "reports/fairness"):
        assert (pkg / stage).is_dir() and any((pkg / stage).iterdir()), f"{stage} missing from the retried package"
    # the reads of the failed run (intake, hygiene...) stay in the retried package's provenance
    prov = json.loads((pkg / PROVENANCE_FILE).read_text())
    log = next(b for b in prov["predicate"]["runDetails"]["byproducts"] if b["name"] == "access_log")
    exported = (p.factory_root / "runs" / retry.run_id / "access" / "access_log.jsonl").read_text().splitlines()
    readers = {json.loads(x)["run_id"] for x in exported}
    assert failed_run_id in readers and failed_run_id in log["annotations"]["selection"], log
    # it covers every run that produced one of the package's inputs (the failed run and the retry), no other
    producers = sorted({failed_run_id, retry.run_id})
    assert log["annotations"]["selection"] == "lines whose run_id is one of " + ", ".join(producers), log
    assert readers <= set(producers) and log["annotations"]["run_lines"] == len(exported)
    # the steps it did not re-run were read from the outcome store: their outcomes are the failed run's
    for asset in expect_kept:
        kept = json.loads((p.factory_root / "outcomes" / asset / f"{partition}.json").read_text())
        assert (kept["run_id"], kept["partition"]) == (failed_run_id, partition), asset
    for asset in expect_rerun:
        redone = json.loads((p.factory_root / "outcomes" / asset / f"{partition}.json").read_text())
        assert redone["run_id"] == retry.run_id, asset
    assert registry_entries(p) == ["version 1", "alias candidate"]
    assert staging_dirs(p.factory_root) == []
    # the retry is a new MLflow run linked to the original, which stays as the failed attempt left it
    original, ml = mlflow_run(p, failed_run_id), mlflow_run(p, retry.run_id)
    assert original.info.status != "FINISHED" and original.info.run_id != ml.info.run_id
    assert ml.info.status == "FINISHED" and "z4.error" not in ml.data.tags
    assert (ml.data.tags["retry_of"], ml.data.tags["retry_of_dagster_run"]) == (original.info.run_id, failed_run_id)
    assert ml.data.tags["policy_decision"] == "PASS"
    return retry


def test_sigkill_during_training(fault_z3, signing_key, cache_root, tmp_path):
    p = new_project(tmp_path / "project", fault_z3, signing_key, cache_root=cache_root)
    proc = start_factory(p)
    try:
        run_id = wait_until("hygiene_report", run_folder_with(p, "hygiene"), proc, p.home / "run.log")
        wait_until("training started", lambda: "trained_model" in steps(p, run_id, ET.STEP_START), proc,
                   p.home / "run.log")
        # the step has started; the stage has its MLflow run RUNNING once it opens it (between two
        # stages the run is FINISHED, and a finished record is never reopened from outside)
        wait_until("training's MLflow stage open", lambda: mlflow_run(p, run_id).info.status == "RUNNING", proc,
                   p.home / "run.log")
        kill_group(proc, signal.SIGSTOP)  # freeze it mid-training to see the state the kill hits
        assert "trained_model" not in steps(p, run_id, ET.STEP_SUCCESS)
        model = p.factory_root / "runs" / run_id / "model"
        assert not model.exists() or not any(model.iterdir()), "the model's files are written after training"
        assert not (p.factory_root / "outcomes" / "trained_model").exists()
        kill_and_reconcile(p, proc, run_id)
    finally:
        kill_group(proc)
    assert "trained_model" not in steps(p, run_id, ET.STEP_SUCCESS)
    assert_nothing_published(p, run_id)
    retry_and_verify(p, run_id, expect_rerun={"trained_model", "signed_package", "promotion"},
                     expect_kept={"z3_snapshot", "hygiene_report"})


def test_sigkill_during_packaging(fault_z3, signing_key, tmp_path):
    # its own SBOM cache: generating the SBOM (~12 s) holds the build open while the kill lands
    p = new_project(tmp_path / "project", fault_z3, signing_key)
    proc = start_factory(p)
    try:
        # the first evidence copied into staging: the build has files to leave behind (the SBOM follows)
        run_id = wait_until("the package build started", run_folder_with(p, ".package-staging-*/package/reports/*/*"),
                            proc, p.home / "run.log", poll=0.02)
        kill_group(proc, signal.SIGSTOP)  # freeze it mid-build to see the state the kill hits
        run_dir = p.factory_root / "runs" / run_id
        assert staging_dirs(p.factory_root) and not (run_dir / "package.tar.gz").exists()
        assert "signed_package" in steps(p, run_id, ET.STEP_START)
        kill_and_reconcile(p, proc, run_id)
    finally:
        kill_group(proc)
    assert_nothing_published(p, run_id)
    # the half-built package was hidden in staging; reconcile's cleanup of the dead run removed it
    assert staging_dirs(p.factory_root) == [] and visible_packages(p.factory_root) == []
    report = json.loads((p.factory_root / "runs" / run_id / "postrun" / "cleanup_report.json").read_text())
    assert any(".package-staging-" in r["path"] for r in report["removed"]) and report["complete"]
    retry_and_verify(p, run_id, expect_rerun={"signed_package", "run_record", "promotion", "cleanup_report"},
                     expect_kept={"z3_snapshot", "hygiene_report", "trained_model", "adversarial_eval",
                                  "fairness_report", "model_card"})


# A whole run's evidence before packaging takes ~1.7 MiB on tmpfs (of which the first snapshot's drift
# baseline, its per-feature value counts, ~0.8 MiB); the package (folder and tarball) needs ~1.4 MiB
# more. 2400 KiB fits the first and not the second.
TOO_SMALL = "2400k"


def test_disk_full_while_writing_the_package(fault_z3, signing_key, cache_root, tmp_path):
    p = new_project(tmp_path / "project", fault_z3, signing_key, cache_root=cache_root)
    p.factory_root.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TOO_SMALL}", "tmpfs", str(p.factory_root)],
                           capture_output=True, text=True)
    assert mount.returncode == 0, f"cannot simulate a full disk: mount tmpfs failed: {mount.stderr.strip()}"
    try:
        proc = start_factory(p)
        try:
            code = proc.wait(timeout=600)
        finally:
            kill_group(proc)
        log = (p.home / "run.log").read_text()
        assert code == 1, log[-3000:]
        (run,) = runs(p)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert steps(p, run.run_id, ET.STEP_FAILURE) == {"signed_package"}
        # whichever write hits the limit first (evidence copy, SBOM, tarball), the step says so
        message = step_failure(p, run.run_id, "signed_package")
        assert "no space left on device" in message.lower(), message
        assert_nothing_published(p, run.run_id)
        assert visible_packages(p.factory_root) == []  # not even a hidden staging folder or temp tarball
        ml = mlflow_run(p, run.run_id)
        assert ml.info.status == "FAILED" and "error in signed_package" in ml.data.tags["z4.error"]
        remount = subprocess.run(["mount", "-o", "remount,size=64m", str(p.factory_root)],
                                 capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        retry_and_verify(p, run.run_id, expect_rerun={"signed_package", "promotion"},
                         expect_kept={"trained_model", "model_card"})
    finally:
        subprocess.run(["umount", "-l", str(p.factory_root)], capture_output=True)


def test_mlflow_server_down_mid_run(fault_z3, signing_key, cache_root, tmp_path):
    store, port = tmp_path / "mlflow_store", free_port()
    store.mkdir()
    url = f"http://127.0.0.1:{port}"
    p = new_project(tmp_path / "project", fault_z3, signing_key, tracking_uri=url, cache_root=cache_root)
    server = start_mlflow_server(store, port, tmp_path / "mlflow.log")
    proc = None
    try:
        wait_for_server(url, server, tmp_path / "mlflow.log")
        proc = start_factory(p)
        # the stages after training create their folders once trained_model has materialized
        run_id = wait_until("trained_model materialized", run_folder_with(p, "security"), proc,
                            p.home / "run.log", poll=0.2)
        assert "trained_model" in steps(p, run_id, ET.STEP_SUCCESS)
        kill_group(server)  # the tracking server goes down mid-run
        code = proc.wait(timeout=600)  # MlflowTracking's retry settings: a failure, not a long hang
        log = (p.home / "run.log").read_text()
        assert code == 1, log[-3000:]
        (run,) = runs(p)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failed = steps(p, run.run_id, ET.STEP_FAILURE)
        assert failed and failed <= {"adversarial_eval", "fairness_report"}, failed
        assert f"127.0.0.1:{port}" in log and "Connection refused" in log, log[-3000:]
        server = start_mlflow_server(store, port, tmp_path / "mlflow.log")  # back, on the same store
        wait_for_server(url, server, tmp_path / "mlflow.log")
        assert_nothing_published(p, run.run_id)
        retry = retry_and_verify(p, run.run_id, expect_rerun={"adversarial_eval", "fairness_report"},
                                 expect_kept={"z3_snapshot", "hygiene_report", "trained_model"})
        # the kept stages' records stay in the original MLflow run, the retried ones' are in the retry's
        # (linked by retry_of): none lost, none rewritten
        original, ml = mlflow_run(p, run.run_id), mlflow_run(p, retry.run_id)
        assert {"dataset_hash", "snapshot_id", "state_dict_sha256"} <= set(original.data.tags)
        assert {"dataset_hash", "snapshot_id", "package_sha256"} <= set(ml.data.tags)
        client = mlflow_client(p)
        kept = {a.path for a in client.list_artifacts(original.info.run_id, "reports")}
        redone = {a.path for a in client.list_artifacts(ml.info.run_id, "reports")}
        assert {"reports/snapshot", "reports/hygiene"} <= kept and {"reports/security", "reports/fairness"} <= redone
        with instance(p) as inst:
            event = inst.get_latest_materialization_event(dg.AssetKey("run_record"))
            assert event.run_id == retry.run_id
            assert event.asset_materialization.metadata["missing_fields"].value == []
    finally:
        if proc is not None:
            kill_group(proc)
        kill_group(server)
        shutil.rmtree(store / "artifacts", ignore_errors=True)


def test_a_retry_never_touches_the_mlflow_run_it_retries(tmp_path):
    """RunRecorder on a real sqlite store: a retry is a new MLflow run linked by retry_of (more cases in
    z4_assets_tests/test_finished_records.py)."""
    from z4_assets.core.tracking import ERROR_TAG, RETRY_OF_TAG, RunRecorder

    rec = RunRecorder(f"sqlite:///{tmp_path / 'mlflow.db'}", "z4-retry")
    first = rec.open("root-run", "z4-test", {})
    rec.close(first, "duplicate_rows")  # a gate blocked in the first attempt
    rec.fail(first, "root-run", "error in fairness_report: ConnectionError")
    before = rec.client.get_run(first)
    again = rec.open("retry-run", "z4-test", {}, parent_run_id="root-run")
    assert again != first and rec.find("retry-run") == again
    assert rec.client.get_run(again).data.tags[RETRY_OF_TAG] == first
    rec.close(again, None)
    assert rec.client.get_run(again).info.status == "FINISHED"
    after = rec.client.get_run(first)
    assert (after.info.status, after.info.end_time, after.data.tags) == \
        (before.info.status, before.info.end_time, before.data.tags)
    assert ERROR_TAG in after.data.tags and after.data.tags["z4.blocked_by"] == "duplicate_rows"
