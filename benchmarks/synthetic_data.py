"""Larger Taiwan-like frames: the bundled sample resampled with noise, still valid for its contract."""

from __future__ import annotations

from measure import SAMPLE

AMOUNT_PREFIXES = ("BILL_AMT", "PAY_AMT")
NOISE_RELATIVE = 0.01  # sigma = 1 % of the value ...
NOISE_ABSOLUTE = 1.0   # ... plus 1 NT dollar, so zero amounts move too


def load_sample():
    """(raw sample frame as read from CSV, contract)."""
    from z4_assets.core.contract import load_contract
    from z4_assets.core.z3 import read_table

    contract, _ = load_contract(SAMPLE / "contract.yaml")
    return read_table(SAMPLE / "data.csv"), contract


def resample(base, contract, rows: int, seed: int = 20251123):
    """ROWS rows drawn with replacement from BASE (seeded), amounts jittered, fresh unique ids.

    Returns BASE itself (copied) when ROWS equals its length. Amount columns get gaussian noise
    and are clipped to the contract's [min, max], so PAY_AMT* stays >= 0; every other column
    keeps a real row's values, so categories, ranges and dtypes stay valid for the contract.
    """
    import numpy as np

    if rows == len(base):
        return base.copy()
    rng = np.random.default_rng(seed)
    out = base.iloc[rng.integers(0, len(base), size=rows)].reset_index(drop=True)
    for col in out.columns:
        if not col.startswith(AMOUNT_PREFIXES):
            continue
        spec = contract.columns[col]
        v = out[col].to_numpy(dtype="float64")
        v = v + rng.standard_normal(rows) * (NOISE_RELATIVE * np.abs(v) + NOISE_ABSOLUTE)
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        out[col] = np.round(np.clip(v, lo, hi), 2)
    if contract.id_column:
        out[contract.id_column] = np.arange(1, rows + 1, dtype="int64")
    return out
