"""Which Z3 snapshots are new, complete and untrained: the decisions behind z3_snapshot_sensor.

A snapshot is ready when its manifest parses, names the folder it sits in, and the data and
contract files hash to what it says. Anything else waits (with its reason) and is looked at
again on the next tick. Two snapshots with the same data and contract share one content key,
so the same bytes re-published under another name are never trained twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from z4_assets.core import z3
from z4_assets.core.errors import Z4Error
from z4_assets.core.z3_place import check_identity
from z4_assets.core.z3_sources import Listed, SnapshotSource

CURSOR_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Ready:
    item: Listed
    manifest: dict
    content_key: str


@dataclass(frozen=True)
class Waiting:
    item: Listed
    reason: str


def listing_digest(listing: list[Listed]) -> str:
    """One hash of every (snapshot, manifest fingerprint): unchanged digest = nothing new."""
    h = hashlib.sha256()
    for line in sorted(f"{i.key}\t{i.fingerprint}" for i in listing):
        h.update(line.encode() + b"\n")
    return h.hexdigest()


def content_key(manifest: dict) -> str:
    """The identity of a snapshot's content: data hash and contract hash, not its name."""
    return "z3-" + hashlib.sha256(f"{manifest['hash']}\n{manifest['contract_hash']}".encode()).hexdigest()[:40]


CONTENT_TAG = "z4/content_key"


def snapshot_run_tags(dataset_id: str, snapshot_id: str, manifest: dict) -> dict[str, str]:
    """The tags of every factory run of a snapshot, whoever launched it (sensor, `z4 run`, CI): the
    sensor reads them to never train the same content twice."""
    return {"z4/dataset_id": dataset_id, "z4/snapshot_id": snapshot_id, "z4/dataset_hash": manifest["hash"],
            "z4/contract_hash": manifest["contract_hash"], CONTENT_TAG: content_key(manifest)}


def examine(source: SnapshotSource, item: Listed) -> Ready | Waiting:
    try:
        m = source.read_manifest(item.dataset_id, item.snapshot_id)
    except Z4Error as e:
        return Waiting(item, str(e))
    where = source.uri(item.dataset_id, item.snapshot_id)
    try:
        check_identity(m, item.dataset_id, item.snapshot_id, where)
    except Z4Error as e:
        return Waiting(item, str(e))
    files = {"data": (m.get("data_file", z3.DATA_FILE), m["hash"]),
             "contract": (m.get("contract_file", z3.CONTRACT_FILE), m["contract_hash"])}
    for role, (name, recorded) in files.items():
        if not isinstance(recorded, str) or not _SHA256.match(recorded):
            return Waiting(item, f"{where}: malformed manifest: {role} hash is not a sha256 hex digest")
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            return Waiting(item, f"{where}: malformed manifest: {role} file {name!r} is not a plain file name")
        actual = source.file_sha256(item.dataset_id, item.snapshot_id, name)
        if actual is None:
            return Waiting(item, f"{where}/{name}: {role} file not there yet (still being written?)")
        if actual != recorded:
            return Waiting(item, f"{where}/{name}: {role} sha256 does not match the manifest "
                                 "(still being written, or altered)")
    return Ready(item, m, content_key(m))


def read_cursor(raw: str | None) -> dict:
    """The sensor's cursor; an unreadable or older one means 'look at everything again'."""
    try:
        cursor = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return cursor if isinstance(cursor, dict) and cursor.get("v") == CURSOR_VERSION else {}


def write_cursor(digest: str, count: int, waiting: list[Waiting]) -> str:
    return json.dumps({"v": CURSOR_VERSION, "listing": digest, "snapshots": count,
                       "waiting": sorted(w.item.key for w in waiting)}, separators=(",", ":"))
