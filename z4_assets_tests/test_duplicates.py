"""What counts as a duplicate (policy hygiene.duplicate_columns, docs/data.md): by default every contract
column except the id, so different people who share coarse attributes are neither duplicates nor
conflicting labels; `features` compares only what the model sees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.contract import Contract
from z4_assets.core.hygiene._checks import duplicate_columns, run_hygiene
from z4_assets.core.validation import conform_dtypes


def _census_like(n: int = 20000, true_copies: int = 12, seed: int = 5) -> tuple[pd.DataFrame, Contract]:
    """Coarse attributes (age band, sex, race, education, hours band) as features; the sampling weight
    `fnlwgt` (feature: false) tells people apart, as in a census extract. TRUE_COPIES real duplicates."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "person": np.arange(n),
        "age_band": rng.integers(0, 6, n), "sex": rng.integers(0, 2, n), "race": rng.integers(0, 3, n),
        "education": rng.integers(0, 5, n), "hours_band": rng.integers(0, 4, n),
        "fnlwgt": rng.integers(10_000, 1_500_000, n),
    })
    df["income"] = (rng.random(n) < 0.15 + 0.1 * df["education"] / 4).astype(int)
    copies = df.sample(true_copies, random_state=seed).assign(person=lambda d: d["person"] + n)
    df = pd.concat([df, copies], ignore_index=True)
    cat = {"dtype": "integer"}
    contract = Contract.model_validate({
        "dataset_id": "census_like", "id_column": "person", "target": {"column": "income", "positive": 1},
        "purposes": ["test"],
        "columns": {"person": {"dtype": "integer"}, "age_band": cat, "sex": cat, "race": cat, "education": cat,
                    "hours_band": cat, "fnlwgt": {"dtype": "integer", "feature": False},
                    "income": {"dtype": "integer", "categories": [0, 1]}}})
    return conform_dtypes(df, contract), contract


def _gates(df, contract, policy, mode):
    p = policy.model_copy(update={"hygiene": policy.hygiene.model_copy(update={"duplicate_columns": mode})})
    return {g.name: g for g in run_hygiene(df, contract, p, None).gates}


def test_coarse_attributes_alone_are_not_duplicates_by_default(policy):
    df, contract = _census_like()
    g = _gates(df, contract, policy, "all_but_id")
    assert g["duplicate_rows"].passed and g["conflicting_labels"].passed
    assert g["duplicate_rows"].details["duplicate_rows"] == 12  # exactly the planted copies
    assert g["duplicate_rows"].value == pytest.approx(12 / len(df), abs=1e-6)
    assert "fnlwgt" in g["duplicate_rows"].details["columns"] and "person" not in g["duplicate_rows"].details["columns"]
    assert g["duplicate_rows"].details["compared"] == "all_but_id"


def test_comparing_only_the_features_makes_coarse_people_collide(policy):
    """The old behaviour, still available: 480 combinations for 20,000 people."""
    df, contract = _census_like()
    g = _gates(df, contract, policy, "features")
    assert not g["duplicate_rows"].passed and g["duplicate_rows"].value > 0.5
    assert not g["conflicting_labels"].passed
    assert g["duplicate_rows"].details["columns"] == contract.candidate_features


def test_the_default_policy_compares_all_columns_but_the_id(policy, contract, sample_df):
    assert policy.hygiene.duplicate_columns == "all_but_id"
    cols = duplicate_columns(sample_df, contract, "all_but_id")
    assert contract.id_column not in cols and contract.target.column not in cols
    assert set(cols) >= set(contract.candidate_features)
