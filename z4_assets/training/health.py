"""Training health as evidence: training_log.jsonl, MLflow step metrics, warnings, and the failure
of a diverged run (the MLflow run FAILED with the reason, the Dagster step failed with it)."""

from pathlib import Path

import dagster as dg

from z4_assets.core.training._monitor import log_health

LOG_FILE = "training_log.jsonl"
DIVERGED = "training_diverged"


def record_health(rec, monitor, out: Path) -> dict:
    """Write the log file and log steps, warnings and their kinds to MLflow; returns metadata."""
    path = log_health(rec, monitor, out, LOG_FILE)
    return {
        "training_log": dg.MetadataValue.path(str(path)),
        "training_warnings": dg.MetadataValue.json([{k: w[k] for k in ("kind", "epoch", "message")}
                                                    for w in monitor.warnings]),
        "training_epochs_run": dg.MetadataValue.int(len(monitor.records)),
    }


def fail_diverged(context: dg.AssetExecutionContext, mlflow, ref, monitor, out: Path, error) -> dg.Failure:
    """Record a NaN/inf loss in MLflow (run FAILED, reason tagged) and return the Failure to raise."""
    with mlflow.stage(context, ref) as rec:
        record_health(rec, monitor, out)
        rec.log(tags={"z4.training.failure": str(error), "training.failed_epoch": error.epoch})
        rec.artifact(out / LOG_FILE, "model")
        rec.blocked_by = DIVERGED
    return dg.Failure(description=str(error),
                      metadata={"failed_epoch": dg.MetadataValue.int(error.epoch),
                                "training_log": dg.MetadataValue.path(str(out / LOG_FILE)),
                                "mlflow_run_id": rec.run_id})
