"""Load a trained model back from its evidence folder, refusing an artifact whose digest changed."""

from __future__ import annotations

from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import read_json
from z4_assets.core.run_folder import FILES
from z4_assets.core.training._features import FeatureSpec

CONFIG, FEATURE_SPEC = (FILES["model"][k] for k in ("config", "feature_spec"))


def load_model(model_dir: str | Path, expected_digest: str | None = None):
    """(scorer, FeatureSpec, model config) from a trained_model folder (or a package's model/).

    The scorer has predict_proba(x) -> P(positive), `family`, `attack` and, where the family is
    differentiable, `gradient_module` (torch). The artifact's digest must equal the one recorded at
    training time (and EXPECTED_DIGEST, the one its lineage names, when given); anything else (a
    missing file, a pickle, another artifact, tampered bytes) raises Z4Error naming the file.
    """
    from z4_assets.core.training._artifact import load_scorer

    d = Path(model_dir)
    paths = {name: d / name for name in (CONFIG, FEATURE_SPEC)}
    for p in paths.values():
        if not p.is_file():
            raise Z4Error("model file is missing", p)
    try:
        config, spec_doc = read_json(paths[CONFIG]), read_json(paths[FEATURE_SPEC])
    except ValueError as e:
        raise Z4Error(f"not valid JSON: {e}", d) from None
    spec = FeatureSpec.from_dict(spec_doc)
    if len(spec.output_names) != int(config["inputs"]):
        raise Z4Error(f"feature spec has {len(spec.output_names)} inputs, config says {config['inputs']}",
                      paths[FEATURE_SPEC])
    return load_scorer(d, config, expected_digest), spec, config
