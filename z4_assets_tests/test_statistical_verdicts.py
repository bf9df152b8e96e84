"""Statistical gates state their evidence: confidence intervals, the three-way verdict on them, and
the operating-point gate that no degenerate model passes (unit level; the factory runs are in
test_statistical_verdicts_factory.py)."""

from __future__ import annotations

import numpy as np
import pytest

from z4_assets.core.confidence import auc_ks_intervals, decide, exact_auc_ks, wilson
from z4_assets.core.gates import FAIL, INSUFFICIENT, PASS, GateSpec
from z4_assets.core.training._gates import training_gates

SPEC = GateSpec("performance_auc", "test AUC")


def _scores(n: int, auc_shift: float, base: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < base).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + auc_shift * y - 1.0)))
    return y, p


def test_bootstrap_interval_covers_the_exact_estimate_and_shrinks_with_rows():
    widths = {}
    for n in (300, 3000, 30000):
        y, p = _scores(n, 1.0, 0.2)
        ci = auc_ks_intervals(y, p, 0.95, 500, 1)
        exact = exact_auc_ks(y, p)
        for k in ("auc", "ks"):
            assert ci[k][0] < exact[k] < ci[k][1], (n, k, ci, exact)
        widths[n] = ci["auc"][1] - ci["auc"][0]
    assert widths[300] > 2.5 * widths[3000] > 2.5 * 2.5 * widths[30000] * 0.9  # ~ 1/sqrt(n)
    assert auc_ks_intervals(*_scores(3000, 1.0, 0.2), 0.95, 500, 1) == \
        auc_ks_intervals(*_scores(3000, 1.0, 0.2), 0.95, 500, 1), "seeded: the same interval twice"


def test_the_bootstrap_interval_has_its_nominal_coverage():
    """Over 200 samples of 400 rows from one population, the 90% interval holds the population AUC
    about 90% of the time (a binomial 200-draw band: 0.84..0.96)."""
    y_big, p_big = _scores(400_000, 1.0, 0.2, seed=99)
    truth = exact_auc_ks(y_big, p_big)["auc"]
    hits = 0
    for s in range(200):
        y, p = _scores(400, 1.0, 0.2, seed=s)
        lo, hi = auc_ks_intervals(y, p, 0.90, 400, s)["auc"]
        hits += lo <= truth <= hi
    assert 0.84 <= hits / 200 <= 0.96, hits


def test_wilson_interval():
    lo, hi = wilson(0, 50, 0.95)
    assert lo == 0 and 0.05 < hi < 0.1
    lo, hi = wilson(50, 100, 0.95)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)


def test_interval_verdict_is_three_way_and_point_ignores_the_interval():
    cases = {(0.75, 0.80): PASS, (0.60, 0.65): FAIL, (0.65, 0.75): INSUFFICIENT}
    for ci, verdict in cases.items():
        g = decide(SPEC, sum(ci) / 2, list(ci), ">=", 0.70, "interval", True, "test-split AUC", "200 rows")
        assert g.verdict == verdict, (ci, g.summary)
        assert (g.value is None) == (verdict == INSUFFICIENT) and "200 rows" in g.summary
    g = decide(SPEC, 0.70, [0.65, 0.75], ">=", 0.70, "point", True, "test-split AUC", "200 rows")
    assert g.verdict == PASS and g.details["ci"] == [0.65, 0.75]
    lenient = decide(SPEC, 0.70, [0.65, 0.75], ">=", 0.70, "interval", False, "test-split AUC", "200 rows")
    assert lenient.verdict == INSUFFICIENT and lenient.passed, "the policy may let it through"
    low = decide(GateSpec("membership_auc", ""), 0.52, [0.50, 0.54], "<=", 0.55, "interval", True, "a", "b")
    assert low.verdict == PASS


class _Perf:
    test_auc_min, test_ks_min, gate_on, confidence, bootstrap_resamples, seed = 0.70, 0.30, "interval", 0.95, 300, 3
    min_class_rows, insufficient_evidence_blocks = 20, True

    class operating_point:
        score_threshold, positive_rate_ratio_max, balanced_accuracy_min = 0.5, 3.0, 0.55


def _verdicts(y, p, perf=_Perf) -> dict:
    return {g.name: g for g in training_gates(y, p, perf)}


def test_a_tiny_test_split_is_insufficient_not_a_number():
    y, p = _scores(60, 3.0, 0.2)        # a strong model, but ~12 positives
    gates = _verdicts(y, p)
    assert {g.verdict for g in gates.values()} == {INSUFFICIENT}
    assert all(g.value is None and not g.passed for g in gates.values())
    assert "positives" in gates["performance_auc"].summary and "needs >= 20" in gates["performance_auc"].summary


def test_a_fair_model_on_200_rows_is_insufficient_and_on_20000_it_passes():
    """Population AUC ~0.74: 200 rows cannot tell it from 0.70, 20,000 can."""
    estimates = []
    for seed in (4, 7):      # two samples of the same population
        y, p = _scores(200, 0.9, 0.25, seed=seed)
        small = _verdicts(y, p)["performance_auc"]
        assert small.verdict == INSUFFICIENT and small.details["ci"][0] < 0.70 < small.details["ci"][1]
        estimates.append(small.details["estimate"])
    assert min(estimates) < 0.70 < max(estimates), "on 200 rows the point estimate fails one and passes the other"
    y, p = _scores(20000, 0.9, 0.25, seed=4)
    assert _verdicts(y, p)["performance_auc"].verdict == PASS


@pytest.mark.parametrize("name,scores,why", [
    ("majority class", lambda y, rng: np.full(len(y), 0.2), "flags nobody"),
    ("everybody", lambda y, rng: np.full(len(y), 0.9), "flags everybody"),
    ("coin", lambda y, rng: rng.random(len(y)), "balanced accuracy"),
    ("over-flagging", lambda y, rng: np.where(rng.random(len(y)) < 0.8, 0.9, 0.1) * (1 - 0.5 * y) + 0.5 * y,
     "against a base rate"),
])
def test_degenerate_models_fail_the_operating_point(name, scores, why):
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.1).astype(int)
    g = _verdicts(y, scores(y, rng))["operating_point"]
    assert g.verdict == FAIL and why in g.summary, (name, g.summary)


def test_a_useful_model_passes_the_operating_point():
    y, p = _scores(4000, 2.5, 0.2)
    g = _verdicts(y, p)["operating_point"]
    assert g.verdict == PASS, g.summary
    assert 0 < g.details["selection_rate"] < 1 and g.details["balanced_accuracy"] > 0.55


def test_membership_on_185_rows_per_side_is_insufficient_and_blocks_only_if_the_policy_says(policy):
    """The issue's case: attack AUC 0.43 on 185 rows per side is noise, not a pass."""
    from z4_assets.core.security._evaluate import membership_gate

    m = policy.security.membership
    noise = {"attack_auc": 0.43, "rows_per_side": 185, "attack_fit_rows": 184, "attack_eval_rows": 186}
    g = membership_gate(noise, m)
    assert g.verdict == INSUFFICIENT and g.value is None and g.passed, "default: shown, does not block"
    assert "185 members, 185 non-members; needs >= 500" in g.summary
    strict = membership_gate(noise, m.model_copy(update={"insufficient_evidence_blocks": True}))
    assert strict.verdict == INSUFFICIENT and not strict.passed
    clear = {"attack_auc": 0.5, "rows_per_side": 4000, "attack_fit_rows": 4000, "attack_eval_rows": 4000}
    assert membership_gate(clear, m).verdict == PASS
    leaky = {**clear, "attack_auc": 0.6}
    assert membership_gate(leaky, m).verdict == FAIL
    near = {**clear, "rows_per_side": 600, "attack_fit_rows": 600, "attack_eval_rows": 600, "attack_auc": 0.56}
    assert membership_gate(near, m).verdict == INSUFFICIENT, "0.56 on 300 + 300 rows: CI straddles 0.55"


def _fairness(n: int, seed: int = 0, unfair: float = 0.0, **policy):
    """Two groups of G; group b's scores shifted by UNFAIR (its selection rate rises)."""
    import pandas as pd

    from z4_assets.core.contract import Contract
    from z4_assets.core.fairness._report import build_report
    from z4_assets.core.policy import load_policy

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"G": rng.choice(["a", "b"], n)})
    y = (rng.random(n) < 0.3).astype(np.int64)
    score = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, n) + unfair * (df["G"] == "b"), 0, 1)
    df["y"] = y
    contract = Contract.model_validate({
        "dataset_id": "synthetic", "target": {"column": "y", "positive": 1},
        "sensitive": {"G": {"legal_basis": "legal_obligation"}},
        "columns": {"G": {"dtype": "string"}, "y": {"dtype": "integer", "categories": [0, 1]}}})
    rules = load_policy(None, "synthetic").fairness.model_copy(update={"bootstrap_resamples": 200, **policy})
    return {g.name: g for g in build_report(df, contract, y, score, rules).gates}


def test_fairness_groups_too_small_to_compare_are_insufficient_never_a_vacuous_pass():
    gates = _fairness(150)             # ~75 test rows per group < min_group_count 100
    for name, g in gates.items():
        assert g.verdict == INSUFFICIENT and g.value is None and not g.passed, (name, g.summary)
    allowed = _fairness(150, insufficient_evidence_blocks=False)
    assert all(g.passed and g.verdict == INSUFFICIENT for g in allowed.values())


def test_fairness_interval_mode_decides_only_what_the_sample_can():
    """A parity gap of ~0.07 against a 0.10 maximum: on 400 rows the interval straddles it
    (insufficient), on 40,000 it is decided (pass); a gap of ~0.3 fails on both."""
    small = _fairness(400, unfair=0.05, gate_on="interval")["fairness_demographic_parity_diff"]
    large = _fairness(40000, unfair=0.05, gate_on="interval")["fairness_demographic_parity_diff"]
    assert small.verdict == INSUFFICIENT and large.verdict == PASS, (small.summary, large.summary)
    for n in (400, 40000):
        g = _fairness(n, unfair=0.3, gate_on="interval")["fairness_demographic_parity_diff"]
        assert g.verdict == FAIL and g.details["attribute"] == "G", g.summary


def test_evasion_on_too_few_test_rows_is_insufficient(policy):
    from z4_assets.core.security._evaluate import evasion_gate

    e = policy.security.evasion
    few = {"rows": 185, "accuracy_drop": 0.0, "gate_epsilon": 0.1, "auc_drop": 0.0, "validity": {},
           "clean": {"accuracy": 0.81}}
    g = evasion_gate(few, e)
    assert g.verdict == INSUFFICIENT and g.value is None and "185 test rows; needs >= 200" in g.summary
    assert g.passed == (not e.insufficient_evidence_blocks)
    assert evasion_gate({**few, "rows": 4000}, e).verdict == PASS
    assert evasion_gate({**few, "rows": 4000, "accuracy_drop": 0.2}, e).verdict == FAIL
