"""The hygiene stage's evidence files, each written atomically into the run's hygiene folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.files import atomic_write_json, atomic_write_text
from z4_assets.core.gates import render_markdown
from z4_assets.core.hygiene._checks import HygieneResult
from z4_assets.core.plots import caption

LEAKAGE_GATES = ("target_leakage", "temporal_leakage", "holdout_leak")


def write_hygiene_evidence(files, label: str, dataset_hash: str, baseline: dict | None, df: pd.DataFrame,
                           contract: Contract, result: HygieneResult, hygiene_policy, run_id: str = "") -> dict[str, Path]:
    """Report, gates, privacy report, leakage checks, summary and the drift-per-feature plot in the
    hygiene folder (FILES: core/run_folder.py names them); returns every file written, by role."""
    from z4_assets.core.hygiene._drift_plot import write_drift_plot
    from z4_assets.core.hygiene._privacy import privacy_report

    report = {"snapshot": label, "dataset_hash": dataset_hash,
              "baseline": (baseline or {}).get("snapshot"), **result.report}
    atomic_write_json(files.report, report)
    atomic_write_json(files.gates, [g.as_dict() for g in result.gates])
    atomic_write_json(files.privacy, privacy_report(df, contract))
    leakage = {g.name: g.as_dict() for g in result.gates if g.name in LEAKAGE_GATES}
    atomic_write_json(files.leakage, {"snapshot": label, **leakage})
    atomic_write_text(files.summary, render_markdown(
        f"Hygiene report: {label}", result.gates,
        f"{len(df)} rows, positive rate {result.report['positive_rate']:.3f}, "
        f"split {result.split_strategy} {result.report['split']['counts']}."))
    drift_gate = next(g for g in result.gates if g.name == "drift")
    plot = write_drift_plot(df, contract, result.split, drift_gate.details, hygiene_policy, files,
                            caption(label, run_id))
    return {"report": files.report, "gates": files.gates, "privacy": files.privacy, "leakage": files.leakage,
            "summary": files.summary, **plot}
