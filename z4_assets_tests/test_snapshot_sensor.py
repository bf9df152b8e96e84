"""z3_snapshot_sensor against a real (temp) Dagster instance: new, repeated, re-published, broken, half-written."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from z4_assets.core.snapshot._watch import content_key
from z4_assets.resources import Z3Store
from z4_assets.sensors.snapshots import CONTENT_TAG, z3_snapshots
from z4_assets_tests.conftest import DATASET
from z4_assets_tests.sensor_helpers import republish, tick


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def store(z3_root):
    return Z3Store(root=str(z3_root))


def _selected(req: dg.RunRequest) -> dict:
    return req.run_config["ops"]["z3_snapshot"]["config"]


def test_new_snapshot_once_then_nothing_then_two_new(sample_df, register, instance, store):
    first = register(sample_df.iloc[:800])
    t1 = tick(instance, store)
    assert len(t1.requests) == 1 and t1.skip is None
    (req,) = t1.requests
    assert _selected(req) == {"dataset_id": DATASET, "snapshot_id": first.snapshot_id}
    assert req.run_key == content_key(first.manifest) == req.tags[CONTENT_TAG]
    assert req.tags["z4/dataset_hash"] == first.manifest["hash"]
    assert req.tags["z4/contract_hash"] == first.manifest["contract_hash"]
    assert req.tags["z4/snapshot_id"] == first.snapshot_id
    assert instance.get_dynamic_partitions(z3_snapshots.name) == [first.label]

    t2 = tick(instance, store, t1.cursor)
    assert t2.requests == [] and "no new snapshot" in t2.skip and "(1 known)" in t2.skip

    a, b = register(sample_df.iloc[800:1600]), register(sample_df.iloc[1600:2400])
    t3 = tick(instance, store, t2.cursor)
    assert sorted(_selected(r)["snapshot_id"] for r in t3.requests) == sorted([a.snapshot_id, b.snapshot_id])
    assert len({r.run_key for r in t3.requests}) == 2
    assert set(instance.get_dynamic_partitions(z3_snapshots.name)) == {first.label, a.label, b.label}


def test_lost_cursor_does_not_retrain_catalogued_snapshots(sample_df, register, instance, store):
    register(sample_df.iloc[:800])
    tick(instance, store)
    again = tick(instance, store, cursor=None)  # e.g. the sensor was reset
    assert again.requests == [] and "no new snapshot" in again.skip


def test_same_data_republished_under_another_name_is_not_trained_twice(
        sample_df, register, instance, store, z3_root):
    ref = register(sample_df.iloc[:800])
    republish(ref.path, "20990101T000000000000Z-copy-in-same-tick")
    t1 = tick(instance, store)
    assert len(t1.requests) == 1, "two names, one content: one run"
    assert len(instance.get_dynamic_partitions(z3_snapshots.name)) == 2

    # The daemon launched that run; later (after a restart, with the cursor lost) the same
    # bytes appear under a third name: the run recorded in the instance stops a second one.
    dg.materialize([_stand_in], instance=instance,
                   tags=t1.requests[0].tags)
    republish(ref.path, "20990102T000000000000Z-copy-after-restart")
    t2 = tick(instance, store, cursor=None)
    assert t2.requests == []
    assert "not trained again" in t2.skip and "same data and contract" in t2.skip


@dg.asset
def _stand_in():
    """Stands in for the model_factory run the daemon launched (a real run record with its tags)."""
    return 1


def test_malformed_manifest_is_skipped_with_a_reason_then_recovers(sample_df, register, instance, store, z3_root):
    ref = register(sample_df.iloc[:800])
    manifest = ref.path + "/manifest.json"
    good = open(manifest).read()
    os.chmod(manifest, 0o644)
    with open(manifest, "w") as f:
        f.write(good[: len(good) // 2])  # half-written

    t1 = tick(instance, store)
    assert t1.requests == []
    assert "malformed manifest" in t1.skip and manifest in t1.skip
    assert json.loads(t1.cursor)["waiting"] == [ref.label]
    t2 = tick(instance, store, t1.cursor)  # retried on the next tick, still broken
    assert t2.requests == [] and "malformed manifest" in t2.skip

    with open(manifest, "w") as f:
        f.write(good)
    t3 = tick(instance, store, t2.cursor)
    assert [_selected(r)["snapshot_id"] for r in t3.requests] == [ref.snapshot_id]
    assert json.loads(t3.cursor)["waiting"] == []


def test_manifest_missing_fields_or_naming_another_folder_waits(sample_df, register, instance, store):
    ref = register(sample_df.iloc[:800])
    path = ref.path + "/manifest.json"
    os.chmod(path, 0o644)
    doc = dict(ref.manifest)
    doc["snapshot_id"] = "somewhere-else"
    open(path, "w").write(json.dumps(doc))
    t = tick(instance, store)
    assert t.requests == [] and "it names" in t.skip and "sits in" in t.skip
    del doc["hash"]
    open(path, "w").write(json.dumps(doc))
    t = tick(instance, store, t.cursor)
    assert t.requests == [] and "missing hash" in t.skip


def test_snapshot_still_being_written_is_not_picked_up(sample_df, register, instance, store, z3_root):
    staging = z3_root / f".{DATASET}.staging-abc"
    staging.mkdir()
    (staging / "manifest.json").write_text("{}")
    no_manifest = z3_root / DATASET / "20990101T000000000000Z-no-manifest-yet"
    no_manifest.mkdir(parents=True)
    (no_manifest / "data.parquet").write_bytes(b"PAR1 partial")
    t0 = tick(instance, store)
    assert t0.requests == [] and "(0 known)" in t0.skip

    ref = register(sample_df.iloc[:800])
    data = ref.data_path
    full = data.read_bytes()
    os.chmod(data, 0o644)
    data.write_bytes(full[: len(full) // 3])  # manifest already there, data still arriving
    t1 = tick(instance, store, t0.cursor)
    assert t1.requests == [] and "sha256 does not match the manifest" in t1.skip
    data.write_bytes(full)
    t2 = tick(instance, store, t1.cursor)
    assert [_selected(r)["snapshot_id"] for r in t2.requests] == [ref.snapshot_id]


def test_a_good_snapshot_is_requested_while_a_broken_one_waits(sample_df, register, instance, store):
    broken = register(sample_df.iloc[:800])
    os.chmod(broken.path + "/manifest.json", 0o644)
    open(broken.path + "/manifest.json", "w").write("not json")
    good = register(sample_df.iloc[800:1600])
    t = tick(instance, store)
    assert [_selected(r)["snapshot_id"] for r in t.requests] == [good.snapshot_id]
    assert json.loads(t.cursor)["waiting"] == [broken.label]


def test_an_unreadable_manifest_is_a_skip_not_a_crash(sample_df, register, instance, store):
    ref = register(sample_df.iloc[:800])
    os.chmod(ref.path + "/manifest.json", 0o644)
    os.replace(ref.path + "/manifest.json", ref.path + "/manifest.tmp")
    os.mkdir(ref.path + "/manifest.json")  # a folder where the manifest should be: read fails
    t = tick(instance, store)
    assert t.requests == [] and "cannot read manifest" in t.skip
