"""Distribution drift, the factory's definition: PSI and KL per feature against the dataset's baseline.

The definition (docs/drift.md states it for users; keep the two in step):
- Nulls are not part of a feature's distribution: shares are over its non-null values, and the share
  of nulls is its own metric (missingness drift, a gate of its own).
- Numeric: interior bins cut at the reference's deciles (`drift_bins`), from the reference's finite
  minimum to its maximum, plus two tail bins of their own: below the minimum and above the maximum
  (a constant reference has three bins: below, equal, above). +-inf falls in a tail. Each side's
  share of each tail counts as at least 1/(n+1), n the reference's non-null values: the chance that a
  new draw of the same distribution falls past a sample's extreme (identical data still gives 0).
- Categorical: one bin per reference category, and one per category seen only in the current data.
- Zero shares (either side) become EPS = 1e-4; both sides are then renormalised to sum to 1.
- PSI = sum((c - r) * ln(c / r)); KL = KL(reference || current) = sum(r * ln(r / c)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract

PROFILE_VERSION = 2  # 2: tail bins, nulls apart, reference value counts beside the profile
EPS = 1e-4
SHOWN_CATEGORIES = 30  # categories listed in the per-feature evidence; the rest are summed in one bin
NEW = "new: no baseline"


def build_profile(df: pd.DataFrame, contract: Contract, bins: int) -> dict:
    """Bins and shares (numeric) or category shares (categorical) and the null share of every feature."""
    features = {}
    for col in contract.candidate_features:
        s = df[col]
        nulls = float(s.isna().mean()) if len(s) else 0.0
        if contract.is_categorical(col):
            counts = text_counts(s)
            cats = sorted(counts.index.tolist())
            features[col] = {"kind": "categorical", "categories": cats, "nulls": nulls,
                             "p": _shares(np.array([counts[c] for c in cats], dtype="float64")).tolist()}
            continue
        vals = _numbers(s)
        finite = vals[np.isfinite(vals)]
        if not finite.size:
            features[col] = {"kind": "numeric", "min": None, "max": None, "edges": [], "p": [], "nulls": nulls}
            continue
        lo, hi = float(finite.min()), float(finite.max())
        qs = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
        edges = sorted({float(q) for q in qs if q > lo})
        features[col] = {"kind": "numeric", "min": lo, "max": hi, "edges": edges, "nulls": nulls,
                         "values": int((~np.isnan(vals)).sum()),
                         "p": _shares(_numeric_counts(vals, lo, hi, edges)).tolist()}
    return {"version": PROFILE_VERSION, "rows": int(len(df)), "bins": bins, "features": features}


def reference_counts(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Every feature's non-null values with their counts (marginals only: no row, no id), so a
    definition binned on reference and current together (Evidently's) can be computed exactly later."""
    parts = []
    for col in contract.candidate_features:
        s = df[col].dropna()
        if contract.is_categorical(col):
            vc = text_counts(s)
            parts.append(pd.DataFrame({"feature": col, "number": np.nan, "category": vc.index.astype(str),
                                       "count": vc.to_numpy(dtype="int64")}))
        else:
            vc = pd.Series(_numbers(s)).value_counts()
            parts.append(pd.DataFrame({"feature": col, "number": vc.index.to_numpy(dtype="float64"),
                                       "category": None, "count": vc.to_numpy(dtype="int64")}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["feature", "number", "category", "count"])
    return out.sort_values(["feature", "number", "category"], na_position="last", kind="stable").reset_index(drop=True)


def drift_against(baseline: dict, df: pd.DataFrame) -> dict[str, dict]:
    """Per baseline feature present in DF: psi, kl (None when a side has no non-null value), the null
    shares, and the bins with both sides' shares (before EPS) for a person to read."""
    out = {}
    for col, prof in baseline["features"].items():
        if col not in df:
            continue
        s = df[col]
        nulls = {"reference": prof["nulls"], "current": float(s.isna().mean()) if len(s) else 0.0}
        if prof["kind"] == "categorical":
            labels, ref, cur = _categorical_bins(prof, s)
        else:
            labels, ref, cur = _numeric_bins(prof, _numbers(s))
        psi, kl = psi_kl(*_tail_floor(ref, cur, prof)) if prof["kind"] == "numeric" else psi_kl(ref, cur)
        rows = {"reference": round(baseline["rows"] * (1 - prof["nulls"])), "current": int(s.notna().sum())}
        out[col] = {"psi": psi, "kl": kl, "nulls": nulls, "bins": _shown(labels, ref, cur, prof["kind"]),
                    "rows": rows, "noise_psi": noise_psi(ref, cur, rows)}
    return out


def new_features(baseline: dict, contract: Contract) -> list[str]:
    """Model features of this snapshot that the baseline never profiled."""
    return sorted(c for c in contract.candidate_features if c not in baseline["features"])


def psi_kl(ref: np.ndarray, cur: np.ndarray) -> tuple[float | None, float | None]:
    """The factory's PSI and KL(reference || current) of two share vectors over the same bins."""
    if ref.sum() <= 0 or cur.sum() <= 0:
        return None, None
    r, c = _fill(ref), _fill(cur)
    return float(np.sum((c - r) * np.log(c / r))), float(np.sum(r * np.log(r / c)))


def noise_psi(ref: np.ndarray, cur: np.ndarray, rows: dict) -> float | None:
    """The PSI two samples of one distribution show at these sizes, by sampling noise alone:
    (B - 1) * (1/n_ref + 1/n_cur), B the bins holding a value on either side (PSI ~ that times a
    chi-square with B - 1 degrees of freedom over its mean). None when a side has no value."""
    if not rows["reference"] or not rows["current"]:
        return None
    bins = int(np.count_nonzero((ref > 0) | (cur > 0)))
    return (max(bins, 1) - 1) * (1 / rows["reference"] + 1 / rows["current"])


def _fill(p: np.ndarray) -> np.ndarray:
    p = np.where(p == 0, EPS, p)
    return p / p.sum()


def _numeric_bins(prof: dict, vals: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    if prof["min"] is None:
        return [], np.zeros(0), np.zeros(0)
    lo, hi, edges = prof["min"], prof["max"], prof["edges"]
    cur = _shares(_numeric_counts(vals, lo, hi, edges))
    return _numeric_labels(lo, hi, edges), np.asarray(prof["p"], dtype="float64"), cur


def _tail_floor(ref: np.ndarray, cur: np.ndarray, prof: dict) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' tail shares raised to 1/(n+1), n the reference's values: a new draw of the same
    distribution falls past a sample's extreme that often, so a tail below it is no evidence of drift."""
    if not ref.size or ref.sum() <= 0 or cur.sum() <= 0:
        return ref, cur  # a side with no value: nothing to compare (psi_kl says None)
    beyond = 1.0 / (prof["values"] + 1)
    ref, cur = ref.copy(), cur.copy()
    for p in (ref, cur):
        p[0], p[-1] = max(p[0], beyond), max(p[-1], beyond)
    return ref, cur


def _numeric_counts(vals: np.ndarray, lo: float, hi: float, edges: list[float]) -> np.ndarray:
    """Counts in: below the minimum, [min, e1), ..., [e_k, max], above the maximum; nulls left out."""
    v = vals[~np.isnan(vals)]
    below, above = v < lo, v > hi
    inside = v[~below & ~above]
    interior = np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), inside, side="right"),
                           minlength=len(edges) + 1)
    return np.concatenate([[below.sum()], interior, [above.sum()]]).astype("float64")


def _numeric_labels(lo: float, hi: float, edges: list[float]) -> list[str]:
    cuts = [lo, *edges, hi]
    inner = [f"[{_g(a)}, {_g(b)})" for a, b in zip(cuts[:-2], cuts[1:-1])] + [f"[{_g(cuts[-2])}, {_g(hi)}]"]
    return [f"< {_g(lo)}", *inner, f"> {_g(hi)}"]


def _categorical_bins(prof: dict, s: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    counts = text_counts(s)
    cats = prof["categories"]
    unseen = sorted(set(counts.index) - set(cats))
    ref = np.concatenate([np.asarray(prof["p"], dtype="float64"), np.zeros(len(unseen))])
    cur = _shares(np.array([counts.get(c, 0) for c in [*cats, *unseen]], dtype="float64"))
    return [*cats, *(f"{c} (unseen)" for c in unseen)], ref, cur


def _shown(labels: list[str], ref: np.ndarray, cur: np.ndarray, kind: str) -> dict:
    ref, cur = [round(float(x), 6) for x in ref], [round(float(x), 6) for x in cur]
    if kind == "categorical" and len(labels) > SHOWN_CATEGORIES:
        order = sorted(range(len(labels)), key=lambda i: -(ref[i] + cur[i]))
        keep, rest = sorted(order[:SHOWN_CATEGORIES - 1]), order[SHOWN_CATEGORIES - 1:]
        labels = [labels[i] for i in keep] + [f"{len(rest)} more categories"]
        ref = [ref[i] for i in keep] + [round(sum(ref[i] for i in rest), 6)]
        cur = [cur[i] for i in keep] + [round(sum(cur[i] for i in rest), 6)]
    return {"labels": labels, "reference": ref, "current": cur}


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts


def _numbers(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def text_counts(s: pd.Series) -> pd.Series:
    """Counts of a categorical feature's non-null values, keyed by their text (1 -> "1"): counted
    first, converted after, so 1M rows cost one value_counts, not 1M string conversions."""
    counts = s.dropna().value_counts()
    counts.index = counts.index.astype(str)
    return counts.groupby(level=0, sort=False).sum()


def _g(x: float) -> str:
    return f"{x:.6g}"
