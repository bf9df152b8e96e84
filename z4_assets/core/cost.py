"""What one step of the factory cost: wall time, CPU seconds, memory and rows, without a profiler.

Memory on Linux: `ru_maxrss` is the peak of the whole process, so with the in-process executor
it would show the largest stage so far, not this one. `measure()` therefore resets the kernel's
high-water mark (`/proc/self/clear_refs`, value 5) when it starts, so the peak read at the end
(`VmHWM`) is this step's own peak; the process-lifetime peak is carried across resets here and
reported beside it. Where the reset is not allowed, the step peak is reported as unknown (None)
rather than passed off as the process peak.
"""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_lifetime_peak_kib = 0  # the process peak seen before any reset of the high-water mark


def _status_kib(field_name: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_kib() -> int | None:
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """Peak RSS since the last reset by `measure()` (ru_maxrss follows VmHWM; KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def process_peak_rss_kib() -> int:
    """The process-lifetime peak, across the resets `measure()` makes."""
    return max(_lifetime_peak_kib, _status_kib("VmHWM") or 0, peak_rss_kib())


def _reset_peak() -> bool:
    global _lifetime_peak_kib
    _lifetime_peak_kib = process_peak_rss_kib()
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _cpu() -> tuple[float, float]:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


@dataclass
class Cost:
    """Filled in when the `measure()` block ends; `rows` may be set inside it."""

    rows: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0              # process CPU (all threads) + waited-for child processes
    child_cpu_s: float = 0.0        # the children's share (git, SBOM tools, ...)
    step_peak_rss_mib: float | None = None  # this step's own peak; None when the reset is not allowed
    process_peak_rss_mib: float = 0.0       # the interpreter's lifetime peak at the end of the step
    rss_start_mib: float = 0.0
    rss_end_mib: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def rss_delta_mib(self) -> float:
        return round(self.rss_end_mib - self.rss_start_mib, 1)

    @property
    def rows_per_s(self) -> float:
        return round(self.rows / self.wall_s, 1) if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {"wall_s": self.wall_s, "cpu_s": self.cpu_s, "child_cpu_s": self.child_cpu_s,
                "step_peak_rss_mib": self.step_peak_rss_mib, "process_peak_rss_mib": self.process_peak_rss_mib,
                "rss_start_mib": self.rss_start_mib, "rss_end_mib": self.rss_end_mib,
                "rss_delta_mib": self.rss_delta_mib, "rows": self.rows, "rows_per_s": self.rows_per_s}

    def summary(self) -> str:
        peak = "n/a" if self.step_peak_rss_mib is None else f"{self.step_peak_rss_mib:.0f}MiB"
        return (f"wall={self.wall_s:.2f}s cpu={self.cpu_s:.2f}s peak_rss={peak} "
                f"(process {self.process_peak_rss_mib:.0f}MiB, delta {self.rss_delta_mib:+.0f}MiB) "
                f"rows={self.rows}")


def _mib(kib: int | None) -> float:
    return round((kib or 0) / 1024, 1)


def cost_metrics(asset: str, cost: Cost) -> dict[str, float]:
    """MLflow metrics `cost.<asset>.<field>` of one step (unknown fields left out)."""
    return {f"cost.{asset}.{k}": float(v) for k, v in cost.as_dict().items() if v is not None}


@contextmanager
def measure(rows: int = 0) -> Iterator[Cost]:
    """Measure the block; the Cost is complete after it ends, also when it raises."""
    cost = Cost(rows=rows, rss_start_mib=_mib(current_rss_kib()))
    reset = _reset_peak()
    cpu0, child0 = _cpu()
    t0 = time.perf_counter()
    try:
        yield cost
    finally:
        cost.wall_s = round(time.perf_counter() - t0, 3)
        cpu1, child1 = _cpu()
        cost.child_cpu_s = round(child1 - child0, 3)
        cost.cpu_s = round(cpu1 - cpu0 + cost.child_cpu_s, 3)
        cost.rss_end_mib = _mib(current_rss_kib())
        cost.step_peak_rss_mib = _mib(_status_kib("VmHWM")) if reset else None
        cost.process_peak_rss_mib = _mib(process_peak_rss_kib())
