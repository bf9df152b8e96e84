"""Secrets scan: detect-secrets over every tracked file, against the checked-in baseline, so no new
key, token or password is ever committed. The baseline holds only audited false positives.

Update the baseline after auditing a false positive (never for a real secret: remove that and
rotate it): `detect-secrets scan --baseline .secrets.baseline`, then `detect-secrets audit .secrets.baseline`.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404 # `git ls-files` with a fixed argv, never a shell
from pathlib import Path

from z4_assets.buildlane.result import FAIL, PASS, LaneResult

BASELINE = ".secrets.baseline"
_SKIP_DIRS = {
    ".git",
    "build",
    "data",
    "mlruns",
    ".dagster_home",
    "__pycache__",
    ".ruff_cache",
    ".pytest_cache",
}


def repo_files(root: Path) -> list[str]:
    """Tracked and new (not ignored) files; every file when root is not a git checkout."""
    try:
        out = subprocess.run(  # nosec B603 B607 # fixed argv, git from PATH
            ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return [f for f in out.splitlines() if (root / f).is_file()]
    except (OSError, subprocess.SubprocessError):
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
            files += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames]
        return sorted(files)


def _scan_in_spawned_workers(found, files: list[str]) -> None:
    """detect-secrets scans with a multiprocessing Pool of the default start method, fork: forked from a
    process that runs threads (a test suite's servers, MLflow, gRPC), a worker can inherit a held lock
    and hang for ever. Its workers are spawned instead (fresh interpreters)."""
    import multiprocessing

    from detect_secrets.core import secrets_collection

    saved = secrets_collection.mp
    secrets_collection.mp = multiprocessing.get_context("spawn")
    try:
        found.scan_files(*files)
    finally:
        secrets_collection.mp = saved


def scan_secrets(root: Path, baseline: str = BASELINE) -> LaneResult:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import transient_settings

    base_path = root / baseline
    try:
        base = json.loads(base_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return LaneResult("secrets", FAIL, f"{base_path}: unreadable baseline ({e})")
    known = {(f, s["hashed_secret"], s["type"]) for f, items in base["results"].items() for s in items}
    confirmed = [
        f"{f}:{s.get('line_number')}: {s['type']} marked a real secret in the baseline"
        for f, items in base["results"].items()
        for s in items
        if s.get("is_secret")
    ]
    files = repo_files(root)
    with transient_settings({"plugins_used": base["plugins_used"], "filters_used": base["filters_used"]}):
        found = SecretsCollection(root=str(root))
        _scan_in_spawned_workers(found, files)
    new = sorted(
        {
            (os.path.relpath(s.filename, root), s.line_number, s.type)
            for _, s in found
            if (os.path.relpath(s.filename, root), s.secret_hash, s.type) not in known
        }
    )
    problems = confirmed + [f"{f}:{line}: {kind} (not in {baseline})" for f, line, kind in new]
    if problems:
        return LaneResult("secrets", FAIL, f"{len(problems)} possible secret(s): {problems[0]}", problems)
    return LaneResult(
        "secrets",
        PASS,
        f"{len(files)} files scanned, nothing beyond {len(known)} "
        f"audited baseline entr{'y' if len(known) == 1 else 'ies'}",
    )
