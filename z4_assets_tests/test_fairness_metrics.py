"""The fast per-group path equals fairlearn's MetricFrame on the real sample, to 1e-9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.contract import load_contract
from z4_assets.core.fairness._disparity import bootstrap, disparities, interval
from z4_assets.core.fairness._groups import band_labels, build_groupings
from z4_assets.core.fairness._kernel import coarsen, group_metrics, sort_groups
from z4_assets.core.fairness._reference import reference_disparities, reference_group_metrics
from z4_assets.core.fairness._report import selection_threshold
from z4_assets.core.errors import Z4Error
from z4_assets.core.policy import SelectionRule, load_policy
from z4_assets.core.validation import conform_dtypes
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, TARGET

METRICS = ("count", "positives", "auc", "ks", "selection_rate", "tpr", "fpr", "precision")


@pytest.fixture(scope="module")
def scored_sample(sample_df):
    """The whole sample scored by a logistic regression on its model features (real scores)."""
    from sklearn.linear_model import LogisticRegression

    contract, _ = load_contract(SAMPLE_CONTRACT)
    df = conform_dtypes(sample_df, contract)
    x = df[contract.model_features].to_numpy(dtype=float)
    x = (x - x.mean(0)) / x.std(0)
    y = df[TARGET].to_numpy(dtype=np.int64)
    score = LogisticRegression(max_iter=500).fit(x, y).predict_proba(x)[:, 1]
    return df, contract, y, score


def _groupings(df, contract):
    policy = load_policy(None, DATASET).fairness.model_copy(update={"intersections": [["SEX", "AGE"]]})
    singles, crossed = build_groupings(df, contract, policy)
    return singles + crossed


@pytest.mark.parametrize("ties", [False, True], ids=["raw scores", "scores rounded to 2 decimals"])
def test_fast_path_equals_fairlearn_metricframe(scored_sample, ties):
    df, contract, y, score = scored_sample
    score = np.round(score, 2) if ties else score
    for g in _groupings(df, contract):
        fast = group_metrics(sort_groups(g.codes, len(g.labels), y, score, 0.5))
        both = [j for j in range(len(g.labels)) if 0 < fast["positives"][j] < fast["count"][j]]
        assert len(both) >= 2, g.name
        rows = np.isin(g.codes, both)  # roc_auc_score refuses a group with one class
        labels = pd.Series(np.array(g.labels, dtype=object)[g.codes[rows]], name=g.name)
        ref = reference_group_metrics(y[rows], score[rows], 0.5, labels)
        for j in both:
            for m in METRICS:
                a, b = float(fast[m][j]), float(ref.loc[g.labels[j], m])
                assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9, (g.name, g.labels[j], m, a, b)


def test_disparities_equal_fairlearn_functions(scored_sample):
    df, contract, y, score = scored_sample
    for g in _groupings(df, contract):
        fast = group_metrics(sort_groups(g.codes, len(g.labels), y, score, 0.5))
        keep = (fast["positives"] > 0) & (fast["positives"] < fast["count"])
        rows = keep[g.codes]
        labels = np.array(g.labels, dtype=object)[g.codes[rows]]
        ref = reference_disparities(y[rows], score[rows], 0.5, labels)
        ours = disparities(fast, keep, "selected")
        for name in ("demographic_parity_diff", "demographic_parity_ratio", "equalized_odds_diff"):
            assert abs(float(ours[name]) - float(ref[name])) <= 1e-9, (g.name, name)
        # favourable = not selected: the ratio of (1 - selection rate), i.e. fairlearn on the flipped decision
        from fairlearn.metrics import demographic_parity_ratio

        flipped = demographic_parity_ratio(y[rows], (score[rows] < 0.5).astype(int), sensitive_features=labels)
        assert abs(float(disparities(fast, keep, "not_selected")["demographic_parity_ratio"]) - flipped) <= 1e-9


def test_weighted_path_equals_metrics_on_repeated_rows(scored_sample):
    """A bootstrap resample is a weighting: integer weights must equal literally repeated rows."""
    df, contract, y, score = scored_sample
    g = _groupings(df, contract)[1]  # AGE bands
    rng = np.random.default_rng(3)
    w = rng.poisson(1.0, len(y))
    sg = sort_groups(g.codes, len(g.labels), y, score, 0.5)
    order = np.lexsort((score, g.codes))
    wp, wt = (w * y)[order].astype(float), w[order].astype(float)
    bp = np.add.reduceat(wp, sg.block_starts)
    weighted = group_metrics(sg, bp, np.add.reduceat(wt, sg.block_starts) - bp)
    rep = np.repeat(np.arange(len(y)), w)
    direct = group_metrics(sort_groups(g.codes[rep], len(g.labels), y[rep], score[rep], 0.5))
    for m in METRICS:
        np.testing.assert_allclose(weighted[m], direct[m], rtol=0, atol=1e-9, err_msg=m)


def test_score_binning_keeps_rates_exact_and_moves_auc_ks_within_the_bin_share(scored_sample):
    df, contract, y, score = scored_sample
    g = _groupings(df, contract)[0]  # SEX: two groups of ~12k and ~18k rows
    sg = sort_groups(g.codes, len(g.labels), y, score, 0.5)
    exact, binned = group_metrics(sg), group_metrics(coarsen(sg, 256))
    assert len(coarsen(sg, 256).pos) < len(sg.pos) / 20
    for m in ("count", "positives", "selection_rate", "tpr", "fpr", "precision"):
        np.testing.assert_array_equal(exact[m], binned[m], err_msg=m)
    share = 1 / 256 / y.mean()  # a bin's largest possible share of a group's positives
    assert np.max(np.abs(exact["auc"] - binned["auc"])) <= share
    assert np.max(np.abs(exact["ks"] - binned["ks"])) <= share
    small = coarsen(sg, 10**6)  # more bins than distinct scores: unchanged
    assert all(np.array_equal(group_metrics(small)[m], exact[m]) for m in METRICS)


def test_bootstrap_is_seeded_and_covers_the_point_estimate(scored_sample):
    df, contract, y, score = scored_sample
    g = _groupings(df, contract)[0]
    sg = sort_groups(g.codes, len(g.labels), y, score, 0.5)
    keep = np.ones(len(g.labels), dtype=bool)
    a, da = bootstrap(sg, keep, 200, [1729, 0])
    b, db = bootstrap(sg, keep, 200, [1729, 0])
    c, _ = bootstrap(sg, keep, 200, [1729, 1])
    assert np.array_equal(a["auc"], b["auc"]) and np.array_equal(da["ks_diff"], db["ks_diff"])
    assert not np.array_equal(a["auc"], c["auc"])
    point = group_metrics(sg)
    for j in range(len(g.labels)):
        lo, hi = interval(a["auc"][:, j], 0.95)
        assert lo < point["auc"][j] < hi and hi - lo < 0.05


def test_bands_name_every_value_and_drop_none():
    s = pd.Series([18, 21, 24.5, 25, 79, 80, 95, None], dtype="Float64")
    got = band_labels(s, [21, 25, 35, 45, 60, 80]).tolist()
    assert got == ["<21", "[21,25)", "[21,25)", "[25,35)", "[60,80]", "[60,80]", ">80", "(missing)"]


def test_selection_threshold_rules(tmp_path):
    score = np.array([0.1, 0.9, 0.4, 0.7, 0.7, 0.2])
    assert selection_threshold(score, SelectionRule(rule="score", value=0.5)) == 0.5
    assert selection_threshold(score, SelectionRule(rule="top_rate", value=0.5)) == 0.7  # top 3: 0.9, 0.7, 0.7
    with pytest.raises(ValueError, match="top_rate"):
        selection_threshold(score, SelectionRule(rule="top_rate", value=1.5))
    # an unknown rule is refused when the policy is read, naming the key ...
    own = tmp_path / "policy.yaml"
    own.write_text("defaults:\n  fairness:\n    selection: {rule: quantile}\n")
    with pytest.raises(Z4Error, match="fairness.selection.rule"):
        load_policy(own, DATASET)
    # ... and by the rule itself if one is built around the policy's validation
    with pytest.raises(ValueError, match="'score' or 'top_rate'"):
        selection_threshold(score, SelectionRule.model_construct(rule="quantile", value=0.5))
