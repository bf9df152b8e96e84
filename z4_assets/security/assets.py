"""adversarial_eval: no candidate model is promoted without poisoning, evasion, privacy and output tests."""


import dagster as dg

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.contract import load_contract
from z4_assets.core.refs import StageEvidence
from z4_assets.core.z3 import SnapshotRef
from z4_assets.evidence import plot_metadata
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker

CHECKS = {
    "poisoning_share": "Share of rows the backdoor screen flags stays under the policy maximum.",
    "poisoning_clusters": "No label-homogeneous cluster whose labels contradict the rest of its rows.",
    "evasion_accuracy_drop": "Accuracy drop under PGD at the policy epsilon (valid rows, frozen inputs).",
    "membership_auc": "Membership-inference attack AUC stays at or under the policy maximum.",
    "output_integrity": "Scores are finite, in [0, 1], stable under valid perturbation and not degenerate.",
}


@dg.asset(group_name="security", kinds={"pytorch"}, code_version="1",
          check_specs=blocking_specs("adversarial_eval", CHECKS))
@observed("snapshot")
def adversarial_eval(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef,
                     hygiene_report: StageEvidence, trained_model: StageEvidence, policy: PolicyStore,
                     storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    """Security evidence for the candidate model: backdoor screen, robustness curve, membership
    inference and output integrity, with a PASS/FAIL decision."""
    from z4_assets.core.training._fit import load_split
    from z4_assets.core.training._model_io import load_model
    from z4_assets.core.security._evaluate import evaluate_security
    from z4_assets.core.security._evidence import write_evidence

    ref = z3_snapshot
    contract, _ = load_contract(ref.contract_path)
    rules = policy.for_dataset(ref.dataset_id)["security"]
    df = broker.read(context, ref, contract)
    split = load_split(hygiene_report.files["split"], len(df))
    model, spec, config = load_model(trained_model.path)
    outcome = evaluate_security(df, contract, split, model, spec, rules)
    out = storage.run_dir(context.run_id, "security")
    files = write_evidence(out, outcome, {"snapshot": ref.label, "dataset_hash": ref.manifest["hash"],
                                          "state_dict_sha256": config["state_dict_sha256"],
                                          "seed": rules["seed"]})
    decision = "PASS" if outcome.passed else "FAIL"

    poisoning, evasion = outcome.adversarial["poisoning"], outcome.adversarial["evasion"]
    with mlflow.stage(context, ref) as rec:
        rec.log(params={"security.seed": rules["seed"], "security.gate_epsilon": evasion["gate_epsilon"]},
                metrics={"security.flagged_share": poisoning["flagged_share"],
                         "security.suspicious_clusters": len(poisoning["clusters"]),
                         "security.accuracy_drop": evasion["accuracy_drop"],
                         "security.membership_auc": outcome.privacy["attack_auc"],
                         "security.integrity_failures": len(outcome.integrity["failed_checks"]),
                         **{f"security.seconds.{k}": v for k, v in outcome.seconds.items()}},
                tags={"security_decision": decision})
        rec.artifacts(out, "reports/security")
        rec.blocked_by = first_failure(outcome.gates)

    return dg.MaterializeResult(
        value=StageEvidence("security", str(out), outcome.passed, {k: str(v) for k, v in files.items()}),
        metadata={
            "decision": decision,
            "decision_reasons": dg.MetadataValue.md(f"```\n{files['security_decision'].read_text()}```"),
            **{name: dg.MetadataValue.path(str(files[name])) for name in
               ("security_decision", "adv_eval", "privacy_eval", "output_integrity", "suspicious_rows")},
            **plot_metadata("robustness_curve", files["robustness_curve"], "Robustness curve (FGSM, PGD)",
                            rec.artifact_url(f"reports/security/{files['robustness_curve'].name}")),
            "flagged_rows": dg.MetadataValue.int(poisoning["flagged_rows"]),
            "seconds": dg.MetadataValue.json(outcome.seconds),
            "mlflow_run_id": rec.run_id,
        },
        check_results=check_results(outcome.gates),
    )
