"""adversarial_eval in the factory: the sample passes with evidence in MLflow; a backdoored snapshot is blocked."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from z4_assets.core.contract import Contract
from z4_assets.core.security._backdoor import plant_backdoor
from z4_assets.resources import PolicyStore
from z4_assets.security.assets import adversarial_eval
from z4_assets_tests.conftest import (FACTORY_ASSETS, FAST_TRAIN, check_metadata, check_verdicts,
                                      materialized, run_factory)

SECURITY_GATES = {"poisoning_share", "poisoning_clusters", "evasion_accuracy_drop", "membership_auc",
                  "output_integrity"}
EVIDENCE = {"adv_eval.json", "privacy_eval.json", "output_integrity.json", "robustness_curve.png",
            "security_decision.txt"}


@dg.asset(group_name="promotion_test")
def promotion_candidate(adversarial_eval):
    """Stands in for whatever follows the security stage (registry, signing): it must not run when blocked."""
    return adversarial_eval.path


def _mlflow_run(resources, result):
    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id],
                                filter_string=f"tags.`dagster.run_id` = '{result.run_id}'")
    return client, run


def test_sample_passes_every_security_gate_with_linked_evidence(sample_df, register, factory_resources,
                                                                tmp_path):
    register(sample_df)
    result = run_factory(factory_resources)

    assert result.success
    verdicts = check_verdicts(result)
    assert SECURITY_GATES <= set(verdicts) and all(verdicts.values()), verdicts
    meta = check_metadata(result, "membership_auc")
    assert meta["measured"] <= meta["threshold"] == 0.55
    assert check_metadata(result, "evasion_accuracy_drop")["threshold"] == 0.05
    assert check_metadata(result, "poisoning_share")["measured"] == 0

    mat = result.asset_materializations_for_node("adversarial_eval")[0].metadata
    assert mat["decision"].value == "PASS"
    out = Path(factory_resources["storage"].root) / "runs" / result.run_id / "security"
    assert EVIDENCE <= {p.name for p in out.iterdir()}
    for key in ("adv_eval", "privacy_eval", "output_integrity", "robustness_curve", "security_decision"):
        assert Path(mat[key].value).parent == out and Path(mat[key].value).is_file()
    assert (out / "robustness_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "security_decision.txt").read_text().startswith("PASS\n")

    client, run = _mlflow_run(factory_resources, result)
    assert run.info.status == "FINISHED"
    assert run.data.tags["security_decision"] == "PASS"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "reports/security")}
    assert {f"reports/security/{name}" for name in EVIDENCE} <= logged

    # The same asset called directly with a stricter policy: only the evasion gate fails.
    strict = tmp_path / "strict.yaml"
    strict.write_text("defaults:\n  security:\n    evasion: {max_accuracy_drop: 0.0001}\n")
    resources = {**factory_resources, "policy": PolicyStore(path=str(strict))}
    direct = adversarial_eval(
        context=dg.build_asset_context(resources=resources),
        z3_snapshot=result.output_for_node("z3_snapshot"),
        hygiene_report=result.output_for_node("hygiene_report"),
        trained_model=result.output_for_node("trained_model"))
    checks = {c.check_name: c for c in direct.check_results}
    assert {n for n, c in checks.items() if not c.passed} == {"evasion_accuracy_drop"}
    drop = checks["evasion_accuracy_drop"].metadata
    assert drop["measured"].value > drop["threshold"].value == 0.0001
    assert direct.metadata["decision"] == "FAIL"


def test_planted_backdoor_is_caught_and_blocks_everything_downstream(
        sample_df, sample_contract_doc, register, factory_resources):
    contract = Contract.model_validate(sample_contract_doc)
    poisoned, planted = plant_backdoor(sample_df, contract, {"PAY_AMT4": "max", "PAY_AMT6": "max"},
                                       share=0.02, source_positive=True, seed=11)
    register(poisoned)
    result = dg.materialize(
        [*FACTORY_ASSETS, promotion_candidate], resources=factory_resources, raise_on_error=False,
        run_config={"ops": {"trained_model": {"config": FAST_TRAIN}}})

    verdicts = check_verdicts(result)
    failed = {k for k, ok in verdicts.items() if not ok}
    # the security stage blocks on exactly the poisoning gates; the sibling fairness stage sees the
    # same poisoned labels and may block too (measured: equalized odds on this design)
    assert {k for k in failed if not k.startswith("fairness_")} == {"poisoning_share", "poisoning_clusters"}
    assert "adversarial_eval" in materialized(result)
    assert "promotion_candidate" not in materialized(result)
    assert not result.success

    clusters = check_metadata(result, "poisoning_clusters")["evidence"]["clusters"]
    assert len(clusters) == 1
    assert clusters[0]["pattern"] == {"PAY_AMT4": float(sample_df["PAY_AMT4"].max()),
                                      "PAY_AMT6": float(sample_df["PAY_AMT6"].max())}
    out = Path(factory_resources["storage"].root) / "runs" / result.run_id / "security"
    flagged = set(pd.read_csv(out / "suspicious_rows.csv")["id"])
    from z4_assets.core.broker import load_key, pseudonym

    key = load_key("", factory_resources["broker"].key_file)  # the evidence names rows by pseudonym only
    truth = {pseudonym(v, key) for v in poisoned["ID"].to_numpy()[planted]}
    precision, recall = len(flagged & truth) / len(flagged), len(flagged & truth) / len(truth)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)  # measured: 1.000 / 1.000
    decision = (out / "security_decision.txt").read_text()
    assert decision.startswith("FAIL\n") and "blocking: poisoning_share, poisoning_clusters" in decision

    client, run = _mlflow_run(factory_resources, result)
    assert run.data.tags["security_decision"] == "FAIL"
    assert run.info.status == "FAILED"
    assert "poisoning_share,poisoning_clusters" in run.data.tags["z4.blocked_by"]
    assert np.isclose(run.data.metrics["security.flagged_share"], len(flagged) / len(poisoned), atol=1e-6)
