"""Contracts: parsed strictly, turned into a pandera schema, and reported column by column."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import yaml

from z4_assets.core.contract import Contract, load_contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.validation import conform_dtypes, validate_contract
from z4_assets_tests.conftest import SAMPLE_CONTRACT


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(SAMPLE_CONTRACT)[0]


def test_roles_keep_sensitive_attributes_out_unless_allowed(contract):
    assert "EDUCATION" in contract.model_features  # use_as_feature: true
    assert not {"SEX", "AGE", "MARRIAGE"} & set(contract.model_features)
    assert {"SEX", "AGE", "MARRIAGE"} <= set(contract.candidate_features)
    assert "ID" not in contract.candidate_features and contract.target.column not in contract.candidate_features


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.update(target={"column": "nope"}), "target 'nope' is not declared"),
    (lambda d: d["sensitive"].update(RACE={"legal_basis": "consent"}), "sensitive attribute 'RACE'"),
    (lambda d: d.update(impossible_values=["AGE <> 3"]), "is not of the form"),
    (lambda d: d.update(dataset_id="Has Spaces"), "dataset_id"),
    (lambda d: d["columns"]["AGE"].update(min=200), "min 200.0 is above max"),
    (lambda d: d["columns"]["AGE"].update(colour="red"), "columns.AGE.colour"),
])
def test_inconsistent_contracts_are_refused_with_the_reason(tmp_path, mutate, message):
    doc = yaml.safe_load(SAMPLE_CONTRACT.read_text())
    mutate(doc)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(Z4Error, match=message.replace("(", r"\(")) as err:
        load_contract(path)
    assert str(path) in str(err.value)


def test_not_yaml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("columns: [unclosed\n")
    with pytest.raises(Z4Error, match="not valid YAML"):
        load_contract(bad)
    with pytest.raises(Z4Error, match="cannot read contract"):
        load_contract(tmp_path / "absent.yaml")


def test_conform_is_lossless_and_leaves_real_type_errors_for_the_gate(contract):
    df = pd.DataFrame({"AGE": [30.0, np.nan, 41.0], "LIMIT_BAL": ["1000", "2000.5", "x"],
                       "SEX": [1.5, 2.0, 1.0]})
    out = conform_dtypes(df, contract)
    assert str(out["AGE"].dtype) == "Int64" and out["AGE"].isna().sum() == 1
    assert out["LIMIT_BAL"].dtype == object  # text stays text: the contract gate reports it
    assert out["SEX"].dtype == "float64"  # 1.5 is not an integer: not rounded away


def test_validation_reports_each_failing_column_and_check(contract, sample_df):
    df = conform_dtypes(sample_df.head(500), contract)
    assert validate_contract(df, contract).passed
    bad = df.copy()
    bad.loc[bad.index[:3], "EDUCATION"] = 9
    bad.loc[bad.index[:2], "PAY_0"] = pd.NA
    bad["EXTRA"] = 1
    result = validate_contract(bad, contract)
    assert not result.passed
    found = {(f["column"], f["check"]) for f in result.failures}
    assert ("EDUCATION", "isin([0, 1, 2, 3, 4, 5, 6])") in found
    assert ("PAY_0", "not_nullable") in found
    assert any("EXTRA" in str(f) for f in result.failures)  # strict: undeclared columns fail
    assert "EDUCATION" in result.message


def test_target_must_be_binary(contract, sample_df):
    df = conform_dtypes(sample_df.head(200), contract)
    df["default.payment.next.month"] = 0
    result = validate_contract(df, contract)
    assert any(f["check"].startswith("target must have exactly two classes") or
               "binary_target" in f["check"] for f in result.failures), result.failures


def test_policy_overrides_per_dataset(tmp_path):
    from z4_assets.core.policy import Policy, load_policy

    p = tmp_path / "policy.yaml"
    p.write_text("defaults:\n  performance: {test_auc_min: 0.8}\n"
                 "datasets:\n  special: {performance: {test_ks_min: 0.5}}\n")
    special, other = load_policy(p, "special"), load_policy(p, "other")
    assert isinstance(special, Policy) and special.source == str(p)
    dumped = special.performance.model_dump()
    assert {k: dumped[k] for k in ("test_auc_min", "test_ks_min")} == {"test_auc_min": 0.8, "test_ks_min": 0.5}
    assert dumped["gate_on"] == "interval"  # the rest of the section keeps its defaults
    assert other.performance.test_auc_min == 0.8 and other.performance.test_ks_min == 0.30  # packaged default
    assert other.hygiene.leakage_auc_max == 0.95
    with pytest.raises(TypeError):  # one way to read a threshold: by attribute
        other["performance"]
    # an override file may hold only `datasets:`: the packaged defaults fill the rest
    p.write_text("datasets:\n  special: {performance: {test_ks_min: 0.5}}\n")
    only, packaged = load_policy(p, "special"), load_policy(None, "special")
    assert only.performance.test_ks_min == 0.5 and only.performance.test_auc_min == packaged.performance.test_auc_min
    # a misspelt section is refused, naming it, instead of being ignored
    p.write_text("dataset:\n  special: {performance: {test_ks_min: 0.5}}\n")
    with pytest.raises(Z4Error, match="unknown policy section 'dataset'"):
        load_policy(p, "special")
