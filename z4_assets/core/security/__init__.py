"""The security stage: no candidate is promoted without a backdoor screen of its snapshot, an evasion
robustness curve, a membership-inference attack and output-integrity checks, each a gate."""

from __future__ import annotations

from z4_assets.core.outcome import HygieneOutcome, ModelOutcome, Plot, SnapshotOutcome, StageOutcome, accept
from z4_assets.core.plots import caption
from z4_assets.core.stage_run import StageRun
from z4_assets.core.stages import SECURITY

__all__ = ["evasion_report", "run_adversarial_eval"]


def evasion_report(model, spec, contract, df, split, rules) -> dict:
    """The evasion attack that fits MODEL's family (PGD, HopSkipJump, or a refusal) on a seeded
    sample of the test split: the challenger table's evasion column."""
    import numpy as np

    from z4_assets.core.security._evasion import feature_bounds, robustness_curve
    from z4_assets.core.split import TEST

    test = np.flatnonzero(split == TEST)
    rng = np.random.default_rng(int(rules.seed))
    rows = np.sort(rng.choice(test, min(len(test), int(rules.evasion.sample_rows)), replace=False))
    x, y = spec.transform(df.iloc[rows]), (df[contract.target.column] == contract.target.positive).to_numpy()[rows]
    return robustness_curve(model, x, y.astype(np.int64), feature_bounds(spec, contract, df), rules.evasion,
                            int(rules.seed))


def _attacks(evasion: dict) -> str:
    """The attacks the robustness curve shows, for its title."""
    if evasion.get("refused"):
        return "not attacked: no attack fits the family"
    return "HopSkipJump" if evasion.get("gate_attack") == "hopskipjump" else "FGSM, PGD"


def run_adversarial_eval(snapshot: SnapshotOutcome, hygiene: HygieneOutcome, model: ModelOutcome,
                         run: StageRun) -> StageOutcome:
    from z4_assets.core.security._evaluate import evaluate_security
    from z4_assets.core.security._evidence import write_evidence
    from z4_assets.core.split import load_split
    from z4_assets.core.training import load_model

    consumed = accept(SECURITY.name, run.partition, {"snapshot": snapshot, "hygiene": hygiene, "training": model})
    rules = run.policy.security
    df = run.rows()
    split = load_split(hygiene.split_path, len(df), consumed.split)
    torch_model, spec, config = load_model(model)
    result = evaluate_security(df, run.contract, split, torch_model, spec, rules)
    files = run.folder.stage(SECURITY.folder)
    written = write_evidence(files, result, {"snapshot": run.partition, "dataset_hash": consumed.snapshot,
                                             "state_dict_sha256": config["state_dict_sha256"], "seed": rules.seed},
                             caption(run.partition, run.run_id))
    decision = "PASS" if result.passed else "FAIL"
    poisoning, evasion = result.adversarial["poisoning"], result.adversarial["evasion"]
    ai = result.privacy["attribute_inference"]
    return StageOutcome(
        stage=SECURITY.name, partition=run.partition, run_id=run.run_id, gates=tuple(result.gates),
        files={k: str(v) for k, v in written.items()},
        plots={"robustness_curve": Plot(title=f"Robustness curve ({_attacks(evasion)})",
                                        path=str(written["robustness_curve"]))},
        params={"security.seed": str(rules.seed), "security.gate_epsilon": str(evasion["gate_epsilon"])},
        metrics={"security.flagged_share": poisoning["flagged_share"],
                 "security.suspicious_clusters": len(poisoning["clusters"]),
                 **({"security.accuracy_drop": evasion["accuracy_drop"]}   # none: the attack was refused
                    if evasion.get("accuracy_drop") is not None else {}),
                 "security.membership_auc": result.privacy["attack_auc"],
                 **({"security.attribute_inference_max_gain": ai["max_gain"]} if ai["max_gain"] is not None else {}),
                 "security.integrity_failures": len(result.integrity["failed_checks"]),
                 **{f"security.seconds.{k}": v for k, v in result.seconds.items()}},
        tags={"security_decision": decision},
        artifacts={"reports/security": str(files.dir)},
        facts={"decision": decision, "decision_reasons": written["security_decision"].read_text(),
               "flagged_rows": poisoning["flagged_rows"], "seconds": result.seconds},
        consumed=consumed)
