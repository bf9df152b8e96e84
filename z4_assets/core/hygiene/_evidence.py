"""The hygiene stage's evidence files, written the same way by the asset and the benchmark's bare mirror."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.files import atomic_write_json, atomic_write_text
from z4_assets.core.gates import render_markdown
from z4_assets.core.hygiene._checks import HygieneResult

LEAKAGE_GATES = ("target_leakage", "temporal_leakage", "holdout_leak")


def write_hygiene_evidence(out: Path, label: str, dataset_hash: str, baseline: dict | None, df: pd.DataFrame,
                           contract: Contract, result: HygieneResult, hygiene_policy: dict) -> dict[str, Path]:
    """hygiene_report.json, gates.json, privacy_report.json, leakage_checks.json, hygiene_summary.md and
    the drift-per-feature plot in OUT; returns the drift plot's files."""
    from z4_assets.core.hygiene._drift_plot import write_drift_plot
    from z4_assets.core.hygiene._privacy import privacy_report

    report = {"snapshot": label, "dataset_hash": dataset_hash,
              "baseline": (baseline or {}).get("snapshot"), **result.report}
    atomic_write_json(out / "hygiene_report.json", report)
    atomic_write_json(out / "gates.json", [g.as_dict() for g in result.gates])
    atomic_write_json(out / "privacy_report.json", privacy_report(df, contract))
    leakage = {g.name: g.as_dict() for g in result.gates if g.name in LEAKAGE_GATES}
    atomic_write_json(out / "leakage_checks.json", {"snapshot": label, **leakage})
    atomic_write_text(out / "hygiene_summary.md", render_markdown(
        f"Hygiene report: {label}", result.gates,
        f"{len(df)} rows, positive rate {result.report['positive_rate']:.3f}, "
        f"split {result.split_strategy} {result.report['split']['counts']}."))
    drift_gate = next(g for g in result.gates if g.name == "drift")
    return write_drift_plot(df, contract, result.split, drift_gate.details, hygiene_policy, out)
