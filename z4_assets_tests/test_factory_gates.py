"""Each bad snapshot fails the right blocking gate, and nothing downstream materializes."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

import pandas as pd

from z4_assets_tests.conftest import (TARGET, check_metadata, check_verdicts, downstream_of, materialized,
                                      run_factory, started)


def _missing_column(df, doc):
    return df.drop(columns=["PAY_AMT6"]), doc


def _wrong_dtype(df, doc):
    df = df.copy()
    df["LIMIT_BAL"] = df["LIMIT_BAL"].astype(object)
    df.loc[df.index[:40], "LIMIT_BAL"] = "twenty thousand"
    return df, doc


def _out_of_range(df, doc):
    df = df.copy()
    df.loc[df.index[:7], "AGE"] = 150
    return df, doc


def _null_in_non_nullable(df, doc):
    df = df.copy().astype({"MARRIAGE": "float64"})
    df.loc[df.index[:11], "MARRIAGE"] = np.nan
    return df, doc


def _duplicated_rows(df, doc):
    dup = df.sample(frac=0.05, random_state=3).copy()
    dup["ID"] = np.arange(len(df) + 1, len(df) + 1 + len(dup))
    return pd.concat([df, dup], ignore_index=True), doc


def _conflicting_labels(df, doc):
    flipped = df.sample(n=300, random_state=4).copy()
    flipped[TARGET] = 1 - flipped[TARGET]
    flipped["ID"] = flipped["ID"] + 50_000
    return pd.concat([df, flipped], ignore_index=True), doc


def _impossible_values(df, doc):
    """Within the contract's ranges (AGE >= 0, LIMIT_BAL >= 0) but hitting its impossible_values rules."""
    df = df.copy()
    df.loc[df.index[:4], "AGE"] = 16
    df.loc[df.index[10:13], "LIMIT_BAL"] = 0.0
    return df, doc


def _leaky_column(df, doc):
    df = df.copy()
    rng = np.random.default_rng(11)
    df["collections_flag"] = df[TARGET] + rng.normal(0, 0.15, len(df))
    doc = copy.deepcopy(doc)
    doc["columns"]["collections_flag"] = {"dtype": "float", "group": "servicing"}
    return df, doc


def _no_legal_basis(df, doc):
    doc = copy.deepcopy(doc)
    del doc["sensitive"]["SEX"]["legal_basis"]
    return df, doc


CASES = [
    ("missing_column", _missing_column, "z3_snapshot", "contract", "PAY_AMT6"),
    ("wrong_dtype", _wrong_dtype, "z3_snapshot", "contract", "LIMIT_BAL"),
    ("out_of_range", _out_of_range, "z3_snapshot", "contract", "in_range"),
    ("null_in_non_nullable", _null_in_non_nullable, "z3_snapshot", "contract", "MARRIAGE"),
    ("no_legal_basis", _no_legal_basis, "z3_snapshot", "legal_basis", "SEX"),
    ("duplicated_rows_5pct", _duplicated_rows, "hygiene_report", "duplicate_rows", "'duplicate_rows': 1535"),
    ("leaky_column", _leaky_column, "hygiene_report", "target_leakage", "collections_flag"),
    ("conflicting_labels_1pct", _conflicting_labels, "hygiene_report", "conflicting_labels", "'rows': 646"),
    ("impossible_values", _impossible_values, "hygiene_report", "impossible_values", "'LIMIT_BAL <= 0': 3"),
]


@pytest.mark.parametrize("name,mutate,asset,gate,evidence", CASES, ids=[c[0] for c in CASES])
def test_bad_snapshot_fails_its_gate(name, mutate, asset, gate, evidence, sample_df,
                                     sample_contract_doc, register, factory_resources):
    df, doc = mutate(sample_df, sample_contract_doc)
    register(df, doc, fmt="csv" if name == "wrong_dtype" else "parquet",
             check_contract=gate != "contract")  # `z4 snapshot add` refuses it: a snapshot made before the check
    result = run_factory(factory_resources)

    verdicts = check_verdicts(result)
    assert verdicts[gate] is False, verdicts
    failed = {k for k, ok in verdicts.items() if not ok}
    assert failed == {gate}, f"only {gate} should fail, got {failed}"
    meta = check_metadata(result, gate)
    assert "measured" in meta and "threshold" in meta
    assert evidence in str(meta), meta
    assert asset in materialized(result), "the gate's own evidence is kept"
    assert not started(result) & downstream_of(asset), "nothing downstream of a failed gate starts"
    assert not result.success


def test_tampered_data_fails_hash_gate(sample_df, register, factory_resources):
    ref = register(sample_df.head(3000))
    os.chmod(ref.data_path, 0o644)
    sample_df.head(2999).to_parquet(ref.data_path, index=False)
    result = run_factory(factory_resources)

    assert check_verdicts(result)["snapshot_hash"] is False
    meta = check_metadata(result, "snapshot_hash")
    assert meta["measured"] == 1 and meta["threshold"] == 0
    assert meta["evidence"]["data"]["recorded"] == ref.manifest["hash"]
    assert meta["evidence"]["data"]["recomputed"] != ref.manifest["hash"]
    assert materialized(result) == {"z3_snapshot"}
    assert not started(result) & downstream_of("z3_snapshot")


def test_holdout_leak_gate_fails_when_split_by_id_separates_duplicates(
        tmp_path, sample_df, register, factory_resources):
    """With an id-keyed split, copies of a row land on both sides; the gate must see it."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults:\n  split: {key: id}\n  hygiene: {duplicate_share_max: 0.5}\n")
    df, _ = _duplicated_rows(sample_df, None)
    register(df)
    factory_resources["policy"] = type(factory_resources["policy"])(path=str(policy))
    result = run_factory(factory_resources)

    verdicts = check_verdicts(result)
    assert verdicts["holdout_leak"] is False
    assert verdicts["duplicate_rows"] is True
    assert check_metadata(result, "holdout_leak")["evidence"]["leaked_test_rows"] > 0
    assert not started(result) & downstream_of("hygiene_report")
