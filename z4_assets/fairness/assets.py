"""fairness_report: how the model behaves for every protected group, gated on the gaps between groups."""


import dagster as dg

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.contract import load_contract
from z4_assets.core.files import atomic_write_json, atomic_write_text
from z4_assets.core.refs import StageEvidence
from z4_assets.core.z3 import SnapshotRef
from z4_assets.evidence import plot_metadata
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker

CHECKS = {
    "fairness_coverage": "Every declared sensitive attribute has two groups large enough to compare.",
    "fairness_ks_diff": "Largest between-group KS difference stays under the policy maximum.",
    "fairness_auc_diff": "Largest between-group AUC difference stays under the policy maximum.",
    "fairness_demographic_parity_diff": "Gap between group selection rates stays under the maximum.",
    "fairness_demographic_parity_ratio": "Lowest / highest favourable-outcome rate stays above the minimum.",
    "fairness_equalized_odds_diff": "Larger of the TPR and FPR gaps between groups stays under the maximum.",
}


def _metric_key(label: str) -> str:
    """'SEX=1 & AGE=[21,25)' -> 'SEX_1__AGE_21-25': MLflow metric names allow [\w./ -] only."""
    import re

    return re.sub(r"_+", "_", re.sub(r"[^\w.\- ]", "_", label.replace(",", "-").replace(" & ", "__"))).strip("_")


@dg.asset(group_name="fairness", kinds={"pandas"}, code_version="1",
          check_specs=blocking_specs("fairness_report", CHECKS))
@observed("snapshot")
def fairness_report(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef,
                    hygiene_report: StageEvidence, trained_model: StageEvidence,
                    policy: PolicyStore, storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    """Per-group AUC, KS and error rates of the candidate model, with bootstrap intervals."""
    import numpy as np

    from z4_assets.core.fairness._plots import plot_attribute
    from z4_assets.core.fairness._render import summary_markdown
    from z4_assets.core.fairness._report import build_report
    from z4_assets.core.training._fit import load_split
    from z4_assets.core.training._scoring import score_rows
    from z4_assets.core.split import TEST

    ref = z3_snapshot
    contract, _ = load_contract(ref.contract_path)
    rules = policy.for_dataset(ref.dataset_id)["fairness"]
    df = broker.read(context, ref, contract)
    split = load_split(hygiene_report.files["split"], len(df))
    test = df[split == TEST]
    y = (test[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    score = score_rows(trained_model.path, test)
    result = build_report(test, contract, y, score, rules, reference=df)
    report = {"snapshot": ref.label, "dataset_hash": ref.manifest["hash"],
              "model_state_dict_sha256": trained_model.files["digest"], **result.report}

    out = storage.run_dir(context.run_id, "fairness")
    atomic_write_json(out / "fairness.json", report)
    atomic_write_json(out / "gates.json", report["gates"])
    summary = summary_markdown(report)
    atomic_write_text(out / "fairness_summary.md", f"# Fairness report: {ref.label}\n\n{summary}")
    plots = {name: plot_attribute(name, assessed, out, report["bootstrap"]["confidence"])
             for name, assessed in report["attributes"].items()}

    with mlflow.stage(context, ref) as rec:
        subgroup = {f"subgroup.{_metric_key(label)}.{m}": e[m]
                    for a in report["attributes"].values() for label, e in a["groups"].items()
                    if e.get("status") == "ok"
                    for m in ("count", "auc", "ks", "selection_rate", "tpr", "fpr", "precision")
                    if e.get(m) is not None}
        rec.log(metrics={**subgroup, **{f"fairness.{attr}.{d}": v["value"]
                                        for attr, a in report["attributes"].items()
                                        for d, v in a["disparities"].items() if v["value"] is not None}},
                tags={"fairness.passed": str(report["passed"]).lower()})
        rec.artifacts(out, "reports/fairness")
        rec.blocked_by = first_failure(result.gates)

    return dg.MaterializeResult(
        value=StageEvidence("fairness", str(out), report["passed"],
                            {"report": str(out / "fairness.json"),
                             **{f"plot:{k}": str(v) for k, v in plots.items()}}),
        metadata={
            "report": dg.MetadataValue.path(str(out / "fairness.json")),
            **{mk: mv for k, v in plots.items()
               for mk, mv in plot_metadata(f"plot_{k}", v, f"Fairness by {k}",
                                           rec.artifact_url(f"reports/fairness/{v.name}")).items()},
            "summary": dg.MetadataValue.md(summary),
            "test_rows": dg.MetadataValue.int(report["test_rows"]),
            "selection_threshold": dg.MetadataValue.float(report["selection"]["threshold"]),
            "mlflow_run_id": rec.run_id,
            "mlflow_artifacts": f"runs:/{rec.run_id}/reports/fairness",
            "seconds": dg.MetadataValue.float(report["seconds"]),
        },
        check_results=check_results(result.gates),
    )
