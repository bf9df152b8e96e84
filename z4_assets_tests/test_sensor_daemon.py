"""The real thing: `dagster-daemon run` on a temp DAGSTER_HOME picks up a dropped snapshot, and cleans up the failed run.

The daemon, its code server and the runs it launches share one process group, which the test
kills in `finally` whatever happens. The dropped snapshot fails its hygiene gate (duplicates),
so one test sees the whole loop: snapshot sensor -> new partition -> model_factory run of that
partition -> failure -> failure sensor -> cleanup run -> scratch gone, records written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from z4_assets.core.outcome import HygieneOutcome
from z4_assets.core.run_folder import FactoryRoot
from z4_assets.core.snapshot import snapshot_run_tags
from z4_assets.core.z3 import add_snapshot
from z4_assets.jobs import model_factory
from z4_assets.partitions import snapshots
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
DAEMON = str(Path(sys.executable).with_name("dagster-daemon"))  # the console script beside this Python


def _env(home: Path) -> dict:
    from z4_assets.core.broker import keygen

    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    return {**env, "DAGSTER_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
            "Z4_Z3_ROOT": str(home / "z3"), "Z4_FACTORY_ROOT": str(home / "factory"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "Z4_SENSOR_INTERVAL_SECONDS": "2",
            "Z4_PSEUDONYM_KEY_FILE": str(keygen(home / "keys" / "pseudonym.key")[0])}  # reach the duplicate gate


def _wait_for(what: str, probe, deadline: float, log: Path):
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{log.read_text()[-3000:]}")


def test_daemon_launches_a_run_for_a_dropped_snapshot_and_cleans_up_after_its_failure(tmp_path, sample_df):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: z4_assets.definitions\n      location_name: z4_assets\n")
    df = sample_df.iloc[:3000]
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(10_000, 10_000 + len(dup))
    data = tmp_path / "drop.parquet"
    pd.concat([df, dup], ignore_index=True).to_parquet(data, index=False)

    log = tmp_path / "daemon.log"
    # The home's sqlite storages are made before the daemon starts: two processes creating a fresh
    # home's tables at once race ("table jobs already exists") and the daemon's sensor loop dies.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_dynamic_partitions(snapshots.name)
        with open(log, "w") as out:
            daemon = subprocess.Popen([DAEMON, "run", "-w", "workspace.yaml"],
                                      cwd=home, env=_env(home), stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        try:
            deadline = time.monotonic() + TIMEOUT
            ref, _ = add_snapshot(home / "z3", DATASET, SAMPLE_CONTRACT, data)  # dropped while the daemon runs

            def runs_of(job):
                return instance.get_runs(filters=dg.RunsFilter(job_name=job))

            (factory_run,) = _wait_for("a model_factory run", lambda: runs_of(model_factory.name), deadline, log)
            assert factory_run.tags["dagster/partition"] == ref.label  # the partition selects the snapshot
            assert snapshot_run_tags(DATASET, ref.snapshot_id, ref.manifest).items() <= factory_run.tags.items()
            assert factory_run.tags["dagster/sensor_name"] == "z3_snapshot_sensor"
            assert ref.snapshot_id not in json.dumps(factory_run.run_config)  # no run config names it
            assert instance.get_dynamic_partitions(snapshots.name) == [ref.label]

            def cleanup_done():
                runs = [r for r in runs_of("cleanup") if r.status in (dg.DagsterRunStatus.SUCCESS,
                                                                       dg.DagsterRunStatus.FAILURE)]
                return runs[0] if runs else None

            cleanup_run = _wait_for("the cleanup run", cleanup_done, deadline, log)
            assert instance.get_run_by_id(factory_run.run_id).status == dg.DagsterRunStatus.FAILURE
            assert cleanup_run.status == dg.DagsterRunStatus.SUCCESS
            assert cleanup_run.tags["z4/cleanup_of"] == factory_run.run_id
            assert len(runs_of(model_factory.name)) == 1, "one snapshot, one run"

            # the run failed where it should: the partition's hygiene outcome is blocked by duplicates
            factory = FactoryRoot(home / "factory")
            hygiene = HygieneOutcome.model_validate_json(factory.outcome("hygiene_report", ref.label).read_text())
            assert hygiene.run_id == factory_run.run_id and "duplicate_rows" in hygiene.blocked_by
            assert not factory.outcome("trained_model", ref.label).exists()
            postrun = factory.run(factory_run.run_id).stage("postrun", create=False)
            report = json.loads(postrun.cleanup_report.read_text())
            assert report["run_id"] == factory_run.run_id and report["complete"] is True
            assert report["cleaned_by"] == f"cleanup job run {cleanup_run.run_id}"
            gates = json.loads(postrun.gates.read_text())
            assert [(g["name"], g["passed"]) for g in gates] == [("cleanup_complete", True)]
            assert not factory.run(factory_run.run_id).scratch.exists()
            assert postrun.retention_manifest.is_file()
        finally:
            try:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait(timeout=30)
            except ProcessLookupError:
                pass
