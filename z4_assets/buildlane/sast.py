"""SAST: bandit over the package, and ruff's lint. Guards against shell injection, unsafe loads
and the like reaching the pipeline's code.

A medium or high bandit finding fails unless its line says why it is safe: `# nosec B602  reason`.
A `# nosec` that names no test, or gives no reason, fails too: it would silence every check on
its line without anyone saying why.
"""

from __future__ import annotations

import json
import re
import tokenize
from pathlib import Path

from z4_assets.buildlane.result import FAIL, PASS, LaneResult, tail, tool

BANDIT_CONFIG = ".ci/bandit.yaml"
TARGET = "z4_assets"
BLOCKING = {"MEDIUM", "HIGH"}
_NOSEC = re.compile(r"#\s*nosec\b:?(?P<rest>.*)$", re.IGNORECASE)
_IDS = re.compile(r"^[\s,:]*(?P<ids>B\d{3}(?:[\s,]+B\d{3})*)(?P<reason>.*)$")


def _comments(path: Path):
    with open(path, "rb") as f:
        try:
            for tok in tokenize.tokenize(f.readline):
                if tok.type == tokenize.COMMENT:
                    yield tok.start[0], tok.string
        except (tokenize.TokenError, SyntaxError):
            return  # bandit reports files it cannot parse


def unjustified_nosec(root: Path, target: str = TARGET) -> list[str]:
    """Every `# nosec` comment under target that does not name its test id(s) and give a reason."""
    bad = []
    for path in sorted((root / target).rglob("*.py")):
        for n, comment in _comments(path):
            m = _NOSEC.search(comment)
            if not m:
                continue
            ids = _IDS.match(m["rest"])
            reason = re.sub(r"^[\s#:\-]+", "", ids["reason"]) if ids else ""
            if not ids or len(reason) < 8:
                bad.append(
                    f"{path.relative_to(root)}:{n}: '# nosec' needs test id(s) and a reason, "
                    f"e.g. '# nosec B603 # fixed argv, no shell'"
                )
    return bad


def run_bandit(root: Path, target: str = TARGET, config: str = BANDIT_CONFIG) -> LaneResult:
    proc = tool("bandit", "-r", target, "-c", str(root / config), "-f", "json", "-q", cwd=root)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return LaneResult(
            "bandit", FAIL, f"bandit did not run (exit {proc.returncode})", tail(proc.stderr + proc.stdout)
        )
    if report.get("errors"):
        return LaneResult(
            "bandit",
            FAIL,
            f"bandit could not scan {len(report['errors'])} file(s)",
            [f"{e['filename']}: {e['reason']}" for e in report["errors"]],
        )
    findings = [r for r in report["results"] if r["issue_severity"] in BLOCKING]
    problems = [
        f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_severity'].lower()} "
        f"severity: {r['issue_text']}"
        for r in findings
    ]
    problems += unjustified_nosec(root, target)
    totals = report["metrics"]["_totals"]
    low = sum(r["issue_severity"] == "LOW" for r in report["results"])
    counts = (
        f"{totals['loc']} lines; {low} low finding(s) reported, not blocking; "
        f"{totals.get('skipped_tests', 0)} justified nosec"
    )
    if problems:
        return LaneResult(
            "bandit", FAIL, f"{len(problems)} unjustified finding(s) or nosec: {problems[0]}", problems
        )
    return LaneResult("bandit", PASS, f"no medium/high finding ({counts})")


def run_ruff(
    root: Path, paths: tuple[str, ...] = ("z4_assets", "z4_assets_tests", "benchmarks")
) -> LaneResult:
    """ruff's lint with the checked-in rules (ruff.toml); formatting is pre-commit's job."""
    proc = tool("ruff", "check", "--no-cache", "--output-format", "concise", *paths, cwd=root)
    if proc.returncode == 0:
        return LaneResult("ruff", PASS, "no lint finding")
    lines = [ln for ln in proc.stdout.splitlines() if ":" in ln and not ln.startswith("Found")]
    first = lines[0] if lines else (tail(proc.stderr) or ["ruff failed"])[0]
    return LaneResult("ruff", FAIL, f"{len(lines)} lint finding(s): {first}", lines or tail(proc.stderr))
