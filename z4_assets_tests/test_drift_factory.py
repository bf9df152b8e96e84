"""The drift gates in real factory runs: a dataset's first snapshot sets the baseline (and says "no
baseline" rather than a measured 0); each blind spot of the old gate then fails its run, downstream skipped."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from z4_assets.assets import hygiene_report, z3_snapshot
from z4_assets.core.files import sha256_file
from z4_assets.core.run_folder import FactoryRoot
from z4_assets_tests.conftest import DATASET, check_metadata, check_verdicts, materialized, run_factory

ROWS = 8000
DRIFT_GATES = ("drift", "drift_missingness", "drift_new_features")


@pytest.fixture
def baselined(sample_df, sample_contract_doc, register, factory_resources):
    """A baseline set by a first snapshot (BILL_AMT6 constant, BILL_AMT2 nullable, no PAY_AMT6 yet)."""
    doc = copy.deepcopy(sample_contract_doc)
    del doc["columns"]["PAY_AMT6"]
    doc["columns"]["BILL_AMT2"]["nullable"] = True
    base = sample_df.head(ROWS).drop(columns=["PAY_AMT6"]).assign(BILL_AMT6=0.0)
    register(base, doc)
    first = run_factory(factory_resources, assets=[z3_snapshot, hygiene_report])
    assert first.success
    return {"base": base, "doc": doc, "first": first}


def _second(register, factory_resources, df, doc) -> tuple:
    register(df, doc)
    result = run_factory(factory_resources)
    assert not result.success and "trained_model" not in materialized(result)  # downstream skipped
    assert "hygiene_report" in materialized(result)  # the evidence is still written
    return check_verdicts(result), result


def test_the_first_snapshot_says_no_baseline_and_becomes_it(baselined, factory_resources):
    first = baselined["first"]
    for name in DRIFT_GATES:
        meta = check_metadata(first, name)
        assert meta["decision"] == "INSUFFICIENT_EVIDENCE" and meta["measured"] == "not measured: insufficient evidence"
        assert "no baseline" in meta["verdict"]
    assert all(check_verdicts(first)[n] for n in DRIFT_GATES)  # non-blocking by default policy
    factory = FactoryRoot(factory_resources["storage"].root)
    assert factory.baseline(DATASET).is_file() and factory.baseline_reference(DATASET).is_file()
    meta = first.asset_materializations_for_node("hygiene_report")[0].metadata
    assert meta["baseline_sha256"].value == sha256_file(factory.baseline(DATASET))  # recorded when set


def test_a_constant_reference_column_with_a_new_value_fails_the_run(baselined, register, factory_resources):
    df = baselined["base"].copy()
    df.loc[df.index[::10], "BILL_AMT6"] = 5.0
    verdicts, result = _second(register, factory_resources, df, baselined["doc"])
    assert verdicts["drift"] is False and verdicts["drift_missingness"] and verdicts["drift_new_features"]
    meta = check_metadata(result, "drift")
    assert meta["verdict"].startswith("FAILED: highest PSI against baseline (BILL_AMT6; factory definition)")
    baseline = FactoryRoot(factory_resources["storage"].root).baseline(DATASET)
    assert meta["evidence"]["baseline_sha256"] == sha256_file(baseline)  # the exact baseline compared with
    assert meta["evidence"]["per_feature"]["BILL_AMT6"]["bins"]["current"][-1] == pytest.approx(0.1, abs=1e-3)


def test_a_shift_above_the_reference_range_fails_the_run(baselined, register, factory_resources):
    df = baselined["base"].copy()
    df["LIMIT_BAL"] = df["LIMIT_BAL"] + df["LIMIT_BAL"].max() + 1
    verdicts, result = _second(register, factory_resources, df, baselined["doc"])
    assert verdicts["drift"] is False
    assert "(LIMIT_BAL; factory definition)" in check_metadata(result, "drift")["verdict"]


def test_a_new_column_is_reported_and_blocks_the_run(baselined, sample_df, sample_contract_doc, register,
                                                    factory_resources):
    doc = copy.deepcopy(baselined["doc"])
    doc["columns"]["PAY_AMT6"] = sample_contract_doc["columns"]["PAY_AMT6"]
    df = baselined["base"].assign(PAY_AMT6=sample_df["PAY_AMT6"].head(ROWS).to_numpy())
    verdicts, result = _second(register, factory_resources, df, doc)
    assert verdicts["drift_new_features"] is False and verdicts["drift"] and verdicts["drift_missingness"]
    meta = check_metadata(result, "drift_new_features")
    assert meta["measured"] == 1 and meta["evidence"]["new_features"] == {"PAY_AMT6": "new: no baseline"}


def test_a_null_only_shift_fails_the_run_as_missingness_drift(baselined, register, factory_resources):
    df = baselined["base"].copy()
    df.loc[df.sample(frac=0.3, random_state=3).index, "BILL_AMT2"] = np.nan
    verdicts, result = _second(register, factory_resources, df, baselined["doc"])
    assert verdicts["drift_missingness"] is False and verdicts["drift"] and verdicts["drift_new_features"]
    meta = check_metadata(result, "drift_missingness")
    assert meta["measured"] == pytest.approx(0.3, abs=0.01) and "BILL_AMT2" in meta["verdict"]


def test_method_evidently_in_a_run_reports_evidentlys_figure_and_says_so(baselined, register, factory_resources,
                                                                          tmp_path):
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    from z4_assets.resources import PolicyStore

    override = tmp_path / "evidently.yaml"
    override.write_text("defaults:\n  hygiene:\n    drift_method: evidently\n")
    resources = {**factory_resources, "policy": PolicyStore(path=str(override))}
    base = baselined["base"]
    df = base.assign(LIMIT_BAL=base["LIMIT_BAL"] * 1.5)
    verdicts, result = _second(register, resources, df, baselined["doc"])
    assert verdicts["drift"] is False
    meta = check_metadata(result, "drift")
    assert meta["verdict"].startswith("FAILED: highest PSI against baseline (LIMIT_BAL; evidently definition)")
    assert meta["evidence"]["method"] == "evidently"
    assert meta["evidence"]["definition"].startswith("Evidently 0.7.23 definition")
    dd = DataDefinition(numerical_columns=["LIMIT_BAL"])
    snap = Report([ValueDrift(column="LIMIT_BAL", method="psi")]).run(
        Dataset.from_pandas(df[["LIMIT_BAL"]], data_definition=dd),
        Dataset.from_pandas(base[["LIMIT_BAL"]], data_definition=dd))
    assert meta["measured"] == pytest.approx(snap.dict()["metrics"][0]["value"], abs=1e-9, rel=0)
