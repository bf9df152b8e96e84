"""The model group: the candidate model, trained reproducibly on its snapshot's clean split."""

import dagster as dg
from typing import Any

from pydantic import Field

from z4_assets.assets._stage import factory_asset, stage_run
from z4_assets.checks import materialize
from z4_assets.core.outcome import HygieneOutcome, SnapshotOutcome
from z4_assets.core.stages import TRAINING
from z4_assets.observability import observed
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker


class ModelConfig(dg.Config):
    """The run config's `model:` section; empty keys fall back to the dataset config's, then to mlp."""

    family: str = Field("", description="logistic, gbdt, mlp, or a plug-in package.module:factory "
                                        "(empty: the dataset config's model.family, else mlp)")
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="the family's hyperparameters "
                                            "(docs/model-families.md lists each family's schema)")
    challengers: list[str] = Field(default_factory=list, description="other families trained on the same split "
                                   "for the challenger table in the model card")
    challenger_hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="a challenger's hyperparameters by its family, e.g. "
        "{gbdt: {num_leaves: 15}} (schema defaults otherwise)")


class TrainConfig(dg.Config):
    """The mlp's hyperparameters; the defaults train to convergence (core.training.CONVERGED: an epoch
    budget scaled to the data, early stopping with patience 10, class weights for an imbalanced target).
    A key set here to another value wins over a dataset config's `model.hyperparameters`, which wins
    over a key left at its default (core/training/_families.py, model_section)."""

    hidden_sizes: list[int] = Field([64, 32], description="Width of each hidden layer of the MLP")
    epochs: int | None = Field(None, description="Epoch cap; none = a budget scaled to the data (step_budget)")
    step_budget: int = Field(400, description="Optimizer steps the epoch budget aims at: ceil(steps / batches per epoch)")
    min_epochs: int = Field(5, description="Fewest epochs the scaled budget gives")
    max_epochs: int = Field(200, description="Most epochs the scaled budget gives")
    patience: int = Field(10, description="Early stopping: epochs without a lower validation loss before it stops (0: off)")
    min_delta: float = Field(1e-4, description="Early stopping: a validation loss must drop by more than this")
    class_weight: str = Field("auto", description="auto (balanced below imbalance_below), balanced or none")
    imbalance_below: float = Field(0.4, description="auto weighs classes when the minority share is below this")
    batch_size: int = Field(512, description="Mini-batch size")
    learning_rate: float = Field(2e-3, description="Adam learning rate")
    weight_decay: float = Field(1e-5, description="Adam weight decay (L2)")
    seed: int = Field(7, description="Seed for torch, numpy, random and the batch order")
    threads: int = Field(1, description="torch intra-op threads (pinned; 1 avoids oversubscribing a shared 2-core box)")
    model: ModelConfig = Field(default_factory=ModelConfig, description="model family (the mlp keys above are "
                               "the mlp family's defaults)")


@factory_asset(TRAINING, kinds={"pytorch", "scikitlearn", "onnx"})
@observed("snapshot")
def trained_model(context: dg.AssetExecutionContext, config: TrainConfig, z3_snapshot: SnapshotOutcome,
                  hygiene_report: HygieneOutcome, policy: PolicyStore, storage: FactoryStorage,
                  mlflow: MlflowTracking, broker: SnapshotBroker):
    from z4_assets.core.training import run_trained_model

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_trained_model(z3_snapshot, hygiene_report, run, config.model_dump())
        rec.record(outcome)
    return materialize(outcome, rec)
