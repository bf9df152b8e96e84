"""The hygiene stage: evidence that a snapshot is clean enough to train on (duplicates, impossible
values, leakage, holdout leaks, drift against the dataset's baseline), and the row split every
later stage of its lineage uses."""

from __future__ import annotations

from z4_assets.core.files import sha256_file
from z4_assets.core.gates import render_markdown
from z4_assets.core.outcome import HygieneOutcome, Lineage, Plot, SnapshotOutcome, accept
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import HYGIENE

__all__ = ["run_hygiene_report"]


def run_hygiene_report(snapshot: SnapshotOutcome, run: StageRun) -> HygieneOutcome:
    import pandas as pd

    from z4_assets.core.hygiene._baseline import read_baseline, write_baseline
    from z4_assets.core.hygiene._checks import run_hygiene
    from z4_assets.core.hygiene._drift import reference_counts
    from z4_assets.core.hygiene._evidence import write_hygiene_evidence

    consumed = accept(HYGIENE.name, run.partition, {"snapshot": snapshot})
    ref, contract, policy = run.snapshot, run.contract, run.policy
    df = run.rows()
    baseline, reference = read_baseline(run.factory, ref.dataset_id)
    result = run_hygiene(df, contract, policy, baseline, reference)

    files = run.folder.stage(HYGIENE.folder)
    written = write_hygiene_evidence(files, ref.label, ref.manifest["hash"], baseline, df, contract, result,
                                     policy.hygiene, run.run_id)
    split_path = run.folder.stage("intermediate").split  # RET-7: not evidence
    pd.DataFrame({"row": range(len(df)), "split": result.split}).to_parquet(split_path, index=False)

    baseline_note = "kept" if baseline else "none yet"
    baseline_sha256 = (baseline or {}).get("file_sha256", "")
    if baseline is None and result.passed:
        baseline_sha256 = write_baseline(run.factory, ref.dataset_id, ref.label, result.profile,
                                         reference_counts(df, contract))
        baseline_note = f"set to {ref.label}"
    return HygieneOutcome(
        stage=HYGIENE.name, partition=run.partition, run_id=run.run_id, gates=tuple(result.gates),
        files={**{k: str(v) for k, v in written.items()}, "split": str(split_path)},
        plots={"drift_per_feature": Plot(title="Drift per feature (PSI)", path=str(written["drift_plot"])),
               "drift_distributions": Plot(title="Drift: reference vs current distribution per flagged feature",
                                           path=str(written["drift_distributions"]))},
        metrics={f"hygiene.{g.name}": float(g.value) for g in result.gates if isinstance(g.value, (int, float))},
        tags={"hygiene.passed": str(result.passed).lower()},
        artifacts={"reports/hygiene": str(files.dir)},
        facts={"split": result.report["split"]["counts"], "baseline": baseline_note,
               "baseline_sha256": baseline_sha256,
               "summary": render_markdown("Hygiene", result.gates)},
        consumed=consumed, produced=Lineage(split=sha256_file(split_path)))
