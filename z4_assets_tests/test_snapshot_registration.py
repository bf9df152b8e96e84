"""`z4 snapshot add`: immutable, hashed snapshots; bad files get one clear line and leave nothing."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys

import pandas as pd
import pytest

from z4_assets.cli import main
from z4_assets.core.z3 import list_snapshots, load_manifest
from z4_assets_tests.conftest import DATASET, SAMPLE_CONTRACT, SAMPLE_CSV


@pytest.fixture
def env_root(z3_root, monkeypatch):
    monkeypatch.setenv("Z4_Z3_ROOT", str(z3_root))
    return z3_root


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_add_writes_an_immutable_snapshot_with_a_complete_manifest(env_root, capsys):
    assert main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT),
                 str(SAMPLE_CSV)]) == 0
    (ref,) = list_snapshots(env_root)
    m = load_manifest(ref.path)
    assert m["dataset_id"] == DATASET and m["row_count"] == 30000
    assert m["hash"] == hashlib.sha256(ref.data_path.read_bytes()).hexdigest()
    assert m["contract_hash"] == hashlib.sha256(SAMPLE_CONTRACT.read_bytes()).hexdigest()
    assert m["source"]["sha256"] == "9e5c04a4331d1e7b7d11b5ce881f550d55c1932292eacfe3734dd4546888ddec"
    assert m["feature_groups"]["repayment_status"][0] == "PAY_0"
    assert m["time_range"] is None  # the sample declares no time column
    assert m["snapshot_at"].endswith("Z")
    for f in ("data.parquet", "manifest.json", "contract.yaml"):
        assert not os.stat(os.path.join(ref.path, f)).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    frame = pd.read_parquet(ref.data_path)
    assert list(frame.columns)[:3] == ["ID", "LIMIT_BAL", "SEX"] and str(frame["SEX"].dtype) == "Int64"
    assert f"partition: {ref.label}" in capsys.readouterr().out  # the key a factory run of it is launched with


def test_same_data_and_contract_are_not_registered_twice(env_root, tmp_path):
    args = ["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT)]
    assert main(args + [str(SAMPLE_CSV)]) == 0
    parquet = tmp_path / "same.parquet"
    pd.read_csv(SAMPLE_CSV).to_parquet(parquet)
    assert main(args + [str(parquet)]) == 0  # same content, another format and name
    assert len(list_snapshots(env_root)) == 1
    assert [p.name for p in (env_root).iterdir()] == [DATASET]  # no staging folder left


def _bad_files(tmp_path):
    raw = SAMPLE_CSV.read_bytes()
    good_parquet = tmp_path / "good.parquet"
    pd.read_csv(SAMPLE_CSV).to_parquet(good_parquet)
    files = {
        "truncated.csv": raw[: len(raw) // 2 + 17],
        "truncated.parquet": good_parquet.read_bytes()[:100_000],
        "binary.csv": bytes(range(256)) * 40,
        "empty.csv": b"",
        "header_only.csv": raw.split(b"\n")[0] + b"\n",
        "not_tabular.csv": b"just one line of prose without any separators\n",
        "table.json": b'{"a": 1}',
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return files


@pytest.mark.parametrize("name,expect", [
    ("truncated.csv", "Expected 25 columns"),
    ("truncated.parquet", "not a readable parquet table"),
    ("binary.csv", "not a readable csv table"),
    ("empty.csv", "data file is empty"),
    ("header_only.csv", "header but no rows"),
    ("not_tabular.csv", "not tabular"),
    ("table.json", "unsupported data format"),
])
def test_bad_data_file_gets_one_clear_line_naming_it_and_leaves_nothing(
        name, expect, env_root, tmp_path, capsys):
    _bad_files(tmp_path)
    code = main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(SAMPLE_CONTRACT),
                 str(tmp_path / name)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"z4: error: {tmp_path / name}: ") and expect in err
    assert _tree(env_root) in ([], [DATASET])  # no snapshot, no staging folder


def test_unknown_dataset_id_is_refused(env_root, capsys):
    code = main(["snapshot", "add", "--dataset-id", "mortgage_book", "--contract",
                 str(SAMPLE_CONTRACT), str(SAMPLE_CSV)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown dataset id 'mortgage_book'" in err and str(SAMPLE_CONTRACT) in err
    assert _tree(env_root) == []


def test_malformed_contract_is_refused_naming_the_field(env_root, tmp_path, capsys):
    doc = SAMPLE_CONTRACT.read_text().replace("dtype: integer, min: 0, max: 120", "dtype: int32")
    bad = tmp_path / "contract.yaml"
    bad.write_text(doc)
    code = main(["snapshot", "add", "--dataset-id", DATASET, "--contract", str(bad), str(SAMPLE_CSV)])
    err = capsys.readouterr().err
    assert code == 2 and "columns.AGE.dtype" in err and str(bad) in err
    assert _tree(env_root) == []


def test_the_installed_cli_prints_no_traceback(z3_root, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "z4_assets.cli", "snapshot", "add", "--dataset-id", DATASET,
         "--contract", str(SAMPLE_CONTRACT), str(empty)],
        capture_output=True, text=True, env={**os.environ, "Z4_Z3_ROOT": str(z3_root)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"z4: error: {empty}: data file is empty"
    assert proc.stdout == ""
