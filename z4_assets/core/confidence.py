"""How sure a statistical gate can be: confidence intervals and the three-way verdict on them.

A gate that compares a statistic measured on a sample (test AUC, a membership attack's AUC, a
selection rate) with a threshold decides in one of two ways (the policy's `gate_on`):

- `point`: the point estimate decides, as before; the gate is INSUFFICIENT EVIDENCE only when the
  sample is below its floor (too few rows of a class for the statistic to mean anything).
- `interval`: the whole confidence interval decides. It passes when all of the interval complies,
  fails when all of it breaches, and is INSUFFICIENT EVIDENCE when the interval straddles the
  threshold: the sample cannot tell a compliant model from a breaching one.

Intervals are percentile intervals of a seeded Poisson bootstrap over score bins (exact counts,
AUC and KS within a bin's share of the rows of the exact value, shifted onto the exact point
estimate), and Wilson intervals for proportions. docs/gates.md argues the defaults with figures.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from z4_assets.core.gates import Gate, GateSpec

GATE_ON = ("point", "interval")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


def _score_bins(y: np.ndarray, p: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per score bin, bins in ascending score order (ties never split)."""
    p = np.asarray(p, dtype=np.float64)
    values = np.unique(p)
    edges = values[1:] if len(values) <= bins else np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    b = np.searchsorted(edges, p, side="right")
    y = np.asarray(y, dtype=np.float64)
    return (np.bincount(b, weights=y, minlength=len(edges) + 1),
            np.bincount(b, weights=1.0 - y, minlength=len(edges) + 1))


def auc_ks(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AUC, KS) from positives and negatives per ascending score bin; leading axes are resamples.
    AUC counts ties within a bin as one half (sklearn's roc_auc_score on exact scores); KS is
    max(TPR - FPR) over the bin edges."""
    P, N = pos.sum(-1), neg.sum(-1)
    cn, cp = np.cumsum(neg, -1), np.cumsum(pos, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (cn - 0.5 * neg)).sum(-1) / (P * N)
        ks = np.maximum((cn / N[..., None] - cp / P[..., None]).max(-1), 0.0)
    return auc, ks


def auc_ks_intervals(y: np.ndarray, p: np.ndarray, confidence: float, resamples: int, seed: int,
                     bins: int = 1024) -> dict[str, list[float]]:
    """Percentile intervals of test AUC and KS: Poisson bootstrap of the rows, drawn per score bin."""
    pos, neg = _score_bins(y, p, bins)
    rng = np.random.default_rng(seed)
    auc, ks = auc_ks(rng.poisson(pos, (resamples, len(pos))).astype(float),
                     rng.poisson(neg, (resamples, len(neg))).astype(float))
    a0, k0 = auc_ks(pos, neg)
    exact = exact_auc_ks(y, p)
    a = (1 - confidence) / 2
    out = {}
    for name, draws, binned in (("auc", auc, a0), ("ks", ks, k0)):
        finite = draws[np.isfinite(draws)]
        lo, hi = np.quantile(finite, [a, 1 - a]) if finite.size else (math.nan, math.nan)
        shift = exact[name] - float(binned)
        out[name] = [round(float(lo) + shift, 6), round(float(hi) + shift, 6)]
    return out


def exact_auc_ks(y, p) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return {"auc": float(roc_auc_score(y, p)), "ks": float(np.max(tpr - fpr))}


def hanley_mcneil(auc: float, n_pos: int, n_neg: int, confidence: float) -> list[float]:
    """Normal interval of an AUC from its Hanley-McNeil (1982) standard error, clipped to [0, 1]:
    for a statistic whose scores are not kept (a membership attack's evaluation halves)."""
    from statistics import NormalDist

    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    half = NormalDist().inv_cdf(1 - (1 - confidence) / 2) * math.sqrt(max(var, 0.0))
    return [round(max(0.0, auc - half), 6), round(min(1.0, auc + half), 6)]


def wilson(k: int, n: int, confidence: float) -> list[float]:
    """Wilson score interval of a proportion k / n."""
    if n == 0:
        return [0.0, 1.0]
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def decide(spec: GateSpec, point: float, ci: list[float] | None, op: str, threshold: float, gate_on: str,
           blocks: bool, what: str, evidence: str, details: dict | None = None) -> Gate:
    """The verdict of SPEC on a statistic WHAT measured as POINT (interval CI) on EVIDENCE (e.g.
    '214 test rows, 40 positives'). See the module docstring for GATE_ON."""
    if gate_on not in GATE_ON:
        raise ValueError(f"gate_on {gate_on!r} must be one of {', '.join(GATE_ON)}")
    details = {**(details or {}), "estimate": point, "ci": ci, "gate_on": gate_on, "evidence": evidence}
    if gate_on == "point" or ci is None:
        return spec.compare(point, op, threshold, f"{what} on {evidence}", details)
    lo, hi = ci
    ok = _OPS[op]
    if ok(lo, threshold) == ok(hi, threshold):   # the whole interval on one side
        passed = ok(lo, threshold)
        text = (f"{'ok' if passed else 'FAILED'}: {what} on {evidence} = {point:.4g}, CI [{lo:.4g}, {hi:.4g}] "
                f"(all of it must be {op} {threshold:g})")
        return spec.verdict(passed, point, op, threshold, text, details)
    return spec.insufficient(f"{what} estimated {point:.4g}, CI [{lo:.4g}, {hi:.4g}] on {evidence} holds "
                             f"values on both sides of {op} {threshold:g}", op, threshold, blocks, details)


def floor(spec: GateSpec, counts: dict[str, int], minimum: int, op: str, threshold, blocks: bool,
          what: str, details: dict | None = None) -> Gate | None:
    """INSUFFICIENT EVIDENCE when any of COUNTS (e.g. positives, negatives) is below MINIMUM, else None."""
    short = {k: v for k, v in counts.items() if v < minimum}
    if not short:
        return None
    have = ", ".join(f"{v} {k}" for k, v in counts.items())
    return spec.insufficient(f"{what}: {have}; needs >= {minimum} of each", op, threshold, blocks,
                             {**(details or {}), **{k: int(v) for k, v in counts.items()}, "minimum": minimum})
