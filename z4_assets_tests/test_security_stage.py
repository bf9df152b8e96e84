"""adversarial_eval in the factory: the sample passes with evidence in MLflow; every security gate fails
in a real run (a strict policy, a backdoored snapshot) and nothing downstream starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from z4_assets.assets import (FACTORY_ASSETS, adversarial_eval, cleanup_report, fairness_report, model_card,
                              promotion, run_record, signed_package)
from z4_assets.core.contract import Contract
from z4_assets.core.security._backdoor import plant_backdoor
from z4_assets.core.stages import SECURITY
from z4_assets.resources import PolicyStore
from z4_assets_tests.conftest import (check_metadata, check_verdicts, downstream_of, fork_factory, materialized,
                                      run_factory, started)

SECURITY_GATES = set(SECURITY.gate_names)
EVIDENCE = {"adv_eval.json", "privacy_eval.json", "output_integrity.json", "robustness_curve.png",
            "security_decision.txt"}
RELEASE = [model_card, signed_package, run_record, promotion, cleanup_report]


def _mlflow_run(resources, result):
    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id],
                                filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    return client, run


def test_sample_passes_every_security_gate_with_linked_evidence(sample_factory_run):
    result, resources, run_dir = (sample_factory_run[k] for k in ("result", "resources", "run_dir"))
    assert result.success
    verdicts = check_verdicts(result)
    assert SECURITY_GATES == {"poisoning_share", "poisoning_clusters", "evasion_accuracy_drop", "membership_auc",
                              "attribute_inference_gain", "output_integrity"}
    assert SECURITY_GATES <= set(verdicts) and all(verdicts[g] for g in SECURITY_GATES), verdicts
    meta = check_metadata(result, "membership_auc")
    assert meta["measured"] <= meta["threshold"] == 0.55
    assert check_metadata(result, "evasion_accuracy_drop")["threshold"] == 0.05
    assert check_metadata(result, "poisoning_share")["measured"] == 0
    gain = check_metadata(result, "attribute_inference_gain")
    assert gain["measured"] <= gain["threshold"] == 0.03
    privacy = json.loads((run_dir / "security" / "privacy_eval.json").read_text())["attribute_inference"]
    assert set(privacy["per_attribute"]) == {"SEX", "AGE", "MARRIAGE"}, "every attribute kept out of the model"
    card = (run_dir / "governance" / "model_card.md").read_text()
    for attr, e in privacy["per_attribute"].items():
        assert {"accuracy_with_model", "accuracy_baseline", "gain"} <= set(e), e
        row = next(line for line in card.splitlines()  # the card escapes markdown: read it back unescaped
                   if line.startswith(f"| attribute_inference.per_attribute.{attr} |")).replace("\\", "")
        assert f'"accuracy_with_model": {e["accuracy_with_model"]}' in row and f'"gain": {e["gain"]}' in row, row

    mat = result.asset_materializations_for_node("adversarial_eval")[0].metadata
    assert mat["decision"].value == "PASS"
    out = run_dir / "security"
    assert EVIDENCE <= {p.name for p in out.iterdir()}
    for key in ("file_adv_eval", "file_privacy_eval", "file_output_integrity", "robustness_curve",
                "file_security_decision"):
        assert Path(mat[key].value).parent == out and Path(mat[key].value).is_file()
    assert (out / "robustness_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "security_decision.txt").read_text().startswith("PASS\n")
    trained = result.asset_materializations_for_node("trained_model")[0].metadata
    assert mat["lineage"].value["model"] == trained["state_dict_sha256"].value, "evaluated the model it was given"

    client, run = _mlflow_run(resources, result)
    assert run.info.status == "FINISHED"
    assert run.data.tags["security_decision"] == "PASS"
    assert mat["mlflow_run_id"].value == run.info.run_id
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "reports/security")}
    assert {f"reports/security/{name}" for name in EVIDENCE} <= logged


STRICT = """\
defaults:
  security:
    evasion: {max_accuracy_drop: 0.0001}
    membership: {max_attack_auc: 0.4}
    attribute_inference: {max_accuracy_gain: -1.0}
    integrity: {min_distinct_scores: 1000000000}
"""


def test_a_strict_policy_fails_evasion_membership_and_integrity_and_blocks_the_release(sample_factory_run,
                                                                                        tmp_path):
    """adversarial_eval alone on the sample run's snapshot, hygiene and model outcomes, then the release."""
    policy = tmp_path / "strict.yaml"
    policy.write_text(STRICT)
    resources = {**fork_factory(sample_factory_run, tmp_path), "policy": PolicyStore(path=str(policy))}
    result = run_factory(resources, assets=[adversarial_eval, *RELEASE])

    assert not result.success
    verdicts = check_verdicts(result)
    assert {g for g in SECURITY_GATES if not verdicts[g]} == {"evasion_accuracy_drop", "membership_auc",
                                                              "attribute_inference_gain", "output_integrity"}, verdicts
    gain = check_metadata(result, "attribute_inference_gain")
    assert gain["measured"] > gain["threshold"] == -1.0
    drop = check_metadata(result, "evasion_accuracy_drop")
    assert drop["measured"] > drop["threshold"] == 0.0001
    auc = check_metadata(result, "membership_auc")
    assert auc["measured"] > auc["threshold"] == 0.4
    integrity = check_metadata(result, "output_integrity")
    assert integrity["measured"] == 1 and integrity["evidence"]["failed"] == ["distinct_scores"]
    assert materialized(result) == {"adversarial_eval"}
    assert not started(result) & downstream_of("adversarial_eval"), "nothing of the release starts"

    mat = result.asset_materializations_for_node("adversarial_eval")[0].metadata
    shared = sample_factory_run["result"].asset_materializations_for_node("trained_model")[0].metadata
    assert mat["lineage"].value["model"] == shared["state_dict_sha256"].value, "the stored model was evaluated"
    assert mat["decision"].value == "FAIL"
    decision = Path(mat["file_security_decision"].value).read_text()
    assert decision.startswith("FAIL\n")
    assert "blocking: evasion_accuracy_drop, membership_auc, attribute_inference_gain, output_integrity" in decision
    assert Path(mat["file_security_decision"].value).is_relative_to(tmp_path), "the shared run is untouched"
    _, run = _mlflow_run(resources, result)
    assert run.info.status == "FAILED" and run.data.tags["security_decision"] == "FAIL"
    assert set(run.data.tags["z4.blocked_by"].split(",")) == {"evasion_accuracy_drop", "membership_auc",
                                                              "attribute_inference_gain", "output_integrity"}


def test_planted_backdoor_is_caught_and_blocks_everything_downstream(
        sample_df, sample_contract_doc, register, factory_resources):
    contract = Contract.model_validate(sample_contract_doc)
    poisoned, planted = plant_backdoor(sample_df, contract, {"PAY_AMT4": "max", "PAY_AMT6": "max"},
                                       share=0.02, source_positive=True, seed=11)
    register(poisoned)
    # the whole factory but the sibling fairness stage (it sees the same poisoned labels and may block
    # too): whatever stops the release here is the security stage
    result = run_factory(factory_resources, assets=[a for a in FACTORY_ASSETS if a is not fairness_report])

    verdicts = check_verdicts(result)
    assert {k for k, ok in verdicts.items() if not ok} == {"poisoning_share", "poisoning_clusters"}
    assert "adversarial_eval" in materialized(result)
    assert not started(result) & downstream_of("adversarial_eval")
    assert not result.success

    clusters = check_metadata(result, "poisoning_clusters")["evidence"]["clusters"]
    assert len(clusters) == 1
    assert clusters[0]["pattern"] == {"PAY_AMT4": float(sample_df["PAY_AMT4"].max()),
                                      "PAY_AMT6": float(sample_df["PAY_AMT6"].max())}
    out = factory_resources["storage"].folder(result.run_id).stage(SECURITY.folder, create=False)
    flagged = set(pd.read_csv(out.suspicious_rows)["id"])
    from z4_assets.core.broker import load_key, pseudonym

    key = load_key("", factory_resources["broker"].key_file)  # the evidence names rows by pseudonym only
    truth = {pseudonym(v, key) for v in poisoned["ID"].to_numpy()[planted]}
    precision, recall = len(flagged & truth) / len(flagged), len(flagged & truth) / len(truth)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)  # measured: 1.000 / 1.000
    decision = out.security_decision.read_text()
    assert decision.startswith("FAIL\n") and "blocking: poisoning_share, poisoning_clusters" in decision

    client, run = _mlflow_run(factory_resources, result)
    assert run.data.tags["security_decision"] == "FAIL"
    assert run.info.status == "FAILED"
    assert "poisoning_share,poisoning_clusters" in run.data.tags["z4.blocked_by"]
    assert np.isclose(run.data.metrics["security.flagged_share"], len(flagged) / len(poisoned), atol=1e-6)
