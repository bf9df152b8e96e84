"""The challenger table: several families trained on the same split, compared side by side with
intervals (test AUC and KS, the largest between-group selection-rate gap, the evasion accuracy drop),
and the policy's pick: the simplest family whose test AUC is within `models.challenger_auc_margin`
of the best one. The pick becomes the candidate; the others are evidence only."""

from __future__ import annotations

import numpy as np

from z4_assets.core.files import atomic_write_json
from z4_assets.core.split import TEST
from z4_assets.core.training._families import SIMPLICITY, resolve_family

GAP_RESAMPLES, MIN_GROUP_ROWS = 200, 30


def rank(family: str) -> int:
    return SIMPLICITY.index(family) if family in SIMPLICITY else len(SIMPLICITY)   # a plug-in: last


def pick(rows: list[dict], margin: float) -> tuple[str, str]:
    """(family, reason): the simplest family within MARGIN of the best test AUC (point estimates)."""
    best = max(rows, key=lambda r: r["auc"]["point"])
    eligible = [r for r in rows if r["auc"]["point"] >= best["auc"]["point"] - margin]
    chosen = min(eligible, key=lambda r: (rank(r["family"]), -r["auc"]["point"]))
    if chosen is best:
        reason = (f"{chosen['family']} has the best test AUC ({best['auc']['point']:.4f}) and no simpler family "
                  f"is within the policy margin of {margin:g}")
    else:
        reason = (f"{chosen['family']} is the simplest family whose test AUC ({chosen['auc']['point']:.4f}) is "
                  f"within the policy margin of {margin:g} of the best ({best['family']}, "
                  f"{best['auc']['point']:.4f}); simplicity order: {' < '.join(SIMPLICITY)} < plug-ins")
    return chosen["family"], reason


def selection_gap(df_test, contract, scores: np.ndarray, fairness_policy, reference, seed: int) -> dict:
    """Largest between-group gap in selection rate (score >= 0.5) over the sensitive attributes, with a
    bootstrap percentile interval; groups under MIN_GROUP_ROWS test rows are left out."""
    from z4_assets.core.fairness import attribute_labels

    flagged, best = scores >= 0.5, None
    rng = np.random.default_rng(seed)
    for attr in contract.sensitive:
        if attr not in df_test:
            continue
        labels = np.asarray(attribute_labels(df_test, contract, attr, fairness_policy, reference)[0], dtype=object)
        groups = [g for g in np.unique(labels) if (labels == g).sum() >= MIN_GROUP_ROWS]
        if len(groups) < 2:
            continue
        rates = [flagged[labels == g].mean() for g in groups]
        point = float(max(rates) - min(rates))
        if best is None or point > best["point"]:
            draws = []
            for _ in range(GAP_RESAMPLES):
                idx = rng.integers(0, len(flagged), len(flagged))
                f, lab = flagged[idx], labels[idx]
                r = [f[lab == g].mean() for g in groups if (lab == g).any()]
                draws.append(max(r) - min(r))
            lo, hi = np.quantile(draws, [0.025, 0.975])
            best = {"attribute": attr, "point": round(point, 6), "ci": [round(float(lo), 6), round(float(hi), 6)]}
    return best or {}


def challenger_table(df, contract, split, fits: dict, policy, evasion) -> dict:
    """FITS: family -> FitOutcome (the same split); EVASION: family -> the evasion report of its model."""
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
                     "selection_rate_gap": selection_gap(df[test], contract, p, policy.fairness, df, perf.seed),
                     "evasion": {k: ev.get(k) for k in ("accuracy_drop", "rows", "refused")}
                                | {"attack": ev.get("gate_attack")},
                     "train_seconds": round(fit.seconds, 3)})
    chosen, reason = pick(rows, policy.models.challenger_auc_margin)
    return {"rows": rows, "chosen": chosen, "reason": reason, "confidence": perf.confidence,
            "margin": policy.models.challenger_auc_margin, "rule": "simplest family within the AUC margin of the best"}


def train_challengers(df, contract, split, candidate_fit, section, policy, monitor=None) -> tuple[dict, dict]:
    """(fits by family, table). The section's family is already fitted; each challenger is fitted with
    its schema's defaults on the same split and attacked by the evasion that fits it."""
    from z4_assets.core.security import evasion_report
    from z4_assets.core.training._fit import fit_and_evaluate

    fits = {candidate_fit.family.name: candidate_fit}
    for name in section.challengers:
        if name not in fits:
            fits[name] = fit_and_evaluate(df, contract, split, resolve_family(name, {}), None)
    evasion = {name: evasion_report(fit.model, fit.spec, contract, df, split, policy.security)
               for name, fit in fits.items()}
    return fits, challenger_table(df, contract, split, fits, policy, evasion)


def write_table(path, table: dict):
    return atomic_write_json(path, table)
