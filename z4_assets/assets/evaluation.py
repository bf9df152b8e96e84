"""The evaluation group: the candidate under attack (security) and across protected groups (fairness)."""

import dagster as dg

from z4_assets.assets._stage import factory_asset, stage_run
from z4_assets.checks import materialize
from z4_assets.core.outcome import HygieneOutcome, ModelOutcome, SnapshotOutcome
from z4_assets.core.stages import FAIRNESS, SECURITY
from z4_assets.observability import observed
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker


@factory_asset(SECURITY, kinds={"pytorch", "matplotlib"})
@observed("snapshot")
def adversarial_eval(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome,
                     hygiene_report: HygieneOutcome, trained_model: ModelOutcome, policy: PolicyStore,
                     storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    from z4_assets.core.security import run_adversarial_eval

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_adversarial_eval(z3_snapshot, hygiene_report, trained_model, run)
        rec.record(outcome)
    return materialize(outcome, rec)


@factory_asset(FAIRNESS, kinds={"pandas", "matplotlib"})
@observed("snapshot")
def fairness_report(context: dg.AssetExecutionContext, z3_snapshot: SnapshotOutcome,
                    hygiene_report: HygieneOutcome, trained_model: ModelOutcome, policy: PolicyStore,
                    storage: FactoryStorage, mlflow: MlflowTracking, broker: SnapshotBroker):
    from z4_assets.core.fairness import run_fairness_report

    run = stage_run(context, z3_snapshot.snapshot, storage, policy, broker)
    with mlflow.stage(context, run.snapshot) as rec:
        outcome = run_fairness_report(z3_snapshot, hygiene_report, trained_model, run)
        rec.record(outcome)
    return materialize(outcome, rec)
