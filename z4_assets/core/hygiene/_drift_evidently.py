"""Distribution drift as Evidently 0.7.23 defines it (policy `hygiene.drift_method: evidently`).

Reproduced from evidently/legacy/calculations/stattests/{psi,kl_div,utils}.py and data_drift.py,
so the factory's figures equal the bank's Evidently dashboard without Evidently at run time
(tests compare the two to 1e-9 on the same data):
- +-inf become null, and nulls are dropped from both sides first (the factory measures missingness
  apart, in the `drift_missingness` gate).
- A numeric feature with more than 20 distinct reference values: equal-width Sturges bins over the
  reference and current values together (numpy's `histogram_bin_edges(..., "sturges")`). Any other
  feature (categorical, or numeric with few values): one bin per value seen on either side.
- Zero shares become min(non-zero share)/1e6 when that minimum is <= 1e-4, else 1e-4, each side on
  its own; no renormalisation.
- PSI = sum((r - c) * ln(r / c)); KL = scipy.stats.entropy(r, c) = KL(reference || current) after
  scaling both to sum 1.
The reference side comes from the baseline's value counts (`_drift.reference_counts`): the counts of
every distinct value give the same bins and shares as the raw column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.hygiene._drift import SHOWN_CATEGORIES, _numbers, _shown, noise_psi, text_counts

VERSION = "0.7.23"
DISCRETE_MAX = 20  # Evidently: a numeric column with at most this many reference values is binned by value


def drift_against(reference: pd.DataFrame, baseline: dict, df: pd.DataFrame, contract: Contract) -> dict[str, dict]:
    """Per baseline feature present in DF: Evidently's psi and kl, the null shares, and the bins."""
    out = {}
    groups = dict(tuple(reference.groupby("feature", sort=False)))
    for col, prof in baseline["features"].items():
        if col not in df:
            continue
        s = df[col]
        nulls = {"reference": prof["nulls"], "current": float(s.isna().mean()) if len(s) else 0.0}
        ref = groups.get(col, reference.iloc[:0])
        categorical = prof["kind"] == "categorical"
        if categorical:
            ref_vals, ref_counts = ref["category"].astype(str).to_numpy(), ref["count"].to_numpy(dtype="float64")
            cur_vc = text_counts(s)
        else:
            keep = np.isfinite(ref["number"].to_numpy(dtype="float64"))
            ref_vals, ref_counts = ref["number"].to_numpy(dtype="float64")[keep], ref["count"].to_numpy(dtype="float64")[keep]
            cur = _numbers(s)
            cur_vc = pd.Series(cur[np.isfinite(cur)]).value_counts()
        labels, r, c = binned(ref_vals, ref_counts, cur_vc.index.to_numpy(), cur_vc.to_numpy(dtype="float64"),
                              numeric=not categorical, integer=contract.columns[col].dtype == "integer")
        psi, kl = psi_kl(r, c)
        rows = {"reference": int(ref_counts.sum()), "current": int(cur_vc.sum())}
        out[col] = {"psi": psi, "kl": kl, "nulls": nulls, "rows": rows, "noise_psi": noise_psi(r, c, rows),
                    "bins": _shown(labels, r, c, "categorical" if len(labels) > SHOWN_CATEGORIES else "numeric")}
    return out


def binned(ref_vals, ref_counts, cur_vals, cur_counts, numeric: bool, integer: bool = False):
    """Evidently's get_binned_data on value counts: labels and the raw shares (before zero filling)."""
    n_ref, n_cur = ref_counts.sum(), cur_counts.sum()
    if n_ref == 0 or n_cur == 0:
        return [], np.zeros(0), np.zeros(0)
    if numeric and len(ref_vals) > DISCRETE_MAX:
        edges = sturges_edges(np.concatenate([ref_vals, cur_vals]), int(n_ref + n_cur), integer)
        r = np.histogram(ref_vals, edges, weights=ref_counts)[0] / n_ref
        c = np.histogram(cur_vals, edges, weights=cur_counts)[0] / n_cur
        labels = [f"[{a:.6g}, {b:.6g}" + ("]" if i == len(edges) - 2 else ")")
                  for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]
        return labels, r, c
    keys = sorted(set(ref_vals.tolist()) | set(cur_vals.tolist()))
    ref_map = dict(zip(ref_vals.tolist(), ref_counts.tolist()))
    cur_map = dict(zip(cur_vals.tolist(), cur_counts.tolist()))
    r = np.array([ref_map.get(k, 0.0) for k in keys]) / n_ref
    c = np.array([cur_map.get(k, 0.0) for k in keys]) / n_cur
    return [f"{k:.6g}" if isinstance(k, float) else str(k) for k in keys], r, c


def sturges_edges(values: np.ndarray, n: int, integer: bool = False) -> np.ndarray:
    """numpy's histogram_bin_edges(x, "sturges") for a sample of N values whose distinct values are
    VALUES (INTEGER: the sample's dtype is an integer one, so a bin is at least 1 wide)."""
    lo, hi = values.min(), values.max()
    width = (hi - lo) / (np.log2(n) + 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if width and integer and width < 1:
        width = 1
    count = int(np.ceil((hi - lo) / width)) if width else 1
    return np.linspace(lo, hi, count + 1, endpoint=True)


def psi_kl(r: np.ndarray, c: np.ndarray) -> tuple[float | None, float | None]:
    if not r.size:
        return None, None
    r, c = _fill(r.copy()), _fill(c.copy())
    psi = float(np.sum((r - c) * np.log(r / c)))
    rn, cn = r / np.sum(r), c / np.sum(c)
    from scipy.special import rel_entr

    return psi, float(np.sum(rel_entr(rn, cn)))


def _fill(p: np.ndarray) -> np.ndarray:
    low = p[p != 0].min()
    np.place(p, p == 0, low / 10**6 if low <= 0.0001 else 0.0001)
    return p
