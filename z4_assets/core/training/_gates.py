"""The training stage's gates on the test split: AUC and KS against the policy (on their confidence
interval by default), and the operating point, which no degenerate model passes.

Each states its evidence (test rows, positives, negatives). Too few test rows of a class for the
statistic to mean anything, or (gate_on: interval) a confidence interval on both sides of the
threshold, is INSUFFICIENT EVIDENCE, which blocks when the policy says so (the default).
"""

from __future__ import annotations

import numpy as np

from z4_assets.core.confidence import auc_ks_intervals, decide, exact_auc_ks, floor
from z4_assets.core.gates import Gate
from z4_assets.core.stages import TRAINING


def training_gates(y: np.ndarray, p: np.ndarray, perf, details: dict | None = None) -> list[Gate]:
    y, p = np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.float64)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    evidence = f"{len(y)} test rows ({pos} positives, {neg} negatives)"
    counts = {"positives": pos, "negatives": neg}
    blocks = perf.insufficient_evidence_blocks
    gates = []
    ci = None
    if min(counts.values()) >= perf.min_class_rows:
        ci = auc_ks_intervals(y, p, perf.confidence, perf.bootstrap_resamples, perf.seed)
    for spec, key, what, threshold in ((TRAINING.gate.performance_auc, "auc", "test-split AUC", perf.test_auc_min),
                                       (TRAINING.gate.performance_ks, "ks", "test-split KS", perf.test_ks_min)):
        short = floor(spec, counts, perf.min_class_rows, ">=", threshold, blocks, f"{what} on {evidence}",
                      details)
        if short:
            gates.append(short)
            continue
        point = round(exact_auc_ks(y, p)[key], 6)
        gates.append(decide(spec, point, ci[key], ">=", threshold, perf.gate_on, blocks, what, evidence,
                            {**(details or {}), "test_rows": len(y), "confidence": perf.confidence}))
    gates.append(operating_point_gate(y, p, perf, counts, evidence))
    return gates


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """What the model decides on the test split at THRESHOLD, beside what the majority class would."""
    flagged, positive = p >= threshold, y == 1
    tpr = float(flagged[positive].mean()) if positive.any() else float("nan")
    tnr = float((~flagged[~positive]).mean()) if (~positive).any() else float("nan")
    base = float(positive.mean())
    rate = float(flagged.mean())
    return {"score_threshold": threshold, "selection_rate": round(rate, 6), "base_rate": round(base, 6),
            "positive_rate_ratio": round(rate / base, 6) if base else None,
            "tpr": round(tpr, 6), "tnr": round(tnr, 6), "balanced_accuracy": round((tpr + tnr) / 2, 6),
            "accuracy": round(float((flagged == positive).mean()), 6),
            "majority_share": round(max(base, 1 - base), 6)}


def degenerate(op: dict, rules) -> list[str]:
    """Why the operating point OP is degenerate under RULES (empty: it is not)."""
    why, rate, ratio = [], op["selection_rate"], op["positive_rate_ratio"]
    if rate == 0:
        why.append("flags nobody (selection rate 0)")
    elif rate == 1:
        why.append("flags everybody (selection rate 1)")
    elif ratio is not None and not 1 / rules.positive_rate_ratio_max <= ratio <= rules.positive_rate_ratio_max:
        why.append(f"flags {rate:.3f} of rows against a base rate of {op['base_rate']:.3f} "
                   f"(ratio {ratio:.2f}, must be within 1/{rules.positive_rate_ratio_max:g}..{rules.positive_rate_ratio_max:g})")
    if not op["balanced_accuracy"] >= rules.balanced_accuracy_min:
        why.append(f"balanced accuracy {op['balanced_accuracy']:.3f} < {rules.balanced_accuracy_min:g} "
                   f"(the majority class scores 0.5; accuracy {op['accuracy']:.3f} vs majority share "
                   f"{op['majority_share']:.3f})")
    return why


def operating_point_gate(y, p, perf, counts: dict, evidence: str) -> Gate:
    spec, rules = TRAINING.gate.operating_point, perf.operating_point
    short = floor(spec, counts, perf.min_class_rows, "<=", 0, perf.insufficient_evidence_blocks,
                  f"operating point on {evidence}")
    if short:
        return short
    op = operating_point(y, p, rules.score_threshold)
    why = degenerate(op, rules)
    return spec.compare(len(why), "<=", 0, f"degenerate-model checks failed on {evidence}"
                     + (f": {'; '.join(why)}" if why else
                        f" (flags {op['selection_rate']:.3f} at base rate {op['base_rate']:.3f}, "
                        f"TPR {op['tpr']:.3f}, balanced accuracy {op['balanced_accuracy']:.3f})"),
                     {**op, "failed_checks": why})
