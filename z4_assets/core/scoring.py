"""Load a trained model from its evidence folder and score rows with it, checking its digest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from z4_assets.core.errors import Z4Error
from z4_assets.core.features import FeatureSpec
from z4_assets.core.files import read_json


def load_model(model_dir: str | Path):
    """(torch model in eval mode, feature spec); the weights must match the recorded digest."""
    import torch

    from z4_assets.core.training import build_mlp, state_dict_digest

    d = Path(model_dir)
    try:
        config = read_json(d / "model_config.json")
        spec = FeatureSpec.from_dict(read_json(d / "feature_spec.json"))
        state = torch.load(d / "weights.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise Z4Error(f"cannot load model: {e}", d) from None
    model = build_mlp(config["inputs"], list(config["hidden_sizes"]))
    model.load_state_dict(state)
    if state_dict_digest(model) != config["state_dict_sha256"]:
        raise Z4Error("weights do not match state_dict_sha256 in model_config.json", d / "weights.pt")
    model.eval()
    return model, spec


def score_rows(model_dir: str | Path, df: pd.DataFrame) -> np.ndarray:
    """P(positive) per row of df, as the trained model computes it (float32)."""
    from z4_assets.core.training import predict_proba

    model, spec = load_model(model_dir)
    return predict_proba(model, spec.transform(df))
