"""Onboarding a dataset: the contract's missing-value tokens and whitespace trimming, `z4 snapshot add`
refusing data that breaks its contract (first offending values per column, nothing written), and
retiring a snapshot so that "newest" skips it (z4 snapshot tags, z4 run's choice, the sensor)."""

from __future__ import annotations

import json
import os
import stat

import dagster as dg
import pandas as pd
import pytest
import yaml

from z4_assets.cli import main
from z4_assets.core.errors import Z4Error
from z4_assets.core.z3 import add_snapshot, list_snapshots, resolve_snapshot
from z4_assets.core.z3_retire import retire_snapshot, retirement_path
from z4_assets.resources import Z3Store
from z4_assets_tests.conftest import DATASET
from z4_assets_tests.sensor_helpers import tick

CENSUS_CSV = (
    "person,age,workclass,education,hours,income\n"
    "1,39, State-gov, Bachelors,40, <=50K\n"
    "2,50, Self-emp-not-inc, Bachelors,13, <=50K\n"
    "3,38, ?, HS-grad,40, >50K\n"
    "4,53, Private, Some-college,?, <=50K\n"
    "5,28, Private, Some-college,40, >50K\n"
    "6,37, Private, Masters,?, >50K\n"
)


def _census_contract(tmp_path, **extra) -> os.PathLike:
    doc = {"dataset_id": "census_income", "id_column": "person", "purposes": ["income_research"],
           "target": {"column": "income", "positive": ">50K"},
           "columns": {"person": {"dtype": "integer"}, "age": {"dtype": "integer", "min": 16, "max": 100},
                       "workclass": {"dtype": "string", "nullable": True,
                                     "categories": ["State-gov", "Self-emp-not-inc", "Private"]},
                       "education": {"dtype": "string",
                                     "categories": ["Bachelors", "HS-grad", "Some-college", "Masters"]},
                       "hours": {"dtype": "integer", "nullable": True},
                       "income": {"dtype": "string", "categories": ["<=50K", ">50K"]}}, **extra}
    path = tmp_path / f"contract-{len(extra)}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def env_root(z3_root, monkeypatch):
    monkeypatch.setenv("Z4_Z3_ROOT", str(z3_root))
    return z3_root


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_add_refuses_data_that_breaks_its_contract_listing_values_per_column(env_root, tmp_path, capsys):
    data = tmp_path / "adult.csv"
    data.write_text(CENSUS_CSV)
    code = main(["snapshot", "add", "--dataset-id", "census_income", "--contract", str(_census_contract(tmp_path)),
                 str(data)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"z4: error: {data}: data breaks its contract")
    # the first offending values of each column, as the data spells them (leading space and all)
    assert "education: not a declared category" in err and "' Bachelors', ' HS-grad', ' Some-college'" in err
    assert "workclass: not a declared category" in err and "' State-gov'" in err
    assert "hours" in err and "'?'" in err
    assert "income" in err and "' <=50K'" in err
    assert _tree(env_root) in ([], ["census_income"])  # nothing registered, no staging folder


def test_missing_tokens_and_trimming_make_the_same_data_acceptable(env_root, tmp_path):
    data = tmp_path / "adult.csv"
    data.write_text(CENSUS_CSV)
    contract = _census_contract(tmp_path, missing_values=["?"], trim_whitespace=True)
    ref, created = add_snapshot(env_root, "census_income", contract, data)
    assert created
    stored = pd.read_parquet(ref.data_path)
    assert stored["education"].tolist() == ["Bachelors", "Bachelors", "HS-grad", "Some-college", "Some-college",
                                            "Masters"]
    assert stored["workclass"].isna().tolist() == [False, False, True, False, False, False]
    assert str(stored["hours"].dtype) == "Int64" and stored["hours"].isna().sum() == 2  # '?' in a number column
    assert stored["income"].tolist()[:3] == ["<=50K", "<=50K", ">50K"]


def test_a_token_is_only_missing_where_the_column_may_be_null(env_root, tmp_path):
    """'?' read as null in a non-nullable column is still a violation: the token does not hide it."""
    data = tmp_path / "adult.csv"
    data.write_text(CENSUS_CSV.replace("1,39,", "1,?,"))
    contract = _census_contract(tmp_path, missing_values=["?"], trim_whitespace=True)
    with pytest.raises(Z4Error, match=r"age: null where not nullable \(1 rows"):
        add_snapshot(env_root, "census_income", contract, data)


def test_an_identifier_value_is_never_shown_in_the_refusal(env_root, sample_df, tmp_path, capsys):
    from z4_assets_tests.conftest import SAMPLE_CONTRACT

    df = sample_df.head(300).copy()
    df.loc[:1, "ID"] = [-7001, -7002]
    data = tmp_path / "bad.parquet"
    df.to_parquet(data, index=False)
    assert main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT), str(data)]) == 2
    err = capsys.readouterr().err
    assert "ID: out of range" in err and "redacted" in err and "-7001" not in err


def _two(register, sample_df):
    return register(sample_df.iloc[:600]), register(sample_df.iloc[600:1200])


def test_retire_newest_then_newest_is_the_one_before(env_root, register, sample_df, capsys, tmp_path, monkeypatch):
    old, new = _two(register, sample_df)
    assert resolve_snapshot(env_root).label == new.label
    assert main(["snapshot", "retire", "--dataset-id", DATASET, "--snapshot-id", new.snapshot_id,
                 "--reason", "labels of March were wrong (INC-4411)"]) == 0
    capsys.readouterr()
    assert resolve_snapshot(env_root).label == old.label
    assert resolve_snapshot(env_root, DATASET).label == old.label
    # `z4 snapshot tags` (what CI and z4 run select) names the one before
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    (tmp_path / "dh").mkdir()
    assert main(["snapshot", "tags"]) == 0
    assert json.loads(capsys.readouterr().out)["dagster/partition"] == old.label
    # named explicitly it still resolves (audit, rebuild): nothing was deleted
    assert resolve_snapshot(env_root, DATASET, new.snapshot_id).label == new.label
    assert len(list_snapshots(env_root)) == 2 and os.path.isfile(new.data_path)
    # the record: who, when, why, which bytes; read-only; listed
    record_path = retirement_path(env_root, DATASET, new.snapshot_id)
    record = json.loads(record_path.read_text())
    assert record["reason"] == "labels of March were wrong (INC-4411)" and record["retired_by"]
    assert record["data_sha256"] == new.manifest["hash"]
    assert not os.stat(record_path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert main(["snapshot", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert any(new.label in line and "RETIRED" in line and "INC-4411" in line for line in listed)
    assert any(old.label in line and "RETIRED" not in line for line in listed)


def test_retire_twice_without_reason_or_everything_is_one_clear_line(env_root, register, sample_df, capsys,
                                                                    tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    (tmp_path / "dh").mkdir()
    old, new = _two(register, sample_df)
    with pytest.raises(Z4Error, match="needs a reason"):
        retire_snapshot(env_root, DATASET, new.snapshot_id, "  ", "auditor")
    retire_snapshot(env_root, DATASET, new.snapshot_id, "bad labels", "auditor")
    with pytest.raises(Z4Error, match="already retired: bad labels"):
        retire_snapshot(env_root, DATASET, new.snapshot_id, "again", "auditor")
    with pytest.raises(Z4Error, match="no snapshot"):
        retire_snapshot(env_root, DATASET, "20990101T000000000000Z-000000000000", "typo", "auditor")
    for dataset_id, snapshot_id in ((DATASET, "../../etc"), ("../z3", new.snapshot_id), (DATASET, ".retired")):
        with pytest.raises(Z4Error, match="invalid|no snapshot"):  # never a path outside the root
            retire_snapshot(env_root, dataset_id, snapshot_id, "escape", "auditor")
    retire_snapshot(env_root, DATASET, old.snapshot_id, "superseded", "auditor")
    with pytest.raises(Z4Error, match=r"every snapshot \(2\) is retired"):
        resolve_snapshot(env_root)
    assert main(["snapshot", "tags"]) == 2 and "every snapshot (2) is retired" in capsys.readouterr().err


def test_the_sensor_does_not_train_a_retired_snapshot(z3_root, register, sample_df, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        store = Z3Store(root=str(z3_root))
        old, new = _two(register, sample_df)
        retire_snapshot(z3_root, DATASET, new.snapshot_id, "bad labels", "auditor")
        t = tick(instance, store)
        assert [r.partition_key for r in t.requests] == [old.label]
        later = register(sample_df.iloc[1200:1800])
        retire_snapshot(z3_root, DATASET, later.snapshot_id, "wrong extract", "auditor")
        t2 = tick(instance, store, t.cursor)
        assert t2.requests == []
