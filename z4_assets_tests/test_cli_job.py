"""The real CLI and a real Dagster instance: `z4 demo`, `z4 run` and CI's `dagster job execute` as users run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from z4_assets.core.broker import DEFAULT_KEY_FILE, keygen
from z4_assets.core.snapshot import snapshot_run_tags
from z4_assets.core.stages import all_gate_names
from z4_assets.core.z3 import add_snapshot, list_snapshots
from z4_assets.observability import NO_PARTITION
from z4_assets.partitions import snapshots
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT

ROOT = Path(__file__).resolve().parents[1]
# CI's line (.ci/run): the newest snapshot's partition and tags, as `z4 snapshot tags` prints them
CI_LINE = ('dagster job execute -m z4_assets.definitions -j model_factory '
           '--tags "$({python} -m z4_assets.cli snapshot tags)"')


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    return {**env, "DAGSTER_HOME": str(home), **extra}


def _run(home: Path, args: list[str], shell: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=home, capture_output=True, text=True, timeout=600, shell=shell,
                          env=_env(home, Z4_Z3_ROOT=str(home / "z3")))


def _sensor_tags(ref) -> dict[str, str]:
    """The tags the snapshot sensor gives a run of REF: its partition and its snapshot's tags."""
    return {"dagster/partition": ref.label, **snapshot_run_tags(ref.dataset_id, ref.snapshot_id, ref.manifest)}


@contextmanager
def instance_of(home: Path):
    """The project's Dagster instance (dagster.yaml's storage paths are relative to the project root)."""
    here = os.getcwd()
    os.chdir(home)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        os.chdir(here)


def test_z4_demo_trains_the_bundled_sample_in_a_real_instance(demo_project):
    proc, tmp_path = demo_project["proc"], demo_project["path"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "sample snapshot registered: taiwan_credit_default@" in out
    assert len(all_gate_names()) == 36 and " FAIL " not in out
    # a fresh project's first snapshot: the three drift gates have no baseline to compare with, and the
    # demo registers without a Z3 key (snapshot_signature: no key configured, not blocking by default)
    assert out.count(" pass ") == 32 and out.count(" insuff. ") == 4, out  # 32: attribute_inference_gain, artifact_parity and trained_in_signed_image (not required) pass
    assert [ln.split()[2] for ln in out.splitlines() if " snapshot_signature " in ln] == ["insuff."], out
    assert "model card:" in out
    assert "registered: z4-taiwan_credit_default version 1 as @candidate" in out
    assert "(mlp; model digest sha256 " in out and "of its state_dict tensors" in out
    assert (tmp_path / "mlflow.db").is_file()
    assert (tmp_path / ".dagster_home" / "storage").is_dir()
    # the demo's snapshot is the project's first (the session's demo project is shared: the UI tests add
    # a blocked snapshot and its runs to it, before or after this test, whichever order the workers take)
    ref = list_snapshots(tmp_path / "data" / "z3")[0]
    assert f"sample snapshot registered: {ref.label}" in out
    with instance_of(tmp_path) as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": ref.label}))
        assert run.job_name == "model_factory" and run.status == dg.DagsterRunStatus.SUCCESS
        assert f"model_factory on {ref.label}" in out and f"Evidence of Dagster run {run.run_id}" in out
        assert run.tags.items() >= _sensor_tags(ref).items()  # the sensor would have launched the same run
        assert ref.label in instance.get_dynamic_partitions(snapshots.name)
        event = instance.get_latest_materialization_event(dg.AssetKey("trained_model"))
        assert event is not None and event.asset_materialization.partition == ref.label


@pytest.fixture(scope="module")
def project(tmp_path_factory, sample_df) -> dict:
    """A project with two snapshots: `dupes` (5% duplicated rows, older) and `tampered` (one byte of its
    data flipped after registration, newest), and its pseudonymisation key where `z4 keygen` puts it."""
    home = tmp_path_factory.mktemp("cli_project")
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    keygen(home / DEFAULT_KEY_FILE)  # so a run gets as far as the duplicate gate
    df = sample_df.iloc[:3000]
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(10_000, 10_000 + len(dup))
    pd.concat([df, dup], ignore_index=True).to_parquet(home / "dupes.parquet", index=False)
    df.to_parquet(home / "clean.parquet", index=False)
    dupes, _ = add_snapshot(home / "z3", DATASET, SAMPLE_CONTRACT, home / "dupes.parquet")
    tampered, _ = add_snapshot(home / "z3", DATASET, SAMPLE_CONTRACT, home / "clean.parquet")
    assert list_snapshots(home / "z3")[-1].label == tampered.label
    os.chmod(tampered.data_path, 0o644)
    with open(tampered.data_path, "r+b") as f:  # flip one byte in the middle of the data file
        f.seek(tampered.data_path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    return {"home": home, "dupes": dupes, "tampered": tampered}


@pytest.fixture(scope="module")
def ci_run(project) -> subprocess.CompletedProcess:
    """CI's line, through a shell as .ci/run runs it, in the project: it trains the newest snapshot."""
    return _run(project["home"], CI_LINE.format(python=sys.executable), shell=True)


def test_the_ci_line_runs_the_newest_partition_and_exits_1_when_a_gate_blocks(project, ci_run):
    home, tampered = project["home"], project["tampered"]
    tags = _run(home, [sys.executable, "-m", "z4_assets.cli", "snapshot", "tags"])
    assert tags.returncode == 0 and json.loads(tags.stdout) == _sensor_tags(tampered), tags.stdout + tags.stderr
    assert ci_run.returncode == 1, ci_run.stdout[-2000:] + ci_run.stderr[-3000:]
    logs = ci_run.stdout + ci_run.stderr
    assert "snapshot_hash" in logs
    assert "Dependencies for step hygiene_report failed" in logs
    with instance_of(home) as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": tampered.label}))
        assert run.status == dg.DagsterRunStatus.FAILURE and run.tags.items() >= _sensor_tags(tampered).items()
        snapshot = instance.get_latest_materialization_event(dg.AssetKey("z3_snapshot"))
        assert snapshot.run_id == run.run_id and snapshot.asset_materialization.partition == tampered.label
        assert instance.get_latest_materialization_event(dg.AssetKey("hygiene_report")) is None
        assert instance.get_latest_materialization_event(dg.AssetKey("trained_model")) is None
    # no daemon ran a cleanup: the blocked step opened the run's one incident itself (z4_assets/incidents.py)
    record = json.loads((home / "data" / "factory" / "runs" / run.run_id / "incident" / "incident.json").read_text())
    assert (record["kind"], record["gate"], record["run_id"]) == ("gate", "snapshot_hash", run.run_id)
    assert record["runbook"].endswith("#snapshot_hash") and record["snapshot"] == tampered.label
    chain = (home / "data" / "factory" / "audit" / "events.jsonl").read_text().splitlines()
    opened = [e for e in map(json.loads, chain) if e["type"] == "io.z4.factory.incident.opened"
              and e["dagsterrunid"] == run.run_id]
    assert len(opened) == 1 and opened[0]["data"]["gate"] == "snapshot_hash", opened


def test_dagster_job_execute_without_a_partition_fails_at_once_in_one_line(project, ci_run):
    home = project["home"]
    proc = _run(home, [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions",
                       "-j", "model_factory"])
    assert proc.returncode == 1
    logs = proc.stdout + proc.stderr
    assert NO_PARTITION in logs, logs[-3000:]
    with instance_of(home) as instance:
        (run,) = [r for r in instance.get_runs() if "dagster/partition" not in r.tags]
        assert run.status == dg.DagsterRunStatus.FAILURE

        def events(kind):
            return [r.event_log_entry.dagster_event for r in instance.get_records_for_run(run.run_id, of_type=kind).records]

        assert events(dg.DagsterEventType.ASSET_MATERIALIZATION) == []
        assert {e.step_key for e in events(dg.DagsterEventType.STEP_START)} == {"z3_snapshot"}  # the first step stops it
        (failure,) = events(dg.DagsterEventType.STEP_FAILURE)
        assert failure.step_failure_data.user_failure_data.description == NO_PARTITION
    assert not (home / "data" / "factory" / "runs" / run.run_id).exists()


def test_z4_run_trains_the_named_partition_and_prints_only_its_own_gates(project, ci_run):
    """After CI's run of `tampered` (snapshot_hash FAIL), `z4 run` naming the older `dupes` trains that one
    and prints its own verdicts: the snapshot gates pass, duplicate_rows fails, nothing after hygiene ran."""
    home, dupes = project["home"], project["dupes"]
    proc = _run(home, [sys.executable, "-m", "z4_assets.cli", "run", "--dataset-id", DATASET,
                       "--snapshot-id", dupes.snapshot_id])
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"model_factory on {dupes.label}" in out
    with instance_of(home) as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": dupes.label}))
        assert run.tags.items() >= _sensor_tags(dupes).items() and run.status == dg.DagsterRunStatus.FAILURE
        others = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(job_name="model_factory"))
                  if r.run_id != run.run_id]
    assert others, "CI's run of the other partition is in the instance"
    summary = out[out.index(f"Evidence of Dagster run {run.run_id}"):]
    verdicts = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in all_gate_names() and parts[2] in ("pass", "FAIL", "insuff."):
            verdicts[parts[1]] = parts[2]
    assert verdicts["snapshot_hash"] == "pass" and verdicts["duplicate_rows"] == "FAIL", summary
    assert set(verdicts) == {"snapshot_signature", "snapshot_hash", "contract", "legal_basis", "purpose", "duplicate_rows",
                             "conflicting_labels", "impossible_values", "target_leakage", "temporal_leakage",
                             "holdout_leak", "drift", "drift_missingness", "drift_new_features",
                             "cleanup_complete"}, summary
    assert verdicts["drift"] == "insuff.", summary  # the dataset's first snapshot: no baseline, not a measured 0
    assert "(trained_model skipped: hygiene_report did not pass in this run)" in summary
    assert not any(o in out for o in others)
    lines = summary.splitlines()  # a failed gate's line is followed by up to 3 offending examples (gates.json)
    at = next(i for i, line in enumerate(lines) if line.split()[1:3] == ["duplicate_rows", "FAIL"])
    assert lines[at + 1].split()[:2] == ["e.g.", "ids"] and len(lines[at + 1].split(",")) == 3, lines[at + 1]
