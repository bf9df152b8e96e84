"""The local audit chain: an append-only JSON-lines file in which each event carries the digest of the
line before it, and a head file naming the last one.

Append takes an exclusive lock (every step of a run is its own process), reads the last line of the
file itself (never a cached head, so a writer that died between the append and the head update
leaves nothing inconsistent), and writes the new line with one O_APPEND write and fsync. `verify`
walks the file: an edited byte, a removed or a reordered event breaks the digest of the line after
it (or, for the last line, the head); the sequence numbers say which event is missing.

What this alone cannot show: someone who can write the whole file and the head can rewrite both
consistently. The copy delivered to Z9 and the head recorded in each run's MLflow tags are the
outside anchors: `z4 audit verify --against-mlflow` checks the chain against every recorded head
(`check_anchors`), and prints the head to compare with Z9's copy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

GENESIS = "0" * 64
PREV, SEQ = "z4prev", "z4seq"   # CloudEvents extension attributes ([a-z0-9] only)


def line_digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def encode(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode() + b"\n"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def last_line(path: Path) -> bytes | None:
    """The file's last complete line, read from its end."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with open(path, "rb") as f:
        chunk = 1 << 16
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            tail = f.read(size - start)
            body = tail[:-1] if tail.endswith(b"\n") else tail  # a torn last line has no newline
            cut = body.rfind(b"\n")
            if cut >= 0 or start == 0:
                return body[cut + 1:] + b"\n"
            chunk *= 4


@dataclass(frozen=True)
class Head:
    seq: int
    digest: str
    size: int

    @classmethod
    def read(cls, path: Path) -> Head | None:
        try:
            d = json.loads(path.read_text())
            return cls(int(d["seq"]), str(d["digest"]), int(d["size"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None


def _write_head(path: Path, head: Head) -> None:
    from z4_assets.core.files import atomic_write_json

    atomic_write_json(path, {"seq": head.seq, "digest": head.digest, "size": head.size})


def append(chain: Path, head_path: Path, lock: Path, events: list[dict]) -> list[dict]:
    """Chain EVENTS onto the file, in order, in one locked write; returns them with seq and prev set."""
    if not events:
        return []
    with locked(lock):
        last = last_line(chain)
        seq, prev = (0, GENESIS) if last is None else (_seq_of(last), line_digest(last))
        if last is not None and seq == 0:  # a torn or foreign last line: number on from the head
            head = Head.read(head_path)
            seq = head.seq if head else 0
        lines = []
        for event in events:
            seq += 1
            event = {**event, SEQ: seq, PREV: prev}
            line = encode(event)
            prev = line_digest(line)
            lines.append(line)
        data = b"".join(lines)
        if chain.exists() and chain.stat().st_size and not _ends_with_newline(chain):
            data = b"\n" + data  # a writer died mid-line: its torn line stays (verify names it), ours start clean
        # never through a symlink: the chain is written where the factory root says, nowhere else
        fd = os.open(chain, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        _write_head(head_path, Head(seq, prev, size))
    return [json.loads(line) for line in lines]


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _seq_of(line: bytes) -> int:
    try:
        return int(json.loads(line)[SEQ])
    except (ValueError, KeyError, TypeError):
        return 0  # a torn or foreign last line: verify reports it; new events still chain onto it


@dataclass
class Verdict:
    ok: bool
    events: int
    problems: list[str]
    head: str
    note: str = ""


def verify(chain: Path, head_path: Path, max_problems: int = 20) -> Verdict:
    """Walk the chain: every line parses, its seq follows, its prev is the digest of the line before,
    and the last line is the one the head names."""
    problems: list[str] = []
    prev, seq, count, size = GENESIS, 0, 0, 0
    if chain.exists():
        with open(chain, "rb") as f:
            for n, line in enumerate(f, start=1):
                count, size = n, size + len(line)
                try:
                    event = json.loads(line)
                    got_seq, got_prev = int(event[SEQ]), event[PREV]
                except (ValueError, KeyError, TypeError):
                    problems.append(f"line {n}: not a chained event (edited, torn or inserted)")
                    prev = line_digest(line)
                    continue
                if got_prev != prev:
                    problems.append(f"line {n} (seq {got_seq}): does not follow the line before it: "
                                    f"the event before was edited, removed or moved")
                if got_seq != seq + 1:
                    problems.append(f"line {n}: seq {got_seq} where {seq + 1} was expected "
                                    f"({'missing events' if got_seq > seq + 1 else 'reordered or repeated'})")
                prev, seq = line_digest(line), got_seq
                if len(problems) >= max_problems:
                    break
    head = Head.read(head_path)
    note = ""
    if head is None:
        if count:
            problems.append("the head file is missing or unreadable")
    elif head.digest != prev or head.seq != seq:
        if head.size < size and _chained_after(chain, head):
            note = (f"{seq - head.seq} event(s) after the recorded head: a writer stopped between its "
                    f"append and the head update (the next append records them)")
        else:
            problems.append(f"the last event (seq {seq}) is not the one the head names (seq {head.seq}): "
                            f"the end of the chain was edited, removed or truncated")
    return Verdict(not problems, count, problems, prev, note)


def _chained_after(chain: Path, head: Head) -> bool:
    """The lines after the head's size continue from the head's digest."""
    with open(chain, "rb") as f:
        f.seek(head.size)
        prev = head.digest
        for line in f:
            try:
                if json.loads(line)[PREV] != prev:
                    return False
            except (ValueError, KeyError, TypeError):
                return False
            prev = line_digest(line)
    return True


def read_from(chain: Path, offset: int) -> Iterator[tuple[int, bytes]]:
    """(end offset, line) of every complete line from OFFSET on."""
    if not chain.exists():
        return
    with open(chain, "rb") as f:
        f.seek(offset)
        pos = offset
        for line in f:
            if not line.endswith(b"\n"):
                return  # a line being written
            pos += len(line)
            yield pos, line


def check_anchors(chain: Path, anchors: list[tuple[str, str]]) -> tuple[int, list[str]]:
    """Compare the chain with heads recorded outside it: ANCHORS are (where, "seq:digest"), e.g. every
    MLflow run's `z9.audit_head`. Someone who rewrites the chain and its head file consistently still
    cannot change what another system recorded: the event at each recorded seq must have the recorded
    digest. Returns (anchors checked, problems)."""
    wanted: dict[int, list[tuple[str, str]]] = {}
    problems: list[str] = []
    for where, head in anchors:
        seq, _, digest = str(head).partition(":")
        if head == "none":
            continue  # recorded before the chain's first event
        if not seq.isdigit() or len(digest) != 64:
            problems.append(f"{where}: the recorded head {str(head)[:80]!r} is not seq:sha256")
            continue
        wanted.setdefault(int(seq), []).append((where, digest))
    found: dict[int, str] = {}
    if wanted and chain.exists():
        with open(chain, "rb") as f:
            for line in f:
                try:
                    seq = int(json.loads(line)[SEQ])
                except (ValueError, KeyError, TypeError):
                    continue
                if seq in wanted:
                    found[seq] = line_digest(line)
    checked = 0
    for seq, recorded in sorted(wanted.items()):
        for where, digest in recorded:
            checked += 1
            got = found.get(seq)
            if got is None:
                problems.append(f"{where} recorded the head at seq {seq}; the chain has no event {seq} "
                                "(truncated or renumbered)")
            elif got != digest:
                problems.append(f"event seq {seq} is not the one {where} recorded (digest {digest[:12]}..., the "
                                f"chain's {got[:12]}...): the chain was rewritten at or before it")
    return checked, problems
