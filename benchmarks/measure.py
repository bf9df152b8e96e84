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


def run_timed(cmd: list[str], env: dict | None = None, cwd: str | Path | None = None,
              timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one subprocess (spawn to exit); raises with its stderr tail if it fails.

    The child's CPU seconds (user + sys, its own children included) and the 1-minute load
    average before it started are attached as proc.cpu_seconds and proc.load_before: when
    another process competes for the 2 cores, wall time grows while the work does not.
    """
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{tail}")
    proc.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    proc.load_before = load_before
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

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": sys.version.split()[0],
            "platform": platform.platform(), "load_avg_at_start": os.getloadavg()}
