"""The bad-input corpus: every broken or hostile input fails with a clear message and promotes nothing.

Registration-time cases must be refused by `z4 snapshot add` with one line naming the file and
leave nothing in the Z3 root; the rest must stop the factory run at a named blocking check (with
its measured value and threshold) or at a step that fails with one clear line, with no registry
entry and no signed package anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.core.z3 import add_snapshot, list_snapshots
from z4_assets.assets import FACTORY_ASSETS
from z4_assets_tests.conftest import (ALL_ASSETS, DATASET, check_metadata, check_verdicts, materialized,
                                      run_factory)
from z4_assets_tests.reliability.corpus import REGISTRATION_CASES, inputs, promoted, sample_csv, tree
from z4_assets_tests.reliability.factory_corpus import FACTORY_CASES, SMALL_ROWS, Bench

GOVERNANCE = {"model_card", "signed_package", "run_record", "promotion", "cleanup_report"}
DOWNSTREAM = {"z3_snapshot": ALL_ASSETS - {"z3_snapshot"},
              "hygiene_report": ALL_ASSETS - {"z3_snapshot", "hygiene_report"},
              "adversarial_eval": GOVERNANCE}  # fairness_report is a sibling, not downstream
PROMOTING = {"signed_package", "run_record", "promotion"}


def _nothing_left(z3_root: Path) -> None:
    """No snapshot, no staging folder: at most the (empty) dataset folder add_snapshot creates first."""
    assert tree(z3_root) in ([], [DATASET]), tree(z3_root)


@pytest.mark.parametrize("case", REGISTRATION_CASES, ids=[c.id for c in REGISTRATION_CASES])
def test_registration_refuses_with_one_line_naming_the_file(case, tmp_path, z3_root):
    src = tmp_path / "in"
    src.mkdir()
    kwargs = case.build(src)
    with pytest.raises(Z4Error) as err:
        add_snapshot(z3_root, **kwargs)
    message = str(err.value)
    assert "\n" not in message and len(message) <= 400
    assert case.expect in message, message
    if case.blame:
        assert message.startswith(f"{kwargs[case.blame]}: "), message
    _nothing_left(z3_root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "z3"]
    target = (z3_root / kwargs["dataset_id"]).resolve()
    assert z3_root in target.parents or not target.exists(), target  # nothing escaped the root either


def test_the_corpus_is_the_size_the_issue_asks_for():
    ids = [c.id for c in REGISTRATION_CASES] + [c.id for c in FACTORY_CASES]
    assert len(ids) == len(set(ids)) >= 24
    assert {c.stage for c in FACTORY_CASES} == {"z3_snapshot", "hygiene_report", "adversarial_eval"}


# Every registration case is refused in-process above; these two go once more through the real CLI, one
# per way `z4 snapshot add` is called (with and without --dataset-config): its exit code, one line, no trace.
CLI_CASES = ["latin1_header", "path_traversal_dataset_id"]


@pytest.mark.parametrize("case", [c for c in REGISTRATION_CASES if c.id in CLI_CASES], ids=CLI_CASES)
def test_the_real_cli_exits_2_with_one_line_and_no_traceback(case, tmp_path, z3_root):
    src = tmp_path / "in"
    src.mkdir()
    kw = case.build(src)
    argv = [sys.executable, "-m", "z4_assets.cli", "snapshot", "add", "--dataset-id", kw["dataset_id"],
            "--contract", str(kw["contract_path"]), str(kw["data_path"])]
    if kw["dataset_config"]:
        argv[-1:-1] = ["--dataset-config", str(kw["dataset_config"])]
    env = {**os.environ, "Z4_Z3_ROOT": str(z3_root), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("z4: error: ") and case.expect in proc.stderr
    _nothing_left(z3_root)


def test_a_utf8_bom_is_tolerated_and_loses_nothing(tmp_path, z3_root):
    """Not a failure: Excel's UTF-8 BOM is stripped, and the snapshot equals the clean file's."""
    clean = inputs(tmp_path, name="clean.csv")
    bom = dict(clean, data_path=tmp_path / "bom.csv")
    bom["data_path"].write_bytes(b"\xef\xbb\xbf" + sample_csv().encode())
    ref_clean, _ = add_snapshot(z3_root, **clean)
    ref_bom, created = add_snapshot(z3_root, **bom)
    assert not created and ref_bom.manifest["hash"] == ref_clean.manifest["hash"]
    assert len(list_snapshots(z3_root)) == 1


@pytest.fixture(scope="module")
def small_df(sample_df):
    return sample_df.sample(SMALL_ROWS, random_state=7).sort_values("ID").reset_index(drop=True)


@pytest.fixture(scope="module")
def mlflow_template(tmp_path_factory) -> Path:
    """An initialised, empty MLflow sqlite store, copied per case: the schema migrations run once."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def _step_failure(result, asset: str) -> str:
    data = result.failure_data_for_node(asset)
    assert data is not None, f"{asset} did not fail"
    return data.user_failure_data.description if data.user_failure_data else data.error.message


@pytest.mark.parametrize("case", FACTORY_CASES, ids=[c.id for c in FACTORY_CASES])
def test_factory_stops_bad_snapshot_and_promotes_nothing(case, tmp_path, z3_root, register, factory_resources,
                                                         sample_df, small_df, sample_contract_doc, mlflow_template):
    shutil.copyfile(mlflow_template, tmp_path / "mlflow.db")  # the store factory_resources points at
    bench = Bench(tmp_path, sample_df if case.full_sample else small_df, sample_contract_doc, register, z3_root,
                  factory_resources)
    partition = case.prepare(bench)
    assets = [a for a in FACTORY_ASSETS if a.key.to_user_string() not in case.skip] if case.skip else None
    result = run_factory(factory_resources, partition=partition, assets=assets)

    assert not result.success
    done = materialized(result)
    after = DOWNSTREAM[case.stage]
    if case.check is None:
        message = _step_failure(result, case.stage)
        assert "\n" not in message and case.expect in message, message
        assert not done, done
    else:
        verdicts = check_verdicts(result)
        assert verdicts[case.check] is False, verdicts
        meta = check_metadata(result, case.check)
        assert "measured" in meta and "threshold" in meta, meta
        assert case.expect in str(meta), meta
        assert case.stage in done and not (done & after), done
    assert not (done & PROMOTING)
    storage = Path(factory_resources["storage"].root)
    stored = {p.parent.name for p in (storage / "outcomes").rglob("*.json")}
    assert stored == done, stored  # an outcome is kept for what materialized, and for nothing after the stop
    assert promoted(factory_resources["mlflow"].tracking_uri, storage) == []
    assert not [p for p in z3_root.rglob(".*") if "staging" in p.name]
    assert done <= ALL_ASSETS
