"""Target leakage: features that give the label away, alone or by being known too late."""

from __future__ import annotations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Rank AUC with ties averaged (Mann-Whitney), in O(n log n)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s), dtype="float64")
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    avg = (starts + ends + 1) / 2.0  # 1-based average rank per tie block
    ranks[order] = np.repeat(avg, ends - starts)
    pos = y.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def single_feature_auc(df: pd.DataFrame, y: np.ndarray, contract: Contract,
                       sample_rows: int, seed: int) -> dict[str, float | None]:
    """max(AUC, 1-AUC) of each candidate feature used alone as a score.

    Low-cardinality and categorical columns are scored by their per-value label rate;
    high-cardinality text cannot be ranked and is reported as None.
    """
    if len(df) > sample_rows:
        idx = np.random.default_rng(seed).choice(len(df), sample_rows, replace=False)
        df, y = df.iloc[np.sort(idx)], y[np.sort(idx)]
    out: dict[str, float | None] = {}
    for col in contract.candidate_features:
        s = df[col]
        nunique = s.nunique(dropna=False)
        if contract.is_categorical(col) or nunique <= 50:
            if not contract.is_categorical(col) or nunique <= max(50, len(s) // 20):
                key = s.astype("string").fillna("__null__")
                score = key.map(pd.Series(y, index=s.index).groupby(key).mean()).to_numpy("float64")
            else:
                out[col] = None
                continue
        else:
            vals = s.to_numpy(dtype="float64", na_value=np.nan)
            lo = np.nanmin(vals) if np.isfinite(vals).any() else 0.0
            score = np.nan_to_num(np.where(np.isnan(vals), lo - 1.0, vals),
                                  posinf=np.finfo("float64").max, neginf=np.finfo("float64").min)
        auc = _auc(score, y)
        out[col] = round(max(auc, 1 - auc), 6)
    return out


def temporal_leaks(df: pd.DataFrame, contract: Contract) -> dict[str, dict]:
    """Model features whose known-at timestamp falls after the label's time in any row."""
    if not contract.time:
        return {}
    label_col = contract.time.label_time_column or contract.time.column
    label_t = pd.to_datetime(df[label_col])
    leaks = {}
    for col in contract.model_features:
        known_col = contract.columns[col].known_at_column
        if not known_col:
            continue
        late = (pd.to_datetime(df[known_col]) > label_t).to_numpy()
        if late.any():
            leaks[col] = {"known_at_column": known_col, "rows_after_label": int(late.sum()),
                          "share": round(float(late.mean()), 6)}
    return leaks
