"""model_card: why this model may or may not be used, written only from the run's evidence."""


import dagster as dg

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.core.files import atomic_write_json, atomic_write_text
from z4_assets.core.provenance import code_version
from z4_assets.core.refs import StageEvidence
from z4_assets.core.z3 import SnapshotRef
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore

CHECKS = {
    "model_card_complete": "Every required section of the model card is filled from evidence; "
                           "a missing piece is named.",
}


@dg.asset(group_name="governance", kinds={"markdown"}, code_version="1", deps=["adversarial_eval"],
          check_specs=blocking_specs("model_card", CHECKS))
@observed()
def model_card(context: dg.AssetExecutionContext, z3_snapshot: SnapshotRef, hygiene_report: StageEvidence,
               trained_model: StageEvidence, fairness_report: StageEvidence, policy: PolicyStore,
               storage: FactoryStorage, mlflow: MlflowTracking):
    """The model card (model_card.md): purpose, data, gates, fairness, security, GDPR/LGPD, provenance."""
    from pathlib import Path

    from z4_assets.core.fairness._gates import GATES
    from z4_assets.core.governance._card import render_card
    from z4_assets.core.governance._evidence import gather

    ref = z3_snapshot
    rules = policy.for_dataset(ref.dataset_id)["fairness"]
    thresholds = {d: (key, op, rules[key]) for d, (key, op, _) in GATES.items()}
    out = storage.run_dir(context.run_id, "governance")
    model_dir = Path(trained_model.path)
    evidence = gather(ref, {"snapshot": storage.evidence_dir(context, "snapshot"),  # a retry: maybe its parent's
                            "hygiene": Path(hygiene_report.path),
                            "model": model_dir, "fairness": Path(fairness_report.path)},
                      security_dir=storage.evidence_dir(context, "security"))
    with mlflow.stage(context, ref) as rec:
        code = code_version()
        ids = {"dagster_run_id": context.run_id, "mlflow_run_id": rec.run_id, "git_sha": code["git_sha"],
               "git_dirty": code["git_dirty"], "dataset_hash": ref.manifest["hash"]}
        card, gate = render_card(evidence, ids, thresholds)
        card_path = atomic_write_text(out / "model_card.md", card)
        atomic_write_json(out / "gates.json", [gate.as_dict()])
        atomic_write_json(out / "evidence_index.json", {"sources": evidence.sources, "missing": evidence.missing,
                                                        "provenance": ids})
        rec.log(tags={"model_card.complete": str(gate.passed).lower()})
        rec.artifacts(out, "reports/governance")
        rec.artifact(card_path)  # also at the top level of the run: model_card.md
        rec.blocked_by = first_failure([gate])

    return dg.MaterializeResult(
        value=StageEvidence("governance", str(out), gate.passed, {"model_card": str(card_path)}),
        metadata={
            "model_card": dg.MetadataValue.path(str(card_path)),
            "card": dg.MetadataValue.md(card),
            "missing_evidence": dg.MetadataValue.json(evidence.missing),
            "mlflow_run_id": rec.run_id,
            "mlflow_artifact": f"runs:/{rec.run_id}/model_card.md",
        },
        check_results=check_results([gate]),
    )
