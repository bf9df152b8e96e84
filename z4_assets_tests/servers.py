"""Real local servers for tests (mlflow server, dagster-webserver): a free port, a start, a wait."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT = 120  # seconds: an upper bound on a busy 2-core box (mlflow server needs ~15 s idle)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(store: Path, port: int, log: Path) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:PORT over STORE/mlflow.db and STORE/artifacts, in its
    own process group (it starts uvicorn workers under it: stop it with `stop_group`)."""
    out = open(log, "a")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
             "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=store, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def wait_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll URL until it answers 2xx; fail naming WHAT if PROC dies or TIMEOUT passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if 200 <= r.status < 300:
                    return
        except OSError:
            pass
        assert proc.poll() is None, f"{what} exited ({proc.returncode}):\n{Path(log).read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"{what} did not answer at {url} in {timeout:.0f} s"
        time.sleep(0.5)


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL what is left after GRACE seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()
