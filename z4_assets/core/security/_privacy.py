"""Membership inference: can an attacker tell whether a row was in the training set from the model's loss?

ART's black-box attack (input_type "loss", gradient-boosting attack model) is trained on one
half of a balanced sample of members (training rows) and non-members (held-out test rows) and
evaluated on the other half. The attack AUC and advantage (max TPR - FPR) are reported; the gate
compares the AUC with the policy. ART's rule-based attack (member = correctly classified) is
reported beside it as a second signal.
"""

from __future__ import annotations

import time

import numpy as np

from z4_assets.core.security._art_model import art_classifier


def _halves(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def _advantage(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(tpr - fpr))


def membership_inference(model, x_in: np.ndarray, y_in: np.ndarray, x_out: np.ndarray,
                         y_out: np.ndarray, cfg: dict, seed: int) -> dict:
    """x_in/y_in: rows the model was trained on; x_out/y_out: rows it never saw."""
    from art.attacks.inference.membership_inference import (MembershipInferenceBlackBox,
                                                            MembershipInferenceBlackBoxRuleBased)
    from sklearn.metrics import roc_auc_score

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = int(min(len(x_in), len(x_out), int(cfg.rows_per_side)))
    if n < 20:
        return {"attack_auc": float("nan"), "rows_per_side": n,
                "note": "fewer than 20 members or non-members: attack not run"}
    members = np.sort(rng.choice(len(x_in), n, replace=False))
    others = np.sort(rng.choice(len(x_out), n, replace=False))
    xm, ym = np.ascontiguousarray(x_in[members], np.float32), y_in[members].astype(int)
    xn, yn = np.ascontiguousarray(x_out[others], np.float32), y_out[others].astype(int)
    (m_fit, m_eval), (n_fit, n_eval) = _halves(n, rng), _halves(n, rng)

    clf = art_classifier(model, xm.shape[1])
    np.random.seed(seed)  # ART's gradient-boosting attack model draws from numpy's global RNG
    attack = MembershipInferenceBlackBox(clf, input_type="loss", attack_model_type="gb")
    attack.fit(x=xm[m_fit], y=ym[m_fit], test_x=xn[n_fit], test_y=yn[n_fit])
    p_in = attack.infer(xm[m_eval], ym[m_eval], probabilities=True).reshape(-1)
    p_out = attack.infer(xn[n_eval], yn[n_eval], probabilities=True).reshape(-1)
    labels = np.r_[np.ones(len(p_in)), np.zeros(len(p_out))]
    scores = np.r_[p_in, p_out]

    rule = MembershipInferenceBlackBoxRuleBased(clf)
    r_in = rule.infer(xm[m_eval], ym[m_eval]).reshape(-1)
    r_out = rule.infer(xn[n_eval], yn[n_eval]).reshape(-1)
    return {
        "attack": "ART MembershipInferenceBlackBox(input_type='loss', attack_model_type='gb')",
        "rows_per_side": n, "attack_fit_rows": int(len(m_fit) + len(n_fit)),
        "attack_eval_rows": int(len(m_eval) + len(n_eval)),
        "attack_auc": round(float(roc_auc_score(labels, scores)), 6),
        "attack_advantage": round(_advantage(labels, scores), 6),
        "rule_based_advantage": round(float(r_in.mean() - r_out.mean()), 6),
        "member_accuracy": round(float(r_in.mean()), 6), "non_member_accuracy": round(float(r_out.mean()), 6),
        "seconds": round(time.perf_counter() - start, 3),
    }
