"""The Z3 snapshot store the factory reads from: a local folder by default, or an S3-compatible bucket.

`Z3SnapshotStore` is the interface every asset and sensor takes; `Z3Store` is the local folder
(Z4_Z3_ROOT, default ./data/z3) and `S3Z3Store` an object store (Z4_Z3_S3_BUCKET and friends).
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from z4_assets.core import z3
from z4_assets.core.z3_sources import LocalFolderSource, ObjectStoreSource, SnapshotSource


class Z3SnapshotStore(dg.ConfigurableResource):
    """Lists, verifies and resolves immutable snapshots; subclasses say where they live."""

    public_key: str = Field("", description="the Z3 registrar's public key (PEM) that signs snapshot "
                                            "manifests (Z4_Z3_PUBKEY); empty = none configured")

    def source(self) -> SnapshotSource:
        raise NotImplementedError(f"{type(self).__name__} does not say where its snapshots live")

    def resolve(self, dataset_id: str = "", snapshot_id: str = "",
                cache_dir: Path | None = None) -> z3.SnapshotRef:
        """The chosen (or newest) snapshot as local files; remote stores copy it into cache_dir."""
        return self.source().resolve(dataset_id, snapshot_id, cache_dir)

    def snapshots(self, dataset_id: str | None = None) -> list[z3.SnapshotRef]:
        return self.source().snapshots(dataset_id)


class Z3Store(Z3SnapshotStore):
    """A local folder holding <dataset_id>/<snapshot_id>/; snapshots are read in place."""

    root: str = Field(description="Z3 root folder holding <dataset_id>/<snapshot_id>/")

    def source(self) -> SnapshotSource:
        return LocalFolderSource(self.root)


class S3Z3Store(Z3SnapshotStore):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW) with the same layout under a prefix.

    Credentials are never configured here: boto3 takes them from AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) in the process environment.
    """

    bucket: str = Field(description="bucket holding the Z3 root")
    prefix: str = Field("", description="key prefix of the Z3 root inside the bucket")
    endpoint_url: str = Field("", description="S3 endpoint, e.g. http://minio:9000; empty = AWS")
    region_name: str = Field("", description="region; empty = boto3's default")

    def source(self) -> SnapshotSource:
        import boto3  # optional dependency: pip install 'z4-model-factory[s3]'

        client = boto3.client("s3", endpoint_url=self.endpoint_url or None,
                              region_name=self.region_name or None)
        return ObjectStoreSource(client, self.bucket, self.prefix)
