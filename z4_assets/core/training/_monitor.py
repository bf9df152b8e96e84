"""Training health, one structured record per epoch: a NaN/inf loss stops the run, an exploding
gradient or a stalled validation metric is warned about and recorded.

Records go to the `z4_assets.core.training._monitor` logger as one line each, readable text then
the JSON payload, so a log shipper can parse everything after the first `{`. The Dagster side
forwards them to the run's logs; `records` and `warnings` stay on the monitor for the evidence
file (training_log.jsonl) and MLflow step metrics.

`peak_rss_mib` is `ru_maxrss`: inside a step measured by core.cost.measure() that is the step's own
peak so far (measure() resets the kernel's high-water mark), otherwise the process-lifetime peak.
`grad_norm_max`/`grad_norm_mean` are over the epoch's batches, the L2 norm of all gradients taken
before each optimizer step.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from z4_assets.core.errors import Z4Error
from z4_assets.core.files import atomic_write_text

log = logging.getLogger(__name__)

STEP_METRICS = ("train_loss", "val_auc", "learning_rate", "seconds", "rows_per_s", "peak_rss_mib",
                "grad_norm_max", "grad_norm_mean")


class TrainingDiverged(Z4Error):
    """The loss became NaN or infinite: the model is unusable and the run must stop.

    `blocked_by` and `tags` say so in the run's MLflow record (core/tracking.open_stage logs them, with
    the `steps` and `artifacts` the training stage adds: the epochs run and training_log.jsonl)."""

    blocked_by = "training_diverged"

    def __init__(self, epoch: int, epochs: int, loss: float):
        self.epoch, self.loss = epoch, loss
        super().__init__(f"training diverged at epoch {epoch}/{epochs}: train loss is {loss} "
                         "(NaN/inf); lower the learning rate or check the features' scale")
        self.tags = {"z4.training.failure": str(self), "training.failed_epoch": str(epoch)}


def _num(v):
    """JSON has no NaN/inf: write them as strings so the line stays valid JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _fmt_rate(v: float) -> str:
    return f"{v / 1000:.0f}k" if v >= 1000 else f"{v:.0f}"


def readable(r: dict) -> str:
    auc = "n/a" if r["val_auc"] is None else f"{r['val_auc']:.4f}"
    return (f"epoch {r['epoch']}/{r['epochs']} loss={r['train_loss']:.4f} val_auc={auc} "
            f"lr={r['learning_rate']:.3g} {r['seconds']:.2f}s {_fmt_rate(r['rows_per_s'])} rows/s "
            f"rss={r['peak_rss_mib']:.0f}MiB grad_norm={r['grad_norm_max']:.3g}")


class TrainingMonitor:
    """Receives each epoch's numbers from train_mlp, checks them against the policy, emits records.

    policy: the policy's TrainingPolicy section (max_grad_norm, patience_epochs, min_delta).
    ids: fields put on every record (dagster_run_id, snapshot_id) so records can be joined.
    """

    def __init__(self, policy, ids: dict | None = None):
        self.max_grad_norm = float(policy.max_grad_norm)
        self.patience = int(policy.patience_epochs)
        self.min_delta = float(policy.min_delta)
        if not (self.max_grad_norm > 0 and self.patience >= 1 and self.min_delta >= 0):
            raise Z4Error("policy 'training' needs max_grad_norm > 0, patience_epochs >= 1 and "
                          f"min_delta >= 0; got {policy!r}")
        self.ids = dict(ids or {})
        self.records: list[dict] = []
        self.warnings: list[dict] = []
        self.failure: str | None = None
        self._best, self._best_epoch = -math.inf, 0

    def epoch(self, *, epoch: int, epochs: int, train_loss: float, val_auc: float | None,
              learning_rate: float, seconds: float, rows: int, peak_rss_kib: int,
              grad_norm_max: float, grad_norm_mean: float) -> dict:
        record = {"event": "epoch", **self.ids, "epoch": epoch, "epochs": epochs, "train_loss": train_loss,
                  "val_auc": val_auc, "learning_rate": learning_rate, "seconds": round(seconds, 4),
                  "rows": rows, "rows_per_s": round(rows / seconds, 1) if seconds > 0 else 0.0,
                  "peak_rss_mib": round(peak_rss_kib / 1024, 1),
                  "grad_norm_max": grad_norm_max, "grad_norm_mean": grad_norm_mean}
        self.records.append(record)
        if not math.isfinite(train_loss):
            error = TrainingDiverged(epoch, epochs, train_loss)
            self.failure = str(error)
            self._emit(logging.ERROR, f"{readable(record)} FAILED: {error}", record)
            raise error
        self._emit(logging.INFO, readable(record), record)
        if not grad_norm_max <= self.max_grad_norm:  # also true for NaN
            self._warn("exploding_gradient", epoch,
                       f"gradient norm {grad_norm_max:.4g} above the policy maximum {self.max_grad_norm:g}",
                       grad_norm_max=grad_norm_max, max_grad_norm=self.max_grad_norm)
        if val_auc is not None and val_auc > self._best + self.min_delta:
            self._best, self._best_epoch = val_auc, epoch
        elif epoch - self._best_epoch == self.patience:
            self._warn("no_improvement", epoch,
                       f"validation AUC has not improved by more than {self.min_delta:g} for "
                       f"{self.patience} epochs (best {self._best:.4f} at epoch {self._best_epoch})",
                       best_val_auc=self._best, best_epoch=self._best_epoch, patience_epochs=self.patience)
        return record

    def _warn(self, kind: str, epoch: int, message: str, **fields) -> None:
        w = {"event": "warning", "kind": kind, **self.ids, "epoch": epoch, "message": message, **fields}
        self.warnings.append(w)
        self._emit(logging.WARNING, f"training warning at epoch {epoch}: {message}", w)

    def _emit(self, level: int, text: str, payload: dict) -> None:
        if log.isEnabledFor(level):
            log.log(level, "%s %s", text, json.dumps({k: _num(v) for k, v in payload.items()}))

    def step_metrics(self) -> list[tuple[str, float, int]]:
        """(name, value, step=epoch) for MLflow; non-numbers (val_auc None) are left out."""
        return [(f"train.{k}", float(r[k]), r["epoch"]) for r in self.records for k in STEP_METRICS
                if isinstance(r.get(k), (int, float))]

    def summary(self) -> dict:
        kinds = sorted({w["kind"] for w in self.warnings})
        return {"epochs_run": len(self.records), "warnings": len(self.warnings), "warning_kinds": kinds,
                "failure": self.failure}

    def write_jsonl(self, path: str | Path) -> Path:
        """Every epoch record and warning, in the order they happened, one JSON object a line."""
        events = sorted([*self.records, *self.warnings], key=lambda e: (e["epoch"], e["event"] != "epoch"))
        return atomic_write_text(Path(path), "".join(
            json.dumps({k: _num(v) for k, v in e.items()}) + "\n" for e in events))


def health_record(monitor: TrainingMonitor) -> tuple[list, dict, dict]:
    """What training health adds to the stage's MLflow record: (step metrics, metrics, tags).
    One step metric per epoch and field; the warnings counted by kind and named in tags."""
    kinds = [w["kind"] for w in monitor.warnings]
    norms = [r["grad_norm_max"] for r in monitor.records]
    metrics = {"training.warnings": len(kinds),
               **{f"training.warning.{k}": kinds.count(k) for k in ("exploding_gradient", "no_improvement")},
               "training.grad_norm_max": max(norms) if norms else 0.0}
    tags = {"training.warnings": ",".join(sorted(set(kinds))) or "none",
            **({"training.warning_messages": json.dumps([f"epoch {w['epoch']}: {w['message']}"
                                                         for w in monitor.warnings])} if kinds else {})}
    return monitor.step_metrics(), metrics, tags
