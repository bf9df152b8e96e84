"""Small timing helpers shared by the benchmarks: medians, timed subprocesses, peak memory."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "z4_assets" / "sample_data" / "taiwan_credit_default"
DATASET_ID = "taiwan_credit_default"


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: list[float]) -> dict:
    """Median, min, max and the raw samples, for the JSON record."""
    return {"median": median(values), "min": min(values, default=float("nan")),
            "max": max(values, default=float("nan")), "samples": list(values)}


def _busy_seconds() -> float | None:
    """CPU seconds all cores spent busy since boot (/proc/stat; steal counts as busy)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Background:
    """Cores used by other processes while a block ran: machine busy time minus ours.

    On a shared 2-core machine this tells whether a slow sample was slow or crowded out.
    """

    def __enter__(self):
        self._busy, self._ours, self._t = _busy_seconds(), _own_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._t
        busy = _busy_seconds()
        self.cores = (None if busy is None or self._busy is None or wall <= 0 else
                      max(0.0, (busy - self._busy) - (_own_cpu() - self._ours)) / wall)
        return False


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


IDLE = {"max_wait_s": 0.0, "cores": 0.25, "window_s": 3.0}  # run.py --wait-idle sets max_wait_s


def wait_for_idle() -> float:
    """Wait (up to IDLE max_wait_s) until other processes use under IDLE cores; returns seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < IDLE["max_wait_s"]:
        with Background() as b:
            time.sleep(IDLE["window_s"])
        if b.cores is None or b.cores < IDLE["cores"]:
            break
    return time.perf_counter() - start


def run_timed(cmd: list[str], env: dict | None = None, cwd: str | Path | None = None,
              timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one subprocess (spawn to exit); raises with its stderr tail if it fails.

    The child's CPU seconds (user + sys, its own children included), the 1-minute load average
    before it started and the cores other processes used meanwhile are attached as
    proc.cpu_seconds, proc.load_before and proc.background_cores. With --wait-idle it first
    waits for the machine to go quiet (proc.waited_for_idle_s).
    """
    waited = wait_for_idle()
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Background() as background:
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=False)
        seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{tail}")
    proc.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    proc.load_before = load_before
    proc.background_cores, proc.waited_for_idle_s = background.cores, waited
    return seconds, proc


def peak_rss_mib() -> float:
    """Peak resident set of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def clean_env(**extra: str) -> dict:
    """The parent's environment without the project's own overrides, plus EXTRA."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("Z4_POLICY", "Z4_MLFLOW_EXPERIMENT", "Z4_GIT_SHA", "DAGSTER_HOME",
                        "Z4_Z3_ROOT", "Z4_FACTORY_ROOT", "MLFLOW_TRACKING_URI")}
    env.update(extra)
    return env


def machine() -> dict:
    import platform

    from z4_assets.core.provenance import cpu_model

    return {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": sys.version.split()[0],
            "platform": platform.platform(), "load_avg_at_start": os.getloadavg()}
