"""Where a factory stage's decisions become audit and lineage events: started, every gate, completed
(or crashed), the snapshot reads of the stage, and the stage's own decision (package signed, model
promoted or refused, cleanup done). Called only by `observed` (observability.py), around every asset.

Never in the way of the run: any failure to write or deliver an event is one warning line in the
run log, and delivery is bounded (core/audit/_delivery.py); what Z9 did not take stays queued.
"""

from __future__ import annotations

import functools
import hashlib
import json

import dagster as dg

from z4_assets.core.stages import CLEANUP, PACKAGING, PROMOTION, TRAINING

_SCALARS = (bool, int, float, str, type(None))


def _partition(context) -> str:
    try:
        return context.partition_key if context.has_partition_key else ""
    except dg.DagsterError:
        return ""


def _run_tags(context) -> dict:
    try:
        return dict(context.run.tags)
    except dg.DagsterError:
        return {}


@functools.lru_cache(maxsize=8)
def _snapshot_dataset(label: str, data_path: str, contract_path: str, contract_sha: str | None) -> dict:
    import pyarrow.parquet as pq

    from z4_assets.core.audit import snapshot_input
    from z4_assets.core.contract import load_contract

    schema = pq.read_schema(data_path)
    contract, _ = load_contract(contract_path)
    columns = [{"name": n, "dtype": s.dtype, "feature": bool(s.feature)} for n, s in contract.columns.items()]
    return snapshot_input(label, [(f.name, str(f.type)) for f in schema], columns, contract_sha)


def _digest(value) -> str:
    from z4_assets.core.files import json_default

    return hashlib.sha256(json.dumps(value, sort_keys=True, default=json_default).encode()).hexdigest()


def _plain(value):
    """A gate's measured value or threshold as it may leave the factory: a scalar, else its digest."""
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, _SCALARS) else {"sha256": _digest(value)}


class StageAudit:
    """The audit events of one asset execution."""

    def __init__(self, context, kwargs: dict):
        self.context, self.kwargs = context, kwargs
        self.asset = context.asset_key.to_user_string()
        self.trail = kwargs["storage"].audit()
        self.run_id = context.run_id
        self.ref = getattr(kwargs.get("z3_snapshot"), "snapshot", None)
        self.emitted = 0
        self.held: tuple | None = None  # z3_snapshot's start, until its snapshot (and Z1 id) is known

    @classmethod
    def open(cls, context, kwargs: dict) -> StageAudit | None:
        if kwargs.get("storage") is None:
            return None
        try:
            return cls(context, kwargs)
        except Exception as e:  # noqa: BLE001 - the audit never fails the stage
            context.log.warning(f"audit: events of {context.asset_key.to_user_string()} not written "
                                f"({type(e).__name__})")
            return None

    def _ids(self, mlflow_run_id: str = ""):
        from z4_assets.core.audit import trace_id_for

        m = self.ref.manifest if self.ref is not None else {}
        return self.trail.ids(dagster_run_id=self.run_id,
                              mlflow_run_id=mlflow_run_id or self.trail.mlflow_run_of(self.run_id),
                              dataset=self.ref.label if self.ref is not None else _partition(self.context),
                              z1_correlation_id=str(m.get("z1_correlation_id") or ""),
                              trace_id=trace_id_for(self.run_id, _run_tags(self.context).get("z9/traceparent", "")))

    def _inputs(self) -> list[dict]:
        if self.ref is None:
            return []
        m = self.ref.manifest
        return [_snapshot_dataset(self.ref.label, str(self.ref.data_path), str(self.ref.contract_path),
                                  m.get("contract_hash"))]

    def _lineage(self, state: str, outputs: list[dict] | None = None, error: str = "", at=None):
        from z4_assets.core.audit import run_event

        return ("lineage.run", {"state": state, "stage": self.asset,
                                "run_event": run_event(state, self.run_id, self.asset, self._inputs(),
                                                       outputs or [], error, at)}, "")

    def _emit(self, items, mlflow_run_id: str = "") -> None:
        try:
            if self.held is not None:  # the start comes first, now with the snapshot's ids
                held, at, self.held = self.held, self.held[1], None
                self.emitted += len(self.trail.emit_many(held[0], self._ids(mlflow_run_id), at=at))
            self.emitted += len(self.trail.emit_many(items, self._ids(mlflow_run_id)))
        except Exception as e:  # noqa: BLE001
            self.context.log.warning(f"audit: {len(items)} event(s) of {self.asset} not written ({type(e).__name__}: "
                                     f"{str(e)[:200]})")

    def started(self) -> None:
        from datetime import datetime, timezone

        if self.ref is None:  # z3_snapshot: which snapshot (and its Z1 correlation id) is known when it returns
            self.held = ([("stage.started", {"stage": self.asset}, "")], datetime.now(timezone.utc))
            return
        self._emit([("stage.started", {"stage": self.asset}, ""), self._lineage("START")])

    def crashed(self, error: BaseException) -> None:
        from z4_assets.core.tracking import redact_uri

        if self.held is not None:
            self.held = (self.held[0] + [self._lineage("START", at=self.held[1])], self.held[1])
        first = (str(getattr(error, "description", None) or error).strip().splitlines() or [""])[0]
        message = f"{type(error).__name__}: {redact_uri(first)[:300]}"
        self._emit([("stage.crashed", {"stage": self.asset, "error": message}, ""),
                    self._lineage("FAIL", error=message)])
        self.deliver()

    def finished(self, result: dg.MaterializeResult) -> dict:
        """Emit the stage's events; returns metadata entries for the asset (events, queued)."""
        outcome = result.value
        self.ref = getattr(outcome, "snapshot", None) or self.ref
        if self.held is not None:
            self.held = (self.held[0] + [self._lineage("START", at=self.held[1])], self.held[1])
        mlflow_meta = (result.metadata or {}).get("mlflow_run_id")
        mlflow_run_id = str(getattr(mlflow_meta, "value", mlflow_meta) or "")
        if mlflow_run_id:
            try:
                self.trail.remember_mlflow_run(self.run_id, mlflow_run_id)
            except Exception:  # noqa: BLE001 - only a convenience for the next stage's first events
                pass
        items = self._reads() + [self._gate(g, outcome) for g in outcome.gates]
        items += self._decision(outcome)
        blocked = outcome.blocked_by
        items.append(("stage.completed", {"stage": self.asset, "passed": outcome.passed, "blocked_by": blocked,
                                          "consumed": outcome.consumed.model_dump(),
                                          "produced": outcome.produced.model_dump()}, ""))
        items.append(self._lineage("FAIL" if blocked else "COMPLETE", self._outputs(outcome),
                                   f"blocked by {blocked}" if blocked else ""))
        self._emit(items, mlflow_run_id)
        return self.deliver()

    def _gate(self, g, outcome):
        gates_file = outcome.files.get("gates")
        data = {"stage": self.asset, "gate": g.name, "verdict": g.verdict, "passed": g.passed,
                "measured": _plain(g.value) if g.sufficient else None, "threshold": _plain(g.threshold),
                "comparison": g.comparison, "summary": g.summary[:300],
                "evidence_sha256": _digest(g.as_dict())}
        if gates_file:
            from z4_assets.core.files import sha256_file

            try:
                data["gates_file_sha256"] = sha256_file(gates_file)
            except OSError:
                data["gates_file_sha256"] = None
        return ("gate.evaluated", data, g.name)

    def _outputs(self, outcome) -> list[dict]:
        from z4_assets.core.audit import lineage_output as output

        label = self.ref.label if self.ref is not None else _partition(self.context)
        if self.asset == TRAINING.asset and outcome.produced.model:
            return [output("model", label, outcome.produced.model)]
        if self.asset == PACKAGING.asset and outcome.produced.package:
            return [output("package", label, outcome.produced.package)]
        return []

    def _decision(self, outcome) -> list[tuple]:
        f = outcome.facts
        if self.asset == PACKAGING.asset:
            return [("package.signed", {"package_sha256": outcome.produced.package, "signer": f.get("signer"),
                                        "decision": f.get("decision"), "sbom_sha256": f.get("sbom_sha256")}, "")]
        if self.asset == PROMOTION.asset:
            version = f.get("model_version", "none")
            if version != "none":
                return [("model.promoted", {"model_version": version, "alias": f.get("alias"),
                                            "package_sha256": f.get("package_sha256")}, "")]
            return [("model.refused", {"decision": f.get("decision"), "package_sha256": f.get("package_sha256"),
                                       "reasons": str(outcome.tags.get("policy_reasons", ""))[:500]}, "")]
        if self.asset == CLEANUP.asset:
            refused = f.get("refused") or []
            return [*lease_events(f), ("cleanup.done", {"removed_files": f.get("removed_files"), "removed_bytes": f.get("removed_bytes"),
                                      "revoked": f.get("revoked"), "refused": len(refused),
                                      "retention": f.get("retention"), "complete": outcome.passed}, "")]
        return []

    def _reads(self) -> list[tuple]:
        """This stage's lines of the broker's access log, as snapshot.read events (no values: names and counts)."""
        broker = self.kwargs.get("broker")
        if broker is None:
            return []
        from z4_assets.core.broker import run_lines

        items = []
        for line in run_lines(broker.log_path, self.run_id):
            r = json.loads(line)
            if r.get("reader") != self.asset:
                continue
            items.append(("snapshot.read", {
                "reader": r.get("reader"), "purpose": r.get("purpose"), "decision": r.get("decision"),
                "reason": r.get("reason"), "raw_for_intake": r.get("raw"), "rows": r.get("rows"),
                "columns": r.get("columns"), "pseudonymised": r.get("pseudonymised"),
                "data_sha256": r.get("data_sha256"), "access_log_line_sha256": hashlib.sha256(line).hexdigest(),
            }, ""))
        return items

    def deliver(self) -> dict:
        """Deliver what is queued (bounded); the counts go into the asset's metadata and the MLflow run."""
        out = {"audit_events": dg.MetadataValue.int(self.emitted)}
        try:
            reports = self.trail.flush(during_run=True)
            per_sink = self.trail.queued()
            queued = sum(per_sink.values())
            out["audit_queued"] = dg.MetadataValue.int(queued)
            for r in reports:
                if r.error:
                    self.context.log.warning(f"audit: {r.error}; {per_sink.get(r.sink, 0)} event(s) queued for "
                                             f"the {r.sink} sink (delivered later, or by `z4 audit flush`)")
            mlflow = self.kwargs.get("mlflow")
            if mlflow is not None:
                from z4_assets.core.audit import CHAIN_TAG, HEAD_TAG

                mlflow.log_to_run(self.run_id, tags={"z9.audit_queued": str(queued),
                                                     HEAD_TAG: self.trail.head(), CHAIN_TAG: self.trail.chain_id()})
        except Exception as e:  # noqa: BLE001
            self.context.log.warning(f"audit: delivery not attempted ({type(e).__name__})")
        return out


def lease_events(facts: dict) -> list[tuple]:
    """One lease.revoked per lease or token the cleanup revoked (or failed to): its id only as a digest."""
    out = []
    for r in facts.get("revocations") or []:
        status = str(r.get("status", ""))
        out.append(("lease.revoked", {"lease_sha256": hashlib.sha256(str(r.get("lease_id", "")).encode()).hexdigest(),
                                      "issuer": str(r.get("issuer", ""))[:100], "ok": not status.startswith("failed"),
                                      "status": status[:300]}, ""))
    return out


def failed_run_cleaned(context, storage, failed_run_id: str, partition: str, outcome) -> None:
    """The cleanup job's `cleanup.done` (and its gate) for a failed run, on that run's trail."""
    from z4_assets.core.audit import trace_id_for

    try:
        trail = storage.audit()
        f = outcome.facts
        ids = trail.ids(dagster_run_id=failed_run_id, mlflow_run_id=trail.mlflow_run_of(failed_run_id), dataset=partition,
                        trace_id=trace_id_for(failed_run_id))
        gate = outcome.gates[0]
        trail.emit_many([
            *lease_events(f),
            ("gate.evaluated", {"stage": "cleanup_job", "gate": gate.name, "verdict": gate.verdict,
                                "passed": gate.passed, "measured": _plain(gate.value), "threshold": _plain(gate.threshold),
                                "comparison": gate.comparison, "summary": gate.summary[:300],
                                "evidence_sha256": _digest(gate.as_dict())}, gate.name),
            ("cleanup.done", {"removed_files": f.get("removed_files"), "removed_bytes": f.get("removed_bytes"),
                              "revoked": f.get("revoked"), "refused": len(f.get("refused") or []),
                              "retention": f.get("retention"), "complete": outcome.passed,
                              "cleanup_job_run_id": context.run_id}, "")], ids)
        trail.flush(during_run=True)
    except Exception as e:  # noqa: BLE001 - the audit never fails the cleanup
        context.log.warning(f"audit: cleanup events of {failed_run_id} not written ({type(e).__name__})")


def incident_opened(context, storage, failed_run_id: str, partition: str, record: dict) -> None:
    """The failed run's incident (core/incident.py) on that run's trail: once, when it is first opened."""
    from z4_assets.core.audit import trace_id_for

    try:
        trail = storage.audit()
        ids = trail.ids(dagster_run_id=failed_run_id, mlflow_run_id=trail.mlflow_run_of(failed_run_id), dataset=partition,
                        trace_id=trace_id_for(failed_run_id))
        keys = ("kind", "title", "gate", "measured", "threshold", "runbook")
        data = {k: _plain(record.get(k)) for k in keys if k in record}
        data["delivery"] = (record.get("delivery") or {}).get("status")
        data["incident_sha256"] = _digest(record)
        trail.emit_many([("incident.opened", data, "")], ids)
        trail.flush(during_run=True)
    except Exception as e:  # noqa: BLE001 - the audit never fails the cleanup
        context.log.warning(f"audit: incident event of {failed_run_id} not written ({type(e).__name__})")
