"""Model families: which model the factory trains, chosen in a `model:` section, each with a typed
hyperparameter schema; and the plug-in protocol a user's own model follows.

A family is a factory `() -> model` whose model has five methods (the plug-in protocol):

    fit(x_train, y_train, x_val, y_val, hyperparameters) -> dict   # facts: best_epoch, history, ...
    predict_proba(x) -> array                 # P(positive) per row (n,) or sklearn's (n, 2)
    save(folder) -> path                      # writes ONE artifact: model.onnx or model.safetensors
    load(path) -> model                       # the saved artifact back, scoring as before
    digest() -> str                           # sha256 naming the fitted model (same fit -> same digest)

x is the FeatureSpec's float32 matrix (core/training/_features.py), y 0/1. The built-in families
are `logistic` (scikit-learn), `gbdt` (LightGBM) and `mlp` (torch). A plug-in is named by a dotted
path `package.module:factory`; it goes through every gate like a built-in one, and its code's
sha256 is recorded in the run record and the signed statement.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from z4_assets.core.errors import Z4Error

PROTOCOL = ("fit", "predict_proba", "save", "load", "digest")
ARTIFACT_SUFFIXES = (".onnx", ".safetensors")


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogisticHyperparameters(_Schema):
    C: float = Field(1.0, gt=0, description="Inverse L2 regularisation strength (scikit-learn's C)")
    max_iter: int = Field(1000, ge=1, description="Most lbfgs iterations")
    tol: float = Field(1e-6, gt=0, description="lbfgs stopping tolerance")
    class_weight: Literal["none", "balanced"] = Field("none", description="balanced: weigh classes inversely to their share")


class GbdtHyperparameters(_Schema):
    n_estimators: int = Field(200, ge=1, description="Boosting rounds (trees)")
    learning_rate: float = Field(0.05, gt=0, description="Shrinkage per tree")
    num_leaves: int = Field(31, ge=2, description="Most leaves per tree")
    max_depth: int = Field(-1, description="Deepest tree (-1: no limit)")
    min_child_samples: int = Field(20, ge=1, description="Fewest training rows in a leaf")
    reg_lambda: float = Field(0.0, ge=0, description="L2 regularisation on leaf values")
    class_weight: Literal["none", "balanced"] = Field("none", description="balanced: weigh classes inversely to their share")
    seed: int = Field(7, description="LightGBM seed (with deterministic=True and row-wise histograms)")
    threads: int = Field(1, ge=1, description="LightGBM threads (pinned)")


class MlpHyperparameters(_Schema):
    hidden_sizes: list[int] = Field([64, 32], description="Width of each hidden layer of the MLP")
    epochs: int | None = Field(None, description="Epoch cap; none (or \"auto\", where a null cannot be written, "
                                                 "as in a Dagster run config's map) = a budget scaled to the data")
    step_budget: int = Field(400, description="Optimizer steps the epoch budget aims at")
    min_epochs: int = Field(5, description="Fewest epochs the scaled budget gives")
    max_epochs: int = Field(200, description="Most epochs the scaled budget gives")
    patience: int = Field(10, description="Early stopping patience in epochs (0: off)")
    min_delta: float = Field(1e-4, description="Early stopping: a validation loss must drop by more than this")
    class_weight: str = Field("auto", description="auto, balanced or none")
    imbalance_below: float = Field(0.4, description="auto weighs classes when the minority share is below this")
    batch_size: int = Field(512, description="Mini-batch size")
    learning_rate: float = Field(2e-3, description="Adam learning rate")
    weight_decay: float = Field(1e-5, description="Adam weight decay (L2)")
    seed: int = Field(7, description="Seed for torch, numpy, random and the batch order")
    threads: int = Field(1, description="torch intra-op threads")

    @field_validator("epochs", mode="before")
    @classmethod
    def _auto_is_scaled(cls, v):
        return None if v == "auto" else v


SCHEMAS: dict[str, type[_Schema]] = {"logistic": LogisticHyperparameters, "gbdt": GbdtHyperparameters,
                                     "mlp": MlpHyperparameters}
FACTORIES = {"logistic": "z4_assets.core.training._onnx_families:LogisticModel",
             "gbdt": "z4_assets.core.training._onnx_families:GbdtModel",
             "mlp": "z4_assets.core.training._mlp_family:MlpModel"}
# Simplest first: the challenger table's tie-break when AUCs are within the policy's margin.
SIMPLICITY = ("logistic", "gbdt", "mlp")


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_hyperparameters(family: str, hp: dict[str, Any]) -> dict[str, Any]:
    """HP for FAMILY with its defaults filled in; a wrong key or value is one line naming it."""
    schema = SCHEMAS.get(family)
    if schema is None:  # a plug-in: its own keys, passed through as given
        return dict(hp)
    unknown = sorted(set(hp) - set(schema.model_fields))
    if unknown:
        raise Z4Error(f"model: unknown hyperparameter {unknown[0]!r} for family {family}"
                      f"{did_you_mean(unknown[0], schema.model_fields)}; known: {', '.join(schema.model_fields)}")
    try:
        return schema(**hp).model_dump()
    except ValidationError as e:
        err = e.errors()[0]
        raise Z4Error(f"model: hyperparameter {'.'.join(map(str, err['loc']))} of family {family}: {err['msg']}") from None


def describe_schemas() -> dict[str, dict[str, str]]:
    """family -> hyperparameter -> 'description (default X)', for the docs and `z4 families`."""
    return {f: {k: f"{v.description} (default {v.default!r})" for k, v in s.model_fields.items()}
            for f, s in SCHEMAS.items()}


@dataclass(frozen=True)
class Family:
    name: str                   # logistic, gbdt, mlp, or the plug-in's dotted path
    factory_path: str           # package.module:factory
    hyperparameters: dict
    builtin: bool
    code_sha256: str            # sha256 of the module source that defines the factory

    def new(self):
        return _resolve(self.factory_path)()

    def record(self) -> dict:
        return {"family": self.name, "factory": self.factory_path, "builtin": self.builtin,
                "code_sha256": self.code_sha256}


def _resolve(path: str):
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise Z4Error(f"model: family {path!r} is neither {', '.join(SCHEMAS)} nor a plug-in path package.module:factory"
                      f"{did_you_mean(path, SCHEMAS)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise Z4Error(f"model: cannot import plug-in module {module_name!r}: {e}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise Z4Error(f"model: plug-in {path!r} names no callable factory {attr!r}")
    return factory


def _code_digest(path: str) -> str:
    module = importlib.import_module(path.partition(":")[0])
    src = inspect.getsourcefile(module)
    return hashlib.sha256(Path(src).read_bytes()).hexdigest() if src else ""


def resolve_family(name: str, hp: dict | None = None) -> Family:
    """The family NAME (built-in or plug-in path) with its checked hyperparameters."""
    hp = dict(hp or {})
    if name in FACTORIES:
        return Family(name, FACTORIES[name], check_hyperparameters(name, hp), True, _code_digest(FACTORIES[name]))
    if ":" not in name:
        raise Z4Error(f"model: unknown family {name!r}{did_you_mean(name, SCHEMAS)}; built-in: "
                      f"{', '.join(SCHEMAS)}, or a plug-in path package.module:factory")
    model = _resolve(name)()
    missing = [m for m in PROTOCOL if not callable(getattr(model, m, None))]
    if missing:
        raise Z4Error(f"model: plug-in {name!r} lacks {', '.join(missing)} (the protocol: {', '.join(PROTOCOL)})")
    return Family(name, name, hp, False, _code_digest(name))


class ModelSection(_Schema):
    """The `model:` section of a dataset config or a run config."""

    family: str = Field("mlp", description="logistic, gbdt, mlp, or a plug-in package.module:factory")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="the family's hyperparameters")
    challengers: list[str] = Field(default_factory=list, description="other families trained on the same split "
                                   "for the challenger table")
    challenger_hyperparameters: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="a challenger's hyperparameters by its family (schema defaults otherwise)")

    def challenger_families(self) -> dict[str, Family]:
        """Each challenger (not the candidate's own family) with its checked hyperparameters: a wrong
        family or key is one line before anything trains."""
        stray = sorted(set(self.challenger_hyperparameters) - set(self.challengers))
        if stray:
            raise Z4Error(f"model: challenger_hyperparameters names {stray[0]!r}, which is not a challenger"
                          f"{did_you_mean(stray[0], self.challengers)}; challengers: {', '.join(self.challengers) or 'none'}")
        return {name: resolve_family(name, self.challenger_hyperparameters.get(name, {}))
                for name in dict.fromkeys(self.challengers) if name != self.family}


def model_section(run_config: dict | None, dataset_section: dict | None, legacy_mlp: dict | None = None) -> ModelSection:
    """The run config's `model:` over the dataset config's. For the mlp, its hyperparameters from lowest
    to highest: the run config's top-level keys left at their defaults (TrainConfig), the dataset
    config's `model.hyperparameters`, the run config's top-level keys set to another value, the run
    config's `model.hyperparameters`. So a dataset's pinned schedule holds unless a run asks otherwise."""
    dataset = dict(dataset_section or {})
    run = {k: v for k, v in (run_config or {}).items() if v not in (None, "", [], {})}
    for where, src in (("dataset config", dataset), ("run config", run)):
        for key in ("hyperparameters", "challenger_hyperparameters"):
            if src.get(key) is not None and not isinstance(src[key], dict):
                raise Z4Error(f"model: {key} in the {where} must be a mapping, got {type(src[key]).__name__}")
    same_family = run.get("family", dataset.get("family")) == dataset.get("family")
    dataset_hp = dict(dataset.get("hyperparameters") or {}) if same_family else {}  # another family: not its keys
    merged = {**dataset, **run}
    unknown = sorted(set(merged) - set(ModelSection.model_fields))
    if unknown:
        raise Z4Error(f"model: unknown key {unknown[0]!r}{did_you_mean(unknown[0], ModelSection.model_fields)}")
    merged["hyperparameters"] = {**dataset_hp, **dict(run.get("hyperparameters") or {})}
    merged["challenger_hyperparameters"] = {**dict(dataset.get("challenger_hyperparameters") or {}),
                                            **dict(run.get("challenger_hyperparameters") or {})}
    try:
        section = ModelSection(**merged)
    except ValidationError as e:
        err = e.errors()[0]
        raise Z4Error(f"model: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    if section.family == "mlp" and legacy_mlp:
        defaults = {k: f.default for k, f in MlpHyperparameters.model_fields.items()}
        legacy = {k: v for k, v in legacy_mlp.items() if k in defaults}
        explicit = {k: v for k, v in legacy.items() if v != defaults[k]}
        section = section.model_copy(update={"hyperparameters": {
            **legacy, **dataset_hp, **explicit, **dict(run.get("hyperparameters") or {})}})
    return section
