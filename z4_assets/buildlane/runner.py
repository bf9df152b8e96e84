"""`z4 ci-gate`: the whole build and security lane in one command, ending in a PASS/FAIL table.

Exit 0 when nothing failed (warnings allowed: development mode), 1 when any gate failed.
Every gate runs even after a failure, so one run shows everything that is wrong.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

from z4_assets.buildlane.dockercheck import check_dockerfile
from z4_assets.buildlane.imports import run_import_contracts
from z4_assets.buildlane.lockcheck import RUNTIME_LOCK, check_locks, parse_lock
from z4_assets.buildlane.result import FAIL, PASS, WARN, LaneResult
from z4_assets.buildlane.sast import run_bandit, run_ruff
from z4_assets.buildlane.sca import MODES, run_pip_audit
from z4_assets.buildlane.secret_scan import scan_secrets
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_json

MODE_ENV = "Z4_LANE_MODE"
ARTIFACT_DIR = "build/ci-gate"  # gitignored (build/)
SBOM_NAME = "sbom.cdx.json"
SBOM_CACHE = "sbom-cache"  # SBOMs by installed-package set: the licences gate reuses the sbom gate's


def lock_drift(components: dict[str, str], pins: dict) -> list[str]:
    """Runtime pins whose installed version (per the SBOM) is not the locked one."""
    return [
        f"{n}: locked {p.version}, installed {components.get(n, 'absent')}"
        for n, p in sorted(pins.items())
        if components.get(n) != p.version
    ]


def check_sbom(root: Path, out_dir: Path) -> LaneResult:
    """Build the CycloneDX SBOM artifact and check it covers every runtime pin at its locked version."""
    from z4_assets.core.sbom import generate_sbom, sbom_components

    path = out_dir / SBOM_NAME
    digest = generate_sbom(path, cache_dir=out_dir / SBOM_CACHE)
    components = sbom_components(path)
    pins, _ = parse_lock(root / RUNTIME_LOCK)
    drift = lock_drift(components, pins)
    details = [f"sha256:{digest}", str(path)]
    if drift:
        return LaneResult(
            "sbom",
            FAIL,
            f"the environment is not the locked one ({len(drift)} pin(s)): "
            f"{drift[0]}; install with the README's command",
            drift + details,
        )
    extra = len(set(components) - set(pins))
    return LaneResult(
        "sbom",
        PASS,
        f"{path} sha256:{digest[:16]}..., {len(components)} components, "
        f"all {len(pins)} runtime pins at their locked version ({extra} more: test "
        "extras, machine packages)",
        details,
    )


def gates(root: Path, mode: str, out_dir: Path) -> dict[str, Callable[[], LaneResult]]:
    return {
        "lock": lambda: check_locks(root),
        "ruff": lambda: run_ruff(root),
        "imports": lambda: run_import_contracts(root),
        "bandit": lambda: run_bandit(root),
        "secrets": lambda: scan_secrets(root),
        "dockerfile": lambda: check_dockerfile(root),
        "pip-audit": lambda: run_pip_audit(root, mode),
        "sbom": lambda: check_sbom(root, out_dir),
        "licences": lambda: _licences(root, mode, out_dir),
    }


def _licences(root: Path, mode: str, out_dir: Path) -> LaneResult:
    """The SBOM the `sbom` gate wrote (built here when that gate did not run), judged by the policy."""
    from z4_assets.buildlane.licences import check_licences
    from z4_assets.core.sbom import generate_sbom

    path = out_dir / SBOM_NAME
    generate_sbom(path, cache_dir=out_dir / SBOM_CACHE)  # never a stale file: the cache is keyed by what is installed
    return check_licences(path, mode, os.environ.get("Z4_POLICY") or None)


def default_mode() -> str:
    mode = os.environ.get(MODE_ENV, "development")
    if mode not in MODES:
        raise Z4Error(f"{MODE_ENV}={mode!r}: must be one of {', '.join(MODES)}")
    return mode


def run_lane(
    root: Path,
    mode: str,
    only: list[str] | None = None,
    out_dir: Path | None = None,
    stream: TextIO = sys.stdout,
) -> tuple[list[LaneResult], int]:
    root = root.resolve()
    if not (root / "pyproject.toml").is_file():
        raise Z4Error("not the project root (no pyproject.toml): run z4 ci-gate from the checkout", root)
    out_dir = out_dir or root / ARTIFACT_DIR
    table = gates(root, mode, out_dir)
    unknown = sorted(set(only or []) - set(table))
    if unknown:
        raise Z4Error(f"unknown gate(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    results, start = [], time.perf_counter()
    for name, run in table.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            result = run()
        except Z4Error as e:  # a broken tool or input is a failed gate, with its one-line reason
            result = LaneResult(name, FAIL, str(e))
        except Exception as e:  # a crashed check is a failed gate, never a silent pass
            result = LaneResult(name, FAIL, f"the check crashed: {type(e).__name__}: {e}"[:300])
        result.seconds = time.perf_counter() - t0
        results.append(result)
        print(f"  {name:<11} {result.status}  ({result.seconds:.1f} s)", file=stream, flush=True)
    total = time.perf_counter() - start
    code = 1 if any(r.blocks for r in results) else 0
    _print_table(results, mode, total, code, stream)
    atomic_write_json(
        out_dir / "report.json",
        {
            "mode": mode,
            "passed": code == 0,
            "seconds": round(total, 1),
            "gates": [
                {
                    "name": r.name,
                    "status": r.status,
                    "summary": r.summary,
                    "details": r.details,
                    "seconds": round(r.seconds, 2),
                }
                for r in results
            ],
        },
    )
    return results, code


def _print_table(results: list[LaneResult], mode: str, total: float, code: int, stream: TextIO) -> None:
    print(f"\n{'gate':<11} {'result':<6} {'secs':>6}  summary", file=stream)
    for r in results:
        print(f"{r.name:<11} {r.status:<6} {r.seconds:>6.1f}  {r.summary}", file=stream)
    for r in results:
        if r.status == WARN:
            print(f"\n!!! {r.name}: {r.summary.upper()}", file=stream)
        if r.status != PASS:
            for line in r.details[:20]:
                print(f"    {r.name}: {line}", file=stream)
    warned = sum(r.status == WARN for r in results)
    verdict = "FAIL" if code else PASS
    print(
        f"\nci-gate: {verdict} in {mode} mode, {total:.1f} s "
        f"({sum(r.status == FAIL for r in results)} failed, {warned} warning(s))",
        file=stream,
    )
    if mode == "development" and warned:
        print(
            "ci-gate: release mode (--mode release or Z4_LANE_MODE=release) would block on the "
            "warning(s) above",
            file=stream,
        )
