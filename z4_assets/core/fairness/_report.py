"""The fairness report of one model on its test split: per-group metrics, disparities, CIs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.fairness._disparity import (DISPARITIES, bootstrap, disparities, interval,
                                               offending_group)
from z4_assets.core.fairness._gates import fairness_gates, gated_attributes
from z4_assets.core.fairness._groups import Grouping, build_groupings
from z4_assets.core.fairness._kernel import coarsen, group_metrics, sort_groups

RATES = ("auc", "ks", "selection_rate", "tpr", "fpr", "precision")


@dataclass
class FairnessResult:
    report: dict
    gates: list


def selection_threshold(score: np.ndarray, rule) -> float:
    """The score at or above which a row counts as selected (predicted positive).

    rule `score`: a fixed score; rule `top_rate`: the score of the row at that share
    from the top of the test split (ties with it are selected too).
    """
    kind, value = rule.rule, float(rule.value)
    if kind == "score":
        return value
    if kind == "top_rate":
        if not 0 < value <= 1:
            raise ValueError(f"fairness.selection.value {value} must be in (0, 1] for top_rate")
        k = max(int(np.ceil(value * len(score))), 1)
        return float(np.sort(score)[::-1][k - 1])
    raise ValueError(f"fairness.selection.rule {kind!r} must be 'score' or 'top_rate'")


def _num(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def _shifted(ci: list, shift: float) -> list:
    return [None if v is None or not np.isfinite(shift) else v + shift for v in ci]


def assess(g: Grouping, y: np.ndarray, score: np.ndarray, threshold: float, policy: dict,
           seed: list[int], overall: dict, by_score: np.ndarray | None = None) -> dict:
    """Metrics per group with CIs, and the disparities between the groups with enough data."""
    sg = sort_groups(g.codes, len(g.labels), y, score, threshold, by_score)
    point = group_metrics(sg)
    neg = point["count"] - point["positives"]
    min_rows, min_class = int(policy.min_group_count), int(policy.min_class_count)
    keep = (point["count"] >= min_rows) & (point["positives"] >= min_class) & (neg >= min_class)
    coarse = coarsen(sg, int(policy.bootstrap_score_bins))
    approx = group_metrics(coarse)
    favourable = policy.favourable_outcome
    draws, d_draws = bootstrap(coarse, keep, int(policy.bootstrap_resamples), seed, favourable)
    conf = float(policy.confidence)
    groups = {}
    for j, label in enumerate(g.labels):
        entry = {"count": int(point["count"][j]), "positives": int(point["positives"][j]),
                 "status": "ok" if keep[j] else "insufficient"}
        if not keep[j]:
            entry["reason"] = (f"{entry['count']} rows, {entry['positives']} positives, {int(neg[j])} "
                               f"negatives; needs >= {min_rows} rows and >= {min_class} of each class")
        for m in RATES:
            entry[m] = _num(point[m][j])
            if keep[j]:
                entry[f"{m}_ci"] = _shifted(interval(draws[m][:, j], conf), point[m][j] - approx[m][j])
        groups[label] = entry
    out = {"attributes": list(g.attributes), "banding": g.banding, "groups": groups,
           "order": list(g.labels),  # display order (the JSON file sorts keys)
           "assessable": bool(keep.sum() >= 2), "groups_compared": int(keep.sum())}
    if keep.sum() < 2:
        out["disparities"] = {}
        out["reason"] = f"only {int(keep.sum())} group(s) with enough data; at least 2 are needed"
        return out
    exact, binned = disparities(point, keep, favourable), disparities(approx, keep, favourable)
    out["disparities"] = {}
    for name in DISPARITIES:
        who = offending_group(name, point, keep, overall)
        out["disparities"][name] = {
            "value": _num(exact[name]),
            "ci": _shifted(interval(d_draws[name], conf), exact[name] - binned[name]),
            "metric": who["metric"], "max_group": g.labels[who["max_group"]],
            "min_group": g.labels[who["min_group"]], "offending_group": g.labels[who["offending_group"]],
        }
    return out


def overall_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    sg = sort_groups(np.zeros(len(y), dtype=np.int64), 1, y, score, threshold)
    return {m: _num(v[0]) for m, v in group_metrics(sg).items()}


def build_report(test: pd.DataFrame, contract: Contract, y: np.ndarray, score: np.ndarray,
                 policy: dict, reference: pd.DataFrame | None = None) -> FairnessResult:
    """Every grouping of the test split assessed, and the gates over them; the caller adds provenance.

    `reference` (the whole snapshot) fixes quantile bands of numeric attributes without bins.
    """
    start = time.perf_counter()
    score = np.asarray(score, dtype=np.float64)
    threshold = selection_threshold(score, policy.selection)
    singles, crossed = build_groupings(test, contract, policy, reference)
    seed = int(policy.seed)
    overall = overall_metrics(y, score, threshold)
    by_score = np.argsort(score, kind="stable")
    report = {
        "test_rows": int(len(y)), "positive_rate": float(np.mean(y)) if len(y) else None,
        "selection": {**policy.selection.model_dump(), "threshold": threshold,
                      "meaning": "selected = predicted positive (score >= threshold)",
                      "favourable_outcome": policy.favourable_outcome},
        "bootstrap": {"method": "percentile interval, Poisson bootstrap of the test rows",
                      "resamples": int(policy.bootstrap_resamples),
                      "score_bins": int(policy.bootstrap_score_bins),
                      "confidence": float(policy.confidence), "seed": seed},
        "min_group_count": int(policy.min_group_count),
        "min_class_count": int(policy.min_class_count),
        "overall": overall,
        "attributes": {g.name: assess(g, y, score, threshold, policy, [seed, i], overall, by_score)
                       for i, g in enumerate(singles)},
        "intersections": {g.name: assess(g, y, score, threshold, policy, [seed, 1000 + i], overall, by_score)
                          for i, g in enumerate(crossed)},
    }
    protected = [a for a, spec in contract.sensitive.items() if not spec.use_as_feature]
    report["gated_attributes"] = gated_attributes(report, policy, protected)
    gates = fairness_gates(report, policy, protected)
    report["gates"] = [g.as_dict() for g in gates]
    report["passed"] = all(g.passed for g in gates)
    report["seconds"] = round(time.perf_counter() - start, 3)
    return FairnessResult(report, gates)
