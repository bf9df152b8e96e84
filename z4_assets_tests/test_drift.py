"""The drift gates on their own: no blind spots (tails, constant columns, new features, missingness),
no invented figure without a baseline, and Evidently 0.7.23's figures to 1e-9 under `method: evidently`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.hygiene import _drift as drift, _drift_evidently
from z4_assets.core.hygiene._baseline import read_baseline, write_baseline
from z4_assets.core.hygiene._drift_gates import drift_gates
from z4_assets.core.run_folder import FactoryRoot
from z4_assets.core.validation import conform_dtypes


@pytest.fixture(scope="module")
def halves(sample_df, contract):
    """The sample's two halves, as the factory reads them (contract dtypes)."""
    df = conform_dtypes(sample_df, contract)
    return df.iloc[:15000].reset_index(drop=True), df.iloc[15000:].reset_index(drop=True)


def _rules(policy, **update):
    return policy.hygiene.model_copy(update=update)


def _gates(ref: pd.DataFrame, cur: pd.DataFrame, contract, h, baseline=None) -> dict:
    baseline = baseline or {"snapshot": "d@ref", **drift.build_profile(ref, contract, int(h.drift_bins))}
    gates = drift_gates(cur, contract, h, baseline, drift.reference_counts(ref, contract))
    return {g.name: g for g in gates}


@pytest.mark.parametrize("method", ["factory", "evidently"])
def test_a_constant_reference_column_that_takes_a_new_value_is_drift(halves, contract, policy, method):
    ref, cur = halves[0].head(3000).copy(), halves[1].head(3000).copy()
    ref["PAY_AMT6"], cur["PAY_AMT6"] = 0.0, 0.0
    cur.loc[cur.index[::10], "PAY_AMT6"] = 5.0  # 10% of the current rows
    h = _rules(policy, drift_method=method)
    g = _gates(ref, cur, contract, h)["drift"]
    assert not g.passed and g.summary.startswith("FAILED: highest PSI against baseline (PAY_AMT6;")
    assert g.value > 0.5 and g.details["method"] == method
    if method == "factory":  # the new value lands in the bin above the reference's maximum
        bins = g.details["per_feature"]["PAY_AMT6"]["bins"]
        assert bins["labels"] == ["< 0", "[0, 0]", "> 0"]
        assert bins["reference"] == [0, 1, 0] and bins["current"] == [0, 0.9, 0.1]
    same = _gates(ref, ref, contract, h)["drift"]
    assert same.passed and same.value == pytest.approx(0, abs=1e-12)


def test_a_shift_entirely_above_the_reference_range_fails(halves, contract, policy):
    ref, cur = halves
    moved = cur.assign(LIMIT_BAL=cur["LIMIT_BAL"] + ref["LIMIT_BAL"].max() + 1)
    g = _gates(ref, moved, contract, policy.hygiene)["drift"]
    assert not g.passed and "(LIMIT_BAL;" in g.summary
    bins = g.details["per_feature"]["LIMIT_BAL"]["bins"]
    assert bins["current"][-1] == 1.0 and bins["reference"][-1] == 0 and bins["labels"][-1].startswith("> ")
    # the same shift of a smaller share, still entirely above the range, is still seen
    part = cur.copy()
    part.loc[part.index[::5], "LIMIT_BAL"] = ref["LIMIT_BAL"].max() * 10
    assert _gates(ref, part, contract, policy.hygiene)["drift"].details["per_feature"]["LIMIT_BAL"]["psi"] > 0.25
    low = cur.assign(AGE=cur["AGE"] - 100)  # entirely below the minimum: the bin below
    assert not _gates(ref, low, contract, policy.hygiene)["drift"].passed


def test_a_new_feature_is_reported_and_blocks_by_default_or_warns(halves, contract, policy):
    ref, cur = halves
    baseline = {"snapshot": "d@ref", **drift.build_profile(ref, contract, 10)}
    del baseline["features"]["PAY_AMT6"]  # the baseline's contract did not have it
    g = _gates(ref, cur, contract, policy.hygiene, baseline)
    new = g["drift_new_features"]
    assert not new.passed and new.value == 1 and new.details["new_features"] == {"PAY_AMT6": "new: no baseline"}
    assert "new: no baseline: PAY_AMT6" in new.summary
    assert g["drift"].details["new_features"] == {"PAY_AMT6": "new: no baseline"}
    assert "PAY_AMT6" not in g["drift"].details["per_feature"]  # never given an invented PSI
    warned = _gates(ref, cur, contract, _rules(policy, drift_new_feature="warn"), baseline)["drift_new_features"]
    assert warned.passed and warned.value == 1 and warned.summary.startswith("warn (policy drift_new_feature: warn)")
    assert _gates(ref, cur, contract, policy.hygiene)["drift_new_features"].value == 0


@pytest.mark.parametrize("method", ["factory", "evidently"])
def test_a_null_only_shift_is_missingness_drift_with_its_own_verdict(halves, contract, policy, method):
    ref, cur = halves
    holes = cur.copy()
    holes["BILL_AMT2"] = holes["BILL_AMT2"].astype("float64")
    holes.loc[holes.sample(frac=0.3, random_state=3).index, "BILL_AMT2"] = np.nan
    g = _gates(ref, holes, contract, _rules(policy, drift_method=method))
    miss = g["drift_missingness"]
    assert not miss.passed and miss.value == pytest.approx(0.3, abs=1e-3)
    assert miss.summary.startswith("FAILED: largest change of a feature's share of nulls (BILL_AMT2: 0.0000")
    assert g["drift"].passed  # the non-null values did not move: PSI does not count the nulls
    assert g["drift"].details["per_feature"]["BILL_AMT2"]["psi"] < 0.05
    clean = _gates(ref, cur, contract, policy.hygiene)["drift_missingness"]
    assert clean.passed and clean.value == 0


def test_the_first_snapshot_says_no_baseline_and_measures_nothing(halves, contract, policy):
    gates = drift_gates(halves[0], contract, policy.hygiene, None, None)
    assert [g.name for g in gates] == ["drift", "drift_missingness", "drift_new_features"]
    for g in gates:
        assert g.verdict == "INSUFFICIENT_EVIDENCE" and g.value is None and g.passed
        assert "no baseline" in g.summary and "does not block (policy)" in g.summary
    strict = drift_gates(halves[0], contract, _rules(policy, drift_no_baseline_blocks=True), None, None)
    assert not any(g.passed for g in strict)


def test_a_feature_with_no_values_now_has_no_psi_but_fails_missingness(halves, contract, policy):
    ref, cur = halves
    empty = cur.assign(AGE=pd.array([pd.NA] * len(cur), dtype="Int64"))
    g = _gates(ref, empty, contract, policy.hygiene)
    assert "AGE" in g["drift"].details["not_measured"] and "AGE" not in g["drift"].details["per_feature"]
    assert not g["drift_missingness"].passed and g["drift_missingness"].value == 1.0


def _evidently_figures(ref: pd.DataFrame, cur: pd.DataFrame, contract) -> dict[str, tuple[float, float]]:
    """PSI and KL per feature as Evidently 0.7.23 itself reports them (ValueDrift, one per method)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    feats = contract.candidate_features
    cats = [c for c in feats if contract.is_categorical(c)]
    dd = DataDefinition(numerical_columns=[c for c in feats if c not in cats], categorical_columns=cats)
    report = Report([ValueDrift(column=f, method=m) for f in feats for m in ("psi", "kl_div")])
    snap = report.run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
    values = [m["value"] for m in snap.dict()["metrics"]]
    return {f: (values[2 * i], values[2 * i + 1]) for i, f in enumerate(feats)}


def test_method_evidently_gives_evidentlys_psi_and_kl_to_1e_9(halves, contract, policy):
    import evidently

    assert evidently.__version__ == _drift_evidently.VERSION
    ref, cur = halves
    drifted = cur.copy()
    drifted["LIMIT_BAL"] = drifted["LIMIT_BAL"] * 1.5
    drifted["AGE"] = drifted["AGE"] + 3
    drifted.loc[drifted.index[::7], "EDUCATION"] = 9  # a category the reference never had
    drifted["PAY_AMT1"] = drifted["PAY_AMT1"].astype("float64")
    drifted.loc[drifted.index[::5], "PAY_AMT1"] = np.nan
    h = _rules(policy, drift_method="evidently")
    for current in (cur, drifted):
        ours = _gates(ref, current, contract, h)["drift"].details["per_feature"]
        theirs = _evidently_figures(ref, current, contract)
        assert set(ours) == set(theirs)
        for f, (psi, kl) in theirs.items():
            assert ours[f]["psi"] == pytest.approx(psi, abs=1e-9, rel=0), f
            assert ours[f]["kl"] == pytest.approx(kl, abs=1e-9, rel=0), f
    moved = _gates(ref, drifted, contract, h)["drift"]
    assert not moved.passed and "Evidently 0.7.23 definition" in moved.details["definition"]
    assert _gates(ref, drifted, contract, policy.hygiene)["drift"].details["method"] == "factory"


def test_the_baseline_refuses_edited_or_missing_reference_values(halves, contract, tmp_path):
    factory = FactoryRoot(tmp_path)
    assert read_baseline(factory, "d") == (None, None)
    assert write_baseline(factory, "d", "d@1", drift.build_profile(halves[0], contract, 10),
                          drift.reference_counts(halves[0], contract))
    profile, counts = read_baseline(factory, "d")
    assert profile["file_sha256"] == sha256_file(factory.baseline("d"))  # named in the drift evidence
    assert profile["snapshot"] == "d@1" and int(counts["count"].sum()) == 15000 * len(contract.candidate_features)
    path = factory.baseline_reference("d")
    edited = counts.assign(count=counts["count"] * 2)
    edited.to_parquet(path, index=False)
    with pytest.raises(Z4Error, match="reference values changed since the baseline was set"):
        read_baseline(factory, "d")
    path.unlink()
    with pytest.raises(Z4Error, match="reference values are missing"):
        read_baseline(factory, "d")
    other = tmp_path / "elsewhere.parquet"
    counts.to_parquet(other, index=False)
    path.symlink_to(other)
    with pytest.raises(Z4Error, match="reference values are missing"):
        read_baseline(factory, "d")
    moved = tmp_path / "profile.json"
    factory.baseline("d").rename(moved)
    factory.baseline("d").symlink_to(moved)  # a baseline pointing elsewhere is refused, not followed
    with pytest.raises(Z4Error, match="drift baseline is a symbolic link"):
        read_baseline(factory, "d")


def test_a_baseline_of_the_old_format_asks_for_a_rebaseline(halves, contract, policy):
    old = {"snapshot": "d@0", "rows": 10, "bins": 10, "features": {}}
    with pytest.raises(Z4Error, match=r"profile format 1, .*delete it to re-baseline"):
        drift_gates(halves[1], contract, policy.hygiene, old, None)


def test_on_200_rows_chance_is_not_drift_but_a_real_shift_still_fails(sample_df, contract, policy):
    """20 seeded pairs of 200-row samples of the same data: no FAIL (chance alone gives PSI up to ~0.3
    there); the same pairs with LIMIT_BAL x1.5 or above the reference's range all FAIL."""
    df = conform_dtypes(sample_df, contract)
    rng = np.random.default_rng(0)
    verdicts = {"clean": [], "x1.5": [], "above": []}
    for _ in range(20):
        idx = rng.permutation(len(df))
        ref, cur = df.iloc[idx[:200]], df.iloc[idx[200:400]]
        for name, current in (("clean", cur), ("x1.5", cur.assign(LIMIT_BAL=cur["LIMIT_BAL"] * 1.5)),
                              ("above", cur.assign(LIMIT_BAL=cur["LIMIT_BAL"] + ref["LIMIT_BAL"].max() + 1))):
            verdicts[name].append(_gates(ref, current, contract, policy.hygiene)["drift"].verdict)
    assert "FAIL" not in verdicts["clean"], verdicts["clean"]
    assert set(verdicts["x1.5"]) == set(verdicts["above"]) == {"FAIL"}


def test_a_psi_over_the_threshold_within_sampling_noise_is_insufficient_and_blocks(policy):
    from z4_assets.core.hygiene._drift_gates import _distribution

    def feature(psi, noise, rows):
        return {"psi": psi, "kl": 0.01, "noise_psi": noise, "rows": {"reference": rows, "current": rows},
                "nulls": {"reference": 0.0, "current": 0.0}, "bins": {}}

    label = {"snapshot": "d@1", "sha256": "0" * 64}
    noisy = _distribution({"f": feature(0.3, 0.11, 200)}, policy.hygiene, "factory", label, [])
    assert noisy.verdict == "INSUFFICIENT_EVIDENCE" and not noisy.passed and noisy.value is None
    assert "within sampling noise at 200 baseline and 200 current rows" in noisy.summary
    assert noisy.details["within_sampling_noise"] == ["f"]
    lenient = _distribution({"f": feature(0.3, 0.11, 200)}, policy.hygiene.model_copy(
        update={"drift_small_sample_blocks": False}), "factory", label, [])
    assert lenient.passed and lenient.verdict == "INSUFFICIENT_EVIDENCE"
    real = _distribution({"f": feature(0.3, 0.11, 200), "g": feature(0.5, 0.01, 20000)}, policy.hygiene,
                         "factory", label, [])
    assert real.verdict == "FAIL" and real.value == 0.5 and "(g; factory definition)" in real.summary
    big = _distribution({"f": feature(0.3, 0.011, 2000)}, policy.hygiene, "factory", label, [])
    assert big.verdict == "FAIL" and big.value == 0.3
