"""Score rows with a trained model loaded from its evidence folder (digest checked by the loader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def score_rows(model_dir: str | Path, df: pd.DataFrame, expected_digest: str | None = None) -> np.ndarray:
    """P(positive) per row of df, as the exported artifact computes it."""
    from z4_assets.core.training._model_io import load_model

    scorer, spec, _ = load_model(model_dir, expected_digest)
    return scorer.predict_proba(spec.transform(df))
