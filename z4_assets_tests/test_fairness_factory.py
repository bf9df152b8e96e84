"""fairness_report in the factory: the sample's verdicts follow its numbers; a worsened group is named;
every fairness gate fails in a real run and nothing downstream starts."""

from __future__ import annotations

import json

import numpy as np
from mlflow.tracking import MlflowClient

from z4_assets.assets import (FACTORY_ASSETS, adversarial_eval, cleanup_report, fairness_report, model_card,
                              promotion, run_record, signed_package)
from z4_assets.core.fairness._gates import GATES, fairness_gates
from z4_assets.core.policy import FairnessPolicy, load_policy
from z4_assets.core.stages import FAIRNESS
from z4_assets.resources import PolicyStore
from z4_assets_tests.conftest import (DATASET, TARGET, check_metadata, check_verdicts, downstream_of, fork_factory,
                                      materialized, run_factory, started)

OPS = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t}


def _mlflow_run(resources, run_id):
    client = MlflowClient(resources["mlflow"].tracking_uri)
    exp = client.get_experiment_by_name("z4-tests")
    (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`dagster.run_id` = '{run_id}'")
    return client, run


def _expected(report: dict, policy: FairnessPolicy, scope: list[str]) -> dict[str, tuple[float, bool]]:
    """What each disparity gate must say, recomputed from fairness.json alone."""
    out = {}
    for d, (key, op, _) in GATES.items():
        values = [report["attributes"][a]["disparities"][d]["value"] for a in scope]
        worst = max(values) if op == "<=" else min(values)
        out[f"fairness_{d}"] = (round(worst, 6), OPS[op](round(worst, 6), getattr(policy, key)))
    return out


def test_sample_verdicts_follow_the_measured_numbers(sample_factory_run):
    result, run_dir = sample_factory_run["result"], sample_factory_run["run_dir"]
    report = json.loads((run_dir / "fairness" / "fairness.json").read_text())
    policy = load_policy(None, DATASET).fairness
    verdicts = check_verdicts(result)

    assert report["gated_attributes"] == ["SEX", "AGE", "MARRIAGE"]  # EDUCATION is a permitted feature
    for gate, (value, ok) in _expected(report, policy, report["gated_attributes"]).items():
        meta = check_metadata(result, gate)
        assert meta["measured"] == value and verdicts[gate] is ok, (gate, meta)
        assert meta["threshold"] == getattr(policy, GATES[gate.removeprefix("fairness_")][0])
        assert meta["evidence"]["offending_group"] in meta["verdict"]
    assert verdicts["fairness_coverage"] is True
    assert {g["status"] for g in report["attributes"]["AGE"]["groups"].values()} == {"ok", "insufficient"}
    assert report["attributes"]["AGE"]["groups"]["AGE=[60,80]"]["status"] == "insufficient"

    # the strict reading (every attribute gated) is reported from the same numbers, whichever way it goes
    strict = {g.name: g for g in fairness_gates(report, policy.model_copy(update={"gate_attributes": "all"}), [])}
    for gate, (value, ok) in _expected(report, policy, list(report["attributes"])).items():
        assert strict[gate].value == value and strict[gate].passed is ok


def test_sample_fairness_evidence_reaches_mlflow_and_the_asset_metadata(sample_factory_run):
    result, run_dir = sample_factory_run["result"], sample_factory_run["run_dir"]
    mat = result.asset_materializations_for_node("fairness_report")[0].metadata
    assert mat["file_report"].value == str(run_dir / "fairness" / "fairness.json")
    for attr in ("SEX", "AGE", "MARRIAGE", "EDUCATION"):
        png = run_dir / "fairness" / f"fairness_{attr}.png"
        assert mat[f"plot_{attr}"].value == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client, run = _mlflow_run(sample_factory_run["resources"], result.run_id)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "reports/fairness")}
    assert {"reports/fairness/fairness.json", "reports/fairness/fairness_AGE.png"} <= logged
    assert mat["mlflow_run_id"].value == run.info.run_id
    report = json.loads((run_dir / "fairness" / "fairness.json").read_text())
    assert run.data.metrics["fairness.AGE.ks_diff"] == report["attributes"]["AGE"]["disparities"]["ks_diff"]["value"]


def test_a_group_with_systematically_worse_labels_fails_the_gate_naming_it(
        sample_df, register, factory_resources):
    """Labels of the 21-24 age band are shuffled: the model's ranking is worthless for that band."""
    bad = sample_df.copy()
    band = ((bad["AGE"] >= 21) & (bad["AGE"] < 25)).to_numpy()
    bad.loc[band, TARGET] = np.random.default_rng(11).permutation(bad.loc[band, TARGET].to_numpy())
    register(bad)
    # the whole factory but the sibling security stage: whatever stops the release here is fairness
    result = run_factory(factory_resources, assets=[a for a in FACTORY_ASSETS if a is not adversarial_eval])

    verdicts = check_verdicts(result)
    assert verdicts["performance_auc"] is True, "the model as a whole still passes"
    for gate in ("fairness_ks_diff", "fairness_auc_diff"):
        assert verdicts[gate] is False
        meta = check_metadata(result, gate)
        assert meta["evidence"]["offending_group"] == "AGE=[21,25)"
        assert meta["evidence"]["attribute"] == "AGE"
        assert "offending group AGE=[21,25)" in meta["verdict"] and meta["measured"] > meta["threshold"]
    assert "fairness_report" in materialized(result)
    assert not started(result) & downstream_of("fairness_report"), "nothing of the release starts"
    assert not result.success
    _, run = _mlflow_run(factory_resources, result.run_id)
    assert run.info.status == "FAILED" and "fairness_ks_diff" in run.data.tags["z4.blocked_by"]


# AGE in one band leaves it one group (not assessable); no gap between groups is tolerated
STRICT = """\
defaults:
  fairness:
    bins: {AGE: [0, 200]}
    demographic_parity_diff_max: 0.0
    demographic_parity_ratio_min: 1.0
    equalized_odds_diff_max: 0.0
"""


def test_coverage_parity_and_odds_gates_fail_in_a_real_run_and_block_the_release(sample_factory_run, tmp_path):
    """fairness_report alone on the sample run's snapshot, hygiene and model outcomes, then the release."""
    policy = tmp_path / "strict.yaml"
    policy.write_text(STRICT)
    resources = {**fork_factory(sample_factory_run, tmp_path), "policy": PolicyStore(path=str(policy))}
    result = run_factory(resources, assets=[fairness_report, model_card, signed_package, run_record, promotion,
                                            cleanup_report])

    assert not result.success
    verdicts = check_verdicts(result)
    failed = {g for g in FAIRNESS.gate_names if not verdicts[g]}
    assert failed == {"fairness_coverage", "fairness_demographic_parity_diff", "fairness_demographic_parity_ratio",
                      "fairness_equalized_odds_diff"}, verdicts
    coverage = check_metadata(result, "fairness_coverage")
    assert coverage["decision"] == "INSUFFICIENT_EVIDENCE" and list(coverage["evidence"]["unassessable"]) == ["AGE"]
    for gate in failed - {"fairness_coverage"}:
        meta = check_metadata(result, gate)
        assert meta["evidence"]["attribute"] in ("SEX", "MARRIAGE"), meta  # AGE is not comparable
        assert meta["evidence"]["offending_group"] in meta["verdict"]
    assert check_metadata(result, "fairness_demographic_parity_ratio")["measured"] < 1.0
    assert materialized(result) == {"fairness_report"}
    assert not started(result) & downstream_of("fairness_report")
    _, run = _mlflow_run(resources, result.run_id)
    assert run.info.status == "FAILED" and set(run.data.tags["z4.blocked_by"].split(",")) == failed
