"""Plant a tabular backdoor into a frame: for fire drills of the poisoning screen, tests and benchmarks.

A backdoor here is what the screen must catch: on `share` of the rows, drawn (seeded) from the
rows whose label is `source_positive`, a few features are set to a fixed pattern and the label
is flipped. The value "max" or "min" means the column's observed extreme.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract


def plant_backdoor(df: pd.DataFrame, contract: Contract, pattern: dict, share: float,
                   source_positive: bool, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(poisoned copy of DF, positions of the poisoned rows)."""
    target = contract.target
    rng = np.random.default_rng(seed)
    is_pos = (df[target.column] == target.positive).to_numpy()
    pool = np.flatnonzero(is_pos == source_positive)
    n = int(round(share * len(df)))
    if n > len(pool):
        raise ValueError(f"cannot poison {n} rows: only {len(pool)} carry the source label")
    rows = np.sort(rng.choice(pool, n, replace=False))
    out = df.copy()
    for col, value in pattern.items():
        if value in ("max", "min"):
            value = getattr(df[col], value)()
        out.iloc[rows, out.columns.get_loc(col)] = value
    labels = contract.columns[target.column].categories or []
    other = next((v for v in labels if v != target.positive), None)
    if other is None:
        raise ValueError(f"target {target.column!r} needs declared categories to flip a label")
    out.iloc[rows, out.columns.get_loc(target.column)] = other if source_positive else target.positive
    return out, rows


def generic_designs(df: pd.DataFrame, contract: Contract) -> dict:
    """Two trigger designs for any table, chosen from its columns without looking at the screen:
    `two_extremes` sets the two model features with the most distinct numeric values to their observed
    maximum; `category_and_odd_value` sets a low-cardinality feature (<= 20 values) to its rarest value
    and the most varied remaining numeric feature to a value the data never holds. Each flips the label
    away from the larger class (two_extremes) or the smaller one (category_and_odd_value).
    name -> (pattern, source_positive)."""
    target = contract.target
    feats = [c for c in contract.model_features if c != target.column]
    numeric = [c for c in feats if pd.api.types.is_numeric_dtype(df[c])]
    varied = sorted(numeric, key=lambda c: (-df[c].nunique(), c))
    low = sorted((c for c in feats if 2 <= df[c].nunique() <= 20), key=lambda c: (-df[c].nunique(), c))
    positive_share = float((df[target.column] == target.positive).mean())
    larger = positive_share >= 0.5
    out = {}
    if len(varied) >= 2:
        out["two_extremes"] = ({varied[0]: "max", varied[1]: "max"}, larger)
    if low and len(varied) >= 1:
        cat = low[0]
        rare = df[cat].value_counts().sort_index(kind="stable").idxmin()
        num = next(c for c in varied if c != cat)
        odd = float(df[num].max()) + 0.5 * float(df[num].std() or 1.0) + 0.37
        odd = round(odd) + 0.0 if pd.api.types.is_integer_dtype(df[num]) else round(odd, 2)
        out["category_and_odd_value"] = ({cat: rare.item() if hasattr(rare, "item") else rare,
                                          num: int(odd) if pd.api.types.is_integer_dtype(df[num]) else odd},
                                         not larger)
    return out
