"""The audit event types and how one event is built: CloudEvents 1.0, with the ids every event carries.

Every event names the Dagster run, the MLflow run, `dataset@snapshot`, the W3C traceparent of the
factory run (`z9_trace_id`), the Z1 correlation id the snapshot's manifest inherited from Z3 (when
it has one) and the actor (an OIDC subject given by CI or the deployment, else the OS user, and
which of the two). CloudEvents extension names allow only [a-z0-9], so the ids are extensions
(`traceparent` is the CloudEvents distributed-tracing extension) and are repeated under their
documented names in `data.ids`.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

SOURCE = "urn:z4:model-factory"
PREFIX = "io.z4.factory."
# event type -> what it records (docs/audit.md lists them with their data fields)
EVENT_TYPES: dict[str, str] = {
    "snapshot.registered": "a snapshot entered the Z3 store (`z4 snapshot add`)",
    "snapshot.read": "a stage read snapshot rows through the broker: purpose, pseudonymised columns, rows",
    "stage.started": "a factory stage began",
    "gate.evaluated": "one gate's verdict: measured, threshold, verdict, evidence digest",
    "stage.completed": "a stage ended with all its gates passed (or blocked: the gates that blocked)",
    "stage.crashed": "a stage raised (an error, not a gate): the error's type and first line",
    "package.signed": "the signed package: its sha256, signer mode, decision",
    "model.promoted": "the registry version and alias the package was promoted to",
    "model.refused": "promotion refused: why",
    "cleanup.done": "a run's scratch removed, its retention manifest written",
    "incident.opened": "a blocked or crashed run's one incident: gate, measured, threshold, runbook, delivery",
    "lease.revoked": "a credential lease of a run revoked (issue 20 calls `emit`)",
    "retention.applied": "`z4 retention apply` removed what its class allowed",
    "package.verified": "`z4 verify` outcome",
    "package.loaded": "`z4 load` outcome",
    "lineage.run": "an OpenLineage RunEvent (START, COMPLETE, FAIL) of one stage; data is the RunEvent",
}
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
OIDC_SUBJECT_ENV = "Z4_ACTOR_OIDC_SUBJECT"


@dataclass(frozen=True)
class Actor:
    id: str
    kind: str  # "oidc_subject" (authenticated by CI / the deployment) or "os_user" (not authenticated)

    @classmethod
    def current(cls, oidc_subject: str = "") -> Actor:
        if oidc_subject:
            return cls(oidc_subject, "oidc_subject")
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
            user = f"uid:{os.getuid()}"
        return cls(user, "os_user")


def trace_id_for(dagster_run_id: str, parent: str = "") -> str:
    """The trace of a factory run: the one a caller passed (a W3C traceparent), else derived from the
    Dagster run id, so every process of the run (one per step) shares it without coordination."""
    m = _TRACEPARENT.match(parent or "")
    if m and m.group(1) != "0" * 32:
        return m.group(1)
    return hashlib.sha256(f"z9-trace:{dagster_run_id}".encode()).hexdigest()[:32]


def traceparent(trace_id: str) -> str:
    """A W3C traceparent for one event: the run's trace id, a new span id, sampled."""
    return f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


@dataclass(frozen=True)
class RunIds:
    """What ties an event to a run: the same for every event of one stage."""

    dagster_run_id: str = ""
    mlflow_run_id: str = ""
    dataset: str = ""              # dataset@snapshot
    z1_correlation_id: str = ""    # from the snapshot manifest (Z3); empty when Z3 gave none
    trace_id: str = ""             # 32 hex; empty: one derived from the Dagster run id (or random)
    actor: Actor = field(default_factory=Actor.current)

    def with_mlflow(self, mlflow_run_id: str | None) -> RunIds:
        from dataclasses import replace

        return replace(self, mlflow_run_id=mlflow_run_id or self.mlflow_run_id)


def build(kind: str, data: dict, ids: RunIds, subject: str = "", at: datetime | None = None) -> dict:
    """One CloudEvent (structured JSON attributes + data), before it is chained."""
    from cloudevents.core.v1.event import CloudEvent

    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown audit event type {kind!r} (core/audit/_events.EVENT_TYPES)")
    trace = ids.trace_id or (trace_id_for(ids.dagster_run_id) if ids.dagster_run_id else uuid.uuid4().hex)
    parent = traceparent(trace)
    none = "none"
    attrs = {
        "id": str(uuid.uuid4()), "source": SOURCE, "type": PREFIX + kind, "specversion": "1.0",
        "time": at or datetime.now(timezone.utc), "datacontenttype": "application/json",
        "subject": subject or ids.dataset or none,
        "traceparent": parent, "dagsterrunid": ids.dagster_run_id or none,
        "mlflowrunid": ids.mlflow_run_id or none, "dataset": ids.dataset or none,
        "z1correlationid": ids.z1_correlation_id or none, "actor": ids.actor.id, "actorkind": ids.actor.kind,
    }
    envelope = {"ids": {"dagster_run_id": ids.dagster_run_id or None, "mlflow_run_id": ids.mlflow_run_id or None,
                        "dataset": ids.dataset or None, "z9_trace_id": parent,
                        "z1_correlation_id": ids.z1_correlation_id or None,
                        "actor": asdict(ids.actor)}}
    event = CloudEvent(attrs, {**envelope, **data})  # validates the attributes against CloudEvents 1.0
    out = dict(event.get_attributes())
    out["time"] = out["time"].isoformat(timespec="microseconds").replace("+00:00", "Z")
    out["data"] = event.get_data()
    return out
