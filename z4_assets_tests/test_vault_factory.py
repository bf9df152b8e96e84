"""Secrets from a real vault (OpenBao dev server started here) through whole factory runs: the key
and the MLflow credentials are read per run and held in memory, the run's token is revoked at the
end, passed or failed, and checked gone IN THE VAULT; a cleanup that cannot reach the vault fails."""

from __future__ import annotations

import json
import os

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from z4_assets.core.vault import TOKEN_ISSUER
from z4_assets.jobs import cleanup_job
from z4_assets.partitions import snapshots
from z4_assets.resources import MlflowTracking, SnapshotBroker, VaultRevoker, VaultSecrets
from z4_assets.sensors.failures import cleanup_on_failure
from z4_assets_tests.conftest import FACTORY_ASSETS, FAST_TRAIN, check_verdicts, run_factory
from z4_assets_tests.reliability.secret_scan import scan_dagster_runs, scan_sqlite, scan_tree, value_needles
from z4_assets_tests.servers import free_port
from z4_assets_tests.vault_server import start_dev_vault, stop_dev_vault

SEEN_MLFLOW_CREDENTIALS: dict[str, bool] = {}


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    v = start_dev_vault(tmp_path_factory.mktemp("vault"))
    yield v
    stop_dev_vault(v)


def vault_resources(resources: dict, vault, address: str | None = None) -> dict:
    """The factory's resources as definitions.py wires them with Z4_VAULT_ADDR: no key file, no key value."""
    def secrets(address: str) -> VaultSecrets:  # a new object: Dagster re-reads a copied resource's old config
        return VaultSecrets(address=address, factory_root=resources["storage"].root, role_id=vault.role_id,
                            secret_id_file=str(vault.secret_id_file), mlflow_path="secret/z4/mlflow")
    reading, revoking = secrets(vault.address), secrets(address or vault.address)
    m = resources["mlflow"]
    return {**resources,
            "broker": SnapshotBroker(log_path=resources["broker"].log_path, vault=reading),
            "mlflow": MlflowTracking(tracking_uri=m.tracking_uri, experiment_name=m.experiment_name, vault=reading),
            "revoker": VaultRevoker(vault=revoking)}


def _probe(vault):
    @dg.asset(group_name="vault_probe", partitions_def=snapshots, deps=["z3_snapshot"])
    def mlflow_credentials_probe():
        """After a tracked stage: MLflow's client would find the vault's credentials (a yes/no, no value)."""
        seen = (os.environ.get("MLFLOW_TRACKING_USERNAME") == vault.mlflow_username
                and os.environ.get("MLFLOW_TRACKING_PASSWORD") == vault.mlflow_password)
        return dg.MaterializeResult(metadata={"mlflow_credentials_from_vault": seen})
    return mlflow_credentials_probe


def _with_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(len(df) + 1, len(df) + 1 + len(dup))
    return pd.concat([df, dup], ignore_index=True)


def _tokens(report: dict) -> list[dict]:
    return [r for r in report["revoked"] if r["issuer"] == TOKEN_ISSUER]


def test_a_full_run_reads_its_secrets_from_the_vault_revokes_its_token_and_leaks_nothing(
        sample_df, register, factory_resources, tmp_path, vault, instance):
    ref = register(sample_df)
    resources = vault_resources(factory_resources, vault)
    instance.add_dynamic_partitions(snapshots.name, [ref.label])
    probe = _probe(vault)
    result = dg.materialize([*FACTORY_ASSETS, probe], resources=resources, instance=instance,
                            run_config={"ops": {"trained_model": {"config": FAST_TRAIN}}},
                            partition_key=ref.label, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
    assert result.asset_materializations_for_node("mlflow_credentials_probe")[0] \
        .metadata["mlflow_credentials_from_vault"].value is True
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ  # the run is over: out of this process's memory too
    reads = [json.loads(x) for x in open(resources["broker"].log_path).read().splitlines()]
    assert [r["pseudonymised"] for r in reads if not r["raw"]] == [["ID"]] * 4  # keyed by the vault's key

    folder = resources["storage"].folder(result.run_id)
    report = json.loads((folder.postrun / "cleanup_report.json").read_text())
    (token,) = _tokens(report)  # in-process executor: one login for the whole run
    assert token["status"] == "revoked (checked: gone from the vault)" and report["complete"] is True
    assert not vault.token_alive(token["lease_id"])  # asked of the vault itself, with its root token

    from mlflow.tracking import MlflowClient
    client = MlflowClient(resources["mlflow"].tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("z4-tests").experiment_id],
                                filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    assert run.data.tags["secrets"] == f"vault {vault.address} (AppRole login per run)"

    needles = [n for k, v in vault.secret_values().items() for n in value_needles(k, v)]
    hits, files = scan_tree(tmp_path, needles, skip=(vault.secret_id_file,))
    store_hits, rows = scan_sqlite(tmp_path / "mlflow.db", needles)
    event_hits, events = scan_dagster_runs(instance, needles)
    assert files > 50 and rows > 100 and events > 100
    assert [str(h) for h in hits + store_hits + event_hits] == []


def test_a_run_failing_at_a_gate_still_has_its_token_revoked_by_the_cleanup_job(
        sample_df, register, factory_resources, vault, instance):
    ref = register(_with_duplicates(sample_df.iloc[:6000]))
    resources = vault_resources(factory_resources, vault)
    failed = run_factory(resources, partition=ref.label, instance=instance)
    assert not failed.success and check_verdicts(failed)["duplicate_rows"] is False
    folder = resources["storage"].folder(failed.run_id)
    ledger = json.loads((folder.scratch / "ledger.json").read_text())
    (accessor,) = [e["lease_id"] for e in ledger if e["kind"] == "lease" and e["issuer"] == TOKEN_ISSUER]
    assert vault.token_alive(accessor)  # the failed run left a live token behind: cleanup has work to do

    run = instance.get_run_by_id(failed.run_id)
    (entry,) = instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    request = cleanup_on_failure(dg.build_run_status_sensor_context(
        sensor_name=cleanup_on_failure.name, dagster_event=entry.dagster_event, dagster_instance=instance,
        dagster_run=run))
    cleanup = cleanup_job.execute_in_process(run_config=request.run_config, resources=resources, instance=instance)
    assert cleanup.success
    report = json.loads((folder.postrun / "cleanup_report.json").read_text())
    assert _tokens(report) == [{"lease_id": accessor, "issuer": TOKEN_ISSUER,
                                "status": "revoked (checked: gone from the vault)"}]
    assert not vault.token_alive(accessor)


def test_a_vault_unreachable_at_cleanup_fails_cleanup_complete_naming_the_lease(
        sample_df, register, factory_resources, vault, instance):
    ref = register(_with_duplicates(sample_df.iloc[:3000]))
    resources = vault_resources(factory_resources, vault)
    failed = run_factory(resources, partition=ref.label, instance=instance)
    assert not failed.success
    folder = resources["storage"].folder(failed.run_id)
    ledger = json.loads((folder.scratch / "ledger.json").read_text())
    (accessor,) = [e["lease_id"] for e in ledger if e["kind"] == "lease"]

    down = vault_resources(factory_resources, vault, address=f"http://127.0.0.1:{free_port()}")  # nothing listens
    cleanup = cleanup_job.execute_in_process(
        run_config={"ops": {"cleanup_failed_run": {"config": {"failed_run_id": failed.run_id}}}},
        resources=down, instance=instance, raise_on_error=False)
    assert not cleanup.success
    failure = cleanup.failure_data_for_node("cleanup_failed_run").user_failure_data
    assert "failed revocations" in failure.description
    report = json.loads((folder.postrun / "cleanup_report.json").read_text())
    (gate,) = json.loads((folder.postrun / "gates.json").read_text())
    assert (gate["name"], gate["passed"]) == ("cleanup_complete", False)
    assert [r["lease_id"] for r in gate["details"]["failed_revocations"]] == [accessor]
    assert report["revoked"][0]["status"].startswith("failed: vault: login (approle) at http://127.0.0.1:")
    assert vault.token_alive(accessor)  # not revoked, and not reported as revoked
    vault.root().auth.token.revoke_accessor(accessor)


def test_with_no_vault_the_run_record_says_local_files(sample_df, register, factory_resources, instance):
    from mlflow.tracking import MlflowClient

    from z4_assets.assets import z3_snapshot

    ref = register(sample_df.iloc[:1000])
    result = run_factory(factory_resources, partition=ref.label, instance=instance, assets=[z3_snapshot])
    assert result.success
    client = MlflowClient(factory_resources["mlflow"].tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("z4-tests").experiment_id],
                                filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    assert run.data.tags["secrets"] == "local files"  # pragma: allowlist secret
    assert not (factory_resources["storage"].folder(result.run_id).scratch / "ledger.json").exists()
