"""From a clean snapshot and its split to a trained model, its metrics and its files on disk."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.training._features import FeatureSpec, fit_features
from z4_assets.core.files import atomic_write_json
from z4_assets.core.gates import Gate
from z4_assets.core.split import TEST, TRAIN, VALIDATION
from z4_assets.core.errors import Z4Error
from z4_assets.core.files import sha256_file
from z4_assets.core.training._families import Family
from z4_assets.core.training._mlp import binary_metrics


@dataclass
class FitOutcome:
    spec: FeatureSpec
    family: Family
    model: object                  # the family's fitted model (the plug-in protocol)
    facts: dict                    # what fit() returned: best_epoch, history, schedule, scorecard...
    digest: str
    seconds: float
    metrics: dict[str, dict]
    hyperparameters: dict
    test_x: np.ndarray | None = None
    test_labels: np.ndarray | None = None    # the test split's labels and scores, for the gates
    test_scores: np.ndarray | None = None

    @property
    def history(self) -> list:
        return list(self.facts.get("history") or [])

    @property
    def train(self):
        """The mlp family's TrainResult (model, history, digest, schedule), as before families."""
        return getattr(self.model, "result", None)


def fit_and_evaluate(df: pd.DataFrame, contract: Contract, split: np.ndarray, family: Family | dict,
                     monitor=None) -> FitOutcome:
    """Fit the feature spec on train, the family's model (an mlp watched by `monitor`, if given), and
    score every split with the native model. FAMILY may be a plain dict of mlp hyperparameters (as
    before families; a `model` key, TrainConfig's section, is ignored)."""
    if isinstance(family, dict):
        from z4_assets.core.training._families import resolve_family

        family = resolve_family("mlp", {k: v for k, v in family.items() if k != "model"})
    y = (df[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    masks = {name: split == name for name in (TRAIN, VALIDATION, TEST)}
    spec = fit_features(df[masks[TRAIN]], contract)
    x = spec.transform(df)
    model = family.new()
    if monitor is not None and hasattr(model, "monitor"):
        model.monitor = monitor
    start = time.perf_counter()
    facts = model.fit(x[masks[TRAIN]], y[masks[TRAIN]], x[masks[VALIDATION]], y[masks[VALIDATION]],
                      dict(family.hyperparameters)) or {}
    seconds = time.perf_counter() - start
    scores = {name: _proba(model, x[m]) for name, m in masks.items()}
    metrics = {name: binary_metrics(y[m], scores[name]) for name, m in masks.items()}
    digest = str(model.digest())
    if len(digest) != 64:
        raise Z4Error(f"model family {family.name} returned a digest that is not a sha256 hex ({digest[:20]!r})")
    return FitOutcome(spec, family, model, dict(facts), digest, seconds, metrics, dict(family.hyperparameters),
                      x[masks[TEST]], y[masks[TEST]], scores[TEST])


def _proba(model, x: np.ndarray) -> np.ndarray:
    """P(positive) as a float64 vector, whether the model returns (n,) or sklearn's (n, 2)."""
    p = np.asarray(model.predict_proba(x), dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.shape != (len(x),):
        raise Z4Error(f"predict_proba returned shape {p.shape} for {len(x)} rows (wants ({len(x)},) or ({len(x)}, 2))")
    return p


def performance_gates(outcome: FitOutcome, policy, parity: Gate | None = None) -> list[Gate]:
    """performance_auc, performance_ks and operating_point on the test split (core/training/_gates.py),
    plus artifact_parity when given."""
    from z4_assets.core.training._gates import training_gates

    gates = training_gates(outcome.test_labels, outcome.test_scores, policy.performance,
                           {"validation_auc": outcome.metrics[VALIDATION]["auc"]})
    return gates + ([parity] if parity is not None else [])


def parity_gate(outcome: FitOutcome, artifact: Path, tolerance: float) -> tuple[Gate, dict]:
    """Score the test split with the saved artifact (onnxruntime or safetensors, through the family's
    load) and compare with the native scores."""
    from z4_assets.core.stages import TRAINING

    loaded = outcome.model.load(artifact)
    exported = _proba(loaded, outcome.test_x)
    diff = np.abs(exported - outcome.test_scores)
    worst = float(diff.max()) if len(diff) else 0.0
    facts = {"artifact": artifact.name, "rows": int(len(diff)), "max_abs_diff": worst,
             "mean_abs_diff": float(diff.mean()) if len(diff) else 0.0,
             "rows_over_tolerance": int((diff > tolerance).sum()), "tolerance": tolerance}
    if not len(diff):
        return TRAINING.gate.artifact_parity.insufficient("no test rows to compare the artifact on", "<=",
                                                          tolerance, True, facts), facts
    return TRAINING.gate.artifact_parity.compare(
        round(worst, 12), "<=", tolerance,
        f"largest |{artifact.name} score - native score| on {len(diff)} test rows", facts), facts


def save_model(files, outcome: FitOutcome, contract: Contract, challengers: dict | None = None) -> dict[str, Path]:
    """The artifact (ONNX or safetensors: never a pickle), config, feature spec, metrics and history
    into the model folder (FILES: core/run_folder.py names them), each written atomically."""
    from z4_assets.core.training._artifact import ALLOWED_ARTIFACTS, looks_like_pickle

    files.dir.mkdir(parents=True, exist_ok=True)
    artifact = Path(outcome.model.save(files.dir))
    if artifact.parent != files.dir or artifact.name not in ALLOWED_ARTIFACTS or looks_like_pickle(artifact):
        raise Z4Error(f"model family {outcome.family.name} saved {artifact.name}: the factory ships only "
                      f"{' or '.join(ALLOWED_ARTIFACTS)} (no pickle), in the model folder", artifact)
    config = {
        "family": outcome.family.name, "artifact": artifact.name,
        "attack": getattr(outcome.model, "attack", None),
        "scoring": _scoring_recipe(artifact.name),
        "inputs": len(outcome.spec.output_names), "outputs": 2,
        "hyperparameters": outcome.hyperparameters, "best_epoch": outcome.facts.get("best_epoch"),
        "schedule": outcome.facts.get("schedule", {}),
        "state_dict_sha256": outcome.digest,
        "digest_of": "state_dict tensors (name, dtype, shape, bytes)" if artifact.suffix == ".safetensors"
                     else f"sha256 of {artifact.name}",
        "artifact_sha256": sha256_file(artifact),
        "target": contract.target.model_dump(), "code": outcome.family.record(),
    }
    if outcome.family.name == "mlp":
        import torch

        config |= {"architecture": "mlp", "hidden_sizes": list(outcome.hyperparameters["hidden_sizes"]),
                   "activation": "relu", "torch": torch.__version__}
    if challengers:
        config["challengers"] = challengers
    if "coefficients" in outcome.facts:
        config["scorecard"] = {"features": outcome.spec.output_names, "coefficients": outcome.facts["coefficients"],
                               "intercept": outcome.facts["intercept"]}
    return {
        "weights" if artifact.suffix == ".safetensors" else "onnx": artifact,
        "config": atomic_write_json(files.config, config),
        "feature_spec": atomic_write_json(files.feature_spec, outcome.spec.to_dict()),
        "metrics": atomic_write_json(files.metrics, outcome.metrics),
        "history": atomic_write_json(files.history, outcome.history),
    }


def _scoring_recipe(artifact: str) -> dict:
    """How to score with the package alone, no factory code needed."""
    steps = ["read feature_spec.json; per column: numeric -> (value, nulls -> median) - mean) / std, plus a "
             "0/1 null indicator when listed; categorical -> one-hot over `categories` (__null__, __other__)",
             "stack the columns in output_names order as float32 [rows, inputs]"]
    if artifact.endswith(".onnx"):
        steps.append("onnxruntime: run model.onnx with input 'x'; output 1 is [rows, 2] probabilities, column 1 "
                     "is P(positive)")
    else:
        steps.append("safetensors: load the tensors; header metadata gives inputs and hidden_sizes of "
                     "Linear-ReLU layers ending in 2 logits; P(positive) = softmax(logits)[:, 1]")
    return {"runtime": "onnxruntime" if artifact.endswith(".onnx") else "safetensors+torch", "steps": steps}


def flat_metrics(metrics: dict[str, dict]) -> dict[str, float]:
    return {f"{split}_{k}": float(v) for split, m in metrics.items() for k, v in m.items()}


def describe(outcome: FitOutcome) -> str:
    return json.dumps({k: round(v["auc"], 4) for k, v in outcome.metrics.items()})


def tracking_record(hp: dict, outcome: FitOutcome, contract: Contract, split: np.ndarray,
                    rules) -> tuple[dict, dict, dict]:
    """What the training stage logs to MLflow: (params, metrics, tags)."""
    from z4_assets.core.provenance import hardware

    params = {**hp, "model_family": outcome.family.name, "features": len(outcome.spec.output_names),
              "excluded_sensitive": sorted(set(contract.candidate_features) - set(contract.model_features))}
    tags = {"seed": hp.get("seed", "none"), "state_dict_sha256": outcome.digest,
            "model_family": outcome.family.name, "model_code_sha256": outcome.family.code_sha256,
            "seeds": json.dumps({"train": hp.get("seed"), "split": rules.split.seed}),
            "split": json.dumps({"strategy": rules.split.strategy,
                                 "counts": {k: int((split == k).sum()) for k in (TRAIN, VALIDATION, TEST)},
                                 "policy": rules.split.model_dump()}),
            **hardware(int(hp.get("threads", 1)))}
    return params, flat_metrics(outcome.metrics), tags
