"""Without the daemon, `z4 run` cleans up its own failed run through the same cleanup job."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from z4_assets.core.z3 import add_snapshot
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT

ROOT = Path(__file__).resolve().parents[1]


def test_z4_run_that_fails_a_gate_is_cleaned_up_and_recorded(tmp_path, sample_df, monkeypatch):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    df = sample_df.iloc[:3000]
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(10_000, 10_000 + len(dup))
    pd.concat([df, dup], ignore_index=True).to_parquet(tmp_path / "drop.parquet", index=False)
    add_snapshot(tmp_path / "data" / "z3", DATASET, SAMPLE_CONTRACT, tmp_path / "drop.parquet")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    from z4_assets.core.broker import keygen

    key_file, _ = keygen(tmp_path / "keys" / "pseudonym.key")  # so the run reaches the duplicate gate
    proc = subprocess.run([sys.executable, "-m", "z4_assets.cli", "run"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**env, "DAGSTER_HOME": str(tmp_path),
                                                       "Z4_PSEUDONYM_KEY_FILE": str(key_file)})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "failed: cleaning it up (cleanup job)" in proc.stdout
    # the run's summary, printed after its cleanup: the gate that blocked it and the cleanup's own verdict
    assert re.search(r"^hygiene +duplicate_rows +FAIL ", proc.stdout, re.M), proc.stdout[-3000:]
    assert re.search(r"^cleanup +cleanup_complete +pass ", proc.stdout, re.M), proc.stdout[-3000:]

    monkeypatch.chdir(tmp_path)  # dagster.yaml's storage paths are relative to the project root
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        (failed,) = instance.get_runs(filters=dg.RunsFilter(job_name="model_factory"))
        (cleanup,) = instance.get_runs(filters=dg.RunsFilter(job_name="cleanup"))
        assert failed.status == dg.DagsterRunStatus.FAILURE and cleanup.status == dg.DagsterRunStatus.SUCCESS
    run_dir = tmp_path / "data" / "factory" / "runs" / failed.run_id
    report = json.loads((run_dir / "postrun" / "cleanup_report.json").read_text())
    assert report["run_id"] == failed.run_id and report["cleaned_by"] == f"cleanup job run {cleanup.run_id}"
    assert not (tmp_path / "data" / "factory" / "scratch" / failed.run_id).exists()


def test_z4_cleanup_refuses_a_path_as_run_id(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "z4_assets.cli", "cleanup", "../../etc"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DAGSTER_HOME": str(tmp_path)})
    assert proc.returncode == 2 and "invalid run id '../../etc'" in proc.stderr
