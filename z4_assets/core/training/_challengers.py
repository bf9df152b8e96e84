"""The challenger table: several families trained on the same split, compared side by side with
intervals (test AUC and KS, every fairness gap of the fairness stage, the evasion accuracy drop),
and the policy's pick: among the families that pass the fairness gates and can be attacked, the
simplest whose test AUC is within `models.challenger_auc_margin` of the best one. The pick becomes
the candidate; the others are evidence only."""

from __future__ import annotations

import numpy as np

from z4_assets.core.files import atomic_write_json
from z4_assets.core.split import TEST
from z4_assets.core.training._families import SIMPLICITY



def rank(family: str) -> int:
    return SIMPLICITY.index(family) if family in SIMPLICITY else len(SIMPLICITY)   # a plug-in: last


def _excluded(row: dict) -> str | None:
    """Why a family cannot be the candidate whatever its AUC: it fails the fairness stage's gates, or
    no evasion attack fits it (its gate would be refused)."""
    fairness, evasion = row.get("fairness") or {}, row.get("evasion") or {}
    if fairness and not fairness.get("passed"):
        return "fails " + ", ".join(fairness.get("failed") or ["its fairness gates"])
    if evasion.get("refused"):
        return "no evasion attack fits it"
    return None


def pick(rows: list[dict], margin: float) -> tuple[str, str]:
    """(family, reason): among the families that pass the fairness gates and can be attacked (all of
    them when none can), the simplest within MARGIN of the best test AUC (point estimates)."""
    out = {r["family"]: _excluded(r) for r in rows if _excluded(r)}
    pool = [r for r in rows if r["family"] not in out] or rows
    best = max(pool, key=lambda r: r["auc"]["point"])
    eligible = [r for r in pool if r["auc"]["point"] >= best["auc"]["point"] - margin]
    chosen = min(eligible, key=lambda r: (rank(r["family"]), -r["auc"]["point"]))
    if chosen is best:
        reason = (f"{chosen['family']} has the best test AUC ({best['auc']['point']:.4f}) and no simpler family "
                  f"is within the policy margin of {margin:g}")
    else:
        reason = (f"{chosen['family']} is the simplest family whose test AUC ({chosen['auc']['point']:.4f}) is "
                  f"within the policy margin of {margin:g} of the best ({best['family']}, "
                  f"{best['auc']['point']:.4f}); simplicity order: {' < '.join(SIMPLICITY)} < plug-ins")
    if out and len(pool) < len(rows):
        reason += "; not eligible: " + "; ".join(f"{f} ({why})" for f, why in out.items())
    elif out:
        reason += ("; no family passes its fairness gates with an evasion attack that fits it, so the pick is "
                   "among all of them and the candidate's own gates decide")
    return chosen["family"], reason


def fairness_columns(df_test, contract, y, scores: np.ndarray, rules, reference) -> dict:
    """The fairness stage's own report (core/fairness) of one challenger on the test split: every
    disparity of every sensitive attribute with its bootstrap interval, and the stage's gate verdicts,
    so the table compares challengers on the same evidence the candidate is gated on."""
    from z4_assets.core.fairness import fairness_of_scores
    from z4_assets.core.gates import verdict_word

    report = fairness_of_scores(df_test, contract, y, scores, rules, reference)
    gaps = {f"{attr}.{name}": {"point": d["value"], "ci": d["ci"]}
            for attr, a in report["attributes"].items() for name, d in a["disparities"].items()}
    unassessable = {attr: a["reason"] for attr, a in report["attributes"].items() if not a["assessable"]}
    return {"passed": report["passed"], "gaps": gaps, "unassessable": unassessable,
            "gated_attributes": report["gated_attributes"],
            "gates": {g["name"]: verdict_word(g) for g in report["gates"]},
            "failed": [g["name"] for g in report["gates"] if not g["passed"]]}


def challenger_table(df, contract, split, fits: dict, policy, evasion, fairness_rules) -> dict:
    """FITS: family -> FitOutcome (the same split); EVASION: family -> the evasion report of its model;
    FAIRNESS_RULES: the fairness policy with the snapshot's favourable outcome resolved."""
    from z4_assets.core.confidence import auc_ks_intervals, exact_auc_ks

    perf, test = policy.performance, split == TEST
    rows = []
    for name, fit in fits.items():
        y, p = fit.test_labels, fit.test_scores
        ci = auc_ks_intervals(y, p, perf.confidence, perf.bootstrap_resamples, perf.seed)
        point = exact_auc_ks(y, p)
        ev = evasion.get(name) or {}
        rows.append({"family": name, "digest": fit.digest, "code_sha256": fit.family.code_sha256,
                     "auc": {"point": round(point["auc"], 6), "ci": ci["auc"]},
                     "ks": {"point": round(point["ks"], 6), "ci": ci["ks"]},
                     "hyperparameters": fit.hyperparameters,
                     "fairness": fairness_columns(df[test], contract, np.asarray(y, dtype=np.int64), p,
                                                  fairness_rules, df),
                     "evasion": {k: ev.get(k) for k in ("accuracy_drop", "accuracy_drop_ci", "rows", "refused")}
                                | {"attack": ev.get("gate_attack")},
                     "train_seconds": round(fit.seconds, 3)})
    chosen, reason = pick(rows, policy.models.challenger_auc_margin)
    return {"rows": rows, "chosen": chosen, "reason": reason, "confidence": perf.confidence,
            "margin": policy.models.challenger_auc_margin, "rule": "simplest family within the AUC margin of the best"}


def train_challengers(df, contract, split, candidate_fit, challengers: dict, policy,
                      fairness_rules) -> tuple[dict, dict]:
    """(fits by family, table). The candidate's family is already fitted; each challenger (family ->
    Family, with the hyperparameters the section gives it) is fitted on the same split, attacked by
    the evasion that fits it and assessed by the fairness stage's report."""
    from z4_assets.core.security import evasion_report
    from z4_assets.core.training._fit import fit_and_evaluate

    fits = {candidate_fit.family.name: candidate_fit}
    for name, family in challengers.items():
        fits[name] = fit_and_evaluate(df, contract, split, family, None)
    evasion = {name: evasion_report(fit.model, fit.spec, contract, df, split, policy.security)
               for name, fit in fits.items()}
    return fits, challenger_table(df, contract, split, fits, policy, evasion, fairness_rules)


def write_table(path, table: dict):
    return atomic_write_json(path, table)
