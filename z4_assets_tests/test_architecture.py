"""The import contracts (.importlinter, the `imports` gate of `z4 ci-gate`) hold, and fail on a planted breach."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from z4_assets.buildlane.imports import run_import_contracts

ROOT = Path(__file__).resolve().parents[1]


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "z4_assets", root / "z4_assets", ignore=shutil.ignore_patterns("__pycache__", "sample_data"))
    shutil.copy(ROOT / ".importlinter", root / ".importlinter")
    return root


def test_the_tree_keeps_every_contract():
    result = run_import_contracts(ROOT)
    assert result.status == "PASS", (result.summary, result.details)
    assert "3 kept, 0 broken" in result.summary


@pytest.mark.parametrize("module, line, contract", [
    ("z4_assets/core/hygiene/_drift.py", "import dagster", "z4_assets.core.hygiene._drift -> dagster"),
    ("z4_assets/core/fairness/__init__.py", "from z4_assets.core.training._mlp import predict_proba",
     "z4_assets.core.fairness -> z4_assets.core.training._mlp"),
    ("z4_assets/core/split.py", "import z4_assets.resources", "z4_assets.core.split -> z4_assets.resources"),
])
def test_a_planted_breach_fails_the_gate_naming_the_import(tmp_path, module, line, contract):
    root = _copy(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # planted by the test\n")
    result = run_import_contracts(root)
    assert result.status == "FAIL", result.summary
    assert any(contract in d for d in result.details), result.details
