"""Training health on the real sample, without Dagster: epoch records, the NaN/inf stop, the
exploding-gradient and no-improvement warnings, and the cost measure."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from z4_assets.core.contract import load_contract
from z4_assets.core.cost import measure
from z4_assets.core.errors import Z4Error
from z4_assets.core.training._features import fit_features
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.policy import load_policy
from z4_assets.core.split import TRAIN, VALIDATION
from z4_assets.core.training._mlp import train_mlp
from z4_assets.core.training._monitor import TrainingDiverged, TrainingMonitor
from z4_assets.core.validation import conform_dtypes
from z4_assets_tests.conftest import SAMPLE_CONTRACT, SAMPLE_CSV

HP = dict(hidden_sizes=[64, 32], epochs=3, batch_size=512, learning_rate=2e-3, weight_decay=1e-5, seed=7,
          threads=1)
IDS = {"dagster_run_id": "run-123", "snapshot_id": "taiwan_credit_default@s1"}


@pytest.fixture(scope="module")
def arrays():
    """Train and validation features of the first 12k sample rows, as trained_model builds them."""
    contract, _ = load_contract(SAMPLE_CONTRACT)
    df = conform_dtypes(pd.read_csv(SAMPLE_CSV).iloc[:12000], contract)
    split = run_hygiene(df, contract, load_policy(None, contract.dataset_id), None).split
    y = (df[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    tr, va = split == TRAIN, split == VALIDATION
    x = fit_features(df[tr], contract).transform(df)
    return x[tr], y[tr], x[va], y[va]


def _policy(**over):
    """The policy's `training` section as the stage passes it (a TrainingPolicy), with OVER changed."""
    return load_policy(None, "taiwan_credit_default").training.model_copy(update=over)


def test_policy_defines_the_training_thresholds(tmp_path):
    rules = load_policy(None, "taiwan_credit_default").training
    assert rules.max_grad_norm > 0 and rules.patience_epochs >= 1 and rules.min_delta >= 0
    own = tmp_path / "policy.yaml"
    own.write_text("defaults:\n  training: {patience_epochs: 1}\n")
    merged = load_policy(own, "taiwan_credit_default").training
    assert merged.patience_epochs == 1 and merged.max_grad_norm == rules.max_grad_norm
    assert TrainingMonitor(merged).patience == 1
    # a word where a number belongs never reaches the monitor: the policy file is refused, naming the key
    own.write_text("defaults:\n  training: {max_grad_norm: big}\n")
    with pytest.raises(Z4Error, match="training.max_grad_norm must be a number"):
        load_policy(own, "taiwan_credit_default")
    # numbers of the right kind but out of range are refused by the monitor itself
    for bad in (_policy(max_grad_norm=0.0), _policy(patience_epochs=0), _policy(min_delta=-0.1)):
        with pytest.raises(Z4Error, match="policy 'training' needs"):
            TrainingMonitor(bad)


def test_a_healthy_run_logs_one_structured_record_per_epoch_and_keeps_the_same_weights(arrays, caplog, tmp_path):
    monitor = TrainingMonitor(_policy(), IDS)
    with caplog.at_level(logging.INFO, logger="z4_assets.core.training._monitor"):
        watched = train_mlp(*arrays, HP, monitor)
    bare = train_mlp(*arrays, HP)
    assert watched.digest == bare.digest, "the monitor must only read"
    assert [r["epoch"] for r in monitor.records] == [1, 2, 3] and monitor.warnings == []
    for r, h in zip(monitor.records, watched.history):
        assert r["train_loss"] == h["train_loss"] and r["val_auc"] == h["val_auc"]
        assert r["learning_rate"] == 2e-3 and r["rows"] == len(arrays[0]) and r["seconds"] > 0
        assert r["rows_per_s"] > 0 and r["peak_rss_mib"] > 0 and 0 < r["grad_norm_mean"] <= r["grad_norm_max"]
        assert r["dagster_run_id"] == "run-123" and r["snapshot_id"] == "taiwan_credit_default@s1"
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 loss=")
    payload = json.loads(lines[0][lines[0].index("{"):])
    assert payload["event"] == "epoch" and payload["epoch"] == 1 and payload["snapshot_id"] == IDS["snapshot_id"]
    path = monitor.write_jsonl(tmp_path / "training_log.jsonl")
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2, 3]
    steps = monitor.step_metrics()
    assert ("train.val_auc", monitor.records[2]["val_auc"], 3) in steps


@pytest.mark.parametrize("watched", [True, False])
def test_a_learning_rate_built_to_diverge_stops_at_the_epoch_it_turns_nan(arrays, tmp_path, watched):
    monitor = TrainingMonitor(_policy(), IDS) if watched else None
    with pytest.raises(TrainingDiverged) as e:
        train_mlp(*arrays, {**HP, "learning_rate": 1e20}, monitor)
    assert e.value.epoch == 1 and "training diverged at epoch 1/3" in str(e.value) and "nan" in str(e.value)
    # what core/tracking.open_stage records in the run's MLflow run
    assert e.value.blocked_by == "training_diverged"
    assert e.value.tags == {"z4.training.failure": str(e.value), "training.failed_epoch": "1"}
    if watched:
        assert len(monitor.records) == 1 and monitor.failure == str(e.value)
        line = json.loads(monitor.write_jsonl(tmp_path / "log.jsonl").read_text())  # NaN as a string
        assert line["train_loss"] == "nan" and line["val_auc"] is None


def test_an_exploding_gradient_warns_and_is_recorded(arrays):
    monitor = TrainingMonitor(_policy(), IDS)
    result = train_mlp(*arrays, {**HP, "learning_rate": 1.0}, monitor)  # Adam at lr 1: finite but wild
    assert np.isfinite(result.history[-1]["train_loss"])
    exploding = [w for w in monitor.warnings if w["kind"] == "exploding_gradient"]
    assert exploding and exploding[0]["epoch"] == 1
    assert exploding[0]["grad_norm_max"] > exploding[0]["max_grad_norm"] == 100.0
    assert monitor.summary()["warning_kinds"] == ["exploding_gradient"]


def test_no_improvement_for_patience_epochs_warns_once(arrays):
    monitor = TrainingMonitor(_policy(patience_epochs=2), IDS)
    train_mlp(*arrays, {**HP, "epochs": 4, "learning_rate": 1e-9}, monitor)  # too small to learn
    stalled = [w for w in monitor.warnings if w["kind"] == "no_improvement"]
    assert [w["epoch"] for w in stalled] == [3] and stalled[0]["best_epoch"] == 1
    assert "for 2 epochs" in stalled[0]["message"]
    assert not [w for w in monitor.warnings if w["kind"] == "exploding_gradient"]


def test_measure_reports_the_blocks_own_peak_and_the_process_peak():
    with measure(rows=10) as big:
        block = bytearray(200 * 2**20)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page so it is resident
        del block
    with measure() as small:
        sum(range(1000))
    assert big.step_peak_rss_mib is not None, "the peak reset must work on this Linux box"
    assert big.step_peak_rss_mib - big.rss_start_mib >= 150
    assert small.step_peak_rss_mib < big.step_peak_rss_mib - 150, "the second block's peak was not reset"
    assert small.process_peak_rss_mib >= big.step_peak_rss_mib, "the lifetime peak survives the reset"
    assert big.rows == 10 and big.wall_s > 0 and "rows=10" in big.summary()


def test_measure_counts_child_processes_cpu():
    with measure() as cost:
        subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert cost.child_cpu_s > 0 and cost.cpu_s >= cost.child_cpu_s
