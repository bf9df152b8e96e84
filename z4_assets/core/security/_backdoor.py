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
