"""Hygiene statistics on small frames whose right answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from z4_assets.core.hygiene import _drift as drift
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.hygiene._leakage import _auc
from z4_assets.core.split import assign_split, row_hashes
from z4_assets.core.validation import conform_dtypes


@pytest.fixture(scope="module")
def frame(sample_df, contract):
    return conform_dtypes(sample_df, contract)


def _gates(result):
    return {g.name: g for g in result.gates}


def test_rank_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = rng.integers(0, 20, 5000) + y * 3  # heavy ties
    assert _auc(score.astype(float), y) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_split_is_seeded_stable_under_reordering_and_keeps_copies_together(frame, contract, policy):
    split, strategy = assign_split(frame, contract, policy.split)
    assert strategy == "hash(content)"
    shuffled = frame.sample(frac=1.0, random_state=1)
    again, _ = assign_split(shuffled, contract, policy.split)
    assert (pd.Series(split, index=frame.index).loc[shuffled.index].to_numpy() == again).all()
    counts = pd.Series(split).value_counts(normalize=True)
    assert counts["test"] == pytest.approx(0.2, abs=0.01) and counts["validation"] == pytest.approx(0.1, abs=0.01)
    h = row_hashes(frame, contract.candidate_features)
    per_copy = pd.DataFrame({"h": h, "s": split}).groupby("h")["s"].nunique()
    assert per_copy.max() == 1
    other, _ = assign_split(frame, contract, policy.split.model_copy(update={"seed": 2}))
    assert (other != split).mean() > 0.2


def test_impossible_values_count_rules_and_infinities(frame, contract, policy):
    bad = frame.copy()
    bad.loc[bad.index[:4], "AGE"] = 16
    bad.loc[bad.index[10:12], "BILL_AMT3"] = np.inf
    g = _gates(run_hygiene(bad, contract, policy, None))["impossible_values"]
    assert not g.passed
    assert g.details["per_rule"]["AGE < 18"] == 4
    assert g.details["per_rule"]["BILL_AMT3 is +-inf"] == 2
    assert g.value == pytest.approx(6 / len(bad), abs=1e-6)
    assert g.details["example_ids"][:4] == bad["ID"].head(4).tolist()


def test_conflicting_labels_are_caught(frame, contract, policy):
    flipped = frame.sample(n=300, random_state=4).copy()
    flipped["default.payment.next.month"] = 1 - flipped["default.payment.next.month"]
    flipped["ID"] = flipped["ID"] + 50_000
    g = _gates(run_hygiene(pd.concat([frame, flipped], ignore_index=True), contract, policy, None))
    assert not g["conflicting_labels"].passed and g["conflicting_labels"].value > 0.018
    assert g["duplicate_rows"].passed  # different labels: not exact duplicates


def test_psi_of_identical_data_is_zero_and_grows_with_shift(frame, contract):
    base = drift.build_profile(frame, contract, 10)
    same = drift.drift_against(base, frame)
    assert max(v["psi"] for v in same.values()) == pytest.approx(0, abs=1e-9)
    moved = frame.assign(AGE=frame["AGE"] + 10, SEX=1)
    per = drift.drift_against(base, moved)
    assert per["AGE"]["psi"] > 0.5 and per["SEX"]["psi"] > 0.5
    assert per["LIMIT_BAL"]["psi"] == pytest.approx(0, abs=1e-9)
    assert per["AGE"]["kl"] > 0


def test_sample_is_clean(frame, contract, policy):
    result = run_hygiene(frame, contract, policy, None)
    assert result.passed, [g.summary for g in result.gates if not g.passed]
    g = _gates(result)
    assert g["target_leakage"].details["top_auc"]["PAY_0"] == pytest.approx(0.712, abs=0.005)
    assert g["duplicate_rows"].details["duplicate_rows"] == 35


@pytest.mark.parametrize("declared", [True, False])
def test_a_column_declared_known_after_the_label_is_reported_not_gated(frame, sample_contract_doc, policy,
                                                                     tmp_path, declared):
    """A time-to-event column (say, days until the default was recorded) predicts the label perfectly
    and never reaches the model when the contract declares it known_after_label: target_leakage lists
    its AUC but does not block on it. Undeclared, the same column blocks."""
    import copy

    import yaml

    from z4_assets.core.contract import load_contract

    df = frame.copy()
    df["days_to_collection"] = df["default.payment.next.month"].astype(float) * 100.0 + np.arange(len(df)) % 7
    doc = copy.deepcopy(sample_contract_doc)
    doc["columns"]["days_to_collection"] = {"dtype": "float", "group": "servicing", "known_after_label": declared}
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(doc))
    contract = load_contract(path)[0]
    leak = _gates(run_hygiene(conform_dtypes(df, contract), contract, policy, None))["target_leakage"]
    assert leak.passed is declared, leak.summary
    if declared:
        assert leak.details["post_label_not_gated"]["days_to_collection"] > 0.99
        assert "days_to_collection" not in leak.details["top_auc"]
    else:
        assert leak.details["flagged_features"] == ["days_to_collection"]
