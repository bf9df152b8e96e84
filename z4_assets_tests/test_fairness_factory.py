"""fairness_report in the factory: the sample's verdicts follow its numbers; a worsened group is named."""

from __future__ import annotations

import json

import numpy as np
from mlflow.tracking import MlflowClient

from z4_assets.core.fairness._gates import GATES, fairness_gates
from z4_assets.core.policy import load_policy
from z4_assets_tests.conftest import (DATASET, TARGET, check_metadata, check_verdicts, materialized,
                                      run_factory)

OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}


def _mlflow_run(resources, run_id):
    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{run_id}'")
    return client, run


def _expected(report: dict, policy: dict, scope: list[str]) -> dict[str, tuple[float, bool]]:
    """What each disparity gate must say, recomputed from fairness.json alone."""
    out = {}
    for d, (key, op, _) in GATES.items():
        values = [report["attributes"][a]["disparities"][d]["value"] for a in scope]
        worst = max(values) if op == "<=" else min(values)
        out[f"fairness_{d}"] = (round(worst, 6), OPS[op](round(worst, 6), policy[key]))
    return out


def test_sample_verdicts_follow_the_measured_numbers(sample_factory_run):
    result, run_dir = sample_factory_run["result"], sample_factory_run["run_dir"]
    report = json.loads((run_dir / "fairness" / "fairness.json").read_text())
    policy = load_policy(None, DATASET)["fairness"]
    verdicts = check_verdicts(result)

    assert report["gated_attributes"] == ["SEX", "AGE", "MARRIAGE"]  # EDUCATION is a permitted feature
    for gate, (value, ok) in _expected(report, policy, report["gated_attributes"]).items():
        meta = check_metadata(result, gate)
        assert meta["measured"] == value and verdicts[gate] is ok, (gate, meta)
        assert meta["threshold"] == policy[GATES[gate.removeprefix("fairness_")][0]]
        assert meta["evidence"]["offending_group"] in meta["verdict"]
    assert verdicts["fairness_coverage"] is True
    assert {g["status"] for g in report["attributes"]["AGE"]["groups"].values()} == {"ok", "insufficient"}
    assert report["attributes"]["AGE"]["groups"]["AGE=[60,80]"]["status"] == "insufficient"

    # the strict reading (every attribute gated) is reported from the same numbers, whichever way it goes
    strict = {g.name: g for g in fairness_gates(report, {**policy, "gate_attributes": "all"}, [])}
    for gate, (value, ok) in _expected(report, policy, list(report["attributes"])).items():
        assert strict[gate].value == value and strict[gate].passed is ok


def test_sample_fairness_evidence_reaches_mlflow_and_the_asset_metadata(sample_factory_run):
    result, run_dir = sample_factory_run["result"], sample_factory_run["run_dir"]
    mat = result.asset_materializations_for_node("fairness_report")[0].metadata
    assert mat["report"].value == str(run_dir / "fairness" / "fairness.json")
    for attr in ("SEX", "AGE", "MARRIAGE", "EDUCATION"):
        png = run_dir / "fairness" / f"fairness_{attr}.png"
        assert mat[f"plot_{attr}"].value == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client, run = _mlflow_run(sample_factory_run["resources"], result.run_id)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "reports/fairness")}
    assert {"reports/fairness/fairness.json", "reports/fairness/fairness_AGE.png"} <= logged
    assert mat["mlflow_artifacts"].value == f"runs:/{run.info.run_id}/reports/fairness"
    report = json.loads((run_dir / "fairness" / "fairness.json").read_text())
    assert run.data.metrics["fairness.AGE.ks_diff"] == report["attributes"]["AGE"]["disparities"]["ks_diff"]["value"]


def test_a_group_with_systematically_worse_labels_fails_the_gate_naming_it(
        sample_df, register, factory_resources):
    """Labels of the 21-24 age band are shuffled: the model's ranking is worthless for that band."""
    bad = sample_df.copy()
    band = ((bad["AGE"] >= 21) & (bad["AGE"] < 25)).to_numpy()
    bad.loc[band, TARGET] = np.random.default_rng(11).permutation(bad.loc[band, TARGET].to_numpy())
    register(bad)
    result = run_factory(factory_resources)

    verdicts = check_verdicts(result)
    assert verdicts["performance_auc"] is True, "the model as a whole still passes"
    for gate in ("fairness_ks_diff", "fairness_auc_diff"):
        assert verdicts[gate] is False
        meta = check_metadata(result, gate)
        assert meta["evidence"]["offending_group"] == "AGE=[21,25)"
        assert meta["evidence"]["attribute"] == "AGE"
        assert "offending group AGE=[21,25)" in meta["verdict"] and meta["measured"] > meta["threshold"]
    assert "fairness_report" in materialized(result) and "model_card" not in materialized(result)
    assert not result.success
    _, run = _mlflow_run(factory_resources, result.run_id)
    assert run.info.status == "FAILED" and "fairness_ks_diff" in run.data.tags["z4.blocked_by"]
