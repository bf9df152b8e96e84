"""The trace an override leaves: the effective policy, its digest, and its diff against the shipped defaults.

The shipped defaults are the `defaults:` section of the policy file packaged with the code
(z4_assets/policy.yaml). Every key whose effective value differs is listed with both values and,
where the key is a gate's threshold or switch, the gates it moves and whether that LOOSENS them (more
models pass), TIGHTENS them, or CHANGES them in no single direction (a sample size, a mode). The
trace goes into the package (governance/policy_trace.json, signed), the model card (its own section,
and the loosened gates by name) and the registry version's tags.
"""

from __future__ import annotations

import hashlib
import json

from z4_assets.core.policy import DEFAULT_POLICY, Policy, _read
from z4_assets.core.stages import FAIRNESS, HYGIENE, PROMOTION, SECURITY, SNAPSHOT, TRAINING

LOOSENED, TIGHTENED, CHANGED = "loosened", "tightened", "changed"

H, T, S, F = HYGIENE.gate, TRAINING.gate, SECURITY.gate, FAIRNESS.gate
_POISON = (S.poisoning_share, S.poisoning_clusters)
_FAIR = (F.fairness_ks_diff, F.fairness_auc_diff, F.fairness_demographic_parity_diff,
         F.fairness_demographic_parity_ratio, F.fairness_equalized_odds_diff)
# policy key -> (gates it moves, which way loosens: "up" (a larger value), "down", "true", "false", "more",
# "gate_on" (toward a more lenient reading of the interval, GATE_ON_STRICTNESS), or None)
GATE_KEYS = {
    "release.require_signing": ((PROMOTION.gate.package_verified,), None),
    "contract.allowed_legal_bases": ((SNAPSHOT.gate.legal_basis,), "more"),
    "hygiene.duplicate_share_max": ((H.duplicate_rows,), "up"),
    "hygiene.conflicting_label_share_max": ((H.conflicting_labels,), "up"),
    "hygiene.duplicate_columns": ((H.duplicate_rows, H.conflicting_labels), None),
    "hygiene.impossible_share_max": ((H.impossible_values,), "up"),
    "hygiene.leakage_auc_max": ((H.target_leakage,), "up"),
    "hygiene.temporal_leak_features_max": ((H.temporal_leakage,), "up"),
    "hygiene.holdout_leak_share_max": ((H.holdout_leak,), "up"),
    "hygiene.drift_psi_max": ((H.drift,), "up"),
    "hygiene.drift_kl_max": ((H.drift,), "up"),
    "performance.test_auc_min": ((T.performance_auc,), "down"),
    "performance.test_ks_min": ((T.performance_ks,), "down"),
    "performance.gate_on": ((T.performance_auc, T.performance_ks), "gate_on"),
    "performance.min_class_rows": ((T.performance_auc, T.performance_ks), "down"),
    "performance.insufficient_evidence_blocks": ((T.performance_auc, T.performance_ks, T.operating_point), "false"),
    "performance.operating_point.positive_rate_ratio_max": ((T.operating_point,), "up"),
    "performance.operating_point.balanced_accuracy_min": ((T.operating_point,), "down"),
    "models.parity_tolerance": ((T.artifact_parity,), "up"),
    "security.poisoning.max_flagged_share": ((S.poisoning_share,), "up"),
    "security.poisoning.max_homogeneous_clusters": ((S.poisoning_clusters,), "up"),
    "security.poisoning.insufficient_blocks": (_POISON, "false"),
    "security.poisoning.excess_min": (_POISON, "up"),
    "security.poisoning.z_min": (_POISON, "up"),
    "security.poisoning.purity_min": (_POISON, "up"),
    "security.poisoning.alpha": (_POISON, "down"),
    "security.poisoning.max_trigger_share": (_POISON, "down"),
    "security.evasion.max_accuracy_drop": ((S.evasion_accuracy_drop,), "up"),
    "security.evasion.gate_epsilon": ((S.evasion_accuracy_drop,), "down"),
    "security.membership.max_attack_auc": ((S.membership_auc,), "up"),
    "security.membership.min_rows_per_side": ((S.membership_auc,), "down"),
    "security.membership.gate_on": ((S.membership_auc,), "gate_on"),
    "security.membership.insufficient_evidence_blocks": ((S.membership_auc,), "false"),
    "security.attribute_inference.max_accuracy_gain": ((S.attribute_inference_gain,), "up"),
    "security.attribute_inference.min_eval_rows": ((S.attribute_inference_gain,), "down"),
    "security.attribute_inference.insufficient_evidence_blocks": ((S.attribute_inference_gain,), "false"),
    "security.evasion.min_rows": ((S.evasion_accuracy_drop,), "down"),
    "security.evasion.insufficient_evidence_blocks": ((S.evasion_accuracy_drop,), "false"),
    "security.integrity.min_distinct_scores": ((S.output_integrity,), "down"),
    "security.integrity.min_score_std": ((S.output_integrity,), "down"),
    "fairness.unassessable_attributes_max": ((F.fairness_coverage,), "up"),
    "fairness.min_group_count": ((F.fairness_coverage, *_FAIR), None),
    "fairness.gate_intersections": (_FAIR, "false"),
    "fairness.gate_attributes": (_FAIR, None),
    "fairness.gate_on": (_FAIR, "gate_on"),
    "fairness.insufficient_evidence_blocks": ((F.fairness_coverage, *_FAIR), "false"),
    "fairness.favourable_outcome": ((F.fairness_demographic_parity_ratio,), None),
    "fairness.ks_diff_max": ((F.fairness_ks_diff,), "up"),
    "fairness.auc_diff_max": ((F.fairness_auc_diff,), "up"),
    "fairness.demographic_parity_diff_max": ((F.fairness_demographic_parity_diff,), "up"),
    "fairness.demographic_parity_ratio_min": ((F.fairness_demographic_parity_ratio,), "down"),
    "fairness.equalized_odds_diff_max": ((F.fairness_equalized_odds_diff,), "up"),
}


def shipped_defaults() -> Policy:
    """The packaged file's `defaults:` section, as a policy."""
    return Policy(**_read(DEFAULT_POLICY)["defaults"], source=f"{DEFAULT_POLICY} (defaults)")


def effective_dict(policy: Policy) -> dict:
    return policy.model_dump(mode="json", exclude={"source"})


def digest(doc: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces): the same values give the same digest."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _flat(doc, trail=()) -> dict:
    if isinstance(doc, dict) and doc:
        out = {}
        for k, v in doc.items():
            out.update(_flat(v, (*trail, str(k))))
        return out
    return {".".join(trail): doc}


# How strictly a gate reads its confidence interval: ci_low fails only when the whole CI breaches,
# point reads the estimate, interval and ci_high pass only when the whole CI complies.
GATE_ON_STRICTNESS = {"ci_low": 0, "point": 1, "interval": 2, "ci_high": 2}


def _effect(way: str | None, shipped, effective) -> str:
    try:
        if way == "gate_on":
            a, b = GATE_ON_STRICTNESS.get(shipped), GATE_ON_STRICTNESS.get(effective)
            return CHANGED if a is None or b is None or a == b else LOOSENED if b < a else TIGHTENED
        if way == "up":
            return LOOSENED if effective > shipped else TIGHTENED
        if way == "down":
            return LOOSENED if effective < shipped else TIGHTENED
        if way in ("true", "false"):
            return LOOSENED if str(effective).lower() == way else TIGHTENED
        if way == "more":
            return LOOSENED if set(effective) - set(shipped) else TIGHTENED
    except TypeError:  # a value of another kind (null) says nothing about a direction
        pass
    return CHANGED


def policy_trace(policy: Policy) -> dict:
    """The effective policy, its digest, the shipped defaults' digest and the diff, with the gates moved."""
    effective, shipped = effective_dict(policy), effective_dict(shipped_defaults())
    eff, base = _flat(effective), _flat(shipped)
    diff = []
    for key in sorted(set(eff) | set(base)):
        if key in eff and key in base and eff[key] == base[key]:
            continue
        gates, way = GATE_KEYS.get(key, ((), None))
        if not gates:  # a key inside a gate's switch (a retention rule, a bin list): closest declared parent
            parent = next((k for k in GATE_KEYS if key.startswith(k + ".")), None)
            gates, way = GATE_KEYS[parent] if parent else ((), None)
        diff.append({"key": key, "shipped": base.get(key), "effective": eff.get(key),
                     "gates": [g.name for g in gates],
                     "effect": _effect(way, base.get(key), eff.get(key)) if gates else CHANGED})
    loosened = sorted({g for d in diff if d["effect"] == LOOSENED for g in d["gates"]})
    return {"source": policy.source, "digest": digest(effective), "shipped_digest": digest(shipped),
            "overridden": bool(diff), "diff": diff, "loosened_gates": loosened,
            "tightened_gates": sorted({g for d in diff if d["effect"] == TIGHTENED for g in d["gates"]}),
            "effective": effective}


def registry_tags(trace: dict, limit: int = 4000) -> dict[str, str]:
    """The trace as registry version tags: digest, whether overridden, loosened gates, the diff (JSON,
    cut to LIMIT characters and then marked as cut; the signed package holds it whole)."""
    diff = json.dumps([{k: d[k] for k in ("key", "shipped", "effective", "effect")} for d in trace["diff"]],
                      sort_keys=True, separators=(",", ":"))
    if len(diff) > limit:
        diff = diff[:limit - 60] + f"... (cut; {len(trace['diff'])} keys in governance/policy_trace.json)"
    return {"policy.digest": trace["digest"], "policy.shipped_digest": trace["shipped_digest"],
            "policy.overridden": str(trace["overridden"]).lower(),
            "policy.loosened_gates": ",".join(trace["loosened_gates"]) or "none",
            "policy.diff": diff, "policy.source": trace["source"]}
