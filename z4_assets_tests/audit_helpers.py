"""The audit receiver as a test fixture part: start it (a real process on 127.0.0.1), read what it got."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    def __init__(self, port: int, out: Path):
        self.port, self.out, self.proc = port, out, None

    @property
    def audit_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def lineage_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "z4_assets_tests.audit_receiver", str(self.port),
                                      str(self.out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def wait_for(self, n: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.records()
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.records()


def audit_events(records: list[dict]) -> list[dict]:
    return [r["body"] for r in records if r["path"] == "/events"]


def lineage_events(records: list[dict]) -> list[dict]:
    return [r["body"] for r in records if r["path"] == "/api/v1/lineage"]
