"""Delivery of the chain to Z9 over HTTP: in chain order, bounded retries, and a cursor per sink.

The chain is the spool. Each sink (the audit endpoint, the OpenLineage endpoint) has a cursor file
to which the seq and end offset of every event it accepted are appended; a flush starts after the
last one. An event is POSTed again only when its 2xx was never seen (the sink died mid-request):
the event id is then the same, which is how Z9 keeps exactly one copy per id (CloudEvents: id and
source identify an event). A sink that is down stops the flush at once; the events stay queued.
A 4xx other than 408/429 is a permanent refusal: the event is written to the sink's rejected log
(never retried forever, never silently dropped) and the flush goes on.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from z4_assets.core.audit._chain import SEQ, last_line, locked, read_from

LINEAGE_TYPE = "io.z4.factory.lineage.run"


@dataclass(frozen=True)
class Sink:
    name: str          # "audit" or "lineage": names its cursor files
    url: str           # never logged: it may carry credentials
    lineage: bool      # True: posts the OpenLineage RunEvent of lineage events; False: every other event

    def wants(self, event: dict) -> bool:
        return (event.get("type") == LINEAGE_TYPE) == self.lineage

    def body(self, event: dict) -> tuple[bytes, str]:
        if self.lineage:
            return json.dumps(event["data"]["run_event"], separators=(",", ":")).encode(), "application/json"
        return json.dumps(event, separators=(",", ":")).encode(), "application/cloudevents+json; charset=utf-8"


@dataclass
class Report:
    sink: str
    delivered: int = 0
    rejected: int = 0
    queued: int = 0
    error: str = ""
    seconds: float = 0.0
    skipped: int = field(default=0, repr=False)  # events of the other sink's kind


class _Poster:
    """One keep-alive connection to the sink; a fresh one after any error."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("the sink URL must be http(s)")
        self.parts, self.timeout, self.conn = parts, timeout, None
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.auth = None
        if parts.username:
            import base64

            cred = f"{parts.username}:{parts.password or ''}".encode()
            self.auth = "Basic " + base64.b64encode(cred).decode()

    def post(self, body: bytes, content_type: str) -> int:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
            self.conn = cls(self.parts.hostname, self.parts.port, timeout=self.timeout)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if self.auth:
            headers["Authorization"] = self.auth
        try:
            self.conn.request("POST", self.path, body=body, headers=headers)
            response = self.conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def cursor(path: Path) -> tuple[int, int]:
    """(last delivered seq, end offset in the chain) of a sink; (0, 0) before its first delivery."""
    line = last_line(path)
    if not line:
        return 0, 0
    try:
        seq, offset = line.split()
        return int(seq), int(offset)
    except ValueError:
        return 0, 0


def _append(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def pending(chain: Path, cursor_path: Path, sink: Sink) -> int:
    """Events of the sink's kind in the chain after its cursor."""
    _, offset = cursor(cursor_path)
    return sum(1 for _, line in read_from(chain, offset) if sink.wants(json.loads(line)))


def deliver(chain: Path, sink: Sink, cursor_path: Path, rejected_path: Path, lock: Path, *,
            retries: int = 3, backoff: float = 0.2, timeout: float = 2.0, budget: float = 10.0) -> Report:
    """POST the sink's queued events in chain order until the queue is empty, the sink is down
    (RETRIES attempts with exponential BACKOFF), or BUDGET seconds are spent; returns what happened."""
    report, started = Report(sink.name), time.monotonic()
    with locked(lock):  # one deliverer per sink at a time: order and exactly-once
        _, offset = cursor(cursor_path)
        poster = _Poster(sink.url, timeout)
        try:
            for end, line in read_from(chain, offset):
                event = json.loads(line)
                seq = event.get(SEQ, 0)
                if not sink.wants(event):  # the other sink's kind: passed over, in order
                    report.skipped += 1
                    _append(cursor_path, f"{seq} {end}\n")
                    continue
                if time.monotonic() - started > budget:  # not down, only slow: the rest waits for the next flush
                    break
                status = _post_with_retries(poster, sink, event, retries, backoff)
                if isinstance(status, str):  # down: stop here, so nothing after it moves the cursor
                    report.error = status
                    break
                if 200 <= status < 300:
                    report.delivered += 1
                else:  # a permanent refusal: kept, with its reason, not retried forever
                    report.rejected += 1
                    _append(rejected_path, json.dumps({"seq": seq, "id": event.get("id"), "status": status}) + "\n")
                _append(cursor_path, f"{seq} {end}\n")
        finally:
            poster.close()
        report.queued = pending(chain, cursor_path, sink)
    report.seconds = time.monotonic() - started
    return report


def _post_with_retries(poster: _Poster, sink: Sink, event: dict, retries: int, backoff: float) -> int | str:
    body, content_type = sink.body(event)
    error = ""
    for attempt in range(max(1, retries)):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            status = poster.post(body, content_type)
        except (OSError, http.client.HTTPException) as e:
            error = f"{sink.name} sink unreachable: {type(e).__name__}"
            continue
        if status >= 500 or status in (408, 429):
            error = f"{sink.name} sink answered {status}"
            continue
        return status
    return error
