"""The real CLI and a real Dagster instance: `z4 demo` and `dagster job execute` as users run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_CSV

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    return {**env, "DAGSTER_HOME": str(home), **extra}


def test_z4_demo_trains_the_bundled_sample_in_a_real_instance(demo_project, monkeypatch):
    proc, tmp_path = demo_project["proc"], demo_project["path"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "sample snapshot registered: taiwan_credit_default@" in out
    assert out.count(" pass ") == 28 and " FAIL " not in out
    assert "model card:" in out
    assert "registered: z4-taiwan_credit_default version 1 as @candidate" in out
    assert "state_dict sha256" in out
    assert (tmp_path / "mlflow.db").is_file()
    assert (tmp_path / ".dagster_home" / "storage").is_dir()
    monkeypatch.chdir(tmp_path)  # dagster.yaml's storage paths are relative to the project root
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "model_factory" and run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_latest_materialization_event(dg.AssetKey("trained_model")) is not None


def test_dagster_job_execute_exits_1_when_a_gate_blocks(tmp_path, monkeypatch):
    from z4_assets.core.z3 import add_snapshot

    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    ref, _ = add_snapshot(tmp_path / "z3", DATASET, SAMPLE_CONTRACT, SAMPLE_CSV)
    os.chmod(ref.data_path, 0o644)
    with open(ref.data_path, "r+b") as f:  # flip one byte in the middle of the data file
        f.seek(ref.data_path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "z4_assets.definitions",
         "-j", "model_factory"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env=_env(tmp_path, Z4_Z3_ROOT=str(tmp_path / "z3")))
    assert proc.returncode == 1
    logs = proc.stdout + proc.stderr
    assert "snapshot_hash" in logs
    assert "Dependencies for step hygiene_report failed" in logs
    monkeypatch.chdir(tmp_path)  # dagster.yaml's storage paths are relative to the project root
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_latest_materialization_event(dg.AssetKey("hygiene_report")) is None
        assert instance.get_latest_materialization_event(dg.AssetKey("trained_model")) is None
