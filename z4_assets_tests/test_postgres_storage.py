"""model_factory for real on Dagster's Postgres storage: deploy/dagster.yaml's storage section,
a throwaway PostgreSQL cluster on 127.0.0.1, and the run's records read back from its tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_CSV, SAMPLE_DATASET_CONFIG
from z4_assets_tests.postgres_cluster import INSTALL_HINT, ThrowawayPostgres, server_bin_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def postgres():
    bin_dir = server_bin_dir()
    if bin_dir is None:  # CI installs them: a missing server is a broken machine, not a skip
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
                    f"/usr/lib/postgresql/*/bin or on PATH: {INSTALL_HINT}")
    with ThrowawayPostgres(bin_dir) as pg:  # stopped and deleted however the test ends
        pg.create_database("dagster")
        yield pg


def factory_job_assets() -> set[str]:
    from z4_assets.definitions import defs

    job = defs.resolve_job_def("model_factory")
    return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}


def test_model_factory_runs_with_run_event_log_and_schedule_storage_in_postgres(postgres, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    deploy = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": deploy["storage"],
                                                       "telemetry": {"enabled": False}}))
    pg_env = {"DAGSTER_PG_HOST": postgres.host, "DAGSTER_PG_PORT": str(postgres.port),
              "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USERNAME": postgres.user,
              "DAGSTER_PG_PASSWORD": postgres.password}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Z4_", "MLFLOW_", "DAGSTER_"))}
    env.update(pg_env, DAGSTER_HOME=str(home), PYTHONPATH=str(ROOT), Z4_Z3_ROOT=str(tmp_path / "z3"),
               Z4_FACTORY_ROOT=str(tmp_path / "factory"), Z4_SIGNING_KEY=str(tmp_path / "keys" / "signing.pem"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)

    for cmd in (["-m", "z4_assets.cli", "keygen"],
                ["-m", "z4_assets.cli", "snapshot", "add", "--dataset-id", DATASET,
                 "--contract", str(SAMPLE_CONTRACT), "--dataset-config", str(SAMPLE_DATASET_CONFIG),
                 str(SAMPLE_CSV)]):
        proc = run(*cmd)
        assert proc.returncode == 0, proc.stderr[-2000:]
    tags = run("-m", "z4_assets.cli", "snapshot", "tags")  # adds the partition to the Postgres instance
    assert tags.returncode == 0, tags.stderr[-2000:]
    partition = json.loads(tags.stdout)["dagster/partition"]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"ops": {"trained_model": {"config": {"epochs": 3}}}}))
    proc = run("-m", "dagster", "job", "execute", "-m", "z4_assets.definitions", "-j", "model_factory",
               "-c", str(tmp_path / "run.yaml"), "--tags", tags.stdout.strip())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    # Straight from Postgres: the run, its events, every asset's materialization.
    conn = postgres.connect("dagster")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, pipeline_name, status, partition FROM runs")
        ((run_id, job_name, status, run_partition),) = cur.fetchall()
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
        (events,) = cur.fetchone()
        cur.execute("SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,))
        materialized = {"/".join(json.loads(k)["path"] if k.startswith("{") else json.loads(k))
                        for (k,) in cur.fetchall()}
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'")
        (checks,) = cur.fetchone()
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'z3_snapshots'")
        partitions = [k for (k,) in cur.fetchall()]
        cur.execute("SELECT to_regclass('jobs'), to_regclass('job_ticks'), to_regclass('instigators')")
        schedule_tables = cur.fetchone()
        cur.execute("SELECT (SELECT count(*) FROM event_logs WHERE event LIKE %(pw)s) + "
                    "(SELECT count(*) FROM runs WHERE run_body LIKE %(pw)s)", {"pw": f"%{postgres.password}%"})
        (password_hits,) = cur.fetchone()
    conn.close()
    assert (job_name, status, run_partition) == ("model_factory", "SUCCESS", partition)
    assert partitions == [partition]
    assert events > 50
    assert materialized == factory_job_assets() | {"verdict"}  # cleanup_report also records the verdict page
    assert checks >= len(materialized)
    assert all(schedule_tables), f"schedule storage tables missing: {schedule_tables}"
    assert password_hits == 0
    assert not list(home.rglob("*.db")), "a sqlite store was created next to the Postgres one"

    # And through Dagster's own instance, as the webserver and daemon would read it.
    for k, v in pg_env.items():
        monkeypatch.setenv(k, v)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        (stored,) = instance.get_runs()
        assert stored.run_id == run_id and stored.status == dg.DagsterRunStatus.SUCCESS
        assert stored.tags["dagster/partition"] == partition
        assert instance.get_dynamic_partitions("z3_snapshots") == [partition]
        for key in materialized:
            event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
            assert event is not None and event.asset_materialization.partition == partition
