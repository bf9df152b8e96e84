"""Output integrity: scores are finite probabilities, stay so on any valid input, and are not degenerate."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.training import FeatureSpec
from z4_assets.core.security._art_model import proba


def _range(contract: Contract, name: str, observed: pd.Series) -> tuple[float, float]:
    spec = contract.columns[name]
    v = observed.to_numpy(dtype="float64", na_value=np.nan)
    v = v[np.isfinite(v)]
    lo = spec.min if spec.min is not None else (float(v.min()) if v.size else 0.0)
    hi = spec.max if spec.max is not None else (float(v.max()) if v.size else 0.0)
    return float(lo), float(hi)


def perturbed_rows(rows: pd.DataFrame, contract: Contract, observed: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Three copies of ROWS with every model feature redrawn inside its valid range.

    Copy 1: uniform values; copy 2: every numeric at its minimum; copy 3: at its maximum.
    Categories are drawn from the contract's list (else the observed values), nulls where allowed.
    """
    rng = np.random.default_rng(seed)
    copies = [rows.copy() for _ in range(3)]
    n = len(rows)
    for name in contract.model_features:
        spec = contract.columns[name]
        if contract.is_categorical(name):
            values = list(spec.categories) if spec.categories is not None else \
                observed[name].dropna().unique().tolist()
            if spec.nullable:
                values.append(None)
            for c in copies:
                c[name] = pd.Series([values[i] for i in rng.integers(0, len(values), n)],
                                    index=rows.index, dtype=object)
            continue
        lo, hi = _range(contract, name, observed[name])
        draw = rng.uniform(lo, hi, n)
        if spec.dtype == "integer":
            draw = np.round(draw)
        for c, v in zip(copies, (draw, np.full(n, lo), np.full(n, hi))):
            c[name] = v
    return pd.concat(copies, ignore_index=True)


def output_integrity(model, spec: FeatureSpec, contract: Contract, test_rows: pd.DataFrame,
                     observed: pd.DataFrame, cfg: dict, seed: int) -> dict:
    start = time.perf_counter()
    p = proba(model, spec.transform(test_rows))
    pert = proba(model, spec.transform(perturbed_rows(test_rows, contract, observed, seed)))
    finite = np.isfinite(p)
    distinct = int(len(np.unique(np.round(p[finite], 6))))
    std = float(p[finite].std()) if finite.any() else 0.0
    checks = {
        "scores_finite": {"measured": int((~finite).sum()), "rule": "non-finite test scores == 0"},
        "scores_in_unit_interval": {"measured": int(((p < 0) | (p > 1)).sum()),
                                    "rule": "test scores outside [0, 1] == 0"},
        "perturbed_scores_finite": {"measured": int((~np.isfinite(pert) | (pert < 0) | (pert > 1)).sum()),
                                    "rule": "scores on valid perturbed rows that are not finite in [0, 1] == 0"},
        "distinct_scores": {"measured": distinct, "threshold": int(cfg.min_distinct_scores),
                            "rule": f"distinct test scores (6 decimals) >= {cfg.min_distinct_scores}"},
        "score_std": {"measured": round(std, 6), "threshold": float(cfg.min_score_std),
                      "rule": f"std of test scores >= {cfg.min_score_std}"},
    }
    checks["scores_finite"]["passed"] = checks["scores_finite"]["measured"] == 0
    checks["scores_in_unit_interval"]["passed"] = checks["scores_in_unit_interval"]["measured"] == 0
    checks["perturbed_scores_finite"]["passed"] = checks["perturbed_scores_finite"]["measured"] == 0
    checks["distinct_scores"]["passed"] = distinct >= int(cfg.min_distinct_scores)
    checks["score_std"]["passed"] = std >= float(cfg.min_score_std)
    fin = p[finite]
    return {
        "test_rows": int(len(p)), "perturbed_rows": int(len(pert)), "checks": checks,
        "failed_checks": sorted(k for k, v in checks.items() if not v["passed"]),
        "score_summary": {"min": float(fin.min()) if fin.size else None,
                          "max": float(fin.max()) if fin.size else None,
                          "mean": float(fin.mean()) if fin.size else None},
        "seconds": round(time.perf_counter() - start, 3),
    }
