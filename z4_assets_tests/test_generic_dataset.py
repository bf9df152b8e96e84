"""Not Taiwan-specific: a churn table with gaps, text categories, a time column and a yes/no target."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from z4_assets.assets.data import hygiene_report, z3_snapshot
from z4_assets.assets.model import trained_model
from z4_assets.cli import main
from z4_assets_tests.conftest import (ALL_ASSETS, check_metadata, check_verdicts, materialized, newest_key,
                                      run_factory)

CHURN_CONTRACT = {
    "dataset_id": "telco_churn",
    "description": "Synthetic telco customers; did the customer leave within 90 days?",
    "target": {"column": "churned", "positive": "yes"},
    "id_column": "customer_ref",
    "purposes": ["churn_prediction"],
    "time": {"column": "observed_at", "label_time_column": "outcome_at"},
    "sensitive": {
        "age": {"legal_basis": "legitimate_interests", "use_as_feature": False,
                "basis_reference": "fairness monitoring only"},
    },
    "impossible_values": ["monthly_spend < 0", "tenure_months > 600"],
    "columns": {
        "customer_ref": {"dtype": "string"},
        "observed_at": {"dtype": "datetime"},
        "outcome_at": {"dtype": "datetime"},
        "plan": {"dtype": "string", "categories": ["basic", "plus", "premium"], "nullable": True,
                 "group": "product"},
        "region": {"dtype": "string", "group": "geo"},
        "monthly_spend": {"dtype": "float", "nullable": True, "min": 0, "group": "usage"},
        "tenure_months": {"dtype": "integer", "min": 0, "max": 1000, "group": "usage"},
        "support_calls": {"dtype": "integer", "nullable": True, "min": 0, "group": "usage"},
        "age": {"dtype": "integer", "min": 16, "max": 110},
        "churned": {"dtype": "string", "categories": ["yes", "no"]},
    },
}


def churn_frame(n: int = 8000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    observed = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    plan = rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2]).astype(object)
    spend = rng.gamma(2.0, 30.0, n)
    tenure = rng.integers(0, 120, n)
    calls = rng.poisson(1.5, n).astype(float)
    logit = -1.0 + 0.6 * calls - 0.02 * tenure + 0.8 * (plan == "basic") - 0.004 * spend
    churned = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    plan[rng.random(n) < 0.05] = None
    spend[rng.random(n) < 0.08] = np.nan
    calls[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "customer_ref": [f"C{i:07d}" for i in range(n)],
        "observed_at": observed,
        "outcome_at": observed + pd.Timedelta(days=90),
        "plan": plan,
        "region": rng.choice(["north", "south", "east", "west", "islands"], n),
        "monthly_spend": spend.round(2),
        "tenure_months": tenure,
        "support_calls": calls,
        "age": rng.integers(18, 90, n),
        "churned": churned,
    })


CHURN_PURPOSE = "churn_prediction"  # the policy's default purpose is credit_risk_scoring

CHURN_CARD = {
    "dataset_id": "telco_churn", "model_name": "churn-mlp",
    "purpose": "Estimate the probability that a customer leaves within 90 days.",
    "intended_use": "Prioritise retention calls; a person decides every offer.",
    "out_of_scope": ["Pricing or contract terms for individual customers."],
    "favourable_outcome": "selected",   # a flagged customer gets a retention offer
}


@pytest.fixture
def churn_files(tmp_path):
    contract = tmp_path / "churn_contract.yaml"
    contract.write_text(yaml.safe_dump(CHURN_CONTRACT, sort_keys=False))
    data = tmp_path / "churn.csv"
    churn_frame().to_csv(data, index=False)
    card = tmp_path / "churn_dataset.yaml"
    card.write_text(yaml.safe_dump(CHURN_CARD, sort_keys=False))
    return contract, data, card


def test_another_dataset_goes_through_without_code_changes(churn_files, z3_root, monkeypatch,
                                                           factory_resources):
    contract, data, card = churn_files
    monkeypatch.setenv("Z4_Z3_ROOT", str(z3_root))
    assert main(["snapshot", "add", "--dataset-id", "telco_churn", "--contract", str(contract),
                 "--dataset-config", str(card), str(data)]) == 0
    key = newest_key(factory_resources)
    assert key.startswith("telco_churn@")
    result = run_factory(factory_resources, purpose=CHURN_PURPOSE, train={"epochs": 6})

    verdicts = check_verdicts(result)
    assert all(verdicts.values()), {k: v for k, v in verdicts.items() if not v}
    assert result.success
    assert materialized(result) == ALL_ASSETS
    snap = result.asset_materializations_for_node("z3_snapshot")[0]
    assert snap.partition == key and snap.metadata["dataset_id"].value == "telco_churn"
    assert snap.metadata["purpose"].value == CHURN_PURPOSE
    hygiene = result.asset_materializations_for_node("hygiene_report")[0].metadata
    assert set(hygiene["split"].value) == {"train", "validation", "test"}
    assert "(split time)" in check_metadata(result, "holdout_leak")["verdict"]


def test_a_feature_known_only_after_the_label_fails_temporal_leakage(tmp_path, z3_root,
                                                                     monkeypatch, factory_resources):
    doc = copy.deepcopy(CHURN_CONTRACT)
    doc["columns"]["retention_offer_at"] = {"dtype": "datetime"}
    doc["columns"]["retention_offer"] = {"dtype": "integer", "categories": [0, 1],
                                         "known_at_column": "retention_offer_at"}
    df = churn_frame()
    df["retention_offer"] = np.random.default_rng(1).integers(0, 2, len(df))
    df["retention_offer_at"] = df["outcome_at"] + pd.Timedelta(days=3)  # decided after the outcome
    contract, data = tmp_path / "c.yaml", tmp_path / "d.parquet"
    contract.write_text(yaml.safe_dump(doc, sort_keys=False))
    df.to_parquet(data)
    monkeypatch.setenv("Z4_Z3_ROOT", str(z3_root))
    assert main(["snapshot", "add", "--dataset-id", "telco_churn", "--contract", str(contract),
                 str(data)]) == 0
    data = run_factory(factory_resources, purpose=CHURN_PURPOSE, assets=[z3_snapshot, hygiene_report])

    assert check_verdicts(data)["temporal_leakage"] is False
    evidence = check_metadata(data, "temporal_leakage")["evidence"]
    assert evidence["leaking_features"]["retention_offer"]["rows_after_label"] == len(df)
    # training this partition anyway (its hygiene outcome read from the store) is refused in one line
    train = run_factory(factory_resources, assets=[trained_model])
    assert not train.success and "trained_model" not in materialized(train)
    (failure,) = [e for e in train.all_events if e.is_step_failure]
    line = failure.step_failure_data.user_failure_data.description  # a dg.Failure: one line, no traceback
    assert failure.step_failure_data.error.cause is None
    key = newest_key(factory_resources)
    assert line.startswith(f"trained_model of {key}: training of {key} refused: hygiene"), line
    assert f"did not pass in run {data.run_id} (blocked by temporal_leakage" in line and "\n" not in line, line
