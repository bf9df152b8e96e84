"""One lane check's verdict: PASS, WARN (development mode lets it through, loudly) or FAIL."""

from __future__ import annotations

import os
import subprocess  # nosec B404 # the lane runs the scanners' own CLIs, never a shell
import sys
from dataclasses import dataclass, field
from pathlib import Path

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


@dataclass
class LaneResult:
    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def blocks(self) -> bool:
        return self.status == FAIL


def tool(
    module: str, *args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None,
    module_runner: str | None = None,
) -> subprocess.CompletedProcess:
    """Run `python -m <module> args` (the tool installed next to this interpreter); never a shell.
    MODULE_RUNNER: `python -c` code that runs a tool shipping no __main__ (argv still ARGS)."""
    cmd = [sys.executable, *(["-c", module_runner] if module_runner else ["-m", module]), *args]
    return subprocess.run(  # nosec B603 # fixed argv, no shell
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else dict(os.environ),
        check=False,
    )


def tail(text: str, lines: int = 5) -> list[str]:
    return [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
