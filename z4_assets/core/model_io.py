"""Load a trained model back from its files: weights, architecture config and feature spec."""

from __future__ import annotations

import io
import json
from pathlib import Path

from z4_assets.core.features import FeatureSpec


def load_model(model_dir: str | Path):
    """(torch module in eval mode, FeatureSpec, config dict) from a model/ folder."""
    import torch

    from z4_assets.core.training import build_mlp, state_dict_digest

    d = Path(model_dir)
    config = json.loads((d / "model_config.json").read_text())
    spec = FeatureSpec.from_dict(json.loads((d / "feature_spec.json").read_text()))
    model = build_mlp(config["inputs"], config["hidden_sizes"])
    state = torch.load(io.BytesIO((d / "weights.pt").read_bytes()), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    if state_dict_digest(model) != config["state_dict_sha256"]:
        raise ValueError(f"{d / 'weights.pt'}: weights do not match the recorded state_dict digest")
    return model, spec, config
