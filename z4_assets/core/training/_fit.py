"""From a clean snapshot and its split to a trained model, its metrics and its files on disk."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from z4_assets.core.contract import Contract
from z4_assets.core.training._features import FeatureSpec, fit_features
from z4_assets.core.files import atomic_write_bytes, atomic_write_json
from z4_assets.core.gates import Gate
from z4_assets.core.split import TEST, TRAIN, VALIDATION
from z4_assets.core.training._mlp import TrainResult, binary_metrics, predict_proba, train_mlp


@dataclass
class FitOutcome:
    spec: FeatureSpec
    train: TrainResult
    metrics: dict[str, dict]
    hyperparameters: dict
    test_labels: np.ndarray | None = None    # the test split's labels and scores, for the gates
    test_scores: np.ndarray | None = None


def fit_and_evaluate(df: pd.DataFrame, contract: Contract, split: np.ndarray, hp: dict,
                     monitor=None) -> FitOutcome:
    """Fit the feature spec on train, train the MLP (watched by `monitor`, if given), and score every split."""
    y = (df[contract.target.column] == contract.target.positive).to_numpy(dtype=np.int64)
    masks = {name: split == name for name in (TRAIN, VALIDATION, TEST)}
    spec = fit_features(df[masks[TRAIN]], contract)
    x = spec.transform(df)
    result = train_mlp(x[masks[TRAIN]], y[masks[TRAIN]], x[masks[VALIDATION]], y[masks[VALIDATION]], hp,
                       monitor)
    scores = {name: predict_proba(result.model, x[m]) for name, m in masks.items()}
    metrics = {name: binary_metrics(y[m], scores[name]) for name, m in masks.items()}
    return FitOutcome(spec, result, metrics, dict(hp), y[masks[TEST]], scores[TEST])


def performance_gates(outcome: FitOutcome, policy) -> list[Gate]:
    """performance_auc, performance_ks and operating_point on the test split (core/training/_gates.py)."""
    from z4_assets.core.training._gates import training_gates

    return training_gates(outcome.test_labels, outcome.test_scores, policy.performance,
                          {"validation_auc": outcome.metrics[VALIDATION]["auc"]})


def save_model(files, outcome: FitOutcome, contract: Contract) -> dict[str, Path]:
    """weights (torch state_dict), config, feature spec, metrics and history into the model folder
    (FILES: core/run_folder.py names them), each written atomically."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(outcome.train.model.state_dict(), buf)
    hp = outcome.hyperparameters
    files = {
        "weights": atomic_write_bytes(files.weights, buf.getvalue()),
        "config": atomic_write_json(files.config, {
            "architecture": "mlp", "inputs": len(outcome.spec.output_names),
            "hidden_sizes": list(hp["hidden_sizes"]), "outputs": 2, "activation": "relu",
            "hyperparameters": hp, "best_epoch": outcome.train.best_epoch,
            "schedule": outcome.train.schedule,
            "state_dict_sha256": outcome.train.digest, "target": contract.target.model_dump(),
            "torch": torch.__version__,
        }),
        "feature_spec": atomic_write_json(files.feature_spec, outcome.spec.to_dict()),
        "metrics": atomic_write_json(files.metrics, outcome.metrics),
        "history": atomic_write_json(files.history, outcome.train.history),
    }
    return files


def flat_metrics(metrics: dict[str, dict]) -> dict[str, float]:
    return {f"{split}_{k}": float(v) for split, m in metrics.items() for k, v in m.items()}


def describe(outcome: FitOutcome) -> str:
    return json.dumps({k: round(v["auc"], 4) for k, v in outcome.metrics.items()})


def tracking_record(hp: dict, outcome: FitOutcome, contract: Contract, split: np.ndarray,
                    rules) -> tuple[dict, dict, dict]:
    """What the training stage logs to MLflow: (params, metrics, tags)."""
    from z4_assets.core.provenance import hardware

    params = {**hp, "features": len(outcome.spec.output_names),
              "excluded_sensitive": sorted(set(contract.candidate_features) - set(contract.model_features))}
    tags = {"seed": hp["seed"], "state_dict_sha256": outcome.train.digest,
            "seeds": json.dumps({"train": hp["seed"], "split": rules.split.seed}),
            "split": json.dumps({"strategy": rules.split.strategy,
                                 "counts": {k: int((split == k).sum()) for k in (TRAIN, VALIDATION, TEST)},
                                 "policy": rules.split.model_dump()}),
            **hardware(hp["threads"])}
    return params, flat_metrics(outcome.metrics), tags
