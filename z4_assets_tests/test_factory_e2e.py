"""The whole factory on the real sample: gates, evidence, MLflow record, the partition trained, drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from z4_assets.assets import hygiene_report, trained_model, z3_snapshot
from z4_assets.core.outcome import (HygieneOutcome, ModelOutcome, PackageOutcome, SnapshotOutcome,
                                     StageOutcome)
from z4_assets.core.run_folder import FactoryRoot
from z4_assets.core.stages import all_gate_names
from z4_assets_tests.conftest import (ALL_ASSETS, TARGET, check_metadata, check_verdicts, materialized,
                                      run_factory)

ALL_GATES = {"snapshot_hash", "snapshot_signature", "contract", "legal_basis", "duplicate_rows", "conflicting_labels",
             "impossible_values", "target_leakage", "temporal_leakage", "holdout_leak", "drift",
             "drift_missingness", "drift_new_features",
             "performance_auc", "performance_ks", "operating_point", "artifact_parity", "fairness_coverage", "fairness_ks_diff",
             "fairness_auc_diff", "fairness_demographic_parity_diff", "fairness_demographic_parity_ratio",
             "fairness_equalized_odds_diff", "model_card_complete", "package_verified", "release_gates_pass",
             "cleanup_complete",
             "poisoning_share", "poisoning_clusters", "evasion_accuracy_drop", "membership_auc",
             "attribute_inference_gain", "output_integrity", "run_record_complete", "trained_in_signed_image",
             "purpose"}


def _mlflow_run(resources, result):
    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    assert len(runs) == 1, "exactly one MLflow run per factory run"
    return client, runs[0]


def test_sample_snapshot_becomes_a_tracked_model(sample_factory_run):
    result, ref, resources = sample_factory_run["result"], sample_factory_run["ref"], sample_factory_run["resources"]

    assert result.success
    verdicts = check_verdicts(result)
    assert set(verdicts) == ALL_GATES == set(all_gate_names()) and all(verdicts.values()), verdicts
    assert materialized(result) == ALL_ASSETS
    assert result.dagster_run.tags["dagster/partition"] == ref.label
    auc = check_metadata(result, "performance_auc")
    assert auc["measured"] >= auc["threshold"] == 0.70

    client, run = _mlflow_run(resources, result)
    assert run.info.status == "FINISHED"
    tags, params = run.data.tags, run.data.params
    assert tags["dataset_id"] == "taiwan_credit_default"
    assert tags["dataset_hash"] == ref.manifest["hash"]
    assert tags["snapshot_at"] == ref.manifest["snapshot_at"]
    assert tags["dagster_partition"] == ref.label
    assert tags["seed"] == "7" and params["seed"] == "7"
    assert tags["git_sha"]
    assert params["epochs"] == "3" and "learning_rate" in params
    assert run.data.metrics["test_auc"] == auc["measured"] or abs(run.data.metrics["test_auc"] - auc["measured"]) < 1e-5
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "reports/hygiene")}
    assert "reports/hygiene/hygiene_report.json" in artifacts
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.safetensors", "model/feature_spec.json"} <= model_files

    factory = Path(resources["storage"].root)
    run_dir = sample_factory_run["run_dir"]
    report = json.loads((run_dir / "hygiene" / "hygiene_report.json").read_text())
    assert report["passed"] and report["dataset_hash"] == ref.manifest["hash"]
    config = json.loads((run_dir / "model" / "model_config.json").read_text())
    assert len(config["state_dict_sha256"]) == 64
    spec = json.loads((run_dir / "model" / "feature_spec.json").read_text())
    assert not {"SEX", "AGE", "MARRIAGE", "ID", TARGET} & {c["name"] for c in spec["columns"]}
    assert "EDUCATION" in {c["name"] for c in spec["columns"]}  # the contract allows it
    baseline = json.loads(FactoryRoot(factory).baseline("taiwan_credit_default").read_text())
    assert baseline["snapshot"] == ref.label

    # every stage's outcome is kept for the partition, each bound to this run and the same content
    lineage, kinds = None, {"z3_snapshot": SnapshotOutcome, "hygiene_report": HygieneOutcome,
                            "trained_model": ModelOutcome, "signed_package": PackageOutcome}
    for asset in ALL_ASSETS:
        kind = kinds.get(asset, StageOutcome)
        outcome = kind.model_validate_json(FactoryRoot(factory).outcome(asset, ref.label).read_bytes())
        assert (outcome.partition, outcome.run_id, outcome.passed) == (ref.label, result.run_id, True), asset
        lineage = outcome.lineage if lineage is None else lineage.merge(outcome.lineage)
    assert lineage.snapshot == ref.manifest["hash"] and lineage.model == config["state_dict_sha256"]

    # cleanup_report ran last: records in the run folder and the MLflow run, the split is RET-7
    manifest = json.loads((run_dir / "postrun" / "retention_manifest.json").read_text())
    classes = {e["path"]: e["class"] for e in manifest["entries"]}
    assert classes["model/model.safetensors"] == "RET-90" and classes["intermediate/split.parquet"] == "RET-7"
    assert classes["postrun/cleanup_report.json"] == "RET-3650"
    assert not (factory / "scratch" / result.run_id).exists()
    assert {"postrun/cleanup_report.json", "postrun/retention_manifest.json"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "postrun")}
    assert tags["z4.cleanup.dagster_run_id"] == result.run_id and tags["z4.cleanup.complete"] == "true"


def test_the_named_partition_is_the_snapshot_trained(sample_df, register, factory_resources):
    older = register(sample_df.iloc[:12000])
    newer = register(sample_df.iloc[12000:])
    assert factory_resources["z3"].resolve().label == newer.label  # what a run takes unless one is named
    result = run_factory(factory_resources, partition=older.label,
                         assets=[z3_snapshot, hygiene_report, trained_model])

    assert result.success and materialized(result) == {"z3_snapshot", "hygiene_report", "trained_model"}
    assert result.asset_materializations_for_node("z3_snapshot")[0].metadata["snapshot_id"].value == older.snapshot_id
    trained = result.asset_materializations_for_node("trained_model")[0]
    assert trained.partition == older.label
    assert trained.metadata["lineage"].value["snapshot"] == older.manifest["hash"] != newer.manifest["hash"]
    outcomes = Path(factory_resources["storage"].root) / "outcomes"
    assert sorted(p.name for p in outcomes.rglob("*.json")) == [f"{older.label}.json"] * 3


@pytest.mark.parametrize("key, expect", [
    ("no_such_dataset@{snapshot_id}", "unknown dataset id 'no_such_dataset'"),
    ("{dataset_id}@20990101T000000Z-0000000000000000", "no snapshot '20990101T000000Z-0000000000000000'"),
    ("{dataset_id}", "invalid snapshot key 'taiwan_credit_default': expected <dataset_id>@<snapshot_id>"),
])
def test_an_unknown_or_malformed_partition_fails_in_one_line_and_leaves_nothing(
        sample_df, register, factory_resources, key, expect):
    ref = register(sample_df.iloc[:3000])
    result = run_factory(factory_resources, partition=key.format(dataset_id=ref.dataset_id,
                                                                 snapshot_id=ref.snapshot_id))
    assert not result.success
    assert materialized(result) == set()
    failure = result.failure_data_for_node("z3_snapshot").user_failure_data.description
    assert expect in failure and "\n" not in failure and "Traceback" not in failure, failure
    factory = Path(factory_resources["storage"].root)
    left = sorted(str(p.relative_to(factory)) for p in factory.rglob("*")) if factory.exists() else []
    # no outcome, no run folder, no scratch: only the audit chain, which records the refusal (issue 19)
    assert [p for p in left if p != "audit" and not p.startswith("audit/")] == [], left
    events = [json.loads(line) for line in (factory / "audit" / "events.jsonl").read_text().splitlines()]
    crashed = [e for e in events if e["type"].endswith("stage.crashed")]
    assert len(crashed) == 1 and crashed[0]["data"]["stage"] == "z3_snapshot", [e["type"] for e in events]
    client = MlflowClient(factory_resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    assert exp is None or client.search_runs([exp.experiment_id]) == []


def test_performance_gate_blocks_a_model_trained_on_noise_and_mlflow_run_is_failed(
        sample_df, register, factory_resources):
    noisy = sample_df.copy()
    noisy[TARGET] = np.random.default_rng(5).permutation(noisy[TARGET].to_numpy())
    register(noisy)
    result = run_factory(factory_resources)

    verdicts = check_verdicts(result)
    assert verdicts["performance_auc"] is False
    meta = check_metadata(result, "performance_auc")
    assert meta["measured"] < 0.6 and meta["threshold"] == 0.70
    assert not result.success
    _, run = _mlflow_run(factory_resources, result)
    assert run.info.status == "FAILED", "a blocked run must not be left RUNNING"
    assert "performance_auc" in run.data.tags["z4.blocked_by"]


def test_run_blocked_at_the_snapshot_gate_still_closes_its_mlflow_run(
        sample_df, sample_contract_doc, register, factory_resources):
    register(sample_df.drop(columns=["AGE"]).iloc[:2000], check_contract=False)
    result = run_factory(factory_resources)
    assert check_verdicts(result)["contract"] is False
    _, run = _mlflow_run(factory_resources, result)
    assert run.info.status == "FAILED"
    assert run.data.tags["z4.blocked_by"] == "contract"


def test_drift_against_the_first_accepted_snapshot(sample_df, register, factory_resources):
    register(sample_df)
    first = run_factory(factory_resources, assets=[z3_snapshot, hygiene_report])  # hygiene sets the baseline
    assert first.success
    shifted = sample_df.copy()
    shifted["LIMIT_BAL"] = (shifted["LIMIT_BAL"] * 3).clip(upper=9_000_000)
    shifted["ID"] = shifted["ID"] + 100_000
    register(shifted)
    second = run_factory(factory_resources)

    assert check_verdicts(second)["drift"] is False
    meta = check_metadata(second, "drift")
    assert meta["verdict"].startswith("FAILED: highest PSI against baseline (LIMIT_BAL; factory definition)")
    assert meta["measured"] > meta["threshold"] == 0.25
    assert meta["evidence"]["per_feature"]["PAY_0"]["psi"] < 0.01
    assert "trained_model" not in materialized(second)
    plot = second.asset_materializations_for_node("hygiene_report")[0].metadata
    figure = json.loads(Path(plot["drift_per_feature"].value).with_suffix(".json").read_text())
    assert figure["flagged"] == ["LIMIT_BAL"] and figure["features"][0] == "LIMIT_BAL"
    assert "data:image/png;base64," in plot["drift_per_feature_image"].value
