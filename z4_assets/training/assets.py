"""trained_model: a reproducible torch model on the clean split, gated on test AUC and KS."""



import dagster as dg
from pydantic import Field

from z4_assets.checks import blocking_specs, check_results, first_failure
from z4_assets.observability import observed
from z4_assets.training.health import fail_diverged, record_health
from z4_assets.core.contract import load_contract
from z4_assets.core.files import atomic_write_json
from z4_assets.core.refs import StageEvidence
from z4_assets.core.z3 import SnapshotRef
from z4_assets.resources import FactoryStorage, MlflowTracking, PolicyStore, SnapshotBroker

CHECKS = {
    "performance_auc": "Test-split AUC reaches the policy minimum.",
    "performance_ks": "Test-split KS reaches the policy minimum.",
}


class TrainConfig(dg.Config):
    hidden_sizes: list[int] = Field([64, 32], description="Width of each hidden layer of the MLP")
    epochs: int = Field(8, description="Training epochs; the epoch with the best validation AUC is kept")
    batch_size: int = Field(512, description="Mini-batch size")
    learning_rate: float = Field(2e-3, description="Adam learning rate")
    weight_decay: float = Field(1e-5, description="Adam weight decay (L2)")
    seed: int = Field(7, description="Seed for torch, numpy, random and the batch order")
    threads: int = Field(1, description="torch intra-op threads (pinned; 1 avoids oversubscribing a shared 2-core box)")


@dg.asset(group_name="training", kinds={"pytorch"}, code_version="1",
          check_specs=blocking_specs("trained_model", CHECKS))
@observed("snapshot")
def trained_model(context: dg.AssetExecutionContext, config: TrainConfig, z3_snapshot: SnapshotRef,
                  hygiene_report: StageEvidence, policy: PolicyStore, storage: FactoryStorage,
                  mlflow: MlflowTracking, broker: SnapshotBroker):
    """The candidate model: weights, feature spec and metrics, with a bit-exact weights digest."""
    from z4_assets.core.training._fit import (fit_and_evaluate, load_split, performance_gates, save_model,
                                          tracking_record)
    from z4_assets.core.training._monitor import TrainingDiverged, TrainingMonitor

    ref = z3_snapshot
    contract, _ = load_contract(ref.contract_path)
    rules = policy.for_dataset(ref.dataset_id)
    df = broker.read(context, ref, contract)
    split = load_split(hygiene_report.files["split"], len(df))
    hp = config.model_dump()
    monitor = TrainingMonitor(rules["training"], {"dagster_run_id": context.run_id, "snapshot_id": ref.label})
    try:
        outcome = fit_and_evaluate(df, contract, split, hp, monitor)
    except TrainingDiverged as e:  # NaN/inf loss: the run stops here, naming the epoch
        raise fail_diverged(context, mlflow, ref, monitor, storage.run_dir(context.run_id, "model"), e) from None
    gates = performance_gates(outcome, rules)
    out = storage.run_dir(context.run_id, "model")
    save_model(out, outcome, contract)
    atomic_write_json(out / "gates.json", [g.as_dict() for g in gates])

    with mlflow.stage(context, ref) as rec:
        health = record_health(rec, monitor, out)  # training_log.jsonl, step metrics, warnings
        params, metrics, tags = tracking_record(hp, outcome, contract, split, rules)
        rec.log(params=params, metrics=metrics, tags=tags)
        rec.artifacts(out, "model")
        rec.blocked_by = first_failure(gates)

    test = outcome.metrics["test"]
    return dg.MaterializeResult(
        value=StageEvidence("model", str(out), all(g.passed for g in gates),
                            {"weights": str(out / "weights.pt"), "digest": outcome.train.digest}),
        metadata={
            "state_dict_sha256": outcome.train.digest,
            "test_auc": dg.MetadataValue.float(test["auc"]),
            "test_ks": dg.MetadataValue.float(test["ks"]),
            "train_seconds": dg.MetadataValue.float(round(outcome.train.seconds, 3)),
            "model_dir": dg.MetadataValue.path(str(out)), "mlflow_run_id": rec.run_id,
            **health,
        },
        check_results=check_results(gates),
    )
