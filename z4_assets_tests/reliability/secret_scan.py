"""A leak scanner for a factory run's traces: files (tarball members too), sqlite stores, Dagster
events and captured output, searched for the signing key and configured secrets.

detect-secrets (the build lane's `secrets` gate) looks for things shaped like secrets in source;
this looks for *our* secrets anywhere, in any shape a run could write them: the PEM, any 16-char
stretch of its base64 body that covers the private scalar, the scalar itself as raw bytes, hex,
base64 or decimal, and each configured secret's value (plain, base64, hex).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import sqlite3
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

WINDOW = 16
PEM_PRIVATE = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


@dataclass(frozen=True)
class Needle:
    label: str
    data: bytes


@dataclass(frozen=True)
class Hit:
    where: str
    needle: str

    def __str__(self) -> str:
        return f"{self.where}: {self.needle}"


def _windows(text: str, label: str) -> list[Needle]:
    return [Needle(f"{label}[{i}:{i + WINDOW}]", text[i:i + WINDOW].encode())
            for i in range(max(len(text) - WINDOW + 1, 1))]


def key_needles(private_key: str | Path, passphrase: bytes | None = None) -> list[Needle]:
    """Every form of a PEM private key a leak could take; none that its public half shares."""
    from cryptography.hazmat.primitives import serialization

    pem = Path(private_key).read_bytes()
    key = serialization.load_pem_private_key(pem, password=passphrase)
    scalar = key.private_numbers().private_value.to_bytes((key.key_size + 7) // 8, "big")
    body = "".join(line for line in pem.decode().splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    at = der.find(scalar)
    assert at >= 0, "the private scalar is not in the key's DER"  # nosec B101 # a broken needle set must not pass silently
    # a base64 character i holds bits 6i..6i+5; keep windows that cover a byte of the scalar
    covering = [n for i, n in enumerate(_windows(body, "pem-body"))
                if (6 * i) // 8 < at + len(scalar) and (6 * (i + WINDOW) - 1) // 8 >= at]
    b64, url = base64.b64encode(scalar).decode(), base64.urlsafe_b64encode(scalar).decode().rstrip("=")
    needles = [Needle("pem", pem.strip()), Needle("scalar-raw", scalar),
               Needle("scalar-decimal", str(key.private_numbers().private_value).encode()),
               *covering, *_windows(scalar.hex(), "scalar-hex"), *_windows(scalar.hex().upper(), "scalar-HEX"),
               *_windows(b64, "scalar-b64"), *_windows(url, "scalar-b64url")]
    if passphrase:
        needles.append(Needle("passphrase", passphrase))
    return needles


def value_needles(name: str, value: str) -> list[Needle]:
    raw = value.encode()
    return [Needle(name, raw), Needle(f"{name}-b64", base64.b64encode(raw).rstrip(b"=")),
            Needle(f"{name}-hex", raw.hex().encode())]


def scan_bytes(blob: bytes, where: str, needles: list[Needle]) -> list[Hit]:
    hits = [Hit(where, n.label) for n in needles if n.data in blob]
    if PEM_PRIVATE.search(blob):
        hits.append(Hit(where, "a PEM private key block"))
    return hits


def scan_text(text: str, where: str, needles: list[Needle]) -> list[Hit]:
    return scan_bytes(text.encode("utf-8", "surrogateescape"), where, needles)


def _members(blob: bytes, name: str):
    """(name, bytes) of the files inside an archive; nothing for other files."""
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    yield m.name, tar.extractfile(m).read()
    elif name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            for info in z.infolist():
                yield info.filename, z.read(info)
    elif name.endswith(".gz"):
        yield name[:-3], gzip.decompress(blob)


def scan_blob(blob: bytes, where: str, needles: list[Needle]) -> list[Hit]:
    hits = scan_bytes(blob, where, needles)
    for inner, data in _members(blob, where):
        hits += scan_blob(data, f"{where}!{inner}", needles)
    return hits


def scan_tree(root: str | Path, needles: list[Needle], skip: tuple[Path, ...] = ()) -> tuple[list[Hit], int]:
    """(hits, files scanned) over every file under root, archives opened, `skip` left out."""
    skip_set = {Path(p).resolve() for p in skip}
    hits, n = [], 0
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink() and path.resolve() not in skip_set:
            n += 1
            hits += scan_blob(path.read_bytes(), str(path), needles)
    return hits, n


def scan_sqlite(db: str | Path, needles: list[Needle]) -> tuple[list[Hit], int]:
    """(hits, rows scanned) over every row of every table, rendered as text (tags, params, metric keys...)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    hits, rows = [], 0
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):  # nosec B608 # names from sqlite_master
                rows += 1
                blob = b"\x1f".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
                hits += scan_bytes(blob, f"{db}:{table}", needles)
    finally:
        con.close()
    return hits, rows


def scan_events(events, where: str, needles: list[Needle]) -> tuple[list[Hit], int]:
    """(hits, events scanned) over Dagster events or event-log entries, fully serialized."""
    import dagster as dg

    hits, n = [], 0
    for event in events:
        n += 1
        hits += scan_text(dg.serialize_value(event), f"{where}#{n}", needles)
    return hits, n


def scan_dagster_runs(instance, needles: list[Needle]) -> tuple[list[Hit], int]:
    """Every run of an instance: its tags, config and every event-log entry."""
    hits, n = [], 0
    for run in instance.get_runs():
        where = f"dagster run {run.run_id}"
        hits += scan_text(json.dumps({"tags": dict(run.tags), "config": run.run_config}, default=str),
                          f"{where} tags/config", needles)
        more, k = scan_events(instance.all_logs(run.run_id), where, needles)
        hits, n = hits + more, n + k
    return hits, n
