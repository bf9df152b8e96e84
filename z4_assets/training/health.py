"""Training health as evidence: training_log.jsonl, MLflow step metrics, warnings, and the failure
of a diverged run (the MLflow run FAILED with the reason, the Dagster step failed with it)."""

import json
from pathlib import Path

import dagster as dg

LOG_FILE = "training_log.jsonl"
DIVERGED = "training_diverged"


def record_health(rec, monitor, out: Path) -> dict:
    """Write the log file and log steps, warnings and their kinds to MLflow; returns metadata."""
    path = monitor.write_jsonl(out / LOG_FILE)
    rec.log_steps(monitor.step_metrics())
    kinds = [w["kind"] for w in monitor.warnings]
    norms = [r["grad_norm_max"] for r in monitor.records]
    rec.log(metrics={"training.warnings": len(kinds),
                     **{f"training.warning.{k}": kinds.count(k) for k in ("exploding_gradient", "no_improvement")},
                     "training.grad_norm_max": max(norms) if norms else 0.0},
            tags={"training.warnings": ",".join(sorted(set(kinds))) or "none",
                  **({"training.warning_messages": json.dumps([f"epoch {w['epoch']}: {w['message']}"
                                                               for w in monitor.warnings])} if kinds else {})})
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
