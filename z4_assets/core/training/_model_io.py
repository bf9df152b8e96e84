"""Load a trained model back from its evidence folder, refusing weights whose digest changed."""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.training._features import FeatureSpec
from z4_assets.core.files import read_json

from z4_assets.core.run_folder import FILES

WEIGHTS, CONFIG, FEATURE_SPEC = (FILES["model"][k] for k in ("weights", "config", "feature_spec"))


def load_model(model_dir: str | Path, expected_digest: str | None = None):
    """(torch module in eval mode, FeatureSpec, model config) from a trained_model folder.

    The state_dict's sha256 must equal the digest recorded at training time (and the one
    its lineage names, EXPECTED_DIGEST, when given); anything else
    (a missing file, another architecture, tampered weights) raises Z4Error naming the file.
    """
    import torch

    from z4_assets.core.training._mlp import build_mlp, state_dict_digest

    d = Path(model_dir)
    paths = {name: d / name for name in (WEIGHTS, CONFIG, FEATURE_SPEC)}
    for p in paths.values():
        if not p.is_file():
            raise Z4Error("model file is missing", p)
    try:
        config, spec_doc = read_json(paths[CONFIG]), read_json(paths[FEATURE_SPEC])
    except ValueError as e:
        raise Z4Error(f"not valid JSON: {e}", d) from None
    if config.get("architecture") != "mlp":
        raise Z4Error(f"unsupported architecture {config.get('architecture')!r}", paths[CONFIG])
    spec = FeatureSpec.from_dict(spec_doc)
    if len(spec.output_names) != int(config["inputs"]):
        raise Z4Error(f"feature spec has {len(spec.output_names)} inputs, config says {config['inputs']}",
                      paths[FEATURE_SPEC])
    model = build_mlp(int(config["inputs"]), list(config["hidden_sizes"]))
    try:
        state = torch.load(paths[WEIGHTS], map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Z4Error(f"cannot load weights: {first}", paths[WEIGHTS]) from None
    digest = state_dict_digest(model)
    if digest != config.get("state_dict_sha256"):
        raise Z4Error(f"weights digest {digest[:16]}... differs from the recorded "
                      f"{str(config.get('state_dict_sha256'))[:16]}...", paths[WEIGHTS])
    if expected_digest and digest != expected_digest:
        raise Z4Error(f"weights digest {digest[:16]}... differs from the {expected_digest[:16]}... this "
                      "lineage was built on", paths[WEIGHTS])
    model.eval()
    return model, spec, config
