"""The console tells the truth: a failed gate's line is followed by up to 3 offending examples from its
gates.json evidence (real gates, computed here), and a passed gate shows none."""

from __future__ import annotations

import pandas as pd

from z4_assets.cli.summary import offending_examples
from z4_assets.core.contract import Contract
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.validation import conform_dtypes, validate_contract


def _contract_gate_dict(df: pd.DataFrame, contract: Contract) -> dict:
    from z4_assets.core.stages import SNAPSHOT

    result = validate_contract(df, contract)
    return SNAPSHOT.gate.contract.compare(result.failure_count, "==", 0, "contract violations",
                                          {"failures": result.failures, "message": result.message}).as_dict()


def test_a_contract_failure_shows_the_offending_values_per_column():
    contract = Contract.model_validate({
        "dataset_id": "census_income", "target": {"column": "income", "positive": 1}, "purposes": ["x"],
        "columns": {"education": {"dtype": "string", "categories": ["Bachelors", "HS-grad", "Some-college"]},
                    "age": {"dtype": "integer", "min": 16, "max": 100},
                    "income": {"dtype": "integer", "categories": [0, 1]}}})
    df = conform_dtypes(pd.DataFrame({"education": [" Some-college", " HS-grad", "Bachelors", " Bachelors"] * 3,
                                      "age": [30, 150, 40, 7] * 3, "income": [0, 1] * 6}), contract)
    shown = offending_examples(_contract_gate_dict(df, contract))
    assert len(shown) == 2
    assert "education: not a declared category (' Some-college', ' HS-grad', ' Bachelors')" in shown
    assert "age: out of range (150, 7)" in shown


def test_hygiene_failures_show_ids_and_rules_and_a_pass_shows_nothing(sample_df, contract, policy):
    frame = conform_dtypes(sample_df.head(3000), contract)
    dup = frame.head(200).assign(ID=frame["ID"].head(200) + 100_000)
    bad = pd.concat([frame, dup], ignore_index=True)
    bad.loc[bad.index[1000:1004], "AGE"] = 16
    gates = {g.name: g.as_dict() for g in run_hygiene(bad, contract, policy, None).gates}
    assert not gates["duplicate_rows"]["passed"]
    ids = gates["duplicate_rows"]["details"]["example_ids"]
    assert len(ids) == 10 and ids[-1] > 100_000  # the planted copies are among them
    assert offending_examples(gates["duplicate_rows"]) == [f"ids {ids[0]}, {ids[1]}, {ids[2]}"]
    assert offending_examples(gates["impossible_values"])[0] == "AGE < 18: 4 rows"
    assert gates["target_leakage"]["passed"]  # and print_summary only asks for examples of a failed gate
    many = {"passed": False, "details": {"missing": [f"field{i}" for i in range(9)]}}
    assert offending_examples(many) == ["'field0'", "'field1'", "'field2'"]
