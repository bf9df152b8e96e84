"""Distribution drift: PSI and KL per feature against the dataset's accepted baseline profile."""

from __future__ import annotations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract

_EPS = 1e-4
_NULL = "__null__"
_OTHER = "__other__"


def build_profile(df: pd.DataFrame, contract: Contract, bins: int) -> dict:
    """Bin edges (numeric) or category frequencies (categorical) for every candidate feature."""
    features = {}
    for col in contract.candidate_features:
        s = df[col]
        if contract.is_categorical(col):
            counts = s.astype("string").fillna(_NULL).value_counts()
            cats = sorted(counts.index.tolist())
            features[col] = {"kind": "categorical", "categories": cats,
                             "p": _categorical_p(s, cats).tolist()}
        else:
            vals = s.to_numpy(dtype="float64", na_value=np.nan)
            finite = vals[np.isfinite(vals)]
            qs = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else []
            edges = sorted(set(float(q) for q in qs))
            features[col] = {"kind": "numeric", "edges": edges, "p": _numeric_p(vals, edges).tolist()}
    return {"rows": int(len(df)), "bins": bins, "features": features}


def _numeric_p(vals: np.ndarray, edges: list[float]) -> np.ndarray:
    nan = np.isnan(vals)
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), vals[~nan], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, nan.sum())  # last bin: nulls
    return counts / max(len(vals), 1)


def _categorical_p(s: pd.Series, cats: list[str]) -> np.ndarray:
    counts = s.astype("string").fillna(_NULL).value_counts()
    known = np.array([counts.get(c, 0) for c in cats], dtype="float64")
    other = float(counts.sum() - known.sum())
    return np.append(known, other) / max(len(s), 1)


def _pad(p: list[float], n: int) -> np.ndarray:
    arr = np.zeros(n)
    arr[: len(p)] = p
    return arr


def drift_against(baseline: dict, df: pd.DataFrame) -> dict[str, dict]:
    """PSI and KL(current || baseline) per feature present in both."""
    out = {}
    for col, prof in baseline["features"].items():
        if col not in df:
            continue
        if prof["kind"] == "categorical":
            cur = _categorical_p(df[col], prof["categories"])
            base = _pad(prof["p"], len(cur))
        else:
            cur = _numeric_p(df[col].to_numpy(dtype="float64", na_value=np.nan), prof["edges"])
            base = _pad(prof["p"], len(cur))
        a = np.clip(cur, _EPS, None)
        e = np.clip(base, _EPS, None)
        a, e = a / a.sum(), e / e.sum()
        psi = float(np.sum((a - e) * np.log(a / e)))
        kl = float(np.sum(a * np.log(a / e)))
        out[col] = {"psi": round(psi, 6), "kl": round(kl, 6)}
    return out
