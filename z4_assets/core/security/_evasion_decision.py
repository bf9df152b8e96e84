"""Evasion of a model with no gradient (gbdt, a plug-in that says `attack = "decision"`): ART's
HopSkipJump, a decision-based attack that only queries the exported artifact's decisions.

HopSkipJump looks for the smallest L-inf step (in the same scaled space, with the same clip values
and the same frozen inputs as PGD) that flips each row's decision. A row counts as evaded at
epsilon when its projected adversarial row (rounded and clipped to the contract) is still
misclassified and lies within epsilon of the original. Accuracy at epsilon is the clean accuracy
minus the rows evaded within it; the curve needs one attack per row, not one per epsilon.
HopSkipJump queries the model thousands of times per row, so it attacks `decision_rows` rows.
"""

from __future__ import annotations

import numpy as np

from z4_assets.core.security._art_model import black_box, proba
from z4_assets.core.security._evasion import FeatureBounds, _metrics, drop_interval, project, row_mask, validity


def decision_curve(model, x: np.ndarray, y: np.ndarray, bounds: FeatureBounds, cfg, seed: int) -> dict:
    from art.attacks.evasion import HopSkipJump

    rng = np.random.default_rng(seed)
    n = min(len(x), int(cfg.decision_rows))
    rows = np.sort(rng.choice(len(x), n, replace=False)) if len(x) > n else np.arange(len(x))
    xs = np.ascontiguousarray(x[rows], dtype=np.float32)
    ys = y[rows]
    lo, hi = np.minimum(bounds.lo, xs.min(axis=0)), np.maximum(bounds.hi, xs.max(axis=0))
    clf = black_box(model, xs.shape[1], (lo, hi))
    mask = row_mask(xs, bounds)
    np.random.seed(seed)  # HopSkipJump draws its random directions from numpy's global RNG
    attack = HopSkipJump(clf, targeted=False, norm=np.inf, max_iter=int(cfg.decision_max_iter),
                         max_eval=int(cfg.decision_max_eval), init_eval=100, init_size=100, batch_size=256,
                         verbose=False)
    raw = attack.generate(xs, mask=mask)
    x_adv = project(raw, xs, mask, bounds)
    p_clean, p_adv = proba(model, xs), proba(model, x_adv)
    correct = (p_clean >= 0.5) == ys
    evaded = correct & ((p_adv >= 0.5) != ys)
    dist = np.abs(x_adv - xs).max(axis=1)
    clean = _metrics(ys, p_clean)
    points = []
    for eps in sorted({float(e) for e in cfg.epsilons} | {float(cfg.gate_epsilon)}):
        within = evaded & (dist <= eps + 1e-6)
        p_eps = np.where(within, p_adv, p_clean)
        m = _metrics(ys, p_eps)
        points.append({"epsilon": eps, "hopskipjump_accuracy": m["accuracy"], "hopskipjump_auc": m["auc"],
                       "hopskipjump_rows_changed": int(within.sum())})
    gate = next(p for p in points if p["epsilon"] == float(cfg.gate_epsilon))
    at_gate = np.where(evaded & (dist <= float(cfg.gate_epsilon) + 1e-6), p_adv, p_clean)
    checks = validity(x_adv, xs, bounds, mask)
    return {
        "space": "scaled features ((value - train mean) / train std), L-inf norm",
        "attack": "ART HopSkipJump (decision-based, untargeted, L-inf), on the exported artifact's decisions",
        "rows": int(n), "clean": clean, "curve": points,
        "gate_epsilon": float(cfg.gate_epsilon), "gate_attack": "hopskipjump",
        "accuracy_drop": round(clean["accuracy"] - gate["hopskipjump_accuracy"], 6),
        **drop_interval(ys, p_clean, at_gate, seed),
        "auc_drop": round(clean["auc"] - gate["hopskipjump_auc"], 6),
        "evaded_rows_any_epsilon": int(evaded.sum()),
        "median_evading_distance": float(np.median(dist[evaded])) if evaded.any() else None,
        "frozen_inputs": bounds.frozen_reasons, "attacked_inputs": [f["name"] for f in bounds.numeric],
        "validity": checks,
    }


def refused(family: str, why: str) -> dict:
    """No attack fits this family: the evasion gate FAILS (a model nobody attacked is not robust)."""
    return {"refused": f"family {family}: {why}", "rows": 0, "clean": {"accuracy": None, "auc": None},
            "curve": [], "gate_epsilon": None, "gate_attack": None, "accuracy_drop": None, "auc_drop": None,
            "validity": {}}
