"""The access broker: snapshot data is read only here, for a purpose the contract allows,
with direct identifiers pseudonymised by a keyed HMAC, and every read logged.

No other module opens a snapshot's data file for its rows (a test scans for it). Intake reads
the raw frame once to validate it against its contract (`raw_for_intake=True`, logged as raw);
every other read returns identifiers as HMAC-SHA256 pseudonyms, stable for the same key, so
rows can still be joined and deduplicated. The key is never written anywhere by this module.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_bytes
from z4_assets.core.z3 import SnapshotRef

ACCESS_LOG = "access_log.jsonl"
KEY_ENV = "Z4_PSEUDONYM_KEY"
KEY_FILE_ENV = "Z4_PSEUDONYM_KEY_FILE"
DEFAULT_KEY_FILE = ".z4/keys/pseudonym.key"  # created by `z4 keygen` / `z4 demo`; gitignored
MIN_KEY_BYTES = 32
PSEUDONYM_HEX = 32  # HMAC-SHA256 truncated to 128 bits: collision-free at any table size here
NO_KEY = (f"no pseudonymisation key configured: set {KEY_ENV} (a secret of at least {MIN_KEY_BYTES} "
          f"characters) or create a key file with `z4 keygen` ({KEY_FILE_ENV}, default {DEFAULT_KEY_FILE})")


class PurposeDenied(Z4Error):
    """The run's declared purpose is not one the snapshot's contract allows."""


def denial_reason(contract: Contract, purpose: str) -> str | None:
    """Why `purpose` may not read data under this contract, or None when it may."""
    if not contract.purposes:
        return (f"purpose {purpose!r} denied: the contract of {contract.dataset_id!r} declares no "
                "allowed purposes (deny by default; add `purposes:` to the contract)")
    if purpose not in contract.purposes:
        return (f"purpose {purpose!r} denied: the contract of {contract.dataset_id!r} allows only "
                f"{', '.join(contract.purposes)}")
    return None


def load_key(secret: str = "", key_file: str = "") -> bytes | None:
    """The pseudonymisation key from a secret value or a key file; None when neither is set."""
    where: object = KEY_ENV
    if secret:
        raw = secret.strip().encode()
    elif key_file and Path(key_file).is_file():
        where = key_file
        try:
            raw = Path(key_file).read_bytes().strip()
        except OSError as e:
            raise Z4Error(f"cannot read the pseudonymisation key: {e.strerror}", key_file) from None
    else:
        return None
    if len(raw) < MIN_KEY_BYTES:
        raise Z4Error(f"pseudonymisation key is too short: {len(raw)} bytes, need at least {MIN_KEY_BYTES}",
                      where)
    return raw


def key_file_from_env(env: dict | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE


def log_path_from_env(env: dict | None = None) -> str:
    """Z4_ACCESS_LOG, else <factory root>/access_log.jsonl."""
    env = os.environ if env is None else env
    return env.get("Z4_ACCESS_LOG") or str(Path(env.get("Z4_FACTORY_ROOT", "data/factory")) / ACCESS_LOG)


def keygen(path: str | Path) -> tuple[Path, bool]:
    """Create a random 256-bit key file (0600) unless one exists; returns (path, created).

    An existing key is never replaced: a new key changes every pseudonym, so earlier runs
    could no longer be joined with new ones nor rebuilt bit for bit.
    """
    p = Path(path)
    if p.exists():
        return p, False
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return p, True


def _canonical(value) -> bytes:
    """One byte form per value, whatever dtype it was read as (1, 1.0 and np.int64(1) agree)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).encode()
    if isinstance(value, (int, np.integer)):
        return str(int(value)).encode()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value)).encode()
    return str(value).encode("utf-8")


def pseudonym(value, key: bytes) -> str:
    return hmac.digest(key, _canonical(value), "sha256").hex()[:PSEUDONYM_HEX]


def _hmac_pads(key: bytes):
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: 2x faster per value
    than hmac.digest on a column, and the same bytes (a test compares them)."""
    import hashlib

    k = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def mac(value) -> str:
        i, o = inner.copy(), outer.copy()
        i.update(_canonical(value))
        o.update(i.digest())
        return o.hexdigest()[:PSEUDONYM_HEX]
    return mac


def pseudonymise(values: pd.Series, key: bytes) -> pd.Series:
    """Each distinct value hashed once; nulls stay null."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mac = _hmac_pads(key)
    mapped = np.array([mac(u) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, name=values.name, dtype=object)


def who(run_tags: dict | None = None, env: dict | None = None) -> dict:
    """The reader: the Dagster run's user tag, else the OS user; plus the service identity."""
    env = os.environ if env is None else env
    tags = run_tags or {}
    if tags.get("dagster/user"):
        user, source = tags["dagster/user"], "run_tag:dagster/user"
    else:
        user = env.get("USER") or env.get("LOGNAME") or "unknown"
        source = "env:USER"
    return {"user": user, "user_source": source, "service": env.get("Z4_SERVICE_IDENTITY") or None}


def append_access(log_path: str | Path, record: dict) -> bytes:
    """One JSON line, written with a single O_APPEND write and fsynced; returns the line."""
    line = (json.dumps(record, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
    p = Path(log_path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        if os.write(fd, line) != len(line):
            raise Z4Error("short write to the access log", p)
        os.fsync(fd)
    finally:
        os.close(fd)
    return line


def _read_frame(ref: SnapshotRef, contract: Contract, columns: list[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    from z4_assets.core.validation import conform_dtypes

    try:
        with open(ref.data_path, "rb") as f:
            table = pq.read_table(f, columns=columns)
    except FileNotFoundError:
        raise Z4Error("snapshot data file is missing", ref.data_path) from None
    except Exception as e:  # pyarrow raises several types for a corrupt file or an unknown column
        raise Z4Error(f"snapshot data is unreadable: {str(e).splitlines()[0]}", ref.data_path) from None
    return conform_dtypes(table.to_pandas(), contract)


def read_snapshot(ref: SnapshotRef, contract: Contract, *, purpose: str, columns: list[str] | None = None,
                  identity: dict, run_id: str, key: bytes | None, log_path: str | Path,
                  reader: str = "", raw_for_intake: bool = False) -> pd.DataFrame:
    """The snapshot's rows for `purpose`, identifiers pseudonymised; one access-log line per call.

    A denied purpose or a missing key is logged as denied and raised before any data is read.
    """
    record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
              **identity, "dataset": ref.dataset_id, "snapshot": ref.snapshot_id,
              "data_sha256": ref.manifest.get("hash"), "purpose": purpose, "run_id": run_id,
              "reader": reader, "columns": list(columns) if columns else "all", "raw": raw_for_intake}
    wanted = list(columns) if columns else list(contract.columns)
    marked = [c for c in contract.direct_identifiers if c in wanted]
    denied = denial_reason(contract, purpose)
    if denied is None and marked and not raw_for_intake and key is None:
        denied = NO_KEY
    if denied:
        append_access(log_path, {**record, "decision": "denied", "reason": denied})
        raise PurposeDenied(denied) if denied != NO_KEY else Z4Error(NO_KEY)
    try:
        df = _read_frame(ref, contract, columns)
    except Z4Error as e:
        append_access(log_path, {**record, "decision": "failed", "reason": str(e)})
        raise
    done = [] if raw_for_intake else [c for c in marked if c in df.columns]
    for col in done:
        df[col] = pseudonymise(df[col], key)
    append_access(log_path, {**record, "decision": "granted", "columns": list(df.columns), "rows": len(df),
                             "pseudonymised": done})
    return df


def run_lines(log_path: str | Path, run_id: str | Iterable[str]) -> list[bytes]:
    """The access-log lines of one run (or of a run and the runs it re-executes), byte for byte."""
    ids = {run_id} if isinstance(run_id, str) else set(run_id)
    p = Path(log_path)
    if not p.is_file():
        return []
    needles = [i.encode() for i in ids]
    out = []
    for line in p.read_bytes().splitlines(keepends=True):
        if not any(n in line for n in needles):  # the log holds every run's lines: parse only candidates
            continue
        try:
            if json.loads(line).get("run_id") in ids:
                out.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue  # a torn line (crash mid-write elsewhere) is not this run's
    return out


def export_run_log(log_path: str | Path, run_id: str | Iterable[str], dest: str | Path) -> dict:
    """Copy a run's lines (a retry: its lineage's) to dest; returns where the log lives, how many lines, their sha256."""
    from z4_assets.core.files import atomic_write_bytes

    ids = [run_id] if isinstance(run_id, str) else list(run_id)
    lines = run_lines(log_path, ids)
    data = b"".join(lines)
    atomic_write_bytes(dest, data)
    return {"path": str(Path(log_path).resolve()), "run_ids": ids, "run_lines": len(lines),
            "run_lines_sha256": sha256_bytes(data)}
