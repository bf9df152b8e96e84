"""The model group: the candidate model, trained reproducibly on its snapshot's clean split."""

import dagster as dg
from pydantic import Field

from z4_assets.assets._stage import factory_asset, stage_run
from z4_assets.checks import materialize
from z4_assets.core.outcome import HygieneOutcome, SnapshotOutcome
from z4_assets.core.stages import TRAINING
from z4_assets.observability import observed
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker


class TrainConfig(dg.Config):
    hidden_sizes: list[int] = Field([64, 32], description="Width of each hidden layer of the MLP")
    epochs: int = Field(8, description="Training epochs; the epoch with the best validation AUC is kept")
    batch_size: int = Field(512, description="Mini-batch size")
    learning_rate: float = Field(2e-3, description="Adam learning rate")
    weight_decay: float = Field(1e-5, description="Adam weight decay (L2)")
    seed: int = Field(7, description="Seed for torch, numpy, random and the batch order")
    threads: int = Field(1, description="torch intra-op threads (pinned; 1 avoids oversubscribing a shared 2-core box)")


@factory_asset(TRAINING, kinds={"pytorch"})
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
