"""Issue 19: every decision of a real factory run reaches a real HTTP receiver (Z9) as a schema-valid
CloudEvent, every stage as OpenLineage START/COMPLETE/FAIL, and none is lost or duplicated when Z9 is
down or dies mid-run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from z4_assets.core.stages import STAGES
from z4_assets.jobs import cleanup_job
from z4_assets_tests.audit_helpers import Receiver, audit_events, free_port, lineage_events
from z4_assets_tests.conftest import check_verdicts, make_resources, materialized, run_factory

ROOT = Path(__file__).resolve().parents[1]
ALL_GATES = {g.name for s in STAGES for g in s.gates}
ASSETS = [s.asset for s in STAGES]


def _resources(tmp_path, z3_root, signing_key, cache_root, receiver: Receiver | None):
    from z4_assets.resources import FactoryStorage

    resources = make_resources(tmp_path, z3_root, signing_key, cache_root)
    if receiver is not None:
        resources["storage"] = FactoryStorage(root=str(tmp_path / "factory"), cache_root=str(cache_root),
                                              audit_url=receiver.audit_url, openlineage_url=receiver.lineage_url)
    return resources


def _cli(args, tmp_path, receiver: Receiver | None = None, env: dict | None = None):
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "OPENLINEAGE_"))}
    env.update(PYTHONPATH=str(ROOT), Z4_FACTORY_ROOT=str(tmp_path / "factory"), **extra)
    if receiver is not None:
        env.update(Z4_AUDIT_URL=receiver.audit_url, OPENLINEAGE_URL=receiver.lineage_url)
    return subprocess.run([sys.executable, "-m", "z4_assets.cli", "audit", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def _chain(resources):
    return resources["storage"].audit()


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(free_port(), tmp_path / "received.jsonl")
    yield r
    r.kill()


Z1_ID = "z1:onboarding:7f3c-2291"


def test_full_run_delivers_the_complete_schema_valid_trail(sample_df, tmp_path, z3_root, signing_key,
                                                           cache_root, receiver):
    from z4_assets.core.z3 import add_snapshot
    from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG

    sample_df.to_parquet(tmp_path / "data.parquet", index=False)
    add_snapshot(z3_root, DATASET, SAMPLE_CONTRACT, tmp_path / "data.parquet", dataset_config=SAMPLE_DATASET_CONFIG,
                 z1_correlation_id=Z1_ID)  # Z3 gave the snapshot a correlation id from Z1
    receiver.start()
    resources = _resources(tmp_path, z3_root, signing_key, cache_root, receiver)
    result = run_factory(resources)
    assert result.success, check_verdicts(result)
    run_id = result.run_id
    trail = _chain(resources)
    chained = trail.events(run_id)
    records = receiver.records()
    assert records and all(r["valid"] for r in records), [r["error"] for r in records if not r["valid"]][:3]
    audit, lineage = audit_events(records), lineage_events(records)
    # everything chained was delivered, once, in chain order (lineage to its own endpoint)
    assert [e["id"] for e in audit] == [e["id"] for e in chained if e["type"] != "io.z4.factory.lineage.run"]
    assert [e["run"]["runId"] + e["eventType"] for e in lineage] == [
        e["data"]["run_event"]["run"]["runId"] + e["data"]["state"] for e in chained
        if e["type"] == "io.z4.factory.lineage.run"]
    assert trail.queued() == {"audit": 0, "lineage": 0}
    # every gate of the stage table has its verdict event, with measured, threshold and evidence digest
    gates = {e["data"]["gate"]: e["data"] for e in audit if e["type"] == "io.z4.factory.gate.evaluated"}
    assert set(gates) == ALL_GATES
    assert all(len(g["evidence_sha256"]) == 64 and "threshold" in g and "verdict" in g for g in gates.values())
    kinds = {e["type"].removeprefix("io.z4.factory.") for e in audit}
    assert {"snapshot.read", "package.signed", "model.promoted", "cleanup.done", "stage.started",
            "stage.completed"} <= kinds, kinds
    reads = [e["data"] for e in audit if e["type"] == "io.z4.factory.snapshot.read"]
    assert any(r["pseudonymised"] for r in reads) and all(r["purpose"] for r in reads)
    # the ids every event carries
    mlflow_run = result.asset_materializations_for_node("promotion")[0].metadata["mlflow_run_id"].value
    for e in audit:
        ids = e["data"]["ids"]
        assert ids["dagster_run_id"] == run_id and e["dagsterrunid"] == run_id
        assert ids["dataset"].startswith("taiwan_credit_default@")
        assert ids["z9_trace_id"] == e["traceparent"] and e["traceparent"].startswith("00-")
        assert ids["actor"]["kind"] == "os_user"
        assert ids["z1_correlation_id"] == Z1_ID == e["z1correlationid"]
    assert {e["traceparent"].split("-")[1] for e in audit} == {audit[0]["traceparent"].split("-")[1]}
    assert all(e["mlflowrunid"] == mlflow_run for e in audit if e["type"] != "io.z4.factory.stage.started")
    # OpenLineage: one START and one COMPLETE per stage; the snapshot is the input with schema and contract
    for asset in ASSETS:
        states = [e["eventType"] for e in lineage if e["job"]["name"] == f"model_factory.{asset}"]
        assert states == ["START", "COMPLETE"], (asset, states)
    complete = [e for e in lineage if e["eventType"] == "COMPLETE"]
    snapshot_in = complete[-1]["inputs"][0]
    assert snapshot_in["name"].startswith("taiwan_credit_default@")
    assert len(snapshot_in["facets"]["schema"]["fields"]) == sample_df.shape[1]
    assert {c["name"] for c in snapshot_in["facets"]["z4_contract"]["columns"]} == set(sample_df.columns)
    outputs = {o["name"].rsplit("/", 1)[-1] for e in complete for o in e["outputs"]}
    assert outputs == {"model", "package"}
    # the run record says how many events are still queued
    meta = result.asset_materializations_for_node("run_record")[0].metadata
    assert meta["audit_queued"].value == 0 and meta["audit_events"].value > 0
    # z4 audit show prints the run's trail as a table; z4 audit verify passes on the untouched chain
    shown = _cli(["show", run_id], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "package.signed" in shown.stdout and "duplicate_rows" in shown.stdout and "model.promoted" in shown.stdout
    ok = _cli(["verify"], tmp_path)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    # the chain and its head rewritten together verify alone; the heads MLflow recorded catch it
    mlflow_env = {"MLFLOW_TRACKING_URI": resources["mlflow"].tracking_uri,
                  "Z4_MLFLOW_EXPERIMENT": resources["mlflow"].experiment_name}
    anchored = _cli(["verify", "--against-mlflow"], tmp_path, env=mlflow_env)
    assert anchored.returncode == 0 and "1 head(s) recorded outside the chain agree" in anchored.stdout, \
        anchored.stdout + anchored.stderr
    original = trail.chain.read_bytes(), trail._path("head").read_bytes()
    from z4_assets_tests.test_audit_chain import _forge

    def promote_a_failure(events):
        first = next(e for e in events if e["type"] == "io.z4.factory.gate.evaluated")
        first["data"]["verdict"] = "FAIL"
        return events

    _forge(trail, promote_a_failure)
    assert _cli(["verify"], tmp_path).returncode == 0
    forged = _cli(["verify", "--against-mlflow"], tmp_path, env=mlflow_env)
    assert forged.returncode == 1 and f"the one MLflow run {mlflow_run} recorded" in forged.stdout, \
        forged.stdout + forged.stderr
    trail.chain.write_bytes(original[0])
    trail._path("head").write_bytes(original[1])
    # one edited byte in the local chain: `z4 audit verify` says where and exits non-zero
    data = bytearray(trail.chain.read_bytes())
    at = data.index(b'"verdict":"PASS"') + len(b'"verdict":"')
    data[at:at + 1] = b"F"
    trail.chain.write_bytes(bytes(data))
    broken = _cli(["verify"], tmp_path)
    assert broken.returncode == 1 and "does not follow" in broken.stdout, broken.stdout + broken.stderr


def _delivered_once_in_order(trail, records):
    """The receiver's copy, one per event id (Z9 keeps one per id), is the chain in order; returns the raw
    number of repeats (a POST whose answer the sender never saw is sent again with the same id)."""
    chained = [e["id"] for e in trail.events() if e["type"] != "io.z4.factory.lineage.run"]
    got = [e["id"] for e in audit_events(records)]
    once = list(dict.fromkeys(got))
    assert once == chained
    lineage_chained = [(e["data"]["run_event"]["run"]["runId"], e["data"]["state"]) for e in trail.events()
                       if e["type"] == "io.z4.factory.lineage.run"]
    lineage_got = list(dict.fromkeys((e["run"]["runId"], e["eventType"]) for e in lineage_events(records)))
    assert lineage_got == lineage_chained
    return len(got) - len(once)


def test_receiver_down_for_the_whole_run(sample_df, register, tmp_path, z3_root, signing_key, cache_root, receiver):
    import time

    register(sample_df)
    resources = _resources(tmp_path, z3_root, signing_key, cache_root, receiver)  # nothing listens on its port
    started = time.monotonic()
    result = run_factory(resources)
    wall = time.monotonic() - started
    assert result.success, check_verdicts(result)
    trail = _chain(resources)
    queued = trail.queued()
    assert queued["audit"] > 30 and queued["lineage"] == 2 * len(ASSETS), queued
    (meta,) = [m.metadata for m in result.asset_materializations_for_node("cleanup_report")
               if m.asset_key.to_user_string() == "cleanup_report"]  # the step also materializes `verdict`
    assert meta["audit_queued"].value == sum(queued.values())
    print(f"run with Z9 down: {wall:.1f} s, {sum(queued.values())} events queued")
    receiver.start()
    flushed = _cli(["flush"], tmp_path, receiver)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert f"audit: delivered {queued['audit']}," in flushed.stdout, flushed.stdout
    records = receiver.records()
    assert all(r["valid"] for r in records)
    assert _delivered_once_in_order(trail, records) == 0
    again = _cli(["flush"], tmp_path, receiver)
    assert "audit: delivered 0," in again.stdout and len(receiver.records()) == len(records)


def test_receiver_sigkilled_mid_run_loses_and_duplicates_nothing(sample_df, register, tmp_path, z3_root,
                                                                 signing_key, cache_root, receiver):
    import threading

    register(sample_df)
    receiver.start()
    resources = _resources(tmp_path, z3_root, signing_key, cache_root, receiver)
    killed = threading.Event()

    def kill_after(n: int):
        receiver.wait_for(n, timeout=300)
        receiver.kill()
        killed.set()

    threading.Thread(target=kill_after, args=(25,), daemon=True).start()
    result = run_factory(resources)
    assert result.success, check_verdicts(result)
    assert killed.is_set()
    trail = _chain(resources)
    before = len(receiver.records())
    assert 25 <= before < len(trail.events()), "the receiver died before the run's end"
    assert sum(trail.queued().values()) > 0
    receiver.start()  # Z9 comes back on the same address
    flushed = _cli(["flush"], tmp_path, receiver)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    records = receiver.records()
    assert all(r["valid"] for r in records)
    repeats = _delivered_once_in_order(trail, records)
    assert repeats <= 1, f"{repeats} events were sent again"  # only the one in flight at the kill, same id
    assert trail.queued() == {"audit": 0, "lineage": 0}


def test_blocked_run_trail_shows_the_gate_that_blocked_it(sample_df, register, tmp_path, z3_root, signing_key,
                                                          cache_root, receiver):
    import numpy as np
    import pandas as pd

    dup = sample_df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(len(sample_df) + 1, len(sample_df) + 1 + len(dup))
    register(pd.concat([sample_df, dup], ignore_index=True))
    receiver.start()
    resources = _resources(tmp_path, z3_root, signing_key, cache_root, receiver)
    (tmp_path / "dh").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dh")) as instance:
        result = run_factory(resources, instance=instance)
        assert not result.success and check_verdicts(result)["duplicate_rows"] is False
        assert "signed_package" not in materialized(result)
        # the cleanup job the failure sensor launches: its cleanup.done lands on the failed run's trail
        cleanup = cleanup_job.execute_in_process(run_config={"ops": {"cleanup_failed_run": {"config": {
            "failed_run_id": result.run_id}}}}, resources=resources, instance=instance)
        assert cleanup.success
    records = receiver.records()
    assert all(r["valid"] for r in records)
    audit = audit_events(records)
    failed = [e["data"] for e in audit if e["type"] == "io.z4.factory.gate.evaluated" and not e["data"]["passed"]]
    assert [(g["stage"], g["gate"], g["verdict"]) for g in failed] == [("hygiene_report", "duplicate_rows", "FAIL")]
    assert failed[0]["measured"] > failed[0]["threshold"]
    done = [e["data"] for e in audit if e["type"] == "io.z4.factory.stage.completed"]
    assert [d["blocked_by"] for d in done if d["stage"] == "hygiene_report"] == ["duplicate_rows"]
    assert not any(e["type"] == "io.z4.factory.package.signed" for e in audit)
    (cleaned,) = [e for e in audit if e["type"] == "io.z4.factory.cleanup.done"]
    assert cleaned["dagsterrunid"] == result.run_id and cleaned["data"]["complete"] is True
    assert cleaned["data"]["cleanup_job_run_id"] == cleanup.run_id
    hygiene = [e for e in lineage_events(records) if e["job"]["name"] == "model_factory.hygiene_report"]
    assert [e["eventType"] for e in hygiene] == ["START", "FAIL"]
    assert "duplicate_rows" in hygiene[-1]["run"]["facets"]["errorMessage"]["message"]
    shown = _cli(["show", result.run_id], tmp_path)
    assert "duplicate_rows FAIL" in shown.stdout and "blocked by duplicate_rows" in shown.stdout, shown.stdout


def test_snapshot_add_keeps_the_z1_correlation_id_and_emits_snapshot_registered(tmp_path):
    from z4_assets_tests.conftest import SAMPLE_CONTRACT, SAMPLE_CSV, SAMPLE_DATASET_CONFIG

    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "OPENLINEAGE_"))}
    env.update(PYTHONPATH=str(ROOT), Z4_FACTORY_ROOT=str(tmp_path / "factory"), Z4_Z3_ROOT=str(tmp_path / "z3"),
               Z4_ACTOR_OIDC_SUBJECT="repo:bank/z4:ref:refs/heads/main")
    base = [sys.executable, "-m", "z4_assets.cli", "snapshot", "add", "--dataset-id", "taiwan_credit_default",
            "--contract", str(SAMPLE_CONTRACT), "--dataset-config", str(SAMPLE_DATASET_CONFIG)]
    bad = subprocess.run(base + ["--z1-correlation-id", "../../etc", str(SAMPLE_CSV)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "invalid Z1 correlation id" in bad.stderr
    assert not (tmp_path / "factory" / "audit" / "events.jsonl").exists()
    ok = subprocess.run(base + ["--z1-correlation-id", Z1_ID, str(SAMPLE_CSV)], env=env, cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    from z4_assets.core.audit import AuditTrail
    from z4_assets.core.z3 import list_snapshots

    (ref,) = list_snapshots(tmp_path / "z3")
    assert ref.manifest["z1_correlation_id"] == Z1_ID
    (event,) = AuditTrail(tmp_path / "factory" / "audit").events()
    assert event["type"] == "io.z4.factory.snapshot.registered" and event["subject"] == ref.label
    assert event["z1correlationid"] == Z1_ID and event["data"]["created"] is True
    assert event["data"]["ids"]["actor"] == {"id": "repo:bank/z4:ref:refs/heads/main", "kind": "oidc_subject"}


def test_a_crashed_stage_leaves_stage_crashed_and_an_openlineage_fail(sample_df, register, tmp_path, z3_root,
                                                                      signing_key, cache_root):
    from z4_assets.assets.data import z3_snapshot
    from z4_assets.resources import PolicyStore

    register(sample_df)
    resources = _resources(tmp_path, z3_root, signing_key, cache_root, None)
    broken = tmp_path / "policy.yaml"
    broken.write_text("defaults: [this is not a policy\n")
    resources["policy"] = PolicyStore(path=str(broken))
    result = run_factory(resources, assets=[z3_snapshot])
    assert not result.success
    events = _chain(resources).events(result.run_id)
    kinds = [e["type"].removeprefix("io.z4.factory.") for e in events]
    assert kinds == ["stage.started", "lineage.run", "stage.crashed", "lineage.run"], kinds
    crashed = events[2]["data"]
    assert crashed["stage"] == "z3_snapshot" and "policy" in crashed["error"].lower(), crashed
    assert events[3]["data"]["state"] == "FAIL"
    assert events[3]["data"]["run_event"]["run"]["facets"]["errorMessage"]["message"] == crashed["error"]
    assert _chain(resources).verify().ok
