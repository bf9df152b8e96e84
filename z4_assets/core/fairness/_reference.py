"""The reference implementation: the same numbers through fairlearn's MetricFrame.

Slow at scale (see benchmarks/bench_fairness.py); kept so that the fast path in
kernel.py can be checked against it, in the tests and in the benchmark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def ks_score(y_true, y_score) -> float:
    """max(TPR - FPR) over thresholds: the training gate's KS."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(np.max(tpr - fpr))


def reference_group_metrics(y: np.ndarray, score: np.ndarray, threshold: float,
                            sensitive: pd.Series | pd.DataFrame) -> pd.DataFrame:
    """Per-group count, positives, AUC, KS, selection rate, TPR, FPR and precision via MetricFrame."""
    from fairlearn.metrics import (MetricFrame, count, false_positive_rate, selection_rate,
                                   true_positive_rate)
    from sklearn.metrics import precision_score, roc_auc_score

    pred = (score >= threshold).astype(int)

    def on_score(fn):
        return lambda y_true, y_pred, s: fn(y_true, s)

    frame = MetricFrame(
        metrics={
            "count": count,
            "positives": lambda t, p: float(np.sum(t)),
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": lambda t, p: precision_score(t, p, zero_division=np.nan),
        },
        y_true=y, y_pred=pred, sensitive_features=sensitive)
    by_score = MetricFrame(
        metrics={"auc": roc_auc_score, "ks": ks_score},
        y_true=y, y_pred=score, sensitive_features=sensitive)
    return pd.concat([frame.by_group, by_score.by_group], axis=1)


def reference_disparities(y: np.ndarray, score: np.ndarray, threshold: float,
                          sensitive: pd.Series | pd.DataFrame) -> dict:
    """fairlearn's own demographic parity and equalized odds functions (all groups)."""
    from fairlearn.metrics import (demographic_parity_difference, demographic_parity_ratio,
                                   equalized_odds_difference)

    pred = (score >= threshold).astype(int)
    return {
        "demographic_parity_diff": demographic_parity_difference(y, pred, sensitive_features=sensitive),
        "demographic_parity_ratio": demographic_parity_ratio(y, pred, sensitive_features=sensitive),
        "equalized_odds_diff": equalized_odds_difference(y, pred, sensitive_features=sensitive),
    }
