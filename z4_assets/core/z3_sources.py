"""Where Z3 snapshots are read from: a local folder or an S3-compatible bucket, behind one interface.

Both hold the same layout, `<dataset_id>/<snapshot_id>/{manifest.json, data.parquet, contract.yaml}`,
and both hide a snapshot until its manifest exists: writers put the manifest last (locally the
whole folder is renamed into place), and any path segment starting with "." is a staging area.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from z4_assets.core import z3
from z4_assets.core.errors import Z4Error
from z4_assets.core.z3_place import check_identity
from z4_assets.core.z3_signature import SIGNATURE_FILE

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Listed:
    """One snapshot seen by a cheap listing: no manifest read, no data hashed."""

    dataset_id: str
    snapshot_id: str
    fingerprint: str  # changes whenever the manifest is rewritten (mtime+size, or ETag+size)

    @property
    def key(self) -> str:
        return z3.snapshot_key(self.dataset_id, self.snapshot_id)


class SnapshotSource(abc.ABC):
    """Read-only access to a Z3 root; the factory never writes or deletes through it."""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where this root is, for messages (a folder or s3://bucket/prefix)."""

    @abc.abstractmethod
    def listing(self) -> list[Listed]:
        """Every visible snapshot that has a manifest, without reading any manifest."""

    @abc.abstractmethod
    def read_manifest(self, dataset_id: str, snapshot_id: str) -> dict:
        """The parsed manifest; Z4Error (one line naming the file) when missing or malformed."""

    @abc.abstractmethod
    def file_sha256(self, dataset_id: str, snapshot_id: str, name: str) -> str | None:
        """Streaming sha256 of one file of the snapshot, None when it does not exist (yet)."""

    @abc.abstractmethod
    def resolve(self, dataset_id: str = "", snapshot_id: str = "",
                cache_dir: Path | None = None) -> z3.SnapshotRef:
        """The chosen (or newest) snapshot as local files; remote ones are copied into cache_dir."""

    def snapshots(self, dataset_id: str | None = None) -> list[z3.SnapshotRef]:
        """Every snapshot with a readable manifest, oldest first."""
        refs = []
        for item in self.listing():
            if dataset_id and item.dataset_id != dataset_id:
                continue
            try:
                m = self.read_manifest(item.dataset_id, item.snapshot_id)
            except Z4Error:
                continue
            refs.append(z3.SnapshotRef(item.dataset_id, item.snapshot_id,
                                       self.uri(item.dataset_id, item.snapshot_id), m))
        return sorted(refs, key=lambda r: (r.manifest["snapshot_at"], r.snapshot_id))

    def retired(self, dataset_id: str | None = None) -> dict[str, dict]:
        """Partition key -> retirement record of every retired snapshot (core/z3_retire.py)."""
        return {}

    def uri(self, dataset_id: str, snapshot_id: str) -> str:
        return f"{self.location.rstrip('/')}/{dataset_id}/{snapshot_id}"


def _visible(name: str) -> bool:
    return bool(name) and not name.startswith(".")


def _subdirs(path) -> list[os.DirEntry]:
    """Visible sub-folders; a folder removed while we look is simply not there."""
    try:
        with os.scandir(path) as it:
            # a linked folder is not a snapshot of this root (core/z3_place.py): not listed
            return [d for d in it if _visible(d.name) and d.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


class LocalFolderSource(SnapshotSource):
    """A folder on this machine (the default): snapshots are read in place, never copied."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def listing(self) -> list[Listed]:
        out = []
        for ds in _subdirs(self.root):
            for snap in _subdirs(ds.path):
                try:
                    st = os.stat(os.path.join(snap.path, z3.MANIFEST))
                except FileNotFoundError:
                    continue  # still being written: no manifest yet
                out.append(Listed(ds.name, snap.name, f"{st.st_mtime_ns}:{st.st_size}"))
        return out

    def read_manifest(self, dataset_id: str, snapshot_id: str) -> dict:
        return z3.load_manifest(self.root / dataset_id / snapshot_id)

    def file_sha256(self, dataset_id: str, snapshot_id: str, name: str) -> str | None:
        from z4_assets.core.files import sha256_file

        path = self.root / dataset_id / snapshot_id / name
        return sha256_file(path) if path.is_file() else None

    def resolve(self, dataset_id: str = "", snapshot_id: str = "",
                cache_dir: Path | None = None) -> z3.SnapshotRef:
        return z3.resolve_snapshot(self.root, dataset_id, snapshot_id)

    def snapshots(self, dataset_id: str | None = None) -> list[z3.SnapshotRef]:
        return z3.list_snapshots(self.root, dataset_id)

    def retired(self, dataset_id: str | None = None) -> dict[str, dict]:
        from z4_assets.core.z3_retire import retired_snapshots

        return retired_snapshots(self.root, dataset_id)


class ObjectStoreSource(SnapshotSource):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW) through a boto3-style client.

    `client` needs list_objects_v2, get_object and download_file. Credentials stay inside the
    client (boto3 reads them from its usual environment or files); nothing here sees them.
    """

    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, dataset_id: str, snapshot_id: str, name: str) -> str:
        return f"{self.prefix}{dataset_id}/{snapshot_id}/{name}"

    def listing(self) -> list[Listed]:
        out = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                parts = obj["Key"][len(self.prefix):].split("/")
                if len(parts) == 3 and parts[2] == z3.MANIFEST and all(map(_visible, parts[:2])):
                    out.append(Listed(parts[0], parts[1], f"{obj['ETag'].strip(chr(34))}:{obj['Size']}"))
        return out

    def retired(self, dataset_id: str | None = None) -> dict[str, dict]:
        """Retirement records written into the bucket as `<dataset_id>/.retired/<snapshot_id>.json`."""
        out = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                parts = obj["Key"][len(self.prefix):].split("/")
                if (len(parts) == 3 and parts[1] == ".retired" and parts[2].endswith(".json")
                        and _visible(parts[0]) and _visible(parts[2]) and parts[0] == (dataset_id or parts[0])):
                    body = self._get(obj["Key"])
                    try:
                        record = json.loads(body.read()) if body is not None else {}
                    except ValueError:
                        record = {"reason": "malformed retirement record"}
                    out[z3.snapshot_key(parts[0], parts[2][:-len(".json")])] = record
        return out

    def _get(self, key: str):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            return None

    def read_manifest(self, dataset_id: str, snapshot_id: str) -> dict:
        key = self._key(dataset_id, snapshot_id, z3.MANIFEST)
        body = self._get(key)
        if body is None:
            raise Z4Error("snapshot has no manifest (still being written?)", f"s3://{self.bucket}/{key}")
        return z3.parse_manifest(body.read(), f"s3://{self.bucket}/{key}")

    def file_sha256(self, dataset_id: str, snapshot_id: str, name: str) -> str | None:
        body = self._get(self._key(dataset_id, snapshot_id, name))
        if body is None:
            return None
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(_CHUNK):
            digest.update(chunk)
        return digest.hexdigest()

    def resolve(self, dataset_id: str = "", snapshot_id: str = "",
                cache_dir: Path | None = None) -> z3.SnapshotRef:
        if dataset_id and snapshot_id and any(x.dataset_id == dataset_id and x.snapshot_id == snapshot_id
                                              for x in self.listing()):
            # named explicitly, as z3.resolve_snapshot: a broken manifest is an error, not "no snapshot"
            self.read_manifest(dataset_id, snapshot_id)
        ref = choose_snapshot(self.snapshots(dataset_id or None), dataset_id, snapshot_id, self.location,
                              self.retired(dataset_id or None))
        if cache_dir is None:
            raise Z4Error("an object-store snapshot needs a local cache folder to be read", self.location)
        local = Path(cache_dir) / ref.dataset_id / ref.snapshot_id
        local.mkdir(parents=True, exist_ok=True)
        m = ref.manifest
        check_identity(m, ref.dataset_id, ref.snapshot_id, f"{ref.path}/{z3.MANIFEST}")
        # file names were checked by z3.parse_manifest when the manifest was read: never a path
        names = [z3.MANIFEST, m.get("data_file", z3.DATA_FILE), m.get("contract_file", z3.CONTRACT_FILE)]
        names += [m["dataset_config_file"]] if m.get("dataset_config_file") else []
        for name in names:
            try:
                self.client.download_file(self.bucket, self._key(ref.dataset_id, ref.snapshot_id, name),
                                          str(local / name))
            except Exception as e:  # botocore raises ClientError subclasses per status code
                raise Z4Error(f"cannot download {name}: {type(e).__name__}", ref.path) from None
        # the Z3 signature, when there is one: the snapshot stage decides whether one is required
        sig = self._get(self._key(ref.dataset_id, ref.snapshot_id, SIGNATURE_FILE))
        if sig is not None:
            (local / SIGNATURE_FILE).write_bytes(sig.read())
        # the manifest as downloaded is the one the stage checks (hashes and signature), not the listed one
        return z3.SnapshotRef(ref.dataset_id, ref.snapshot_id, str(local), z3.load_manifest(local))


def choose_snapshot(refs: list[z3.SnapshotRef], dataset_id: str, snapshot_id: str,
                    where: str, retired: dict | None = None) -> z3.SnapshotRef:
    """The same choice rules as z3.resolve_snapshot, over snapshots already listed: the named one,
    else the newest that is not in RETIRED (partition key -> record)."""
    if dataset_id and not refs:
        raise Z4Error(f"unknown dataset id {dataset_id!r} (or it has no snapshots)", where)
    if snapshot_id:
        found = [r for r in refs if r.snapshot_id == snapshot_id]
        if not found:
            raise Z4Error(f"no snapshot {snapshot_id!r} for dataset {dataset_id or '(any)'}", where)
        if len(found) > 1:
            raise Z4Error(f"snapshot id {snapshot_id!r} is ambiguous: give dataset_id too", where)
        return found[0]
    if not refs:
        raise Z4Error("no snapshots registered: run `z4 snapshot add` first", where)
    from z4_assets.core.z3_retire import newest_active

    return newest_active(refs, retired or {}, where)
