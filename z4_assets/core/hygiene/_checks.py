"""Data and label hygiene: duplicates, impossible values, leakage, holdout leaks and drift."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from z4_assets.core.hygiene import _drift as drift, _leakage as leakage
from z4_assets.core.hygiene._drift_gates import drift_gates
from z4_assets.core.contract import Contract, parse_rule
from z4_assets.core.gates import Gate
from z4_assets.core.stages import HYGIENE
from z4_assets.core.split import TEST, TRAIN, assign_split, row_hashes

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
        "==": operator.eq, "!=": operator.ne}
_EXAMPLES = 10
G = HYGIENE.gate


@dataclass
class HygieneResult:
    gates: list[Gate]
    split: np.ndarray
    split_strategy: str
    profile: dict
    report: dict

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def _ids(df: pd.DataFrame, contract: Contract, mask: np.ndarray) -> list:
    src = df[contract.id_column] if contract.id_column else pd.Series(df.index, index=df.index)
    return [v.item() if hasattr(v, "item") else v for v in src[mask].head(_EXAMPLES).tolist()]


def duplicate_columns(df: pd.DataFrame, contract: Contract, mode: str) -> list[str]:
    """The columns two rows must agree on to be duplicates (policy hygiene.duplicate_columns), target aside."""
    if mode == "features":
        return list(contract.candidate_features)
    return [c for c in contract.columns if c in df.columns and c not in (contract.id_column, contract.target.column)]


def _duplicates(df, contract, y, h) -> list[Gate]:
    cols = duplicate_columns(df, contract, h.duplicate_columns)
    fhash = row_hashes(df, cols)
    full = fhash ^ (pd.util.hash_array(y.astype("int64")).astype(np.uint64) * np.uint64(31))
    dup = pd.Series(full).duplicated().to_numpy()
    by_features = pd.DataFrame({"h": fhash, "y": y})
    nlabels = by_features.groupby("h")["y"].transform("nunique").to_numpy()
    conflict = nlabels > 1
    n = len(df)
    return [
        G.duplicate_rows.compare(round(dup.sum() / n, 6), "<=", h.duplicate_share_max,
                "share of exact duplicate rows (id excluded)",
                {"duplicate_rows": int(dup.sum()), "rows": n, "example_ids": _ids(df, contract, dup),
                 "compared": h.duplicate_columns, "columns": cols}),
        G.conflicting_labels.compare(round(conflict.sum() / n, 6), "<=",
                h.conflicting_label_share_max,
                "share of rows whose identical features carry different labels",
                {"rows": int(conflict.sum()), "example_ids": _ids(df, contract, conflict),
                 "compared": h.duplicate_columns, "columns": cols}),
    ]


def _impossible(df, contract, h) -> Gate:
    hit = np.zeros(len(df), dtype=bool)
    per_rule = {}
    for rule in contract.impossible_values:
        col, op, rhs = parse_rule(rule, contract.columns)
        right = df[rhs] if isinstance(rhs, str) else rhs
        m = _OPS[op](df[col], right).fillna(False).to_numpy(dtype=bool)
        per_rule[rule] = int(m.sum())
        hit |= m
    for col in contract.candidate_features:
        if contract.columns[col].dtype == "float":
            m = np.isinf(df[col].to_numpy(dtype="float64", na_value=np.nan))
            if m.any():
                per_rule[f"{col} is +-inf"] = int(m.sum())
                hit |= m
    return G.impossible_values.compare(round(hit.sum() / len(df), 6), "<=",
                   h.impossible_share_max, "share of rows with an impossible value",
                   {"per_rule": per_rule, "example_ids": _ids(df, contract, hit)})


def _leakage(df, contract, y, h, seed) -> list[Gate]:
    aucs = leakage.single_feature_auc(df, y, contract, int(h.leakage_sample_rows), seed)
    declared = [c for c in contract.candidate_features if contract.columns[c].known_after_label]
    # a column declared known only after the label never reaches the model: reported, not gated
    scored = {k: v for k, v in aucs.items() if v is not None and k not in declared}
    worst = max(scored, key=scored.get) if scored else None
    top = dict(sorted(scored.items(), key=lambda kv: -kv[1])[:5])
    flagged = [k for k, v in scored.items() if v >= h.leakage_auc_max]
    late = leakage.temporal_leaks(df, contract)
    note = "" if contract.time else " (no time column declared: nothing to compare)"
    return [
        G.target_leakage.compare(scored.get(worst, 0.0), "<", h.leakage_auc_max,
                f"highest single-feature AUC ({worst})",
                {"flagged_features": flagged, "top_auc": top, "unscored": [k for k, v in aucs.items() if v is None],
                 "post_label_not_gated": {k: aucs[k] for k in declared}}),
        G.temporal_leakage.compare(len(late), "<=", h.temporal_leak_features_max,
                "model features known only after the label's time" + note,
                {"leaking_features": late, "declared_post_label_excluded": declared}),
    ]


# What holdout_leak guards under each split: a content-hash split cannot leak by construction.
_LEAK_NOTE = {"hash(content)": ": identical rows share a split by construction, so this cannot fail here; it "
                               "guards the time and id splits, where the same row can land on both sides"}


def run_hygiene(df: pd.DataFrame, contract: Contract, policy: dict,
                baseline: dict | None, reference: pd.DataFrame | None = None) -> HygieneResult:
    """Every hygiene gate on one snapshot; pure, so it can be benchmarked and tested alone.

    BASELINE is the dataset's drift profile (None: its first snapshot), REFERENCE its value counts."""
    h, split_policy = policy.hygiene, policy.split
    y = (df[contract.target.column] == contract.target.positive).to_numpy(dtype="int8")
    fhash = row_hashes(df, contract.candidate_features)
    split, strategy = assign_split(df, contract, split_policy, fhash)

    gates = _duplicates(df, contract, y, h)
    gates.append(_impossible(df, contract, h))
    gates += _leakage(df, contract, y, h, int(split_policy.seed))

    train_h = fhash[split == TRAIN]
    test_mask = split == TEST
    leaked = np.zeros(len(df), dtype=bool)
    leaked[test_mask] = np.isin(fhash[test_mask], train_h)
    n_test = max(int(test_mask.sum()), 1)
    gates.append(G.holdout_leak.compare(round(leaked.sum() / n_test, 6), "<=",
                         h.holdout_leak_share_max,
                         f"share of test rows also in training (split {strategy}{_LEAK_NOTE.get(strategy, '')})",
                         {"leaked_test_rows": int(leaked.sum()), "test_rows": int(test_mask.sum()),
                          "example_ids": _ids(df, contract, leaked)}))

    profile = drift.build_profile(df, contract, int(h.drift_bins))
    gates += drift_gates(df, contract, h, baseline, reference)

    counts = {k: int(v) for k, v in zip(*np.unique(split, return_counts=True))}
    report = {
        "rows": int(len(df)),
        "positive_rate": round(float(y.mean()), 6),
        "split": {"strategy": strategy, "counts": counts, "policy": split_policy},
        "gates": [g.as_dict() for g in gates],
        "passed": all(g.passed for g in gates),
    }
    return HygieneResult(gates, split, strategy, profile, report)
