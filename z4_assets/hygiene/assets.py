"""hygiene_report: duplicates, impossible values, leakage, holdout leaks and drift, each a blocking gate."""


import dagster as dg
import pandas as pd

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.contract import load_contract
from z4_assets.core.gates import render_markdown
from z4_assets.core.hygiene._checks import run_hygiene
from z4_assets.core.hygiene._evidence import write_hygiene_evidence
from z4_assets.core.refs import StageEvidence
from z4_assets.core.z3 import SnapshotRef
from z4_assets.evidence import plot_metadata
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker

CHECKS = {
    "duplicate_rows": "Share of exact duplicate rows stays under the policy maximum.",
    "conflicting_labels": "Share of rows with identical features but different labels stays under the maximum.",
    "impossible_values": "Rows hitting an impossible-value rule of the contract (or +-inf).",
    "target_leakage": "No single feature predicts the label almost perfectly (single-feature AUC).",
    "temporal_leakage": "No model feature is only known after the label's time.",
    "holdout_leak": "No test row also appears in the training split.",
    "drift": "PSI and KL per feature against the dataset's baseline profile.",
}


@dg.asset(group_name="hygiene", kinds={"pandas"}, code_version="1",
          check_specs=blocking_specs("hygiene_report", CHECKS))
@observed("snapshot")
def hygiene_report(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef, policy: PolicyStore,
                   storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    """Evidence that the snapshot is clean enough to train on, and the split the model will use."""
    ref = z3_snapshot
    contract, _ = load_contract(ref.contract_path)
    rules = policy.for_dataset(ref.dataset_id)
    df = broker.read(context, ref, contract)
    baseline = storage.load_baseline(ref.dataset_id)
    result = run_hygiene(df, contract, rules, baseline)

    out = storage.run_dir(context.run_id, "hygiene")
    drift_files = write_hygiene_evidence(out, ref.label, ref.manifest["hash"], baseline, df, contract, result,
                                         rules["hygiene"])
    split_path = storage.intermediate_dir(context.run_id) / "split.parquet"  # RET-7, not evidence
    pd.DataFrame({"row": range(len(df)), "split": result.split}).to_parquet(split_path, index=False)

    baseline_note = "kept"
    if baseline is None and result.passed:
        storage.save_baseline(ref.dataset_id, {"snapshot": ref.label, **result.profile})
        baseline_note = f"set to {ref.label}"

    with mlflow.stage(context, ref) as rec:
        rec.log(metrics={f"hygiene.{g.name}": float(g.value) for g in result.gates
                         if isinstance(g.value, (int, float))},
                tags={"hygiene.passed": str(result.passed).lower()})
        rec.artifacts(out, "reports/hygiene")
        rec.blocked_by = first_failure(result.gates)

    return dg.MaterializeResult(
        value=StageEvidence("hygiene", str(out), result.passed, {"split": str(split_path)}),
        metadata={
            "report": dg.MetadataValue.path(str(out / "hygiene_report.json")),
            "summary": dg.MetadataValue.md(render_markdown("Hygiene", result.gates)),
            "split": dg.MetadataValue.json(result.report["split"]["counts"]),
            "baseline": baseline_note, "mlflow_run_id": rec.run_id,
            **plot_metadata("drift_per_feature", drift_files["drift_plot"], "Drift per feature (PSI)",
                            rec.artifact_url(f"reports/hygiene/{drift_files['drift_plot'].name}")),
        },
        check_results=check_results(result.gates),
    )
