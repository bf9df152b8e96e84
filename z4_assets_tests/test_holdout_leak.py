"""holdout_leak says what it guards: under the default content-hash split identical rows share a
split by construction (it cannot fail there, and says so); under an id split or a time split the
same row can land in training and test, and the gate fails."""

from __future__ import annotations

import pandas as pd

from z4_assets.core.hygiene._checks import run_hygiene


def _with_copies(sample_df: pd.DataFrame, contract) -> pd.DataFrame:
    """3,000 rows plus 300 of them again under new ids (one applicant, two records)."""
    base = sample_df.iloc[:3000]
    copies = base.iloc[:300].copy()
    copies[contract.id_column] = copies[contract.id_column] + 10_000_000
    return pd.concat([base, copies], ignore_index=True)


def test_content_split_cannot_leak_and_says_so(sample_df, contract, policy):
    gates = {g.name: g for g in run_hygiene(_with_copies(sample_df, contract), contract, policy, None).gates}
    g = gates["holdout_leak"]
    assert g.passed and g.value == 0 and "cannot fail here" in g.summary and "hash(content)" in g.summary


def test_an_id_split_leaks_copies_into_test_and_the_gate_fails(sample_df, contract, policy):
    by_id = policy.model_copy(update={"split": policy.split.model_copy(update={"key": "id"})})
    g = {g.name: g for g in run_hygiene(_with_copies(sample_df, contract), contract, by_id, None).gates}["holdout_leak"]
    assert not g.passed and g.value > 0 and g.details["leaked_test_rows"] > 10, g.summary
    assert "hash(id)" in g.summary and "cannot fail" not in g.summary
    clean = {g.name: g for g in run_hygiene(sample_df.iloc[:3000], contract, by_id, None).gates}["holdout_leak"]
    assert clean.passed and clean.value == 0, "no copies, no leak: the failure is the copies'"
