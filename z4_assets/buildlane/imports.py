"""The architecture as import contracts (`.importlinter`): the core stays plain Python without Dagster,
never imports the orchestration above it, and stages use each other only through their public faces."""

from __future__ import annotations

from pathlib import Path

from z4_assets.buildlane.result import FAIL, PASS, LaneResult, tail, tool

CONFIG = ".importlinter"


def run_import_contracts(root: Path, config: str = CONFIG) -> LaneResult:
    if not (root / config).is_file():
        return LaneResult("imports", FAIL, f"no {config}: the import contracts are missing")
    proc = tool("importlinter.cli", str(root / config), cwd=root,
                module_runner="from importlinter.cli import lint_imports_command as c; c()")
    text = proc.stdout + proc.stderr
    kept = next((ln.strip() for ln in text.splitlines() if ln.startswith("Contracts:")), "")
    if proc.returncode != 0:
        broken = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("- ")]
        return LaneResult("imports", FAIL, f"an import contract is broken ({kept or 'lint-imports failed'})",
                          broken[:20] or tail(text, 10))
    return LaneResult("imports", PASS, f"{kept} ({config})")
