"""Z3 snapshots: immutable, hashed copies of a dataset, registered once and verified on every read."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from z4_assets import __version__
from z4_assets.core.contract import DATASET_ID_RE, Contract, load_contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json, sha256_file

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
DATA_FILE = "data.parquet"
CONTRACT_FILE = "contract.yaml"
DATASET_CONFIG_FILE = "dataset.yaml"
SNAPSHOT_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")  # a snapshot id or file name: no path
Z1_CORRELATION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MANIFEST_FIELDS = ("dataset_id", "snapshot_id", "snapshot_at", "hash", "row_count",
                   "feature_groups", "time_range", "contract_hash")


@dataclass(frozen=True)
class SnapshotRef:
    """Where a snapshot lives and what its manifest says; passed between assets."""

    dataset_id: str
    snapshot_id: str
    path: str
    manifest: dict
    purpose: str = ""  # the run's declared purpose, set at intake; the broker reads only for it

    @property
    def data_path(self) -> Path:
        return Path(self.path) / self.manifest.get("data_file", DATA_FILE)

    @property
    def contract_path(self) -> Path:
        return Path(self.path) / self.manifest.get("contract_file", CONTRACT_FILE)

    @property
    def dataset_config_path(self) -> Path | None:
        """The dataset config copied in at registration (None when none was given)."""
        name = self.manifest.get("dataset_config_file")
        return Path(self.path) / name if name else None

    @property
    def label(self) -> str:
        """Its partition key: <dataset_id>@<snapshot_id>."""
        return snapshot_key(self.dataset_id, self.snapshot_id)


def snapshot_key(dataset_id: str, snapshot_id: str) -> str:
    """The snapshot's partition key in the factory: <dataset_id>@<snapshot_id>."""
    return f"{dataset_id}@{snapshot_id}"


def parse_snapshot_key(key: str) -> tuple[str, str]:
    """(dataset_id, snapshot_id) of a partition key; anything else (a path, an empty part) is refused."""
    dataset_id, sep, snapshot_id = str(key).partition("@")
    if not (sep and DATASET_ID_RE.match(dataset_id) and SNAPSHOT_PART_RE.match(snapshot_id)) or ".." in key:
        raise Z4Error(f"invalid snapshot key {key!r}: expected <dataset_id>@<snapshot_id>")
    return dataset_id, snapshot_id


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or parquet file, turning every way it can be broken into one clear line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise Z4Error("no such data file", p)
    if p.stat().st_size == 0:
        raise Z4Error("data file is empty", p)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        _refuse_wide_unicode(p)
    try:
        if suffix == ".parquet":
            table = pq.read_table(p)
        elif suffix == ".csv":
            table = pacsv.read_csv(p, read_options=pacsv.ReadOptions(block_size=64 << 20),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        else:
            raise Z4Error(f"unsupported data format {suffix or '(none)'!r}: use .csv or .parquet", p)
    except Z4Error:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Z4Error(f"not a readable {suffix[1:]} table (truncated or not tabular): {first}", p) from None
    try:
        names = table.column_names
    except UnicodeDecodeError:  # pyarrow decodes header names lazily
        raise Z4Error("header is not UTF-8 text (latin-1?): save the file as UTF-8", p) from None
    if table.num_columns < 2:
        raise Z4Error(f"not tabular: found {table.num_columns} column(s)", p)
    if table.num_rows == 0:
        raise Z4Error("table has a header but no rows", p)
    raw = [n for n, t in zip(names, table.schema.types) if pa.types.is_binary(t) or pa.types.is_large_binary(t)]
    if suffix == ".csv" and raw:  # pyarrow reads text that is not UTF-8 as bytes
        raise Z4Error(f"column {raw[0]!r} is not UTF-8 text (latin-1?): save the file as UTF-8", p)
    return table.to_pandas()


_WIDE_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
              b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def _refuse_wide_unicode(p: Path) -> None:
    """A UTF-16/32 CSV parses as one garbled column: say what it is instead."""
    with open(p, "rb") as f:
        head = f.read(4)
    kind = next((k for bom, k in _WIDE_BOMS.items() if head.startswith(bom)), None)
    if kind:
        raise Z4Error(f"encoded as {kind}, not UTF-8: save the file as UTF-8", p)


def add_snapshot(root: str | Path, dataset_id: str, contract_path: str | Path,
                 data_path: str | Path, now: datetime | None = None,
                 dataset_config: str | Path | None = None,
                 check_contract: bool = True,
                 signing_key=None,
                 z1_correlation_id: str = "") -> tuple[SnapshotRef, bool]:
    """Register DATA under ROOT/dataset_id/snapshot_id; returns (snapshot, created).

    SIGNING_KEY (the Z3 registrar's private key, not the factory's) signs the manifest into
    manifest.sig (core/z3_signature.py); the factory checks it on every read.

    `dataset_config` (purpose, intended use, out-of-scope uses; read by the model card) is
    copied in and hashed like the contract.

    The snapshot is assembled in a hidden temp folder and renamed into place, so a reader
    never sees it half-written. Identical data with an identical contract is not registered
    twice: the existing snapshot is returned with created=False.

    The data is normalised (contract `trim_whitespace`, `missing_values`) and checked against its
    contract first: refused with the first offending values per column, nothing written.
    `check_contract=False` is for fire drills of the run-time `contract` gate; the CLI has no such switch.
    """
    if not DATASET_ID_RE.match(dataset_id):
        raise Z4Error(f"invalid dataset id {dataset_id!r}: must match {DATASET_ID_RE.pattern}")
    if z1_correlation_id and not Z1_CORRELATION_RE.match(z1_correlation_id):
        raise Z4Error(f"invalid Z1 correlation id: must match {Z1_CORRELATION_RE.pattern}")
    contract, contract_hash = load_contract(contract_path)
    config_hash = None
    if dataset_config is not None:
        from z4_assets.core.dataset_config import load_dataset_config

        _, config_hash = load_dataset_config(dataset_config, dataset_id, contract)
    if contract.dataset_id != dataset_id:
        raise Z4Error(f"unknown dataset id {dataset_id!r}: this contract is for "
                      f"{contract.dataset_id!r}", contract_path)
    from z4_assets.core.validation import conform_dtypes, refusal, validate_contract

    df = conform_dtypes(read_table(data_path), contract)
    if check_contract:
        checked = validate_contract(df, contract)
        if not checked.passed:
            raise Z4Error(refusal(checked), data_path, limit=1200)
    root = Path(root)
    (root / dataset_id).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset_id}.staging-", dir=root))
    try:
        try:
            df.to_parquet(staging / DATA_FILE, index=False, compression="zstd")
        except (ValueError, TypeError, ArithmeticError) as e:  # pyarrow's errors subclass these
            raise Z4Error(f"cannot store as parquet: {str(e).splitlines()[0]}", data_path) from None
        data_hash = sha256_file(staging / DATA_FILE)
        for existing in list_snapshots(root, dataset_id):
            m = existing.manifest
            if (m["hash"] == data_hash and m["contract_hash"] == contract_hash
                    and m.get("dataset_config_hash") == config_hash):
                return existing, False
        shutil.copyfile(contract_path, staging / CONTRACT_FILE)
        if dataset_config is not None:
            shutil.copyfile(dataset_config, staging / DATASET_CONFIG_FILE)
        at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        snapshot_id = f"{at:%Y%m%dT%H%M%S}{at.microsecond:06d}Z-{data_hash[:12]}"
        manifest = {
            "schema_version": 1,
            "dataset_id": dataset_id,
            "snapshot_id": snapshot_id,
            "snapshot_at": at.isoformat().replace("+00:00", "Z"),
            "hash": data_hash,
            "hash_algorithm": "sha256",
            "data_file": DATA_FILE,
            "row_count": int(len(df)),
            "column_count": int(df.shape[1]),
            "feature_groups": contract.feature_groups(),
            "time_range": time_range(df, contract),
            "contract_file": CONTRACT_FILE,
            "contract_hash": contract_hash,
            "source": {"file": Path(data_path).name, "sha256": sha256_file(data_path)},
            "created_by": f"z4-model-factory {__version__}",
        }
        if z1_correlation_id:  # given by Z3 with the snapshot; every audit event of its runs carries it
            manifest["z1_correlation_id"] = z1_correlation_id
        if config_hash:
            manifest.update(dataset_config_file=DATASET_CONFIG_FILE, dataset_config_hash=config_hash)
        atomic_write_json(staging / MANIFEST, manifest)
        if signing_key is not None:
            from z4_assets.core.z3_signature import SIGNATURE_FILE, sign_manifest

            (staging / SIGNATURE_FILE).write_bytes(
                sign_manifest(manifest, (staging / MANIFEST).read_bytes(), signing_key))
        for f in staging.iterdir():
            os.chmod(f, 0o444)
        os.chmod(staging, 0o755)  # nosec B103 # mkdtemp's 0700 would hide the 0444 files from a non-root reader (the image)
        final = root / dataset_id / snapshot_id
        os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
    return SnapshotRef(dataset_id, snapshot_id, str(final), manifest), True


def time_range(df: pd.DataFrame, contract: Contract) -> dict | None:
    if not contract.time or contract.time.column not in df:
        return None
    import pandas as pd

    col = pd.to_datetime(df[contract.time.column], errors="coerce")
    if col.notna().sum() == 0:
        return {"column": contract.time.column, "min": None, "max": None}
    return {"column": contract.time.column, "min": col.min().isoformat(), "max": col.max().isoformat()}


def load_manifest(snapshot_dir: str | Path) -> dict:
    path = Path(snapshot_dir) / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Z4Error("snapshot has no manifest (still being written?)", path) from None
    except OSError as e:
        raise Z4Error(f"cannot read manifest: {e.strerror}", path) from None
    return parse_manifest(raw, path)


def load_place(root: str | Path, dataset_id: str, snapshot_id: str) -> dict:
    """The manifest of ROOT/dataset_id/snapshot_id, after refusing links in the snapshot and a manifest
    that names another dataset, another snapshot, or data other than its id's hash suffix."""
    from z4_assets.core.z3_place import check_identity, refuse_links

    refuse_links(root, dataset_id, snapshot_id)
    path = Path(root) / dataset_id / snapshot_id
    manifest = load_manifest(path)
    check_identity(manifest, dataset_id, snapshot_id, path / MANIFEST)
    return manifest


def parse_manifest(raw: bytes, path: object) -> dict:
    """A manifest's bytes as a dict, or one clear line saying why it is not a manifest."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Z4Error(f"malformed manifest: {e}", path) from None
    missing = [k for k in MANIFEST_FIELDS if k not in manifest] if isinstance(manifest, dict) else ["*"]
    if missing:
        raise Z4Error(f"malformed manifest: missing {', '.join(missing)}", path)
    for key in ("data_file", "contract_file", "dataset_config_file"):
        name = manifest.get(key)
        if name is not None and not (isinstance(name, str) and SNAPSHOT_PART_RE.match(name)):
            raise Z4Error(f"malformed manifest: {key} {name!r} is not a file inside the snapshot", path)
    return manifest


def list_snapshots(root: str | Path, dataset_id: str | None = None) -> list[SnapshotRef]:
    """Every complete snapshot under root (oldest first); hidden staging folders are ignored."""
    root = Path(root)
    if not root.is_dir():
        return []
    datasets = [dataset_id] if dataset_id else sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    refs = []
    for ds in datasets:
        ds_dir = root / ds
        if not ds_dir.is_dir():
            continue
        for snap in ds_dir.iterdir():
            if snap.name.startswith(".") or not (snap / MANIFEST).is_file():
                continue
            try:
                m = load_place(root, ds, snap.name)
            except Z4Error:
                continue
            refs.append(SnapshotRef(ds, snap.name, str(snap), m))
    return sorted(refs, key=lambda r: (r.manifest["snapshot_at"], r.snapshot_id))


def resolve_snapshot(root: str | Path, dataset_id: str = "", snapshot_id: str = "") -> SnapshotRef:
    """The chosen snapshot, or the newest one (of a dataset, or of the whole root)."""
    root = Path(root)
    if dataset_id and not DATASET_ID_RE.match(dataset_id):  # never a path: it is joined to root
        raise Z4Error(f"invalid dataset id {dataset_id!r}: must match {DATASET_ID_RE.pattern}", root)
    if snapshot_id and not SNAPSHOT_PART_RE.match(snapshot_id):
        raise Z4Error(f"invalid snapshot id {snapshot_id!r}", root)
    if dataset_id and snapshot_id and (root / dataset_id / snapshot_id).is_dir():
        # named explicitly: a broken manifest is an error, not a reason to look elsewhere
        path = root / dataset_id / snapshot_id
        return SnapshotRef(dataset_id, snapshot_id, str(path), load_place(root, dataset_id, snapshot_id))
    if dataset_id and not (root / dataset_id).is_dir():
        known = sorted(r.dataset_id for r in list_snapshots(root))
        raise Z4Error(f"unknown dataset id {dataset_id!r}; known: {sorted(set(known)) or 'none'}", root)
    if snapshot_id:
        candidates = [r for r in list_snapshots(root, dataset_id or None) if r.snapshot_id == snapshot_id]
        if not candidates:
            raise Z4Error(f"no snapshot {snapshot_id!r} for dataset {dataset_id or '(any)'}", root)
        if len(candidates) > 1:
            raise Z4Error(f"snapshot id {snapshot_id!r} is ambiguous: give dataset_id too", root)
        return candidates[0]
    refs = list_snapshots(root, dataset_id or None)
    if not refs:
        raise Z4Error("no snapshots registered: run `z4 snapshot add` first", root)
    from z4_assets.core.z3_retire import newest_active, retired_snapshots

    return newest_active(refs, retired_snapshots(root, dataset_id or None), root)


def scratch_name() -> str:
    return uuid.uuid4().hex[:12]
