"""Fairness gates: every disparity against its policy threshold, naming the offending group."""

from __future__ import annotations

from z4_assets.core.gates import Gate
from z4_assets.core.stages import FAIRNESS

# disparity -> (policy key, comparison, what it measures); a ratio must stay high, a gap low
GATES = {
    "ks_diff": ("ks_diff_max", "<=", "largest between-group KS difference"),
    "auc_diff": ("auc_diff_max", "<=", "largest between-group AUC difference"),
    "demographic_parity_diff": ("demographic_parity_diff_max", "<=",
                                "demographic parity difference (selection rates)"),
    "demographic_parity_ratio": ("demographic_parity_ratio_min", ">=",
                                 "demographic parity ratio (lowest / highest favourable-outcome rate)"),
    "equalized_odds_diff": ("equalized_odds_diff_max", "<=",
                            "equalized odds difference (larger of the TPR and FPR gaps)"),
}


def _spec(name: str):
    return getattr(FAIRNESS.gate, name)


def _statistic(d: dict, gate_on: str, op: str) -> float | None:
    """The figure a gate compares: the point estimate or the CI end the policy names (interval: the
    point estimate ranks the attributes; the interval decides, in _interval_gate)."""
    if gate_on in ("point", "interval"):
        return d["value"]
    lo, hi = d["ci"]
    if gate_on not in ("ci_low", "ci_high"):
        raise ValueError(f"fairness.gate_on {gate_on!r} must be point, ci_low or ci_high")
    # ci_low is lenient (fail only when even the favourable end breaches), ci_high strict
    favourable, unfavourable = (lo, hi) if op == "<=" else (hi, lo)
    return favourable if gate_on == "ci_low" else unfavourable


def gated_attributes(report: dict, policy: dict, protected: list[str]) -> list[str]:
    """`protected`: the attributes the contract keeps out of the model; `all`: every one."""
    scope = policy.gate_attributes
    if scope == "all":
        return list(report["attributes"])
    if scope != "protected":
        raise ValueError(f"fairness.gate_attributes {scope!r} must be 'protected' or 'all'")
    return [a for a in report["attributes"] if a in protected]


def fairness_gates(report: dict, policy: dict, protected: list[str]) -> list[Gate]:
    gate_on = policy.gate_on
    scope = gated_attributes(report, policy, protected)
    pools = {a: report["attributes"][a] for a in scope}
    if policy.gate_intersections:
        pools.update({n: r for n, r in report["intersections"].items() if set(r["attributes"]) <= set(scope)})
    unassessable = {a: r["reason"] for a, r in report["attributes"].items() if not r["assessable"]}
    blocks = bool(policy.insufficient_evidence_blocks)
    cover = FAIRNESS.gate.fairness_coverage
    text = "sensitive attributes without two groups large enough to compare"
    detail = {"unassessable": unassessable, "declared": list(report["attributes"])}
    if len(unassessable) > int(policy.unassessable_attributes_max):
        gates = [cover.insufficient(f"{len(unassessable)} {text} (max {policy.unassessable_attributes_max}): "
                                    + "; ".join(f"{a}: {r}" for a, r in unassessable.items()),
                                    "<=", int(policy.unassessable_attributes_max), blocks, detail)]
    else:
        gates = [cover.compare(len(unassessable), "<=", int(policy.unassessable_attributes_max),
                               text + (f" ({', '.join(unassessable)})" if unassessable else ""), detail)]
    for disparity, (key, op, text) in GATES.items():
        threshold = float(getattr(policy, key))
        scored = {name: (_statistic(r["disparities"][disparity], gate_on, op), r["disparities"][disparity])
                  for name, r in pools.items() if r["assessable"]}
        scored = {k: v for k, v in scored.items() if v[0] is not None}
        if not pools:    # the contract puts no attribute in the gate's scope: nothing to compare
            gates.append(_spec(f"fairness_{disparity}").verdict(
                True, None, op, threshold, f"not applicable: {text}: no sensitive attribute in scope "
                f"(gate_attributes {policy.gate_attributes}); nothing was measured", {"gated": []}))
            continue
        if not scored:   # nothing measured: never a vacuous pass with a made-up 0 or 1
            gates.append(_spec(f"fairness_{disparity}").insufficient(
                f"{text}: no gated attribute has two groups with >= {policy.min_group_count} test rows and "
                f">= {policy.min_class_count} of each class", op, threshold, blocks,
                {"gate_on": gate_on, "gated": list(pools), "unassessable": unassessable}))
            continue
        if gate_on == "interval":
            gates.append(_interval_gate(_spec(f"fairness_{disparity}"), scored, op, threshold, blocks, text,
                                        {"gate_on": gate_on, "gated": list(pools)}))
            continue
        pick = max if op == "<=" else min
        worst = pick(scored, key=lambda k: scored[k][0])
        value, d = scored[worst]
        gates.append(_spec(f"fairness_{disparity}").compare(
            round(value, 6), op, threshold,
            f"{text} ({worst}; offending group {d['offending_group']}: "
            f"{d['metric']} {d['max_group']} highest, {d['min_group']} lowest)",
            {"attribute": worst, "offending_group": d["offending_group"], "max_group": d["max_group"],
             "min_group": d["min_group"], "metric": d["metric"], "point": d["value"], "ci": d["ci"],
             "gate_on": gate_on, "gated": list(pools),
             "per_attribute": {k: {"value": v[1]["value"], "ci": v[1]["ci"],
                                   "offending_group": v[1]["offending_group"]} for k, v in scored.items()}}))
    return gates


def _interval_gate(spec, scored: dict, op: str, threshold: float, blocks: bool, text: str, base: dict) -> Gate:
    """gate_on interval: each attribute's CI decides (all of it complies, all breaches, or straddles);
    any breaching attribute fails the gate, else any undecided one makes it insufficient."""
    from z4_assets.core.confidence import decide

    per = {}
    for name, (_, d) in scored.items():
        ci = d["ci"] if None not in d["ci"] else None
        per[name] = decide(spec, round(d["value"], 6), ci, op, threshold, "interval" if ci else "point", blocks,
                           f"{text} ({name}; offending group {d['offending_group']})", "the test split",
                           {"attribute": name, "offending_group": d["offending_group"], "max_group": d["max_group"],
                            "min_group": d["min_group"], "metric": d["metric"]})
    order = {"FAIL": 0, "INSUFFICIENT_EVIDENCE": 1, "PASS": 2}
    pick = max if op == "<=" else min
    worst_kind = min(per.values(), key=lambda g: order[g.verdict]).verdict
    tied = {k: v for k, v in per.items() if v.verdict == worst_kind}
    name = pick(tied, key=lambda k: scored[k][1]["value"])
    g = per[name]
    g.details.update(base, per_attribute={k: {"verdict": v.verdict, "value": scored[k][1]["value"],
                                              "ci": scored[k][1]["ci"]} for k, v in per.items()})
    return g
