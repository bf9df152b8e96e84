"""Between-group disparities, point estimates and seeded bootstrap intervals.

Only groups with enough rows of each class take part (the others are reported as
'insufficient'). Definitions follow fairlearn: demographic parity difference of selection
rates, equalized odds difference = the larger of the TPR and FPR gaps, and demographic
parity ratio = lowest / highest rate of the favourable outcome. When being selected is the
adverse outcome (a credit applicant flagged as a likely defaulter), the favourable rate is
1 - selection rate, as the four-fifths rule compares rates of the favourable decision; with
`favourable="selected"` the ratio is fairlearn's demographic_parity_ratio.
"""

from __future__ import annotations

import warnings

import numpy as np

from z4_assets.core.fairness._kernel import METRICS, SortedGroups, group_metrics, resample_weights

DISPARITIES = ("demographic_parity_diff", "demographic_parity_ratio", "equalized_odds_diff",
               "ks_diff", "auc_diff")


def _spread(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, min) over groups, ignoring a group a resample left without one class (NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN, on purpose
        return np.nanmax(m, axis=-1), np.nanmin(m, axis=-1)


def disparities(metrics: dict, keep: np.ndarray, favourable: str = "selected") -> dict[str, np.ndarray]:
    """Disparities over the groups in `keep`; metrics arrays have shape (..., k)."""
    def sub(name):
        return metrics[name][..., keep]

    sr_hi, sr_lo = _spread(sub("selection_rate"))
    if favourable == "not_selected":
        fav_hi, fav_lo = 1.0 - sr_lo, 1.0 - sr_hi
    elif favourable == "selected":
        fav_hi, fav_lo = sr_hi, sr_lo
    else:
        raise ValueError(f"fairness.favourable_outcome {favourable!r} must be 'selected' or 'not_selected'")
    tpr_hi, tpr_lo = _spread(sub("tpr"))
    fpr_hi, fpr_lo = _spread(sub("fpr"))
    ks_hi, ks_lo = _spread(sub("ks"))
    auc_hi, auc_lo = _spread(sub("auc"))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(fav_hi > 0, fav_lo / fav_hi, 1.0)
    return {
        "demographic_parity_diff": sr_hi - sr_lo,
        "demographic_parity_ratio": ratio,
        "equalized_odds_diff": np.maximum(tpr_hi - tpr_lo, fpr_hi - fpr_lo),
        "ks_diff": ks_hi - ks_lo,
        "auc_diff": auc_hi - auc_lo,
    }


def offending_group(name: str, metrics: dict, keep: np.ndarray, overall: dict) -> dict:
    """The groups at both ends of a disparity and the one that drives it.

    For KS and AUC the offender is the group where the model discriminates worst; for
    rates it is the group furthest from the whole test split's rate.
    """
    idx = np.flatnonzero(keep)
    if name == "equalized_odds_diff":
        gaps = {m: np.ptp(metrics[m][idx]) for m in ("tpr", "fpr")}
        metric = max(gaps, key=gaps.get)
    else:
        metric = {"demographic_parity_diff": "selection_rate", "demographic_parity_ratio": "selection_rate",
                  "ks_diff": "ks", "auc_diff": "auc"}[name]
    values = metrics[metric][idx]
    hi, lo = idx[int(np.argmax(values))], idx[int(np.argmin(values))]
    if metric in ("ks", "auc"):
        worst = lo
    else:
        worst = idx[int(np.argmax(np.abs(values - overall[metric])))]
    return {"metric": metric, "max_group": int(hi), "min_group": int(lo), "offending_group": int(worst)}


def bootstrap(sg: SortedGroups, keep: np.ndarray, resamples: int, seed, favourable: str = "selected",
              chunk_cells: int = 4_000_000) -> tuple[dict, dict]:
    """(per-group metric draws (B, k), disparity draws (B,)) from a seeded bootstrap.

    Resamples are drawn in chunks so that a chunk holds at most `chunk_cells` block weights.
    """
    rng = np.random.default_rng(seed)
    per_chunk = max(1, min(resamples, chunk_cells // max(len(sg.pos), 1)))
    parts = []
    for start in range(0, resamples, per_chunk):
        bp, bn = resample_weights(sg, rng, min(per_chunk, resamples - start))
        parts.append(group_metrics(sg, bp, bn))
    draws = {m: np.concatenate([p[m] for p in parts]) for m in METRICS}
    return draws, disparities(draws, keep, favourable) if keep.sum() >= 2 else {}


def interval(draws: np.ndarray, confidence: float) -> list[float | None]:
    """Percentile interval over the finite draws (None when there are none)."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return [None, None]
    a = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [a, 1 - a], axis=0)
    return [float(lo), float(hi)]
