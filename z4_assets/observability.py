"""What an operator sees of every asset: log lines that carry the run and snapshot ids, and a cost
summary (wall, CPU, memory, rows) in the metadata, the logs and the MLflow run.

Each factory asset adds one decorator line under `@dg.asset`: `@observed("snapshot")` when it
reads the snapshot's rows, `@observed()` when it works on evidence files only.
"""

import functools
import logging

import dagster as dg

from z4_assets.audit_events import StageAudit
from z4_assets.core.cost import Cost, cost_metrics, measure
from z4_assets.core.errors import Z4Error

CORE_LOGGER = "z4_assets"
NO_PARTITION = ("model_factory trains one snapshot, and this run names none: give its partition "
                "(`z4 run`; `dagster job execute ... --tags \"$(z4 snapshot tags)\"`; or pick a partition "
                "<dataset_id>@<snapshot_id> in the Launchpad)")  # python logging of the domain code (z4_assets.core.*) is under it
_PENDING = "<resolving>"   # z3_snapshot's own lines before it has chosen the snapshot


class RunLog:
    """context.log with `[run=<dagster run id> snapshot=<dataset@snapshot>]` before every message."""

    def __init__(self, context: dg.AssetExecutionContext, snapshot_label: str | None):
        self.context, self.snapshot = context, snapshot_label or _PENDING

    @property
    def prefix(self) -> str:
        return f"[run={self.context.run_id} snapshot={self.snapshot}]"

    def log(self, level: int, message: str) -> None:
        method = self.context.log.error if level >= logging.ERROR else (
            self.context.log.warning if level >= logging.WARNING else self.context.log.info)
        method(f"{self.prefix} {message}")

    def info(self, message: str) -> None:
        self.log(logging.INFO, message)

    def warning(self, message: str) -> None:
        self.log(logging.WARNING, message)

    def error(self, message: str) -> None:
        self.log(logging.ERROR, message)


def _partition(context) -> str | None:
    try:
        return context.partition_key if context.has_partition_key else None
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return None


def run_log(context: dg.AssetExecutionContext) -> RunLog:
    return RunLog(context, _partition(context))


class _Forward(logging.Handler):
    """Records of the domain code during one asset: the ids go onto the record (for any other
    handler, e.g. a JSON shipper on the root logger) and the line goes to the Dagster run log."""

    def __init__(self, rl: RunLog):
        super().__init__(logging.INFO)
        self.rl = rl

    def emit(self, record: logging.LogRecord) -> None:
        record.dagster_run_id, record.snapshot_id = self.rl.context.run_id, self.rl.snapshot
        self.rl.log(record.levelno, record.getMessage())


def cost_metadata(cost: Cost) -> dict:
    peak = cost.step_peak_rss_mib
    return {
        "cost_wall_s": dg.MetadataValue.float(cost.wall_s),
        "cost_cpu_s": dg.MetadataValue.float(cost.cpu_s),
        "cost_child_cpu_s": dg.MetadataValue.float(cost.child_cpu_s),
        "cost_step_peak_rss_mib": dg.MetadataValue.float(peak) if peak is not None else "unknown: "
                                  "the kernel's peak-RSS reset is not allowed here",
        "cost_process_peak_rss_mib": dg.MetadataValue.float(cost.process_peak_rss_mib),
        "cost_rss_delta_mib": dg.MetadataValue.float(cost.rss_delta_mib),
        "cost_rows": dg.MetadataValue.int(cost.rows),
        "cost_summary": dg.MetadataValue.text(cost.summary()),
    }


def _report(context, rl: RunLog, mlflow, asset: str, cost: Cost, status: str) -> None:
    rl.info(f"cost {asset} ({status}): {cost.summary()}")
    if mlflow is None:
        return
    try:
        mlflow.log_to_run(context.run_id, metrics=cost_metrics(asset, cost))
    except Exception as e:  # the cost record must never hide the asset's own outcome
        rl.warning(f"cost {asset}: not logged to MLflow ({type(e).__name__}: {e})")


def _rows(rows: str | None, outcome) -> int:
    """The snapshot's rows, from the snapshot outcome the asset took (or, for z3_snapshot, returned)."""
    ref = getattr(outcome, "snapshot", None)
    return int(ref.manifest["row_count"]) if rows == "snapshot" and ref is not None else 0


def blocked_message(asset: str, partition: str, outcome) -> str | None:
    """The step failure of an asset whose gate blocked: each failed gate as measured against threshold,
    with a few offending examples and where the evidence is. None when every gate let it through."""
    from z4_assets.core.verdict import gate_line

    failed = [g for g in getattr(outcome, "gates", ()) or () if not g.passed]
    if not failed:
        return None
    lines = [f"BLOCKED: {asset} of {partition} did not pass {len(failed)} gate(s); nothing downstream runs "
             "for this snapshot."]
    lines += [gate_line(g.as_dict()) for g in failed]
    gates_file = (getattr(outcome, "files", None) or {}).get("gates")
    if gates_file:
        lines.append(f"Evidence: {gates_file} (and the asset's checks tab)")
    return "\n".join(lines)


def _in_run(context) -> bool:
    try:
        return context.run is not None
    except dg.DagsterError:  # an asset invoked directly, outside any run
        return False


def _then_block(result, blocked: str):
    """The materialization (outcome, failed checks), then the step's failure as the decision: Dagster's
    own blocking-check error would be a stack trace naming the gate but not its measured value."""
    yield result
    raise dg.Failure(description=blocked, allow_retries=False)


def observed(rows: str | None = None):
    """Decorate an asset function: correlated logging, cost measured and reported. In a run, an asset
    whose gate blocked yields its materialization (the outcome, its checks), then fails its step with a
    `dg.Failure` that reads as the decision (measured against threshold), not as a stack trace.

    rows="snapshot": the asset reads the snapshot's rows, which are reported as rows processed;
    None: it works on evidence files only, rows processed is 0.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def asset_fn(context, **kwargs):
            snapshot = kwargs.get("z3_snapshot")
            asset = context.asset_key.to_user_string()
            if _partition(context) is None:
                raise dg.Failure(description=NO_PARTITION)
            rl = run_log(context)
            audit = StageAudit.open(context, kwargs)
            if audit is not None:
                audit.started()
            handler, core = _Forward(rl), logging.getLogger(CORE_LOGGER)
            level = core.level
            core.addHandler(handler)
            if core.getEffectiveLevel() > logging.INFO:
                core.setLevel(logging.INFO)
            cost = None
            try:
                with measure(_rows(rows, snapshot)) as cost:
                    try:
                        result = fn(context, **kwargs)
                    except Z4Error as e:  # a refused input, a broken file: one clear line, no traceback
                        raise dg.Failure(description=f"{asset} of {rl.snapshot}: {e}") from None
                cost.rows = _rows(rows, snapshot or getattr(result, "value", None))
            except BaseException as e:
                if audit is not None:
                    audit.crashed(e)
                if cost is not None:
                    _report(context, rl, kwargs.get("mlflow"), asset, cost, "failed")
                raise
            finally:
                core.removeHandler(handler)
                core.setLevel(level)
            _report(context, rl, kwargs.get("mlflow"), asset, cost, "ok")
            trail = audit.finished(result) if audit is not None else {}
            result = result._replace(metadata={**(result.metadata or {}), **cost_metadata(cost), **trail})
            blocked = blocked_message(asset, rl.snapshot, getattr(result, "value", None))
            if blocked is None or not _in_run(context):
                return result  # called directly (a test): the result, its failed checks in it
            return _then_block(result, blocked)  # Dagster iterates a returned generator

        return asset_fn

    return decorate
