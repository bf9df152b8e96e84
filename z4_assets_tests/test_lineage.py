"""One snapshot, one lineage: a stage reads its upstream only from its own partition, refuses upstream
that did not pass or was made from other content, and a blocked snapshot repaints no other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from z4_assets.assets import FACTORY_ASSETS
from z4_assets.core.z3 import list_snapshots
from z4_assets.partitions import snapshots
from z4_assets.resources import PolicyStore
from z4_assets_tests.conftest import check_verdicts, materialized, run_factory

BY_NAME = {a.key.to_user_string(): a for a in FACTORY_ASSETS}
THROUGH_TRAINING = [BY_NAME[n] for n in ("z3_snapshot", "hygiene_report", "trained_model")]
ROOT = Path(__file__).resolve().parents[1]


def failure_text(result: dg.ExecuteInJobResult) -> str:
    return " | ".join(str(e.event_specific_data.error.message) for e in result.all_events
                      if e.event_type_value == "STEP_FAILURE")


@pytest.fixture(scope="module")
def two_snapshots(tmp_path_factory, sample_df, signing_key, cache_root):
    """Partitions A and B (different rows, so different models), both trained in one instance."""
    from z4_assets.core.z3 import add_snapshot
    from z4_assets_tests.conftest import SAMPLE_CONTRACT, SAMPLE_DATASET_CONFIG, make_resources

    root = tmp_path_factory.mktemp("lineage")
    refs = []
    for name, rows in (("a", sample_df.iloc[:15000]), ("b", sample_df.iloc[15000:])):
        data = root / f"{name}.parquet"
        rows.to_parquet(data, index=False)
        refs.append(add_snapshot(root / "z3", "taiwan_credit_default", SAMPLE_CONTRACT, data,
                                 dataset_config=SAMPLE_DATASET_CONFIG)[0])
    resources = make_resources(root, root / "z3", signing_key, cache_root)
    instance = dg.DagsterInstance.ephemeral()
    a, b = (r.label for r in refs)
    trained = {key: run_factory(resources, key, instance=instance, assets=THROUGH_TRAINING) for key in (a, b)}
    assert all(r.success for r in trained.values()), {k: failure_text(r) for k, r in trained.items()}
    return {"resources": resources, "instance": instance, "a": a, "b": b, "root": root}


def _outcome(resources, asset: str, key: str):
    from z4_assets.core.outcome import SnapshotOutcome, StageOutcome

    path = resources["outcomes"]._path(asset, key)
    return (SnapshotOutcome if asset == "z3_snapshot" else StageOutcome).model_validate_json(path.read_bytes())


def test_fairness_alone_for_b_reads_only_b_while_a_holds_another_model(two_snapshots):
    res, inst, a, b = (two_snapshots[k] for k in ("resources", "instance", "a", "b"))
    model_a, model_b = (_outcome(res, "trained_model", k).produced.model for k in (a, b))
    assert model_a != model_b
    result = run_factory(res, b, instance=inst, assets=[BY_NAME["fairness_report"]])
    assert materialized(result) == {"fairness_report"}, failure_text(result)  # its own gates may block
    fair = _outcome(res, "fairness_report", b)
    assert fair.consumed.model == model_b and fair.consumed.snapshot == _outcome(res, "z3_snapshot", b).produced.snapshot
    assert fair.partition == b and fair.run_id == result.run_id
    assert _outcome(res, "trained_model", a).produced.model == model_a  # A untouched


def test_a_stage_of_a_partition_with_no_upstream_refuses_with_one_line(two_snapshots, sample_df):
    from z4_assets.core.z3 import add_snapshot
    from z4_assets_tests.conftest import SAMPLE_CONTRACT

    res, inst = two_snapshots["resources"], two_snapshots["instance"]
    data = two_snapshots["root"] / "c.parquet"
    sample_df.iloc[:5000].to_parquet(data, index=False)
    c = add_snapshot(res["z3"].root, "taiwan_credit_default", SAMPLE_CONTRACT, data)[0].label
    result = run_factory(res, c, instance=inst, assets=[BY_NAME["fairness_report"]])
    assert not result.success and not materialized(result)
    text = failure_text(result)
    assert f"z3_snapshot has not been materialized for snapshot {c}" in text or \
        f"has not been materialized for snapshot {c}" in text, text


def test_a_subset_that_skips_a_failed_gate_cannot_package_it(two_snapshots, tmp_path):
    """fairness_report of B fails (a policy no model can meet); signed_package and promotion, materialized
    on their own afterwards, refuse B's lineage instead of packaging it."""
    res, inst, b = two_snapshots["resources"], two_snapshots["instance"], two_snapshots["b"]
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"defaults": {"fairness": {"auc_diff_max": 0.0}}}))
    strict_res = {**res, "policy": PolicyStore(path=str(strict))}
    blocked = run_factory(strict_res, b, instance=inst, assets=[BY_NAME[n] for n in (
        "adversarial_eval", "fairness_report", "model_card")])
    assert check_verdicts(blocked)["fairness_auc_diff"] is False
    assert "model_card" not in materialized(blocked)
    for asset in ("model_card", "signed_package"):
        attempt = run_factory(res, b, instance=inst, assets=[BY_NAME[asset]])
        assert not attempt.success and not materialized(attempt), asset
        text = failure_text(attempt)
        assert "did not pass" in text or "has not been materialized" in text, text
    promote = run_factory(res, b, instance=inst, assets=[BY_NAME["promotion"]])
    assert not promote.success and "has not been materialized for snapshot" in failure_text(promote)


def test_a_blocked_snapshot_leaves_the_other_snapshot_s_catalog_status_untouched(two_snapshots, tmp_path):
    res, inst, a, b = (two_snapshots[k] for k in ("resources", "instance", "a", "b"))
    keys = [dg.AssetKey(n) for n in ("z3_snapshot", "hygiene_report", "trained_model")]
    before = {k: inst.get_status_by_partition(k, [a], snapshots)[a] for k in keys}
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"defaults": {"hygiene": {"duplicate_share_max": -1.0}}}))
    blocked = run_factory({**res, "policy": PolicyStore(path=str(strict))}, b, instance=inst,
                          assets=THROUGH_TRAINING)
    assert check_verdicts(blocked)["duplicate_rows"] is False and "trained_model" not in materialized(blocked)
    after_b = {k.to_user_string(): inst.get_status_by_partition(k, [b], snapshots)[b].value for k in keys}
    assert after_b["trained_model"] == "FAILED"
    assert {k: inst.get_status_by_partition(k, [a], snapshots)[a] for k in keys} == before
    assert all(v == dg.AssetPartitionStatus.MATERIALIZED for v in before.values())


def test_after_z4_demo_the_daemon_never_trains_the_same_snapshot_again(demo_project, monkeypatch):
    """`z4 demo` trained the sample; the daemon's sensor sees it, whether its partition is still
    catalogued or not, and launches nothing."""
    assert demo_project["proc"].returncode == 0, demo_project["proc"].stdout[-2000:]
    home = demo_project["path"]
    monkeypatch.chdir(home)  # the project's dagster.yaml keeps its storage relative to the project root
    env = {**demo_project["env"], "Z4_SENSOR_INTERVAL_SECONDS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), demo_project["env"].get("PYTHONPATH", "")])}
    # the demo's partition: the project's first snapshot (the shared demo project may also hold the UI
    # tests' blocked snapshot and its run, whichever order the workers take the files in)
    key = list_snapshots(home / "data" / "z3")[0].label
    with dg.DagsterInstance.from_config(str(home)) as instance:
        catalogued = instance.get_dynamic_partitions(snapshots.name)
        assert key in catalogued
        trained = instance.get_runs(filters=dg.RunsFilter(job_name="model_factory"))
        demo_runs = [r for r in trained if r.tags.get("dagster/partition") == key]
        assert len(demo_runs) == 1 and demo_runs[0].tags["z4/content_key"]
        instance.delete_dynamic_partition(snapshots.name, key)  # the sensor must look at it again
    log = home / "daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                                   "workspace.yaml"], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        with dg.DagsterInstance.from_config(str(home)) as instance:
            while time.monotonic() < deadline and key not in instance.get_dynamic_partitions(snapshots.name):
                time.sleep(1)
            assert sorted(instance.get_dynamic_partitions(snapshots.name)) == sorted(catalogued), \
                log.read_text()[-3000:]
            time.sleep(6)  # several more ticks
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="model_factory"))
        assert sorted(r.run_id for r in runs) == sorted(r.run_id for r in trained), \
            "the sensor trained a snapshot again"
        assert "not trained again" in log.read_text() or "has a run already" in log.read_text()
    finally:
        try:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=30)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)
