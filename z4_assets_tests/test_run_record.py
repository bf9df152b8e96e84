"""The run record is complete or the run is not promotable; and a record rebuilds the same model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from z4_assets.core.record._fields import REQUIRED, missing_fields
from z4_assets.resources import MlflowTracking
from z4_assets_tests.conftest import check_metadata, check_verdicts, materialized, run_factory


@pytest.fixture(scope="module")
def passed(sample_factory_run):
    """The session's shared factory run on the sample (read-only: a rebuild writes elsewhere)."""
    result = sample_factory_run["result"]
    assert result.success, {k: v for k, v in check_verdicts(result).items() if not v}
    return {"result": result, "ref": sample_factory_run["ref"], "res": sample_factory_run["resources"],
            "pkg": sample_factory_run["run_dir"] / "package"}


def test_a_complete_run_carries_every_mandatory_field_and_links_both_ways(passed):
    result, res = passed["result"], passed["res"]
    assert check_verdicts(result)["run_record_complete"] is True
    meta = result.asset_materializations_for_node("run_record")[0].metadata
    client = MlflowClient(res["mlflow"].tracking_uri)
    run = client.get_run(meta["mlflow_run_id"].value)
    tags = run.data.tags
    assert re.fullmatch(r"z4-taiwan_credit_default-\d{8}-\d{4}-([0-9a-f]{8}|nogit)", run.info.run_name)
    assert tags["job_id"] == tags["dagster.run_id"] == result.run_id
    assert tags["dagster_run_url"].endswith(f"/runs/{result.run_id}")
    assert tags["run_id"] == run.info.run_id
    assert tags["container_digest"] == "none: not running in the z4 training image (Z4_CONTAINER_DIGEST unset)"
    assert tags["egress_policy"].startswith("none: host run, no network isolation enforced or observed")
    assert tags["data_time_range"].startswith("none:")
    assert json.loads(tags["split"])["counts"]["test"] > 0
    assert json.loads(tags["seeds"]) == {"train": 7, "split": 1729}
    assert "promotion" in tags["dagster_asset_keys"] or "run_record" in tags["dagster_asset_keys"]
    package = result.asset_materializations_for_node("signed_package")[0].metadata["lineage"].value["package"]
    assert meta["package_sha256"].value == package == hashlib.sha256(passed["pkg"].with_suffix(".tar.gz").read_bytes()).hexdigest()
    assert tags["dagster_partition"] == passed["ref"].label
    missing = missing_fields(tags, run.data.params, run.data.metrics,
                             {a for a in json.loads(Path(passed["pkg"]).parent.joinpath("record", "run_record.json").read_text())["artifacts"]})
    assert missing == []


def test_a_missing_field_fails_the_completeness_gate_naming_it(sample_df, register, factory_resources):
    register(sample_df.iloc[:12000])
    factory_resources["mlflow"] = MlflowTracking(tracking_uri=factory_resources["mlflow"].tracking_uri,
                                                 experiment_name="z4-tests", egress_policy="")
    result = run_factory(factory_resources)
    assert check_verdicts(result)["run_record_complete"] is False
    meta = check_metadata(result, "run_record_complete")
    assert meta["evidence"]["missing"] == ["training/egress_policy"]
    assert "promotion" not in materialized(result)
    client = MlflowClient(factory_resources["mlflow"].tracking_uri)
    assert client.search_registered_models() == []


def test_missing_fields_names_each_kind():
    tags = {"git_sha": "x"}
    missing = missing_fields(tags, {"epochs": 3}, {"test_auc": 0.7, "subgroup.SEX=1.auc": 0.7},
                             {"reports/security/robustness_curve.png"})
    assert "code_and_build/repo_url" in missing and "code_and_build/git_sha" not in missing
    assert "training/epochs" not in missing and "training/seed" in missing
    assert "metrics/subgroup." not in missing and "metrics/test_ks" in missing
    assert "security/reports/security/robustness_curve*" not in missing
    from z4_assets.core.record._fields import FAMILY_FIELDS

    total = sum(len(v) for v in REQUIRED.values())
    assert len(missing_fields({}, {}, {}, set())) == total + len(FAMILY_FIELDS["mlp"])   # no family: mlp's
    logistic = missing_fields({}, {"model_family": "logistic"}, {}, set())
    assert "training/C" in logistic and "training/hidden_sizes" not in logistic
    assert "training/model_code_sha256" in logistic


@pytest.fixture
def rebuild_env(passed, tmp_path) -> dict:
    """`z4 rebuild` of the shared run: its factory root and pseudonymisation key are only read; the
    rebuild's MLflow run, its access-log lines and any change to the snapshot go to TMP_PATH."""
    res = passed["res"]
    z3 = tmp_path / "z3"
    shutil.copytree(res["z3"].root, z3, symlinks=True)
    return {"Z4_Z3_ROOT": str(z3), "Z4_FACTORY_ROOT": res["storage"].root,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "Z4_MLFLOW_EXPERIMENT": "z4-tests",
            "Z4_PSEUDONYM_KEY_FILE": res["broker"].key_file, "Z4_ACCESS_LOG": str(tmp_path / "access_log.jsonl")}


def _rebuild(passed, env: dict, *extra, env_extra=None):
    return subprocess.run([sys.executable, "-m", "z4_assets.cli", "rebuild", passed["result"].run_id, *extra],
                          capture_output=True, text=True, env={**os.environ, **env, **(env_extra or {})},
                          timeout=600)


def _snapshot_copy(passed, env: dict) -> Path:
    """The rebuild's copy of the shared run's snapshot folder."""
    return Path(env["Z4_Z3_ROOT"]) / Path(passed["ref"].path).relative_to(passed["res"]["z3"].root)


def test_rebuild_is_bit_identical_and_recorded(passed, rebuild_env, signing_key):
    repro = json.loads((passed["pkg"] / "repro" / "manifest.json").read_text())
    assert repro["dataset_hash"] == passed["ref"].manifest["hash"] and repro["seeds"]["train"] == 7
    assert os.access(passed["pkg"] / "repro" / "run.sh", os.X_OK)
    proc = _rebuild(passed, rebuild_env, "--key", str(signing_key.with_name("signing.pub.pem")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("IDENTICAL") and repro["state_dict_sha256"] in proc.stdout
    assert "package verified" in proc.stdout
    client = MlflowClient(rebuild_env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("z4-tests").experiment_id],
                              filter_string=f"tags.rebuild_of = '{repro['mlflow_run_id']}'")
    assert len(runs) == 1 and runs[0].data.tags["rebuild_result"] == "IDENTICAL"
    reads = [json.loads(x) for x in Path(rebuild_env["Z4_ACCESS_LOG"]).read_text().splitlines()]
    rebuilt = [x for x in reads if x["run_id"] == f"rebuild-of-{passed['result'].run_id}"]
    assert [(x["reader"], x["decision"], x["pseudonymised"]) for x in rebuilt] == [("z4 rebuild", "granted", ["ID"])]


def test_rebuild_with_another_seed_is_different_with_metric_deltas(passed, rebuild_env):
    proc = _rebuild(passed, rebuild_env, "--seed", "99")
    assert proc.returncode == 1
    assert proc.stdout.startswith("DIFFERENT") and "test_auc:" in proc.stdout and "delta" in proc.stdout


def test_rebuild_refuses_a_changed_or_missing_snapshot_and_code_drift(passed, rebuild_env):
    drift = _rebuild(passed, rebuild_env, env_extra={"Z4_GIT_SHA": "0" * 40})
    assert drift.returncode == 2 and "code is at 000000000000" in drift.stderr and "--allow-code-drift" in drift.stderr
    snapshot = _snapshot_copy(passed, rebuild_env)
    data = snapshot / passed["ref"].data_path.name
    os.chmod(data, 0o644)
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 3] ^= 0x10
    data.write_bytes(bytes(blob))
    changed = _rebuild(passed, rebuild_env)
    assert changed.returncode == 2 and "changed" in changed.stderr and "Traceback" not in changed.stderr
    shutil.rmtree(snapshot)
    missing = _rebuild(passed, rebuild_env)
    assert missing.returncode == 2 and "is missing" in missing.stderr
