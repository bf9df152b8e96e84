"""z3_snapshot_sensor against a real (temp) Dagster instance: new, repeated, re-published, already run, broken,
half-written."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from z4_assets.cli.snapshots import run_tags
from z4_assets.core.snapshot import CONTENT_TAG, content_key, snapshot_run_tags
from z4_assets.partitions import snapshots
from z4_assets.resources import Z3Store
from z4_assets.sensors import snapshots as sensor_module
from z4_assets_tests.conftest import DATASET
from z4_assets_tests.sensor_helpers import record_factory_run, republish, tick


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def store(z3_root):
    return Z3Store(root=str(z3_root))


def _partitions(instance) -> set[str]:
    return set(instance.get_dynamic_partitions(snapshots.name))


def test_new_snapshot_once_then_nothing_then_two_new(sample_df, register, instance, store):
    first = register(sample_df.iloc[:800])
    t1 = tick(instance, store)
    assert len(t1.requests) == 1 and t1.skip is None
    (req,) = t1.requests
    assert req.partition_key == first.label == f"{DATASET}@{first.snapshot_id}"
    assert not req.run_config  # the partition selects the snapshot, no run config does
    assert req.run_key == content_key(first.manifest) == req.tags[CONTENT_TAG]
    assert req.tags == snapshot_run_tags(DATASET, first.snapshot_id, first.manifest)
    assert req.tags["z4/dataset_hash"] == first.manifest["hash"]
    assert req.tags["z4/contract_hash"] == first.manifest["contract_hash"]
    assert req.tags["z4/snapshot_id"] == first.snapshot_id
    assert sensor_module.CONTENT_TAG is CONTENT_TAG  # still importable from the sensor module
    assert instance.get_dynamic_partitions(snapshots.name) == [first.label]

    t2 = tick(instance, store, t1.cursor)
    assert t2.requests == [] and "no new snapshot" in t2.skip and "(1 known)" in t2.skip

    a, b = register(sample_df.iloc[800:1600]), register(sample_df.iloc[1600:2400])
    t3 = tick(instance, store, t2.cursor)
    assert sorted(r.partition_key for r in t3.requests) == sorted([a.label, b.label])
    assert len({r.run_key for r in t3.requests}) == 2
    assert _partitions(instance) == {first.label, a.label, b.label}


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
    assert len(_partitions(instance)) == 2  # both catalogued, one trained

    # The daemon launched that run; later (after a restart, with the cursor lost) the same
    # bytes appear under a third name: the run recorded in the instance stops a second one.
    (req,) = t1.requests
    first = record_factory_run(instance, req.partition_key, req.tags)
    copy = republish(ref.path, "20990102T000000000000Z-copy-after-restart")
    t2 = tick(instance, store, cursor=None)
    assert t2.requests == []
    assert "not trained again" in t2.skip and "same data and contract" in t2.skip and first in t2.skip
    assert f"{DATASET}@{copy.name}" in _partitions(instance)  # seen: not examined again


@pytest.mark.parametrize("launched_by", ["z4 run", "the sensor"])
def test_content_run_by_another_launcher_stops_a_republished_copy(launched_by, sample_df, register, instance,
                                                                   store):
    """`z4 run` and CI (`z4 snapshot tags`) tag their run as the sensor does: a copy is not trained again."""
    ref = register(sample_df.iloc[:800])
    tags = run_tags(ref) if launched_by == "z4 run" else snapshot_run_tags(DATASET, ref.snapshot_id, ref.manifest)
    assert tags[CONTENT_TAG] == content_key(ref.manifest)
    first = record_factory_run(instance, ref.label, tags)  # adds the partition, as `z4 run` does
    t1 = tick(instance, store)
    assert t1.requests == [] and "no new snapshot" in t1.skip  # its partition is catalogued already

    copy = republish(ref.path, "20990101T000000000000Z-copy")
    t2 = tick(instance, store, t1.cursor)
    assert t2.requests == [] and f"{DATASET}@{copy.name} has a run already" in t2.skip and first in t2.skip
    other = register(sample_df.iloc[800:1600])  # new content is still trained
    t3 = tick(instance, store, t2.cursor)
    assert [r.partition_key for r in t3.requests] == [other.label]


def test_a_partition_that_has_a_run_is_not_requested_again(sample_df, register, instance, store):
    """A run of the partition (launched from the Launchpad: no snapshot tags) counts, even after the partition
    was dropped from the catalog; the snapshot is catalogued again, not trained again."""
    ref = register(sample_df.iloc[:800])
    first = record_factory_run(instance, ref.label)
    assert CONTENT_TAG not in instance.get_run_by_id(first).tags
    instance.delete_dynamic_partition(snapshots.name, ref.label)
    t = tick(instance, store)
    assert t.requests == [] and f"{ref.label} has a run already" in t.skip and first in t.skip
    assert _partitions(instance) == {ref.label}
    assert len(instance.get_runs()) == 1


def test_a_run_of_another_snapshot_does_not_stop_this_one(sample_df, register, instance, store):
    """The negative control of the two above: a run of other content under another partition stops nothing."""
    done = register(sample_df.iloc[:800])
    record_factory_run(instance, done.label, snapshot_run_tags(DATASET, done.snapshot_id, done.manifest))
    new = register(sample_df.iloc[800:1600])
    t = tick(instance, store)
    assert [r.partition_key for r in t.requests] == [new.label] and t.skip is None


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
    assert _partitions(instance) == set()  # not catalogued while it waits
    t2 = tick(instance, store, t1.cursor)  # retried on the next tick, still broken
    assert t2.requests == [] and "malformed manifest" in t2.skip

    with open(manifest, "w") as f:
        f.write(good)
    t3 = tick(instance, store, t2.cursor)
    assert [r.partition_key for r in t3.requests] == [ref.label]
    assert json.loads(t3.cursor)["waiting"] == []


def test_manifest_missing_fields_or_naming_another_folder_waits(sample_df, register, instance, store):
    ref = register(sample_df.iloc[:800])
    path = ref.path + "/manifest.json"
    os.chmod(path, 0o644)
    doc = dict(ref.manifest)
    doc["snapshot_id"] = "somewhere-else"
    open(path, "w").write(json.dumps(doc))
    t = tick(instance, store)
    assert t.requests == [] and "manifest names snapshot 'somewhere-else'" in t.skip and "sits in" in t.skip
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
    assert [r.partition_key for r in t2.requests] == [ref.label]


def test_a_good_snapshot_is_requested_while_a_broken_one_waits(sample_df, register, instance, store):
    broken = register(sample_df.iloc[:800])
    os.chmod(broken.path + "/manifest.json", 0o644)
    open(broken.path + "/manifest.json", "w").write("not json")
    good = register(sample_df.iloc[800:1600])
    t = tick(instance, store)
    assert [r.partition_key for r in t.requests] == [good.label]
    assert json.loads(t.cursor)["waiting"] == [broken.label]
    assert _partitions(instance) == {good.label}


def test_an_unreadable_manifest_is_a_skip_not_a_crash(sample_df, register, instance, store):
    ref = register(sample_df.iloc[:800])
    os.chmod(ref.path + "/manifest.json", 0o644)
    os.replace(ref.path + "/manifest.json", ref.path + "/manifest.tmp")
    os.mkdir(ref.path + "/manifest.json")  # a folder where the manifest should be: read fails
    t = tick(instance, store)
    assert t.requests == [] and "cannot read manifest" in t.skip
