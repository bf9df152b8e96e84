"""The governance stage: the model card, why this model may or may not be used, written only from the
evidence of its own lineage; a missing piece is named and blocks."""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.files import atomic_write_json, atomic_write_text
from z4_assets.core.outcome import HygieneOutcome, ModelOutcome, SnapshotOutcome, StageOutcome, accept
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import GOVERNANCE

__all__ = ["run_model_card"]


def run_model_card(snapshot: SnapshotOutcome, hygiene: HygieneOutcome, model: ModelOutcome,
                   security: StageOutcome, fairness: StageOutcome, run: StageRun, mlflow_run_id: str) -> StageOutcome:
    from z4_assets.core.fairness import DISPARITY_GATES as GATES
    from z4_assets.core.governance._card import render_card
    from z4_assets.core.governance._evidence import gather
    from z4_assets.core.policy_trace import policy_trace
    from z4_assets.core.provenance import code_version

    inputs = {"snapshot": snapshot, "hygiene": hygiene, "training": model, "security": security, "fairness": fairness}
    consumed = accept(GOVERNANCE.name, run.partition, inputs)
    rules = run.policy.fairness
    thresholds = {d: (key, op, getattr(rules, key)) for d, (key, op, _) in GATES.items()}
    pieces = {"snapshot_manifest": ("snapshot", "manifest"), "snapshot_gates": ("snapshot", "gates"),
              "hygiene_report": ("hygiene", "report"), "hygiene_gates": ("hygiene", "gates"),
              "model_config": ("training", "config"), "model_metrics": ("training", "metrics"),
              "model_gates": ("training", "gates"), "feature_spec": ("training", "feature_spec"),
              "fairness_report": ("fairness", "report"), "security_decision": ("security", "security_decision"),
              "adversarial_eval": ("security", "adv_eval"), "privacy_eval": ("security", "privacy_eval")}
    evidence = gather(run.snapshot, {name: Path(inputs[stage].files[role]) for name, (stage, role) in pieces.items()
                                     if role in inputs[stage].files})
    code = code_version()
    ids = {"dagster_run_id": run.run_id, "mlflow_run_id": mlflow_run_id, "git_sha": code["git_sha"],
           "git_dirty": code["git_dirty"], "dataset_hash": consumed.snapshot}
    p = run.policy
    sufficiency = evidence_rules(p)
    files = run.folder.stage(GOVERNANCE.folder)
    trace = policy_trace(run.policy)
    atomic_write_json(files.policy_trace, trace)
    evidence.pieces["policy_trace"], evidence.sources["policy_trace"] = trace, str(files.policy_trace)
    card, gate = render_card(evidence, ids, thresholds, sufficiency)
    atomic_write_text(files.card, card)
    atomic_write_json(files.gates, [gate.as_dict()])
    atomic_write_json(files.evidence_index, {"sources": evidence.sources, "missing": evidence.missing,
                                             "provenance": ids})
    return StageOutcome(
        stage=GOVERNANCE.name, partition=run.partition, run_id=run.run_id, gates=(gate,),
        files={"card": str(files.card), "gates": str(files.gates), "evidence_index": str(files.evidence_index),
               "policy_trace": str(files.policy_trace)},
        tags={"model_card.complete": str(gate.passed).lower(), "policy.digest": trace["digest"],
              "policy.overridden": str(trace["overridden"]).lower(),
              "policy.loosened_gates": ",".join(trace["loosened_gates"]) or "none"},
        artifacts={"reports/governance": str(files.dir), ".": str(files.card)},
        facts={"card": card, "missing_evidence": evidence.missing, "policy_digest": trace["digest"],
               "policy_loosened_gates": trace["loosened_gates"]}, consumed=consumed)


def evidence_rules(policy) -> dict[str, bool]:
    """Gate family -> whether the policy lets an INSUFFICIENT EVIDENCE verdict stop the model: every
    policy section that has the switch (the card's sentence names all of them)."""
    s = policy.security
    return {"performance and operating point": policy.performance.insufficient_evidence_blocks,
            "fairness": policy.fairness.insufficient_evidence_blocks,
            "evasion": s.evasion.insufficient_evidence_blocks,
            "membership inference": s.membership.insufficient_evidence_blocks,
            "attribute inference": s.attribute_inference.insufficient_evidence_blocks}
