"""Train/validation/test assignment that is stable, seeded, and keeps identical rows together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract

TRAIN, VALIDATION, TEST = "train", "validation", "test"


def row_hashes(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A uint64 hash per row over the given columns (order-sensitive, index-free)."""
    return pd.util.hash_pandas_object(df[columns], index=False).to_numpy(dtype=np.uint64)


def _uniform(keys: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of key ^ seed, mapped to [0, 1): the same key always lands in the same place."""
    with np.errstate(over="ignore"):
        z = keys.astype(np.uint64) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64))
        z = (z + np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_split(df: pd.DataFrame, contract: Contract, policy: dict,
                 feature_hash: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Return (split label per row, strategy used)."""
    test_f, val_f = float(policy.test_fraction), float(policy.validation_fraction)
    strategy = policy.strategy
    if strategy == "auto":
        strategy = "time" if contract.time else "hash"
    labels = np.full(len(df), TRAIN, dtype=object)
    if strategy == "time":
        if not contract.time:
            raise ValueError("split strategy 'time' needs a time column in the contract")
        t = pd.to_datetime(df[contract.time.column]).to_numpy()
        order = np.argsort(t, kind="stable")
        rank = np.empty(len(df), dtype=np.float64)
        rank[order] = np.arange(len(df)) / max(len(df), 1)
        labels[rank >= 1 - test_f] = TEST
        labels[(rank >= 1 - test_f - val_f) & (rank < 1 - test_f)] = VALIDATION
        return labels, "time"
    if policy.key == "id" and contract.id_column:
        keys = row_hashes(df, [contract.id_column])
        strategy = "hash(id)"
    else:
        keys = feature_hash if feature_hash is not None else row_hashes(df, contract.candidate_features)
        strategy = "hash(content)"
    u = _uniform(keys, int(policy.seed))
    labels[u < test_f + val_f] = VALIDATION
    labels[u < test_f] = TEST
    return labels, strategy


def load_split(path, rows: int, sha256: str | None = None):
    """The split column (row -> train/validation/test) the hygiene stage wrote; refused when it is
    missing, was changed since (SHA256 given), or does not fit the snapshot's rows."""
    from z4_assets.core.errors import Z4Error
    from z4_assets.core.files import sha256_file

    p = Path(path)
    if not p.is_file():
        raise Z4Error("the row split is missing (an intermediate, kept 7 days: materialize hygiene_report again)", p)
    if sha256 and sha256_file(p) != sha256:
        raise Z4Error("the row split differs from the one its hygiene report recorded", p)
    frame = pd.read_parquet(p)
    if len(frame) != rows:
        raise Z4Error(f"split has {len(frame)} rows, snapshot has {rows}", p)
    return frame.sort_values("row")["split"].to_numpy(dtype=object)
