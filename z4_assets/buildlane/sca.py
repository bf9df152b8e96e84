"""SCA: `pip-audit --strict` over the pinned dependencies, so no known-vulnerable release ships.

Three outcomes, never confused: audited and clean (PASS); a known vulnerability (FAIL, in every
mode); no vulnerability database reachable, "not audited (offline)", which blocks in release mode
and warns, loudly, in development mode. It is never reported as a pass.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from packaging.version import Version

from z4_assets.buildlane.lockcheck import RUNTIME_LOCK, TEST_LOCK, parse_lock
from z4_assets.buildlane.result import FAIL, PASS, WARN, LaneResult, tail, tool

MODES = ("development", "release")
NOT_AUDITED = "not audited (offline)"
# What pip-audit prints when its vulnerability service cannot be asked or has no answer for a pin.
_UNREACHABLE = re.compile(
    r"ConnectionError|Max retries exceeded|Failed to establish|Name or service not known|"
    r"Temporary failure in name resolution|timed out|ProxyError|SSLError|"
    r"Dependency not found on PyPI and could not be audited",
    re.IGNORECASE,
)
_NO_DATA = re.compile(r"not found on PyPI and could not be audited", re.IGNORECASE)


def audit_input(root: Path, lock_names: tuple[str, ...] = (RUNTIME_LOCK, TEST_LOCK)) -> str:
    """`name==version` lines for every pin of the locks. A local build label (torch's `+cpu`) is
    dropped: advisories are filed against the upstream release, which PyPI knows."""
    pins = {}
    for name in lock_names:
        found, _ = parse_lock(root / name)
        pins.update(found)
    return "".join(
        f"{p.name}=={Version(p.version).public}\n" for p in sorted(pins.values(), key=lambda p: p.name)
    )


def classify(returncode: int, report: dict | None, stderr: str, mode: str) -> LaneResult:
    """Turn one pip-audit run into the lane's verdict (pure: tested on recorded outputs)."""
    if report is not None:
        deps = report.get("dependencies", [])
        vulns = [
            (d["name"], d["version"], v["id"], ",".join(v.get("fix_versions", [])) or "none")
            for d in deps
            for v in d.get("vulns", [])
        ]
        if vulns:
            lines = [f"{n}=={ver}: {vid} (fixed in {fix})" for n, ver, vid, fix in vulns]
            return LaneResult("pip-audit", FAIL, f"{len(vulns)} known vulnerabilit(y/ies): {lines[0]}", lines)
        skipped = [f"{d['name']}=={d['version']}: {d['skip_reason']}" for d in deps if d.get("skip_reason")]
        if returncode == 0 and not skipped:
            return LaneResult(
                "pip-audit", PASS, f"{len(deps)} pinned dependencies audited, no known vulnerability"
            )
    errors = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    evidence = tail("\n".join(errors), 3) or [f"pip-audit exit {returncode}"]
    if _UNREACHABLE.search(stderr) or report is not None:
        status = FAIL if mode == "release" else WARN
        effect = "blocks in release mode" if status == FAIL else "development mode: a warning, not a pass"
        why = (
            "the vulnerability service has no data for the pinned releases"
            if _NO_DATA.search(stderr)
            else "the vulnerability service is unreachable"
        )
        return LaneResult("pip-audit", status, f"{NOT_AUDITED}: {why} ({effect})", evidence)
    return LaneResult(
        "pip-audit", FAIL, f"pip-audit failed (exit {returncode}): {evidence[-1][:200]}", evidence
    )


def run_pip_audit(
    root: Path, mode: str = "development", env: dict | None = None, timeout: float = 300
) -> LaneResult:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    with tempfile.TemporaryDirectory(prefix="z4-audit-") as tmp:
        reqs, out = Path(tmp) / "pins.txt", Path(tmp) / "audit.json"
        reqs.write_text(audit_input(root), encoding="utf-8")
        proc = tool(
            "pip_audit",
            "--strict",
            "--disable-pip",
            "--no-deps",
            "-r",
            str(reqs),
            "-f",
            "json",
            "-o",
            str(out),
            "--progress-spinner",
            "off",
            "--timeout",
            "20",
            env=env,
            timeout=timeout,
        )
        report = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
    return classify(proc.returncode, report, proc.stderr, mode)
