"""Which group each row belongs to, for every sensitive attribute the contract declares.

Categorical attributes keep their values; numeric ones are cut into bands (the policy's
`fairness.bins`, else the contract's `bins`, else quantile bands). A row whose value is
missing or outside every band gets its own group: nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract

MISSING = "(missing)"


@dataclass
class Grouping:
    """One partition of the rows: a single attribute or the intersection of two."""

    name: str
    attributes: tuple[str, ...]
    labels: list[str]          # group label per code
    codes: np.ndarray          # int64 code per row
    banding: dict              # how each attribute was grouped, for the report


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def band_labels(values: pd.Series, edges: list[float]) -> pd.Series:
    """'[lo,hi)' per value; the last band is closed; values outside get '<lo' or '>hi'."""
    edges = sorted(float(e) for e in edges)
    v = pd.to_numeric(values, errors="coerce").astype("float64")
    names = [f"[{_fmt(lo)},{_fmt(hi)})" for lo, hi in zip(edges[:-1], edges[1:])]
    names[-1] = names[-1][:-1] + "]"
    idx = np.searchsorted(edges, v.to_numpy(), side="right") - 1
    idx = np.where(v.to_numpy() == edges[-1], len(names) - 1, idx)
    out = np.array(names, dtype=object)[np.clip(idx, 0, len(names) - 1)]
    out = np.where(v.to_numpy() < edges[0], f"<{_fmt(edges[0])}", out)
    out = np.where(v.to_numpy() > edges[-1], f">{_fmt(edges[-1])}", out)
    out = np.where(v.isna().to_numpy(), MISSING, out)
    return pd.Series(out, index=values.index, dtype=object)


def attribute_labels(df: pd.DataFrame, contract: Contract, attr: str, policy: dict,
                     reference: pd.DataFrame | None = None) -> tuple[pd.Series, list[str], dict]:
    """Group label per row of df for one attribute, the labels in display order, and how.

    Quantile bands (numeric attribute, no bins anywhere) are taken from `reference`
    (the whole snapshot), so they do not depend on which rows are scored.
    """
    col = df[attr]
    policy_bins = policy.bins.get(attr)
    bins = policy_bins or contract.sensitive[attr].bins
    source = "policy" if policy_bins else "contract"
    if not bins and not contract.is_categorical(attr):
        ref = pd.to_numeric((reference if reference is not None else df)[attr], errors="coerce")
        q = int(policy.default_bands)
        edges = np.unique(np.nanquantile(ref.astype("float64"), np.linspace(0, 1, q + 1)))
        bins, source = (edges.tolist(), f"{q} quantile bands of the snapshot") if len(edges) > 1 else (None, "")
    if bins:
        labels = band_labels(col, bins)
        edges = sorted(float(e) for e in bins)
        inner = [f"[{_fmt(lo)},{_fmt(hi)})" for lo, hi in zip(edges[:-1], edges[1:])]
        inner[-1] = inner[-1][:-1] + "]"
        order = [f"<{_fmt(edges[0])}", *inner, f">{_fmt(edges[-1])}", MISSING]
        return labels, order, {"kind": "bands", "edges": list(bins), "source": source}
    declared = contract.columns[attr].categories
    labels = col.astype("string").fillna(MISSING).astype(object)
    order = [str(c) for c in declared] if declared else sorted(set(labels) - {MISSING})
    extra = sorted(set(labels) - set(order) - {MISSING})
    return labels, [*order, *extra, MISSING], {"kind": "categorical", "source": "values"}


def _encode(labels: pd.Series, order: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes 0..k-1 over the labels that occur, in display order."""
    present = set(pd.unique(labels))
    used = [o for o in order if o in present]
    codes = pd.Categorical(labels, categories=used).codes.astype(np.int64)
    return codes, used


def build_groupings(df: pd.DataFrame, contract: Contract, policy: dict,
                    reference: pd.DataFrame | None = None) -> tuple[list[Grouping], list[Grouping]]:
    """(one grouping per sensitive attribute, one per requested pair of attributes)."""
    singles = {}
    for attr in contract.sensitive:
        lab, order, banding = attribute_labels(df, contract, attr, policy, reference)
        codes, used = _encode(lab, order)
        declared = [o for o in order if o != MISSING and not o.startswith(("<", ">"))]
        banding["absent"] = [o for o in declared if o not in used]
        singles[attr] = Grouping(attr, (attr,), [f"{attr}={u}" for u in used], codes, {attr: banding})
    crossed = []
    for a, b in intersection_pairs(list(contract.sensitive), policy.intersections):
        ga, gb = singles[a], singles[b]
        joint = ga.codes * len(gb.labels) + gb.codes
        present, codes = np.unique(joint, return_inverse=True)
        labels = [f"{ga.labels[j // len(gb.labels)]} & {gb.labels[j % len(gb.labels)]}" for j in present]
        crossed.append(Grouping(f"{a} x {b}", (a, b), labels, codes.astype(np.int64),
                                {a: ga.banding[a], b: gb.banding[b]}))
    return list(singles.values()), crossed


def intersection_pairs(attrs: list[str], spec) -> list[tuple[str, str]]:
    if spec in (None, "none", [], False):
        return []
    if spec == "all_pairs":
        return list(combinations(attrs, 2))
    pairs = []
    for pair in spec:
        if len(pair) != 2 or not set(pair) <= set(attrs):
            raise ValueError(f"fairness.intersections: {pair!r} must name two declared sensitive attributes")
        pairs.append((pair[0], pair[1]))
    return pairs
