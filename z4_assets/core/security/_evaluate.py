"""Run every security sub-test on one model and snapshot, and turn the results into gates."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.training import FeatureSpec
from z4_assets.core.gates import Gate
from z4_assets.core.stages import SECURITY
from z4_assets.core.security._attribute_inference import attribute_inference, attribute_inference_gate
from z4_assets.core.security._poisoning import PoisonScreen, rows_with_pattern, screen_poisoning
from z4_assets.core.split import TEST, TRAIN


@dataclass
class SecurityResult:
    gates: list[Gate]
    screen: PoisonScreen
    adversarial: dict
    privacy: dict
    integrity: dict
    row_ids: np.ndarray
    split: np.ndarray
    seconds: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def _sample(rows: np.ndarray, cap: int, rng) -> np.ndarray:
    return np.sort(rng.choice(rows, cap, replace=False)) if len(rows) > cap else rows


def row_ids(df: pd.DataFrame, contract: Contract) -> np.ndarray:
    return (df[contract.id_column] if contract.id_column else pd.Series(np.arange(len(df)))).to_numpy()


def trigger_effect(model, spec: FeatureSpec, df: pd.DataFrame, y: np.ndarray, test_rows: np.ndarray,
                   cluster: dict, carries: np.ndarray, rng, cap: int = 1000) -> dict:
    """Stamp a cluster's pattern onto held-out rows of the other label: does the model follow it?"""
    from z4_assets.core.security._art_model import proba

    label = int(cluster["label"]["positive"])
    pool = test_rows[(y[test_rows] != label) & ~carries[test_rows]]
    if not len(pool):
        return {"rows": 0}
    rows = _sample(pool, cap, rng)
    before = df.iloc[rows]
    after = before.copy()
    for col, value in cluster["pattern"].items():
        after[col] = value
    as_label = [float(((proba(model, spec.transform(f)) >= 0.5) == bool(label)).mean()) for f in (before, after)]
    return {"rows": int(len(rows)), "predicted_as_cluster_label_before": round(as_label[0], 6),
            "predicted_as_cluster_label_with_pattern": round(as_label[1], 6)}


@contextmanager
def pinned_threads(n: int):
    """torch and OpenMP/BLAS pools limited to N threads, restored afterwards (other stages share the process)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def evaluate_security(df: pd.DataFrame, contract: Contract, split: np.ndarray, model, spec: FeatureSpec,
                      rules: dict) -> SecurityResult:
    """rules = the policy's `security` section; every sample below is drawn from its seed."""
    with pinned_threads(int(rules.threads)):
        return _evaluate(df, contract, split, model, spec, rules)


def _evaluate(df, contract, split, model, spec, rules) -> SecurityResult:
    from z4_assets.core.security import _art_signals as art_signals, _evasion as evasion, _integrity as integrity, _privacy as privacy

    seed = int(rules.seed)
    rng = np.random.default_rng(seed)
    secs: dict[str, float] = {}
    y = (df[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    train, test = np.flatnonzero(split == TRAIN), np.flatnonzero(split == TEST)
    ids = row_ids(df, contract)

    t = time.perf_counter()
    screen = screen_poisoning(df, contract, rules.poisoning, seed)
    secs["poisoning_screen"] = time.perf_counter() - t

    t = time.perf_counter()
    x = spec.transform(df)
    secs["feature_transform"] = time.perf_counter() - t

    poisoning = dict(screen.report)
    t = time.perf_counter()
    for cl in poisoning["clusters"]:
        carries = rows_with_pattern(df, cl["pattern"])
        cl["split_of_flagged"] = {s: int(((screen.cluster_of == cl["cluster"]) & (split == s)).sum())
                                  for s in np.unique(split)}
        cl["example_ids"] = ids[screen.cluster_of == cl["cluster"]][: int(rules.poisoning.report_ids)].tolist()
        cl["trigger_effect_on_model"] = trigger_effect(model, spec, df, y, test, cl, carries, rng)
    secs["trigger_effect"] = time.perf_counter() - t
    if rules.poisoning.art_signals and getattr(model, "family", "mlp") != "mlp":
        poisoning["art_signals"] = {"skipped": f"ART's activation detectors read a neural network's hidden layer; "
                                               f"family {model.family} has none (the data-level screen still gates)"}
    elif rules.poisoning.art_signals:
        t = time.perf_counter()
        poisoning["art_signals"] = art_signals.art_poison_signals(
            model, x[train], y[train], screen.flagged[train], rules.poisoning, seed)
        secs["art_signals"] = time.perf_counter() - t

    t = time.perf_counter()
    ev_rows = _sample(test, int(rules.evasion.sample_rows), rng)
    bounds = evasion.feature_bounds(spec, contract, df)
    robustness = evasion.robustness_curve(model, x[ev_rows], y[ev_rows], bounds, rules.evasion, seed)
    secs["evasion"] = time.perf_counter() - t

    t = time.perf_counter()
    priv = privacy.membership_inference(model, x[train], y[train], x[test], y[test], rules.membership, seed)
    secs["membership_inference"] = time.perf_counter() - t

    t = time.perf_counter()
    priv["attribute_inference"] = attribute_inference(model, spec, contract, df, train, rules.attribute_inference, seed)
    secs["attribute_inference"] = time.perf_counter() - t

    t = time.perf_counter()
    integ_rows = _sample(test, int(rules.integrity.sample_rows), rng)
    integ = integrity.output_integrity(model, spec, contract, df.iloc[integ_rows], df, rules.integrity, seed)
    secs["output_integrity"] = time.perf_counter() - t

    secs = {k: round(v, 3) for k, v in secs.items()}
    adversarial = {"poisoning": poisoning, "evasion": robustness}
    gates = security_gates(screen, robustness, priv, integ, rules, ids)
    return SecurityResult(gates, screen, adversarial, priv, integ, ids, split, secs)


def security_gates(screen: PoisonScreen, robustness: dict, priv: dict, integ: dict, rules: dict,
                   ids: np.ndarray) -> list[Gate]:
    return [*poisoning_gates(screen, rules.poisoning, ids), evasion_gate(robustness, rules.evasion),
            membership_gate(priv, rules.membership),
            attribute_inference_gate(priv["attribute_inference"], rules.attribute_inference), integrity_gate(integ)]


def poisoning_gates(screen: PoisonScreen, p: dict, ids: np.ndarray) -> list[Gate]:
    r = screen.report
    if r["rows_screened"] < 2 * r["min_support_rows"] or not r["itemsets_tested"]:
        why = (f"{r['rows_screened']} rows screened, {r['itemsets_tested']} value patterns with at least "
               f"{r['min_support_rows']} rows: too few to tell a trigger from chance")
        facts = {"rows": r["rows"], "rows_screened": r["rows_screened"], "min_support_rows": r["min_support_rows"]}
        return [SECURITY.gate.poisoning_share.insufficient(why, "<=", p.max_flagged_share, p.insufficient_blocks, facts),
                SECURITY.gate.poisoning_clusters.insufficient(why, "<=", p.max_homogeneous_clusters,
                                                              p.insufficient_blocks, facts)]
    clusters = [{k: c[k] for k in ("pattern", "label", "rows_with_pattern", "flagged_rows",
                                   "label_purity", "expected_purity", "excess")} for c in r["clusters"]]
    return [
        SECURITY.gate.poisoning_share.compare(r["flagged_share"], "<=", p.max_flagged_share,
                "share of rows flagged as backdoor-poisoned",
                {"flagged_rows": r["flagged_rows"], "rows": r["rows"],
                 "example_ids": ids[screen.flagged][:10].tolist()}),
        SECURITY.gate.poisoning_clusters.compare(len(r["clusters"]), "<=", p.max_homogeneous_clusters,
                "label-homogeneous clusters whose labels contradict their other features",
                {"clusters": clusters, "regions_examined": r["regions_examined"]}),
    ]


def evasion_gate(robustness: dict, e) -> Gate:
    if robustness.get("refused"):
        return SECURITY.gate.evasion_accuracy_drop.verdict(
            False, None, "<=", e.max_accuracy_drop, f"REFUSED: no evasion attack fits {robustness['refused']}",
            {"refused": robustness["refused"]})
    attack = {"hopskipjump": "HopSkipJump", "pgd": "PGD"}.get(robustness.get("gate_attack"), "PGD")
    if robustness["rows"] < e.min_rows:
        return SECURITY.gate.evasion_accuracy_drop.insufficient(
            f"accuracy drop under {attack} on {robustness['rows']} test rows; needs >= {e.min_rows}", "<=",
            e.max_accuracy_drop, e.insufficient_evidence_blocks,
            {"rows": robustness["rows"], "accuracy_drop": robustness["accuracy_drop"], "minimum": e.min_rows})
    return SECURITY.gate.evasion_accuracy_drop.compare(robustness["accuracy_drop"], "<=", e.max_accuracy_drop,
                   f"accuracy drop under {attack} at epsilon {robustness['gate_epsilon']} (valid rows, frozen inputs kept)",
                   {"clean_accuracy": robustness["clean"]["accuracy"], "auc_drop": robustness["auc_drop"],
                    "rows": robustness["rows"], "validity": robustness["validity"],
                    "accuracy_drop_ci": robustness.get("accuracy_drop_ci"),
                    "attack": robustness.get("attack", "PGD")})


def membership_gate(priv: dict, m) -> Gate:
    """The attack AUC against the policy, on its evidence: fewer than min_rows_per_side members or
    non-members (the attack is fitted on half of them: too weak an attacker to clear anyone) is
    insufficient; with gate_on interval, so is a Hanley-McNeil CI on both sides of the maximum."""
    from z4_assets.core.confidence import decide, floor, hanley_mcneil

    spec, what = SECURITY.gate.membership_auc, "membership-inference attack AUC (ART black-box, loss)"
    details = {k: priv.get(k) for k in ("attack_advantage", "rule_based_advantage", "rows_per_side",
                                        "attack_fit_rows", "attack_eval_rows")}
    n = int(priv.get("rows_per_side") or 0)
    short = floor(spec, {"members": n, "non-members": n}, int(m.min_rows_per_side), "<=", m.max_attack_auc,
                  m.insufficient_evidence_blocks, f"{what}: rows per side", details)
    if short:
        return short
    half = int(priv["attack_eval_rows"]) // 2
    ci = hanley_mcneil(priv["attack_auc"], half, half, m.confidence)
    return decide(spec, priv["attack_auc"], ci, "<=", m.max_attack_auc, m.gate_on, m.insufficient_evidence_blocks,
                  what, f"{n} members and {n} non-members ({half} + {half} evaluated)", details)


def integrity_gate(integ: dict) -> Gate:
    return SECURITY.gate.output_integrity.compare(len(integ["failed_checks"]), "<=", 0,
                   "failed output-integrity checks (finite, in [0, 1], stable under valid perturbation, "
                   "not degenerate)", {"failed": integ["failed_checks"]})


def decision_text(outcome: SecurityResult) -> str:
    verdict = "PASS" if outcome.passed else "FAIL"
    lines = [verdict, ""]
    for g in outcome.gates:
        lines.append(f"- {g.name}: {g.summary}")
    failed = [g.name for g in outcome.gates if not g.passed]
    lines += ["", f"blocking: {', '.join(failed)}" if failed else "no security gate blocks promotion"]
    return "\n".join(lines) + "\n"
