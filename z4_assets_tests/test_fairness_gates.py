"""Each fairness gate fails on data built to breach it, and names the offending group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.contract import Contract
from z4_assets.core.fairness._gates import fairness_gates
from z4_assets.core.fairness._report import build_report
from z4_assets.core.policy import load_policy

# the policy's fairness section as the stage passes it (a FairnessPolicy), with fewer resamples
POLICY = load_policy(None, "synthetic").fairness.model_copy(update={"bootstrap_resamples": 100})


def _contract(feature_attrs: tuple[str, ...] = ()) -> Contract:
    return Contract.model_validate({
        "dataset_id": "synthetic", "target": {"column": "y", "positive": 1},
        "sensitive": {a: {"legal_basis": "legal_obligation", "use_as_feature": a in feature_attrs}
                      for a in ("G", "H")},
        "columns": {"G": {"dtype": "string"}, "H": {"dtype": "string"},
                    "y": {"dtype": "integer", "categories": [0, 1]}},
    })


def _data(n: int = 6000, seed: int = 0, tweak=None):
    """Groups a, b, c of G (H independent); a score that separates the classes equally in each."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"G": rng.choice(["a", "b", "c"], n), "H": rng.choice(["u", "v"], n)})
    y = (rng.random(n) < 0.3).astype(np.int64)
    score = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, n), 0, 1)
    if tweak:
        score = tweak(df, y, score, rng)
    df["y"] = y
    return df, y, score


def _gates(df, y, score, contract=None, **policy):
    result = build_report(df, contract or _contract(), y, score, POLICY.model_copy(update=policy))
    return {g.name: g for g in result.gates}, result.report


def test_balanced_groups_pass_every_gate():
    gates, report = _gates(*_data())
    assert all(g.passed for g in gates.values()), {n: g.summary for n, g in gates.items() if not g.passed}
    assert report["attributes"]["G"]["assessable"] and report["intersections"]["G x H"]["groups_compared"] == 6


def _noise_for_c(df, y, score, rng):
    c = (df["G"] == "c").to_numpy()
    score[c] = rng.random(c.sum())  # the model knows nothing about group c
    return score


def _flag_c(df, y, score, rng):
    return np.where((df["G"] == "c").to_numpy(), np.clip(score + 0.35, 0, 1), score)


def _miss_positives_in_c(df, y, score, rng):
    c = (df["G"] == "c").to_numpy() & (y == 1)
    return np.where(c, score - 0.2, score)


@pytest.mark.parametrize("tweak, gate", [
    (_noise_for_c, "fairness_ks_diff"),
    (_noise_for_c, "fairness_auc_diff"),
    (_flag_c, "fairness_demographic_parity_diff"),
    (_flag_c, "fairness_demographic_parity_ratio"),
    (_miss_positives_in_c, "fairness_equalized_odds_diff"),
])
def test_gate_fails_and_names_the_group(tweak, gate):
    gates, report = _gates(*_data(tweak=tweak))
    g = gates[gate]
    assert not g.passed, g.summary
    assert g.details["offending_group"] == "G=c" and g.details["attribute"] == "G"
    assert "offending group G=c" in g.summary
    d = report["attributes"]["G"]["disparities"][gate.removeprefix("fairness_")]
    assert g.value == round(d["value"], 6) and d["ci"][0] <= d["ci"][1]


def test_coverage_is_insufficient_evidence_when_an_attribute_has_one_comparable_group():
    def _rare_h(df, y, score, rng):
        df["H"] = np.where(np.arange(len(df)) < 40, "v", "u")  # 40 rows of v: too few to compare
        return score

    gates, report = _gates(*_data(tweak=_rare_h))
    g = gates["fairness_coverage"]
    assert not g.passed and g.value is None and g.verdict == "INSUFFICIENT_EVIDENCE" and "H: only 1 group" in g.summary
    assert report["attributes"]["H"]["groups"]["H=v"]["status"] == "insufficient"
    assert "40 rows" in report["attributes"]["H"]["groups"]["H=v"]["reason"]


def test_gate_scope_protected_attributes_or_all():
    df, y, score = _data(tweak=_noise_for_c)
    as_feature = _contract(feature_attrs=("G",))
    protected, _ = _gates(df, y, score, as_feature)
    strict, _ = _gates(df, y, score, as_feature, gate_attributes="all")
    assert protected["fairness_ks_diff"].passed and protected["fairness_ks_diff"].details["gated"] == ["H"]
    assert not strict["fairness_ks_diff"].passed


def test_gate_on_point_or_either_end_of_the_interval():
    gates, report = _gates(*_data(tweak=_noise_for_c))
    d = report["attributes"]["G"]["disparities"]["ks_diff"]
    lo, hi = d["ci"]
    threshold = (d["value"] + hi) / 2  # above the point estimate, below the upper end
    policy = POLICY.model_copy(update={"ks_diff_max": threshold})
    verdict = {on: {g.name: g for g in fairness_gates(report, policy.model_copy(update={"gate_on": on}),
                                                      ["G", "H"])}
               ["fairness_ks_diff"] for on in ("point", "ci_low", "ci_high")}
    assert verdict["point"].passed and verdict["ci_low"].passed and not verdict["ci_high"].passed
    assert verdict["ci_high"].value == round(hi, 6)


def test_intersections_are_gated_only_on_request():
    def _noise_for_c_and_v(df, y, score, rng):
        m = ((df["G"] == "c") & (df["H"] == "v")).to_numpy()
        score[m] = rng.random(m.sum())
        return score

    df, y, score = _data(n=12000, tweak=_noise_for_c_and_v)
    _, report = _gates(df, y, score)
    cell = report["intersections"]["G x H"]["disparities"]["auc_diff"]
    marginal = max(report["attributes"][a]["disparities"]["auc_diff"]["value"] for a in ("G", "H"))
    assert cell["offending_group"] == "G=c & H=v" and cell["value"] > marginal
    policy = POLICY.model_copy(update={"auc_diff_max": (cell["value"] + marginal) / 2})
    default = {g.name: g for g in fairness_gates(report, policy, ["G", "H"])}["fairness_auc_diff"]
    crossed = {g.name: g for g in fairness_gates(report, policy.model_copy(update={"gate_intersections": True}),
                                                 ["G", "H"])}["fairness_auc_diff"]
    assert default.passed and default.value == round(marginal, 6)
    assert not crossed.passed and crossed.details["offending_group"] == "G=c & H=v"
    assert crossed.details["attribute"] == "G x H"


def test_without_sensitive_attributes_nothing_is_compared_and_nothing_blocks():
    contract = Contract.model_validate({
        "dataset_id": "synthetic", "target": {"column": "y", "positive": 1},
        "columns": {"G": {"dtype": "string"}, "H": {"dtype": "string"},
                    "y": {"dtype": "integer", "categories": [0, 1]}}})
    gates, report = _gates(*_data(), contract)
    assert report["attributes"] == {} and report["intersections"] == {}
    assert all(g.passed for g in gates.values())
    assert gates["fairness_ks_diff"].value is None, "nothing measured, nothing reported"
    assert "not applicable" in gates["fairness_ks_diff"].summary
