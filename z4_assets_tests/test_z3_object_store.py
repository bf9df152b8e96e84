"""The object-store Z3 root (S3 API, against a loopback fake): listed, verified, picked up by the sensor, read by a run."""

from __future__ import annotations

import dagster as dg
import pytest

from z4_assets.core.errors import Z4Error
from z4_assets.resources import S3Z3Store
from z4_assets.assets.data import SnapshotConfig, z3_snapshot
from z4_assets_tests.s3_fake import BUCKET, PREFIX, s3_endpoint, upload  # noqa: F401 (fixture)
from z4_assets_tests.sensor_helpers import tick


@pytest.fixture
def store(s3_endpoint):
    return S3Z3Store(bucket=BUCKET, prefix=PREFIX, endpoint_url=s3_endpoint, region_name="us-east-1")


def test_listing_hides_snapshots_without_a_manifest_and_staging_prefixes(sample_df, register, store, s3_endpoint):
    ref = register(sample_df.iloc[:500])
    upload(s3_endpoint, ref.path, ("data.parquet", "contract.yaml"))  # manifest not uploaded yet
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").put_object(
        Bucket=BUCKET, Key=f"{PREFIX}/.staging/x/manifest.json", Body=b"{}")
    source = store.source()
    assert source.listing() == []
    upload(s3_endpoint, ref.path, ("manifest.json",))
    (item,) = source.listing()
    assert item.key == ref.label
    assert source.read_manifest(item.dataset_id, item.snapshot_id)["hash"] == ref.manifest["hash"]
    assert source.file_sha256(item.dataset_id, item.snapshot_id, "data.parquet") == ref.manifest["hash"]
    assert source.file_sha256(item.dataset_id, item.snapshot_id, "nope.parquet") is None
    assert source.location == f"s3://{BUCKET}/{PREFIX}"


def test_sensor_over_the_bucket_waits_for_matching_data_then_requests_one_run(
        sample_df, register, store, s3_endpoint, instance, tmp_path):
    ref = register(sample_df.iloc[:500])
    partial = tmp_path / "partial" / ref.dataset_id / ref.snapshot_id
    partial.mkdir(parents=True)
    for name in ("contract.yaml", "manifest.json"):
        (partial / name).write_bytes((ref.data_path.parent / name).read_bytes())
    (partial / "data.parquet").write_bytes(ref.data_path.read_bytes()[:100])
    upload(s3_endpoint, partial)  # a manifest whose data does not match (yet)
    t1 = tick(instance, store)
    assert t1.requests == [] and "sha256 does not match the manifest" in t1.skip
    assert f"s3://{BUCKET}/{PREFIX}/{ref.dataset_id}/{ref.snapshot_id}/data.parquet" in t1.skip

    assert instance.get_dynamic_partitions("z3_snapshots") == []  # not catalogued while it waits

    upload(s3_endpoint, ref.path)
    t2 = tick(instance, store, t1.cursor)
    (req,) = t2.requests
    assert req.partition_key == ref.label and req.tags["z4/dataset_hash"] == ref.manifest["hash"]
    assert instance.get_dynamic_partitions("z3_snapshots") == [ref.label]
    assert tick(instance, store, t2.cursor).requests == []


def test_z3_snapshot_asset_reads_a_bucket_snapshot_through_the_run_scratch(
        sample_df, register, store, s3_endpoint, factory_resources):
    ref = register(sample_df.iloc[:1000])
    upload(s3_endpoint, ref.path)
    resources = {**factory_resources, "z3": store}
    context = dg.build_asset_context(resources=resources, partition_key=ref.label)
    result = z3_snapshot(context=context, config=SnapshotConfig())
    outcome = result.value
    local = outcome.snapshot
    assert (outcome.partition, local.label) == (ref.label, ref.label)
    scratch_root = factory_resources["storage"].root + "/scratch/"
    assert local.path.startswith(scratch_root), local.path
    assert local.data_path.read_bytes() == ref.data_path.read_bytes()
    assert {c.check_name: c.passed for c in result.check_results}["snapshot_hash"] is True
    assert outcome.produced.snapshot == ref.manifest["hash"]


def test_a_partition_the_bucket_does_not_hold_fails_with_one_line(sample_df, register, store, s3_endpoint,
                                                                  factory_resources):
    ref = register(sample_df.iloc[:500])
    upload(s3_endpoint, ref.path)
    missing = f"{ref.dataset_id}@20990101T000000000000Z-nope"
    context = dg.build_asset_context(resources={**factory_resources, "z3": store}, partition_key=missing)
    with pytest.raises(dg.Failure) as err:
        z3_snapshot(context=context, config=SnapshotConfig())
    line = err.value.description
    assert line.count("\n") == 0 and "Traceback" not in line, line
    assert line.startswith(f"z3_snapshot of {missing}: ") and "no snapshot '20990101T000000000000Z-nope'" in line
    assert f"s3://{BUCKET}/{PREFIX}" in line


def test_resolve_without_a_cache_folder_or_unknown_snapshot_fails_clearly(sample_df, register, store, s3_endpoint):
    ref = register(sample_df.iloc[:500])
    upload(s3_endpoint, ref.path)
    with pytest.raises(Z4Error, match="needs a local cache folder"):
        store.resolve()
    with pytest.raises(Z4Error, match="no snapshot 'nope'"):
        store.resolve(snapshot_id="nope", cache_dir=None)


def test_a_bucket_manifest_naming_a_file_outside_its_snapshot_is_refused(sample_df, register, store, s3_endpoint,
                                                                         tmp_path):
    import json
    import shutil

    ref = register(sample_df.iloc[:500])
    forged = tmp_path / "forged" / ref.dataset_id / ref.snapshot_id
    shutil.copytree(ref.path, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    (forged / "manifest.json").chmod(0o644)
    (forged / "manifest.json").write_text(json.dumps({**manifest, "data_file": "../../elsewhere.parquet"}))
    upload(s3_endpoint, forged)
    with pytest.raises(Z4Error, match="data_file '../../elsewhere.parquet' is not a file inside the snapshot"):
        store.resolve(ref.dataset_id, ref.snapshot_id, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "elsewhere.parquet").exists() and not list((tmp_path).glob("cache/**/*.parquet"))
